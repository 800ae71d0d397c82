"""DeepMimic's imitation reward (Peng et al. 2018, eq. 5-9) and the target-heading task reward,
for a batch of characters (every array has a leading batch axis N; the single env passes N = 1).

``r_I = w_p r_p + w_v r_v + w_e r_e + w_c r_c`` with each term ``exp(-k * err)``:

- pose: ``sum_j w_j * angle(q_ref_j^-1 q_j)^2`` over the root orientation and every joint, with
  DeepMimic's per-joint weights normalised to sum 1 (quaternion difference angles for ball
  joints, angle differences for hinges);
- velocity: ``sum ||qdot_j - qdot_ref_j||^2`` over the local joint angular velocities (root
  angular velocity included, root translation excluded); with ``velocity_joint_weights`` each
  joint's error weighted by its pose weight, as DeepMimic's released code has it;
- end effector: ``sum_e ||p_e - p_ref_e||^2`` of the hands and feet relative to the root, each
  in its own character's heading frame;
- centre of mass: ``||p_c - p_ref_c||^2`` in world coordinates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

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
    # The paper's eq. 7 sums the joints' squared velocity errors; DeepMimic's code weights them by
    # the pose weights (which sum to 1), about a tenth of the sum: a term a fast clip can earn.
    velocity_joint_weights: bool = False

    def __post_init__(self) -> None:
        for f in fields(self):  # the annotations are strings (postponed evaluation)
            value = getattr(self, f.name)
            if f.type == "bool":
                if not isinstance(value, (bool, np.bool_)):
                    raise ValueError(f"RewardConfig.{f.name} must be a bool, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
                raise ValueError(f"RewardConfig.{f.name} must be finite and >= 0, got {value!r}")
        if self.task_weight > 1:
            raise ValueError(
                f"RewardConfig.task_weight must be in [0, 1], got {self.task_weight!r}")

    @classmethod
    def of(cls, spec: RewardConfig | str | Mapping | None) -> RewardConfig:
        """A config from a config, a preset name (:data:`REWARD_PRESETS`), a mapping of field
        values (what a JSON run config holds) or None (the paper's)."""
        if spec is None:
            return cls()
        if isinstance(spec, cls):
            return spec
        if isinstance(spec, str):
            if spec not in REWARD_PRESETS:
                raise ValueError(f"reward_config preset must be one of {sorted(REWARD_PRESETS)}, "
                                 f"got {spec!r}")
            return REWARD_PRESETS[spec]
        if isinstance(spec, Mapping):
            unknown = set(spec) - {f.name for f in fields(cls)}
            if unknown:
                raise ValueError(f"reward_config has no fields {sorted(unknown)}; "
                                 f"it takes {[f.name for f in fields(cls)]}")
            return cls(**spec)
        raise ValueError(f"reward_config must be a RewardConfig, preset name or mapping, got {spec!r}")

    @property
    def term_weights(self) -> np.ndarray:
        return np.array([self.pose_weight, self.velocity_weight, self.end_effector_weight,
                         self.com_weight])

    @property
    def term_scales(self) -> np.ndarray:
        return np.array([self.pose_scale, self.velocity_scale, self.end_effector_scale,
                         self.com_scale])


# Named configs for ``reward_config="NAME"``. "paper": eq. 5-9 of the paper (the default, and what
# evaluations report). "keep_up": a training reward for fast clips. DeepMimic's code pulls the
# character along with root-position (weight 0.2) and centre-of-mass velocity (0.1) terms; here
# one centre-of-mass term of weight 0.3 at scale 1, whose pull lasts: 1 m behind still earns 0.37
# of it, where exp(-5 d^2) gives 0.007 and a run trained on that lagged 1 m at 2.75M samples (the
# lag builds in the first 2 s of an episode, and nothing then pays for closing it). Velocity errors
# are joint-weighted as in DeepMimic's code.
REWARD_PRESETS = {
    "paper": RewardConfig(),
    "keep_up": RewardConfig(pose_weight=0.5, velocity_weight=0.05, end_effector_weight=0.15,
                            com_weight=0.3, com_scale=1.0, velocity_joint_weights=True),
}


class ImitationReward:
    """Evaluates the four imitation terms of simulated states against reference states."""

    def __init__(self, character: Character, config: RewardConfig | str | Mapping | None = None) -> None:
        self.character = character
        self.config = RewardConfig.of(config)
        self._weights = self.config.term_weights
        self._neg_scales = -self.config.term_scales
        # The pose error reads quaternions (the root's orientation and each ball joint) and
        # hinge angles straight from qpos, with each joint's weight from the per-dof weights.
        m = character.model
        quats, quat_w, hinges, hinge_w = [], [], [], []
        for j, jid in zip(character.joints, m.body_jntadr[character.body_ids]):
            if j.kind == "fixed":
                continue
            qadr, dadr = m.jnt_qposadr[jid], m.jnt_dofadr[jid]
            if j.kind == "hinge":
                hinges.append(qadr)
                hinge_w.append(character.dof_pose_weight[dadr])
            else:  # ball, or free: its orientation follows its position in qpos and dofs
                skip = 3 if j.kind == "free" else 0
                quats.append(np.arange(qadr + skip, qadr + skip + 4))
                quat_w.append(character.dof_pose_weight[dadr + skip])
        self._quat_adr = np.array(quats).reshape(-1, 4)
        self._quat_product = self._quat_adr[:, _PERM]  # gathers each ref^-1 as a 4x4 matrix
        self._hinge_adr = np.array(hinges, dtype=int)
        # Every error is a weighted sum of squared differences: one (D, 4) weight matrix sums
        # them all, D = half angles (squared angle / 4), hinge angles, joint velocities (the
        # root's angular ones, not its translation), end-effector and CoM coordinates.
        n_ee = len(character.end_effector_index)
        joint_velocity_w = (character.dof_pose_weight[3:] if self.config.velocity_joint_weights
                            else np.ones(m.nv - 3))
        columns = [(4.0 * np.array(quat_w), 0), (np.array(hinge_w), 0), (joint_velocity_w, 1),
                   (np.ones(3 * n_ee), 2), (np.ones(3), 3)]
        self._sum = np.zeros((sum(len(w) for w, _ in columns), 4))
        row = 0
        for w, term in columns:
            self._sum[row:row + len(w), term] = w
            row += len(w)

    def errors(self, qpos: np.ndarray, qvel: np.ndarray, ee: np.ndarray, com: np.ndarray,
               ref_qpos: np.ndarray, ref_qvel: np.ndarray, ref_ee: np.ndarray,
               ref_com: np.ndarray) -> np.ndarray:
        """(N, 4) squared errors: pose, velocity, end effector, centre of mass; inputs (N, ...):
        qpos, qvel, end effectors (N, E, 3) and centre of mass (N, 3), then the reference's.

        Pose: per joint, the angle of ``q_ref^-1 q`` (MuJoCo's ``mj_differentiatePos`` for
        ball joints; its rotation vector's squared norm is the angle squared), from the
        Hamilton product as a 4x4 matrix of the reference's quaternion times the simulated one.
        """
        n = len(qpos)
        product = (ref_qpos[:, self._quat_product] * _SIGN) @ qpos[:, self._quat_adr, None]
        v = product[..., 1:, 0]  # (N, J, 3) vector part; the angle is 2 atan2(|v|, |w|)
        half = np.arctan2(np.sqrt(np.einsum("...i,...i->...", v, v)), np.abs(product[..., 0, 0]))
        diff = np.concatenate([half, (qpos - ref_qpos)[:, self._hinge_adr], qvel[:, 3:] - ref_qvel[:, 3:],
                               (ee - ref_ee).reshape(n, -1), com - ref_com], axis=1)
        return (diff * diff) @ self._sum

    def terms(self, errors: np.ndarray) -> np.ndarray:
        """(N, 4) reward terms ``exp(-scale * err)``."""
        return np.exp(np.multiply(self._neg_scales, errors))

    def imitation(self, terms: np.ndarray) -> np.ndarray:
        """(N,) weighted sums of the terms: ``r_I``."""
        return terms @ self._weights

    @property
    def max_imitation(self) -> float:
        """``r_I`` of a perfect match (the sum of the term weights)."""
        return float(self._weights.sum())


# The Hamilton product conj(r) q (w, x, y, z) as a 4x4 matrix of r times q: entry [a, b] is
# r[_PERM[a, b]] * _SIGN[a, b], so it is one gather, one multiply and one matrix product.
_PERM = np.array([[0, 1, 2, 3], [1, 0, 3, 2], [2, 3, 0, 1], [3, 2, 1, 0]])
_SIGN = np.array([[1.0, 1, 1, 1], [-1, 1, 1, -1], [-1, -1, 1, 1], [-1, 1, -1, 1]])


def heading_task_reward(com_velocity: np.ndarray, target_direction: np.ndarray,
                        target_speed: float) -> np.ndarray:
    """DeepMimic's target-heading reward ``exp(-2.5 max(0, v* - d* . v_com)^2)``; velocities
    (..., 3) and horizontal directions (..., 2), e.g. (N, 3) and (N, 2) for N characters."""
    along = np.einsum("...i,...i->...", target_direction, com_velocity[..., :2])
    shortfall = np.maximum(0.0, target_speed - along)
    return np.exp(-2.5 * shortfall**2)
