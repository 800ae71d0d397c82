"""DeepMimic's imitation reward (Peng et al. 2018, eq. 5-9) and the target-heading task reward.

``r_I = w_p r_p + w_v r_v + w_e r_e + w_c r_c`` with each term ``exp(-k * err)``:

- pose: ``sum_j w_j * angle(q_ref_j^-1 q_j)^2`` over the root orientation and every joint, with
  DeepMimic's per-joint weights normalised to sum 1 (quaternion difference angles for ball
  joints, angle differences for hinges);
- velocity: ``sum ||qdot_j - qdot_ref_j||^2`` over the local joint angular velocities (root
  angular velocity included, root translation excluded);
- end effector: ``sum_e ||p_e - p_ref_e||^2`` of the hands and feet relative to the root, each
  in its own character's heading frame;
- centre of mass: ``||p_c - p_ref_c||^2`` in world coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from mimicgym.envs.mimic.characters import Character

TERMS = ("pose", "velocity", "end_effector", "com")


@dataclass(frozen=True)
class RewardConfig:
    """Term weights and error scales (the paper's defaults); ``task_weight`` is ``w_G``."""

    pose_weight: float = 0.65
    velocity_weight: float = 0.1
    end_effector_weight: float = 0.15
    com_weight: float = 0.1
    pose_scale: float = 2.0
    velocity_scale: float = 0.1
    end_effector_scale: float = 40.0
    com_scale: float = 10.0
    task_weight: float = 0.0  # the imitation part is weighted 1 - task_weight

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"RewardConfig.{name} must be finite and >= 0, got {value!r}")
        if self.task_weight > 1:
            raise ValueError(
                f"RewardConfig.task_weight must be in [0, 1], got {self.task_weight!r}")

    @property
    def term_weights(self) -> np.ndarray:
        return np.array([self.pose_weight, self.velocity_weight, self.end_effector_weight,
                         self.com_weight])

    @property
    def term_scales(self) -> np.ndarray:
        return np.array([self.pose_scale, self.velocity_scale, self.end_effector_scale,
                         self.com_scale])


class ImitationReward:
    """Evaluates the four imitation terms of a simulated state against a reference state."""

    def __init__(self, character: Character, config: RewardConfig | None = None) -> None:
        self.character = character
        self.config = config or RewardConfig()
        self._weights = self.config.term_weights
        self._neg_scales = -self.config.term_scales
        self._dq = np.zeros(character.model.nv)  # scratch for mj_differentiatePos
        self._dq2 = np.zeros(character.model.nv)
        self._errors = np.zeros(4)

    def errors(self, qpos: np.ndarray, qvel: np.ndarray, ee: np.ndarray, com: np.ndarray,
               ref_qpos: np.ndarray, ref_qvel: np.ndarray, ref_ee: np.ndarray,
               ref_com: np.ndarray) -> np.ndarray:
        """(4,) squared errors: pose, velocity, end effector, centre of mass."""
        # Per dof, the rotation vector of q_ref^-1 q: its squared norm is the squared angle.
        mujoco.mj_differentiatePos(self.character.model, self._dq, 1.0, ref_qpos, qpos)
        pose = self.character.dof_pose_weight @ np.multiply(self._dq, self._dq, out=self._dq2)
        dv = qvel[3:] - ref_qvel[3:]
        de = (ee - ref_ee).ravel()
        dc = com - ref_com
        err = self._errors  # item writes: np.array() of four numpy scalars costs more
        err[0], err[1], err[2], err[3] = pose, dv @ dv, de @ de, dc @ dc
        return err.copy()

    def terms(self, errors: np.ndarray) -> np.ndarray:
        """(4,) reward terms ``exp(-scale * err)``."""
        return np.exp(np.multiply(self._neg_scales, errors))

    def imitation(self, terms: np.ndarray) -> float:
        """Weighted sum of the terms: ``r_I``."""
        return float(self._weights @ terms)

    @property
    def max_imitation(self) -> float:
        """``r_I`` of a perfect match (the sum of the term weights)."""
        return float(self._weights.sum())


def heading_task_reward(com_velocity: np.ndarray, target_direction: np.ndarray,
                        target_speed: float) -> float:
    """DeepMimic's target-heading reward ``exp(-2.5 max(0, v* - d* . v_com)^2)``."""
    shortfall = max(0.0, target_speed - float(target_direction @ com_velocity[:2]))
    return float(np.exp(-2.5 * shortfall**2))
