"""``MimicEnv``: DeepMimic-style motion imitation on a MuJoCo character (Peng et al. 2018);
the class docstring documents its spaces, rewards, episode ends and arguments."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from mimicgym.envs.mimic.factory import make_character
from mimicgym.envs.mimic.heading import heading_matrix
from mimicgym.envs.mimic.reference import load_reference
from mimicgym.envs.mimic.reward import TERMS, ImitationReward, RewardConfig, heading_task_reward

# Body groups allowed to touch the ground, per clip (DeepMimic's "EnableFallContact" per
# motion); group names resolve to bodies through ``Character.body_groups``. ``None``: every body
# may touch the ground (no contact termination). Clips not listed: the feet only.
ALLOWED_CONTACTS: dict[str, tuple[str, ...] | None] = {
    "cartwheel": ("feet", "hands"),
    "crawl": ("feet", "hands", "knees"),
    "roll": None,
    "getup_faceup": None,
    "getup_facedown": None,
}
_DEFAULT_CONTACTS = ("feet",)


class MimicEnv(gym.Env):
    """Imitate a reference clip with a PD-controlled physics character.

    ## Description
    DeepMimic-style motion imitation (Peng et al. 2018) in MuJoCo: DeepMimic's ``humanoid3d`` or
    the SMPL body-model humanoid tracks a reference clip (DeepMimic's, a generated one, or any
    ``MotionClip``, retargeted). One step is one policy decision at ``control_freq`` (30 Hz);
    ``600 / control_freq`` physics steps at 600 Hz run in one ``mj_step`` call.

    ## Action Space
    ``Box(-1, 1, (A,), float32)``: PD-target offsets around the reference pose, in joint order,
    three per ball joint (local x, y, z exponential-map coordinates), one per hinge (angle);
    A = 28 for humanoid3d (8 ball joints, 4 hinges), 69 for SMPL (23 ball joints). Each entry is
    clipped to [-1, 1], scaled by ``action_scale`` (radians) and added to the reference's PD
    target at the end of the step; MuJoCo position actuators with DeepMimic's ``kp``/``kd`` track
    it, the torque clipped per axis at the joint's torque limit. A wrong shape or a non-finite
    entry raises ``ValueError``.

    ## Observation Space
    ``Box(-inf, inf, (n,), float32)``; vectors in the heading frame (the yaw of the root's forward
    axis), B bodies in model order with the root first. In order: root height (1); non-root
    body positions relative to the root (3 (B-1)); each body's x (tangent) and y (normal) axes
    (6 B); body-origin linear velocities (3 B); angular velocities (3 B); with
    ``reference_targets=True`` (default) the next control step's reference: its PD targets minus
    the current joint coordinates (A) and its root position minus the root's (3); the clip phase
    in [0, 1) (1; 1.0 on the last step of a non-looping clip); with ``task=True`` the target
    direction (2) and speed (1). humanoid3d: B = 15, A = 28, n = 255 (224 without the targets);
    SMPL: B = 24, A = 69, n = 431 (359); ``task`` adds 3. The targets let the policy read its
    tracking error instead of recalling the clip from the phase: the first 100k samples count.

    ## Rewards
    ``r_I = 0.65 r_p + 0.1 r_v + 0.15 r_e + 0.1 r_c``, each term ``exp(-k err)``: pose
    ``exp(-2 sum_j w_j angle(q_ref_j^-1 q_j)^2)`` (root orientation and joints, DeepMimic's weights
    normalised to sum 1); velocity ``exp(-0.1 sum_j ||qdot_j - qdot_ref_j||^2)`` (joint and root
    angular velocities); end effector ``exp(-40 sum_e ||p_e - p_ref_e||^2)`` (ankles and wrists
    relative to the root, heading frames); centre of mass ``exp(-10 ||p_c - p_ref_c||^2)``
    (world). Weights and scales come from ``reward_config``. With ``task=True`` the reward is
    ``(1 - w_G) r_I + w_G r_G``, ``r_G = exp(-2.5 max(0, v* - d* . v_com)^2)``,
    ``w_G = reward_config.task_weight`` (default 0: the task only enters the observation).

    ## Starting State
    ``rsi=True`` (reference state initialisation): the reference's pose and velocity at a
    uniformly random physics step of the clip (at least one control step before the end of a
    non-looping clip); ``rsi=False``: phase 0. ``task``: a uniformly random target direction.

    ## Episode End
    Termination (``early_termination=True``): a body not in ``allowed_contacts`` touches the
    floor, or the mean body-origin distance from the reference exceeds ``max_tracking_error``
    (m, when set). Truncation is the env's own, as the ids register no ``max_episode_steps``
    (no ``TimeLimit``): the length follows ``episode_seconds``, ``round(episode_seconds *
    control_freq)`` steps (300), and a non-looping clip truncates when it has played out.

    ## Information
    ``reset``: ``phase``. ``step``: ``reward_terms`` (``pose``, ``velocity``, ``end_effector``,
    ``com`` -> term), ``imitation_reward`` (``r_I``), ``phase``; with ``task``, ``task_reward``.

    ## Arguments
    - ``clip="walk"``: DeepMimic clip name (without pybullet the generated clip of that name, with
      a warning), generated clip name (``"jumping_jacks"``...), DeepMimic file or ``MotionClip``.
    - ``character="humanoid3d"``: DeepMimic's character, or ``"smpl"`` (the body-model humanoid).
    - ``betas=None``: SMPL shape parameters (``character="smpl"`` only; None: default body).
    - ``control_freq=30``: policy rate (Hz); must divide the 600 Hz physics rate.
    - ``episode_seconds=10.0``: time limit (truncation).
    - ``rsi=True``: reference state initialisation (random phase) instead of phase 0.
    - ``early_termination=True``: end episodes on bad contacts / tracking error.
    - ``allowed_contacts="default"``: body names allowed on the floor ("default": per clip, feet
      only unless cartwheel/crawl/roll/getup; None: all).
    - ``max_tracking_error=None``: mean body-position error (m) that terminates (None: off).
    - ``action_scale=0.5``: radians of PD-target offset per unit action.
    - ``reward_config=None``: term weights, scales, ``task_weight`` (None: ``RewardConfig()``).
    - ``reference_targets=True``: put the next reference pose, relative, in the observation.
    - ``task=False``: add the target-heading task (observation, ``task_reward``).
    - ``target_speed=1.0``: task speed (m/s).
    - ``render_mode=None``: None or "rgb_array" (the character beside its reference ghost).
    - ``width=480``: "rgb_array" frame width in pixels.
    - ``height=480``: "rgb_array" frame height in pixels.

    ```python
    env = gym.make("mimicgym/Mimic-v0", clip="run", character="smpl", rsi=False)
    ```

    ## Version History
    - v0: initial version: 30 Hz control over 600 Hz physics, PD actuators with torque limits,
      reference targets in the observation, the four DeepMimic terms, RSI, early termination.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(self, clip: str = "walk", character: str = "humanoid3d", betas=None,
                 control_freq: int = 30,
                 episode_seconds: float = 10.0, rsi: bool = True, early_termination: bool = True,
                 allowed_contacts: tuple[str, ...] | None | str = "default",
                 max_tracking_error: float | None = None, action_scale: float = 0.5,
                 reward_config: RewardConfig | None = None, reference_targets: bool = True,
                 task: bool = False,
                 target_speed: float = 1.0, render_mode: str | None = None,
                 width: int = 480, height: int = 480) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if episode_seconds <= 0:
            raise ValueError(f"episode_seconds must be > 0, got {episode_seconds!r}")
        if action_scale <= 0:
            raise ValueError(f"action_scale must be > 0, got {action_scale!r}")
        self.char = make_character(character, betas=betas)
        self.model = self.char.model
        self.data = mujoco.MjData(self.model)
        self.ref = load_reference(self.char, clip)
        substeps = (1.0 / control_freq) / self.model.opt.timestep if control_freq > 0 else 0.5
        if abs(substeps - round(substeps)) > 1e-6 or substeps < 1:
            raise ValueError(f"control_freq must divide the physics rate "
                             f"{1 / self.model.opt.timestep:g} Hz, got {control_freq!r}")
        self.substeps = int(round(substeps))
        self.dt = 1.0 / control_freq
        self.metadata = {**self.metadata, "render_fps": control_freq}
        self.max_episode_steps = int(round(episode_seconds * control_freq))
        self.rsi, self.early_termination = rsi, early_termination
        self.max_tracking_error = max_tracking_error
        self.action_scale = float(action_scale)
        self.reward = ImitationReward(self.char, reward_config)
        self.task, self.target_speed = task, float(target_speed)
        self.render_mode, self.width, self.height = render_mode, width, height
        self._renderer = None

        self._contact_ok = self._allowed_contact_mask(allowed_contacts)
        self._floor = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM, "floor")
        self._bad_pair = self._bad_contact_pairs().ravel()  # indexed by g1 * ngeom + g2
        self._pair_stride = np.array([self.model.ngeom, 1])
        self._ref_qpos = np.zeros(self.model.nq)
        # Observation order is the model's body order (root first); contiguous -> a slice.
        order = np.sort(self.char.body_ids)
        contiguous = order[0] == self.char.body_ids[0] and (np.diff(order) == 1).all()
        self._obs_bodies = slice(order[0], order[-1] + 1) if contiguous else order
        self._ee_bodies = self.char.body_ids[self.char.end_effector_index]
        self._root = int(self.char.body_ids[0])  # a Python int indexes MjData faster

        n_act = len(self.char.actuated_dofs)
        self.reference_targets = bool(reference_targets)
        n_kinematic = 1 + 3 * (self.char.n_bodies - 1) + 12 * self.char.n_bodies
        n_targets = n_act + 3 if self.reference_targets else 0
        self._targets = slice(n_kinematic, n_kinematic + n_targets)
        self._phase_index = n_kinematic + n_targets
        n_obs = self._phase_index + 1 + (3 if task else 0)
        # Per-step scratch: the observation's numpy calls write here instead of allocating.
        b = self.char.n_bodies
        self._world = np.zeros((5 * b - 1, 3))  # world vectors the heading rotation turns
        self._obs = np.zeros(n_obs)  # float64 observation before the float32 copy
        self._local = self._obs[1:1 + 3 * (5 * b - 1)].reshape(5 * b - 1, 3)  # a view
        self._lever = np.zeros((b, 3))  # body origin - centre of mass
        self._cross_scratch = np.zeros((3, b, 6))  # the cross product's factors and products
        self._heading = np.zeros((3, 3))
        self.action_space = spaces.Box(-1.0, 1.0, (n_act,), np.float32)
        self.observation_space = spaces.Box(-np.inf, np.inf, (n_obs,), np.float32)
        self._k = 0  # physics step index into the reference
        self._steps = 0
        self._target_dir = np.array([1.0, 0.0])

    # ------------------------------------------------------------------ set-up helpers
    def _allowed_contact_mask(self, allowed) -> np.ndarray:
        """(nbody,) bool: True where touching the floor does not end the episode."""
        if isinstance(allowed, str) and allowed == "default":
            groups = ALLOWED_CONTACTS.get(self.ref.name, _DEFAULT_CONTACTS)
            allowed = None if groups is None else sum(map(self.char.bodies_in, groups), ())
        mask = np.ones(self.model.nbody, dtype=bool)
        if allowed is None:
            return mask
        mask[self.char.body_ids] = False
        for name in allowed:
            bid = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, name)
            if bid < 0:
                raise ValueError(f"allowed_contacts: no body named {name!r}")
            mask[bid] = True
        return mask

    def _bad_contact_pairs(self) -> np.ndarray:
        """(ngeom, ngeom) bool: True for a floor contact that ends the episode, so a step's
        contact check is one lookup over ``data.contact.geom``."""
        bad_geom = ~self._contact_ok[self.model.geom_bodyid]  # (ngeom,)
        pairs = np.zeros((self.model.ngeom, self.model.ngeom), dtype=bool)
        if self._floor >= 0:
            pairs[self._floor] = pairs[:, self._floor] = bad_geom
        return pairs

    # ------------------------------------------------------------------ Gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        last = self.ref.n - 1 if self.ref.loop else max(self.ref.n - self.substeps, 1)
        self._k = int(self.np_random.integers(0, last)) if self.rsi else 0
        self._steps = 0
        mujoco.mj_resetData(self.model, self.data)  # clears the solver's warm start too
        self.data.qpos[:], self.data.qvel[:] = self.ref.state(self._k)
        mujoco.mj_forward(self.model, self.data)
        if self.task:
            angle = self.np_random.uniform(-np.pi, np.pi)
            self._target_dir = np.array([np.cos(angle), np.sin(angle)])
        obs = self._observation()
        return obs, {"phase": self.ref.phase(self._k)}

    def step(self, action):
        action = np.asarray(action, dtype=np.float64)
        if action.shape != self.action_space.shape:
            raise ValueError(
                f"action must have shape {self.action_space.shape}, got {action.shape}")
        if not math.isfinite(action @ action):  # one call: finite iff every entry is
            raise ValueError(f"action has non-finite entries: {action}")
        self._k += self.substeps
        self._steps += 1
        i, cycles = self.ref.index(self._k)  # the reference's grid index, once per step
        ref_qpos, ref_qvel = self._reference_state(i, cycles)
        # PD targets: the reference pose's targets plus the action offsets (exponential-map
        # coordinates for ball joints, angles for hinges), straight into the actuators' ctrl.
        ctrl = self.data.ctrl
        np.minimum(np.maximum(action, -1.0, out=ctrl), 1.0, out=ctrl)
        np.multiply(ctrl, self.action_scale, out=ctrl)
        np.add(ctrl, self.ref.pd_target[i], out=ctrl)
        mujoco.mj_step(self.model, self.data, nstep=self.substeps)
        self._refresh_kinematics()
        qpos = self.data.qpos
        if not math.isfinite(qpos @ qpos):
            raise FloatingPointError(f"simulation diverged at step {self._steps} "
                                     f"(clip {self.ref.name!r}, physics step {self._k})")

        heading = heading_matrix(self.data.xmat[self._root], out=self._heading)
        terms, r_imitation, body_err = self._imitation(ref_qpos, ref_qvel, heading, i)
        reward = r_imitation
        phase = i / self.ref.n  # = ref.phase(k)
        info = {"reward_terms": dict(zip(TERMS, terms.tolist())), "imitation_reward": r_imitation,
                "phase": phase}
        if self.task:
            com_vel = self.data.subtree_linvel[self.char.body_ids[0]]
            r_task = heading_task_reward(com_vel, self._target_dir, self.target_speed)
            w_g = self.reward.config.task_weight
            reward = (1.0 - w_g) * r_imitation + w_g * r_task
            info["task_reward"] = r_task
        terminated = self.early_termination and (
            self._bad_contact()
            or (self.max_tracking_error is not None and body_err > self.max_tracking_error))
        truncated = self._steps >= self.max_episode_steps or self.ref.finished(self._k)
        return self._observation(heading, phase), reward, bool(terminated), bool(truncated), info

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        if self._renderer is None:
            from mimicgym.envs.mimic.render import MimicRenderer

            self._renderer = MimicRenderer(self.char, self.width, self.height)
        return self._renderer.render(self.data.qpos, self.ref.state(self._k)[0])

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # ------------------------------------------------------------------ internals
    @property
    def reference_step(self) -> int:
        """The physics step ``k`` the reference is at (time ``k * model.opt.timestep``)."""
        return self._k

    def set_state_to_reference(self, k: int) -> None:
        """Put the character exactly on the reference at physics step ``k`` (kinematic playback)."""
        self._k = int(k)
        self.data.qpos[:], self.data.qvel[:] = self.ref.state(self._k)
        mujoco.mj_forward(self.model, self.data)

    def imitation_terms(self) -> np.ndarray:
        """(4,) reward terms of the current state against the reference at the current step."""
        heading = heading_matrix(self.data.xmat[self._root])
        return self._imitation(*self.ref.state(self._k), heading, self.ref.index(self._k)[0])[0]

    def _reference_state(self, i: int, cycles: int) -> tuple[np.ndarray, np.ndarray]:
        """``ref.state(k)`` at grid index ``i`` after ``cycles`` cycles, without fresh arrays:
        qpos in a scratch buffer, qvel a view (read only)."""
        qpos = self._ref_qpos
        qpos[:] = self.ref.qpos[i]
        if cycles:
            qpos[:3] += cycles * self.ref.cycle_offset
        return qpos, self.ref.qvel[i]

    def _refresh_kinematics(self) -> None:
        # mj_step leaves positions computed for the state before its last integration.
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)
        mujoco.mj_comVel(self.model, self.data)
        if self.task:
            mujoco.mj_subtreeVel(self.model, self.data)

    def _imitation(self, ref_qpos, ref_qvel, heading, i) -> tuple[np.ndarray, float, float]:
        """(terms, r_I, mean body-position error) against the reference at step ``_k`` (grid
        index ``i``); ``heading``: the character's (3, 3) world -> heading rotation."""
        d, root = self.data, self._root
        # End effectors relative to the root, heading frame (as ``end_effectors_in_heading``).
        ee = (d.xpos[self._ee_bodies] - d.xpos[root]) @ heading.T
        errors = self.reward.errors(d.qpos, d.qvel, ee, d.subtree_com[root], ref_qpos, ref_qvel,
                                    self.ref.end_effectors[i], self.ref.com_at(self._k))
        terms = self.reward.terms(errors)
        body_err = 0.0
        if self.max_tracking_error is not None:
            body_pos = d.xpos[self.char.body_ids]
            ref_body = self.ref.body_pos_at(self._k)
            body_err = float(np.linalg.norm(body_pos - ref_body, axis=1).mean())
        return terms, self.reward.imitation(terms), body_err

    def _bad_contact(self) -> bool:
        n = self.data.ncon
        if n == 0:
            return False
        geoms = self.data.contact.geom[:n]  # (n, 2)
        return bool(self._bad_pair[geoms @ self._pair_stride].any())

    def _observation(self, heading: np.ndarray | None = None,
                     phase: float | None = None) -> np.ndarray:
        """The observation (a fresh float32 array); ``heading`` as in :meth:`_imitation`."""
        d, w = self.data, self._world
        ids = self._obs_bodies  # a slice where possible: views instead of fancy-index copies
        root, n = self._root, len(self._lever)
        if heading is None:
            heading = heading_matrix(d.xmat[root])
        xpos = d.xpos[ids]  # (B, 3), xpos[0] is the root
        # World vectors, stacked (5B - 1, 3): positions relative to the root, each body's
        # x (tangent) and y (normal) axes (columns 0 and 1 of its rotation matrix), linear and
        # angular velocities; one product then turns them all into the heading frame.
        np.subtract(xpos[1:], xpos[0], out=w[:n - 1])
        np.copyto(w[n - 1:3 * n - 1].reshape(n, 2, 3),
                  d.xmat[ids].reshape(n, 3, 3).transpose(0, 2, 1)[:, :2])
        # cvel is [angular, linear] at the subtree CoM; shift the linear part to each body origin.
        cvel = d.cvel[ids]
        ang, lin = cvel[:, :3], w[3 * n - 1:4 * n - 1]
        np.subtract(xpos, d.subtree_com[root], out=self._lever)
        _cross(ang, self._lever, self._cross_scratch, out=lin)
        np.add(lin, cvel[:, 3:], out=lin)
        np.copyto(w[4 * n - 1:], ang)
        np.matmul(w, heading.T, out=self._local)
        obs = self._obs
        obs[0] = d.qpos[2]
        if self.reference_targets:
            self._reference_targets(heading, obs[self._targets])
        obs[self._phase_index] = self.ref.phase(self._k) if phase is None else phase
        if self.task:
            obs[-3:-1] = heading[:2, :2] @ self._target_dir
            obs[-1] = self.target_speed
        return obs.astype(np.float32)

    def _reference_targets(self, heading: np.ndarray, out: np.ndarray) -> None:
        """The next control step's reference: PD targets minus the current actuator lengths
        (joint coordinates, the actions' units) and root position minus the current root (in
        the heading frame), written into ``out`` (A + 3,)."""
        d, ref = self.data, self.ref
        i, cycles = ref.index(self._k + self.substeps)
        mujoco.mj_transmission(self.model, d)  # actuator_length of the current pose
        np.subtract(ref.pd_target[i], d.actuator_length, out=out[:-3])
        root = ref.qpos[i, :3] - d.qpos[:3]
        if cycles:
            root += cycles * ref.cycle_offset
        np.matmul(heading, root, out=out[-3:])


_CROSS_A, _CROSS_B = np.array([1, 2, 0, 2, 0, 1]), np.array([2, 0, 1, 1, 2, 0])


def _cross(a: np.ndarray, b: np.ndarray, scratch: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Row-wise cross product of (N, 3) arrays into ``out``: the six products ``a_j b_k`` in one
    multiply, then one subtraction, all in ``scratch`` (3, N, 6) (``np.cross`` costs several
    times more at this size)."""
    fa, fb, products = scratch
    # ndarray.take, not np.take: the function's Python wrapper costs as much as the copy.
    np.multiply(a.take(_CROSS_A, axis=1, out=fa), b.take(_CROSS_B, axis=1, out=fb), out=products)
    return np.subtract(products[:, :3], products[:, 3:], out=out)
