"""``MimicEnv``: DeepMimic-style motion imitation on a MuJoCo character (Peng et al. 2018);
the class docstring documents its spaces, rewards, episode ends and arguments."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from mimicgym.envs.mimic.factory import make_character
from mimicgym.envs.mimic.observation import ImitationObservation, Kinematics, end_effectors_in_heading, heading_matrices
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


class Outcome(NamedTuple):
    """One control step of N characters (:meth:`MimicEnv.evaluate`): arrays with a leading
    batch axis; ``task_reward`` is None without the task."""

    obs: np.ndarray  # (N, n) float32
    reward: np.ndarray  # (N,)
    terminated: np.ndarray  # (N,) bool
    truncated: np.ndarray  # (N,) bool
    reward_terms: np.ndarray  # (N, 4), in TERMS order
    imitation_reward: np.ndarray  # (N,)
    task_reward: np.ndarray | None  # (N,)
    phase: np.ndarray  # (N,)


class MimicEnv(gym.Env):
    """Imitate a reference clip with a PD-controlled physics character.

    ## Description
    DeepMimic-style motion imitation (Peng et al. 2018) in MuJoCo: DeepMimic's ``humanoid3d`` or
    the SMPL body-model humanoid tracks a reference clip (DeepMimic's, a generated one, or any
    ``MotionClip``, retargeted). One step is one policy decision at ``control_freq`` (30 Hz);
    ``600 / control_freq`` physics steps at 600 Hz run per step (:meth:`advance`).

    ``gym.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point")`` gives N of them
    in one :class:`~mimicgym.envs.mimic.batched.BatchedMimicEnv`, which computes observations
    and rewards with this env's own batch methods (``controls``, ``evaluate``: arrays with a
    leading batch axis, N = 1 here).

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
    - ``reward_config=None``: term weights, scales, ``task_weight``: a ``RewardConfig``, a mapping
      of its fields, or a preset name, ``"paper"`` (eq. 5-9; None means it) or ``"keep_up"`` (a
      training reward for fast clips: see ``mimicgym.envs.mimic.reward.REWARD_PRESETS``).
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
                 reward_config: RewardConfig | str | Mapping | None = None, reference_targets: bool = True,
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
        # Nested lists: a step's few contacts are looked up faster in Python than by numpy calls.
        self._bad_pair = self._bad_contact_pairs().tolist()
        self._ee_bodies = self.char.body_ids[self.char.end_effector_index]
        self._root = int(self.char.body_ids[0])  # a Python int indexes MjData faster

        self.reference_targets = bool(reference_targets)
        self._features = ImitationObservation(self.char, self.ref, self.substeps, self.reference_targets,
                                            task, self.target_speed)
        self.action_space = spaces.Box(-1.0, 1.0, (len(self.char.actuated_dofs),), np.float32)
        self.observation_space = spaces.Box(-np.inf, np.inf, (self._features.size,), np.float32)
        self._kin = Kinematics.of(self.data, self._root)  # views: always the current state
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
        contact check is one lookup per contact in ``data.contact.geom``."""
        bad_geom = ~self._contact_ok[self.model.geom_bodyid]  # (ngeom,)
        pairs = np.zeros((self.model.ngeom, self.model.ngeom), dtype=bool)
        if self._floor >= 0:
            pairs[self._floor] = pairs[:, self._floor] = bad_geom
        return pairs

    # ------------------------------------------------------------------ Gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._k, self._target_dir = self.restart(self.data, self.np_random)
        self._steps = 0
        return self._observation(), {"phase": float(self.ref.phase(self._k))}

    def step(self, action):
        action = np.asarray(action, dtype=np.float64)
        if action.shape != self.action_space.shape:
            raise ValueError(
                f"action must have shape {self.action_space.shape}, got {action.shape}")
        if not math.isfinite(action @ action):  # one call: finite iff every entry is
            raise ValueError(f"action has non-finite entries: {action}")
        self._k += self.substeps
        self._steps += 1
        k = np.array([self._k])
        self.advance(self.data, self.controls(action[None], k)[0])
        qpos = self.data.qpos
        if not math.isfinite(qpos @ qpos):
            raise FloatingPointError(f"simulation diverged at step {self._steps} "
                                     f"(clip {self.ref.name!r}, physics step {self._k})")
        bad = np.array([self.early_termination and self.bad_contact(self.data)])
        out = self.evaluate(self._kin, k, np.array([self._steps]), self._target_dir[None], bad)
        info = {"reward_terms": dict(zip(TERMS, out.reward_terms[0].tolist())),
                "imitation_reward": float(out.imitation_reward[0]), "phase": float(out.phase[0])}
        if self.task:
            info["task_reward"] = float(out.task_reward[0])
        return (out.obs[0], float(out.reward[0]), bool(out.terminated[0]), bool(out.truncated[0]),
                info)

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
        no = np.zeros(1, dtype=bool)
        return self.evaluate(self._kin, np.array([self._k]), np.zeros(1, dtype=int),
                             self._target_dir[None], no).reward_terms[0]

    def _observation(self) -> np.ndarray:
        """The observation of the current state (float32)."""
        return self.observation(self._kin, np.array([self._k]), self._target_dir[None])[0]

    def _bad_contact(self) -> bool:
        return self.bad_contact(self.data)

    # ---------------------------------------- per character, shared with BatchedMimicEnv
    def restart(self, data: mujoco.MjData, rng: np.random.Generator) -> tuple[int, np.ndarray]:
        """Start an episode in ``data``: the reference state at a random physics step (RSI, or
        step 0), drawn from ``rng`` with the task direction; returns (step k, direction (2,))."""
        last = self.ref.n - 1 if self.ref.loop else max(self.ref.n - self.substeps, 1)
        k = int(rng.integers(0, last)) if self.rsi else 0
        mujoco.mj_resetData(self.model, data)  # clears the solver's warm start too
        data.qpos[:], data.qvel[:] = self.ref.state(k)
        mujoco.mj_forward(self.model, data)
        direction = np.array([1.0, 0.0])
        if self.task:
            angle = rng.uniform(-np.pi, np.pi)
            direction = np.array([np.cos(angle), np.sin(angle)])
        return k, direction

    def advance(self, data: mujoco.MjData, ctrl: np.ndarray) -> None:
        """One control step of ``data`` with the PD targets ``ctrl``: ``substeps`` physics steps,
        after which the new state's kinematics, actuator lengths and contacts are computed.

        ``data`` is kept half-stepped: the position and velocity stage (``mj_step1``:
        kinematics, com, collisions, transmission) of the state it holds is always done (by
        ``mj_forward`` at a restart). So a control step is ``mj_step2`` (actuation, constraint
        solve, integration), ``substeps - 1`` whole steps, and ``mj_step1`` of the new state: the
        work of ``substeps`` physics steps and the same numbers as ``mj_step``, bit for bit,
        where ``mj_step`` and a kinematics refresh would redo the position stage once more."""
        data.ctrl[:] = ctrl
        mujoco.mj_step2(self.model, data)
        if self.substeps > 1:
            mujoco.mj_step(self.model, data, nstep=self.substeps - 1)
        mujoco.mj_step1(self.model, data)
        if self.task:
            mujoco.mj_subtreeVel(self.model, data)  # the centre of mass velocity (not in mj_step1)

    def bad_contact(self, data: mujoco.MjData) -> bool:
        """Whether a body not allowed on the floor touches it (the contacts of the current state)."""
        bad = self._bad_pair
        return any(bad[g1][g2] for g1, g2 in data.contact.geom.tolist())

    # ---------------------------------------- batches (leading axis N), shared with BatchedMimicEnv
    def controls(self, actions: np.ndarray, k: np.ndarray) -> np.ndarray:
        """(N, A) PD targets for steps ending at physics steps ``k``: the reference pose's targets
        plus the action offsets (exponential-map coordinates for ball joints, angles for
        hinges), which go straight into the actuators' ``ctrl``."""
        ctrl = np.minimum(np.maximum(actions, -1.0), 1.0)
        ctrl *= self.action_scale
        ctrl += self.ref.pd_target[self.ref.index(k)[0]]
        return ctrl

    def observation(self, kin: Kinematics, k: np.ndarray, target_dir: np.ndarray) -> np.ndarray:
        """(N, n) float32 observations of characters at physics steps ``k`` (N,)."""
        heading = heading_matrices(kin.xmat[:, self._root])
        return self._features(kin, k, heading, self.ref.phase(k), target_dir)

    def evaluate(self, kin: Kinematics, k: np.ndarray, steps: np.ndarray, target_dir: np.ndarray,
                 bad_contact: np.ndarray) -> Outcome:
        """Rewards, episode ends and observations of N characters after a step: ``kin`` at
        physics steps ``k`` (N,), ``steps`` (N,) control steps into their episodes,
        ``target_dir`` (N, 2), ``bad_contact`` (N,) bool (see :meth:`bad_contact`)."""
        ref, root = self.ref, self._root
        heading = heading_matrices(kin.xmat[:, root])
        ee = end_effectors_in_heading(kin.xpos[:, self._ee_bodies], kin.xpos[:, root], heading)
        errors = self.reward.errors(kin.qpos, kin.qvel, ee, kin.com, *ref.frame(k))
        terms = self.reward.terms(errors)
        reward = r_imitation = self.reward.imitation(terms)
        r_task = None
        if self.task:
            r_task = heading_task_reward(kin.com_vel, target_dir, self.target_speed)
            w_g = self.reward.config.task_weight
            reward = (1.0 - w_g) * r_imitation + w_g * r_task
        terminated = bad_contact
        if self.max_tracking_error is not None:  # mean body-origin distance from the reference
            gap = np.linalg.norm(kin.xpos[:, self.char.body_ids] - ref.body_pos_at(k), axis=-1)
            terminated = terminated | (gap.mean(axis=-1) > self.max_tracking_error)
        terminated = terminated & self.early_termination
        truncated = steps >= self.max_episode_steps
        if not ref.loop:
            truncated |= ref.finished(k)
        phase = ref.phase(k)
        obs = self._features(kin, k, heading, phase, target_dir)
        return Outcome(obs, reward, terminated, truncated, terms, r_imitation, r_task, phase)
