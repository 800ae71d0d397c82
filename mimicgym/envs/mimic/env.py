"""``MimicEnv``: DeepMimic-style motion imitation on a MuJoCo character (Peng et al. 2018).

One env step is one 30 Hz policy decision: the action (PD-target offsets around the
reference pose, exponential map for ball joints and angles for hinges, normalised to [-1, 1])
sets the joint springs' rest positions, then ``nstep`` physics steps run in one ``mj_step`` call.
Reference state initialisation (RSI) and early termination are switches;
``info["reward_terms"]`` carries the four imitation terms.

Observation (float32, heading frame = the yaw of the root's forward axis, bodies in model
order with the root first): root height (1); each non-root body's position relative to the
root (3 (B-1)); each body's x (tangent) and y (normal) axes (6 B); each body origin's linear
velocity (3 B) and angular velocity (3 B); clip phase in [0, 1) (1); with ``task=True`` the
target direction in the heading frame and the target speed (3). humanoid3d: B = 15, 224 numbers.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from mimicgym.envs.mimic.characters import make_character
from mimicgym.envs.mimic.reference import load_reference
from mimicgym.envs.mimic.reward import (
    TERMS,
    ImitationReward,
    RewardConfig,
    end_effectors_in_heading,
    heading_matrix,
    heading_task_reward,
)

_FEET = ("right_ankle", "left_ankle")
_HANDS = ("right_wrist", "left_wrist", "right_elbow", "left_elbow")
_ALL = None  # every body may touch the ground: no contact termination
# Bodies allowed to touch the ground, per clip (DeepMimic's "EnableFallContact" per motion).
ALLOWED_CONTACTS: dict[str, tuple[str, ...] | None] = {
    "cartwheel": _FEET + _HANDS,
    "crawl": _FEET + _HANDS + ("right_knee", "left_knee"),
    "roll": _ALL,
    "getup_faceup": _ALL,
    "getup_facedown": _ALL,
}


class MimicEnv(gym.Env):
    """Imitate a reference clip with a PD-controlled physics character.

    Args:
        clip: DeepMimic clip name (``"walk"``, ``"run"``, ...; without pybullet the generated
            clip of that name, with a warning), a generated clip name (``"jumping_jacks"``...),
            a DeepMimic file path, or a ``MotionClip`` (retargeted onto the character).
        character: ``"humanoid3d"`` (``"smpl"`` is not available yet).
        control_freq: policy rate (Hz); the physics rate is the character's (600 Hz).
        episode_seconds: time limit (truncation); non-looping clips also end with the clip.
        rsi: reference state initialisation (random phase) instead of starting at phase 0.
        early_termination: end the episode when a body not in ``allowed_contacts`` touches the
            ground or, if ``max_tracking_error`` is set, the mean body-position error exceeds it.
        allowed_contacts: body names allowed on the ground (default per clip; ``None``: all).
        action_scale: radians of PD-target offset per unit action.
        reward_config: term weights and scales (:class:`RewardConfig`).
        task: add the target-heading task (the target joins the observation; the reward becomes
            ``w_I r_I + w_G r_G``).
        target_speed: task speed (m/s).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(self, clip: str = "walk", character: str = "humanoid3d", control_freq: int = 30,
                 episode_seconds: float = 10.0, rsi: bool = True, early_termination: bool = True,
                 allowed_contacts: tuple[str, ...] | None | str = "default",
                 max_tracking_error: float | None = None, action_scale: float = 0.5,
                 reward_config: RewardConfig | None = None, task: bool = False,
                 target_speed: float = 1.0, render_mode: str | None = None,
                 width: int = 480, height: int = 480) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if episode_seconds <= 0:
            raise ValueError(f"episode_seconds must be > 0, got {episode_seconds!r}")
        if action_scale <= 0:
            raise ValueError(f"action_scale must be > 0, got {action_scale!r}")
        self.char = make_character(character)
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
        self._offset = np.zeros(self.model.nv)  # scratch: PD-target offsets as a velocity
        self._target = np.zeros(self.model.nq)
        # Observation order is the model's body order (root first); contiguous -> a slice.
        order = np.sort(self.char.body_ids)
        contiguous = order[0] == self.char.body_ids[0] and (np.diff(order) == 1).all()
        self._obs_bodies = slice(order[0], order[-1] + 1) if contiguous else order

        n_act = len(self.char.actuated_dofs)
        n_obs = 1 + 3 * (self.char.n_bodies - 1) + 12 * self.char.n_bodies + 1 + (3 if task else 0)
        self.action_space = spaces.Box(-1.0, 1.0, (n_act,), np.float32)
        self.observation_space = spaces.Box(-np.inf, np.inf, (n_obs,), np.float32)
        self._k = 0  # physics step index into the reference
        self._steps = 0
        self._target_dir = np.array([1.0, 0.0])

    # ------------------------------------------------------------------ set-up helpers
    def _allowed_contact_mask(self, allowed) -> np.ndarray:
        """(nbody,) bool: True where touching the floor does not end the episode."""
        if isinstance(allowed, str) and allowed == "default":
            allowed = ALLOWED_CONTACTS.get(self.ref.name, _FEET)
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
        if not np.isfinite(action).all():
            raise ValueError(f"action has non-finite entries: {action}")
        self._k += self.substeps
        self._steps += 1
        ref_qpos, ref_qvel = self.ref.state(self._k)
        # PD targets: the reference pose "+" the action offsets (exp map on ball joints).
        self._offset[self.char.actuated_dofs] = np.minimum(np.maximum(action, -1.0), 1.0) \
            * self.action_scale
        self._target[:] = ref_qpos
        mujoco.mj_integratePos(self.model, self._target, self._offset, 1.0)
        self.model.qpos_spring[:] = self._target
        mujoco.mj_step(self.model, self.data, nstep=self.substeps)
        self._refresh_kinematics()
        if not np.isfinite(self.data.qpos).all():
            raise FloatingPointError(f"simulation diverged at step {self._steps} "
                                     f"(clip {self.ref.name!r}, physics step {self._k})")

        terms, r_imitation, body_err = self._imitation(ref_qpos, ref_qvel)
        reward = r_imitation
        info = {"reward_terms": dict(zip(TERMS, terms.tolist())), "imitation_reward": r_imitation,
                "phase": self.ref.phase(self._k)}
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
        return self._observation(), reward, bool(terminated), bool(truncated), info

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
        return self._imitation(*self.ref.state(self._k))[0]

    def _refresh_kinematics(self) -> None:
        # mj_step leaves positions computed for the state before its last integration.
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)
        mujoco.mj_comVel(self.model, self.data)
        if self.task:
            mujoco.mj_subtreeVel(self.model, self.data)

    def _imitation(self, ref_qpos, ref_qvel) -> tuple[np.ndarray, float, float]:
        d, c = self.data, self.char
        root = c.body_ids[0]
        body_pos = d.xpos[c.body_ids]
        ee = end_effectors_in_heading(body_pos, d.xmat[root], c.end_effector_index)
        errors = self.reward.errors(d.qpos, d.qvel, ee, d.subtree_com[root], ref_qpos, ref_qvel,
                                    self.ref.end_effectors_at(self._k), self.ref.com_at(self._k))
        terms = self.reward.terms(errors)
        body_err = 0.0
        if self.max_tracking_error is not None:
            ref_body = self.ref.body_pos_at(self._k)
            body_err = float(np.linalg.norm(body_pos - ref_body, axis=1).mean())
        return terms, self.reward.imitation(terms), body_err

    def _bad_contact(self) -> bool:
        n = self.data.ncon
        if n == 0:
            return False
        geoms = self.data.contact.geom[:n]  # (n, 2)
        bodies = self.model.geom_bodyid[geoms]  # (n, 2)
        on_floor = (geoms == self._floor).any(axis=1)
        other = np.where(geoms[:, 0] == self._floor, bodies[:, 1], bodies[:, 0])
        return bool((on_floor & ~self._contact_ok[other]).any())

    def _observation(self) -> np.ndarray:
        d, c = self.data, self.char
        ids = self._obs_bodies  # a slice where possible: views instead of fancy-index copies
        root = c.body_ids[0]
        n = c.n_bodies
        xpos = d.xpos[ids]  # (B, 3), xpos[0] is the root
        heading = heading_matrix(d.xmat[root])  # (3, 3) world -> heading
        # Each body's x (tangent) and y (normal) axes: columns 0 and 1 of its rotation matrix.
        axes = d.xmat[ids].reshape(n, 3, 3).transpose(0, 2, 1)[:, :2].reshape(2 * n, 3)
        # cvel is [angular, linear] at the subtree CoM; shift the linear part to each body origin.
        cvel = d.cvel[ids]
        ang = cvel[:, :3]
        lin = cvel[:, 3:] + _cross(ang, xpos - d.subtree_com[root])
        # One product turns every world vector into the heading frame: (5B - 1, 3).
        local = np.concatenate([xpos[1:] - xpos[0], axes, lin, ang]) @ heading.T
        parts = [d.qpos[2:3], local.ravel(), [self.ref.phase(self._k)]]
        if self.task:
            target = heading[:2, :2] @ self._target_dir
            parts.append([target[0], target[1], self.target_speed])
        return np.concatenate(parts).astype(np.float32)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cross product of (N, 3) arrays (``np.cross`` costs several times more here)."""
    return (a.take([1, 2, 0], axis=1) * b.take([2, 0, 1], axis=1)
            - a.take([2, 0, 1], axis=1) * b.take([1, 2, 0], axis=1))
