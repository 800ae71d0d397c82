"""Building blocks of the generated clips: gait timing, foot trajectories, two-link leg IK.

All arrays are batched over frames (T, ...), float64, in the z-up world (x forward at
heading 0, y left). Feet are posed by their ankle position and world orientation
``Rz(yaw) Ry(pitch) C`` with ``C`` the skeleton's upright rotation: pitch > 0 lifts the
heel (toes down), so a foot flat on the floor at heading ``yaw`` has pitch 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mimicgym.motion.rotations import axis_angle_to_matrix, matrix_to_quat
from mimicgym.motion.skeleton import Skeleton

__all__ = ["rot", "min_jerk", "soft_min", "FootTrack", "foot_pose", "leg_ik", "max_hip_height", "to_quats",
           "GroundPath", "StraightPath", "ArcPath", "gait_feet"]


def rot(axis: str | np.ndarray, angle: np.ndarray | float) -> np.ndarray:
    """Rotation matrices (..., 3, 3) by ``angle`` (rad) about "x", "y", "z" or a unit 3-vector."""
    angle = np.asarray(angle, dtype=np.float64)
    unit = np.eye(3)["xyz".index(axis)] if isinstance(axis, str) else np.asarray(axis, dtype=np.float64)
    return axis_angle_to_matrix(torch.from_numpy(angle[..., None] * unit)).numpy()


def to_quats(R: np.ndarray) -> np.ndarray:
    return matrix_to_quat(torch.from_numpy(np.ascontiguousarray(R))).numpy()


def min_jerk(s: np.ndarray) -> np.ndarray:
    """Minimum-jerk blend 10s^3 - 15s^4 + 6s^5 on [0, 1]: zero velocity and acceleration at both ends."""
    s = np.clip(s, 0.0, 1.0)
    return s**3 * (10 - 15 * s + 6 * s**2)


def soft_min(values: np.ndarray, sharpness: float, axis: int = 0) -> np.ndarray:
    """Smooth lower bound of the minimum: ``-log(sum exp(-k v)) / k <= min(v)``, within log(n)/k."""
    m = values.min(axis=axis)
    return m - np.log(np.exp(-sharpness * (values - np.expand_dims(m, axis))).sum(axis=axis)) / sharpness


# ----------------------------------------------------------------------------- paths
class GroundPath:
    """A planar path by arc length: position (..., 2) and heading (...,) at ``s``."""

    def position(self, s: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def heading(self, s: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class StraightPath(GroundPath):
    def position(self, s):
        s = np.asarray(s, dtype=np.float64)
        return np.stack([s, np.zeros_like(s)], -1)

    def heading(self, s):
        return np.zeros_like(np.asarray(s, dtype=np.float64))


@dataclass
class ArcPath(GroundPath):
    """A circle of ``radius`` turning left (counter-clockwise) from heading 0; negative turns right."""

    radius: float

    def position(self, s):
        a = np.asarray(s, dtype=np.float64) / self.radius
        return np.stack([self.radius * np.sin(a), self.radius * (1 - np.cos(a))], -1)

    def heading(self, s):
        return np.asarray(s, dtype=np.float64) / self.radius


# ------------------------------------------------------------------------------ feet
@dataclass
class FootTrack:
    """One foot over time: ankle position (T, 3), yaw and pitch (T,), in contact (T,)."""

    ankle: np.ndarray
    yaw: np.ndarray
    pitch: np.ndarray
    contact: np.ndarray


def foot_pose(skeleton: Skeleton, yaw: np.ndarray, pitch: np.ndarray) -> np.ndarray:
    """World foot orientation (T, 3, 3) = Rz(yaw) Ry(pitch) C."""
    return rot("z", yaw) @ rot("y", pitch) @ skeleton.upright_matrix()


def gait_feet(skeleton: Skeleton, side: str, t: np.ndarray, path: GroundPath, speed: float,
              stride: float, phase_offset: float, duty: float, heel_off: float, toe_off_pitch: float,
              lift: float, half_width: float, over_foot: float = 0.5, settle: float = 0.1
              ) -> FootTrack:
    """A walking/running foot along ``path``: stance flat, then heel rising about the pinned
    toe joint, then a minimum-jerk swing to the next footprint, landing flat.

    Footprint ``c`` lies where the pelvis is after the fraction ``over_foot`` of its stance;
    ``phase_offset`` is 0 for the left foot and 0.5 for the right; ``duty`` the stance
    fraction of a cycle and ``heel_off`` the fraction of stance after which the heel rises.
    """
    sign = 1.0 if side == "left" else -1.0
    period = stride / speed
    u = t / period + phase_offset
    cycle = np.floor(u)
    phi = u - cycle  # phase within the cycle; stance for phi < duty
    ankle_rest = skeleton.rest_positions()[skeleton.index(f"{side}_ankle")]
    toe_rest = skeleton.rest_positions()[skeleton.index(f"{side}_foot")]
    toe_vec = skeleton.upright_matrix().T @ (toe_rest - ankle_rest)  # ankle -> toe, body frame

    def footprint(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat ankle position (T, 3) and yaw (T,) of footprint c."""
        s = speed * period * (c - phase_offset + duty * over_foot)
        yaw = path.heading(s)
        xy = path.position(s) + sign * half_width * np.stack([-np.sin(yaw), np.cos(yaw)], -1)
        return np.concatenate([xy, np.full(xy.shape[:-1] + (1,), ankle_rest[2])], -1), yaw

    def about_toe(flat: np.ndarray, yaw: np.ndarray, pitch: np.ndarray) -> np.ndarray:
        """Ankle position with the foot pitched about its (fixed) toe joint."""
        C = skeleton.upright_matrix()
        toe = flat + (rot("z", yaw) @ C @ toe_vec)
        return toe - (foot_pose(skeleton, yaw, pitch) @ toe_vec)

    p0, yaw0 = footprint(cycle)
    p1, yaw1 = footprint(cycle + 1)
    stance = phi < duty
    # Stance: flat, then the heel rises to toe_off_pitch (min-jerk, so it arrives at rest).
    rise = min_jerk((phi / duty - heel_off) / (1 - heel_off))
    pitch_stance = toe_off_pitch * rise
    ankle_stance = about_toe(p0, yaw0, pitch_stance)
    # Swing: from the toe-off pose to the next footprint, lifted by lift * sin^2. The foot
    # travels horizontally only after the first and before the last ``settle`` of the swing,
    # so it leaves and meets the floor vertically (no scuffing near the ground).
    tau = np.clip((phi - duty) / (1 - duty), 0.0, 1.0)
    blend = min_jerk((tau - 0.5) / 0.5)[:, None]  # the raised toe-off ankle comes down late
    travel = min_jerk((tau - settle) / (1 - 2 * settle))[:, None]
    start = about_toe(p0, yaw0, np.full_like(phi, toe_off_pitch))
    ankle_swing = np.concatenate([(1 - travel) * start[:, :2] + travel * p1[:, :2],
                                  (1 - blend) * start[:, 2:] + blend * p1[:, 2:]], -1)
    ankle_swing[:, 2] += lift * np.sin(np.pi * tau) ** 2
    pitch_swing = toe_off_pitch * (1 - min_jerk(tau))
    yaw_swing = (1 - travel[:, 0]) * yaw0 + travel[:, 0] * yaw1
    return FootTrack(ankle=np.where(stance[:, None], ankle_stance, ankle_swing),
                     yaw=np.where(stance, yaw0, yaw_swing),
                     pitch=np.where(stance, pitch_stance, pitch_swing),
                     contact=stance)


# ------------------------------------------------------------------------------- IK
def _frame(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """Orthonormal frames (..., 3, 3) with columns primary, secondary (made orthogonal), cross."""
    e1 = primary / np.linalg.norm(primary, axis=-1, keepdims=True)
    e2 = secondary - (e1 * secondary).sum(-1, keepdims=True) * e1
    e2 = e2 / np.linalg.norm(e2, axis=-1, keepdims=True)
    return np.stack([e1, e2, np.cross(e1, e2)], -1)


def leg_ik(skeleton: Skeleton, side: str, pelvis_rot: np.ndarray, pelvis_pos: np.ndarray,
           ankle_target: np.ndarray, foot_rot: np.ndarray, knee_axis: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Analytic two-link IK: local rotations (T, 3, 3) of hip, knee, ankle and the reach error (T,).

    The knee is a hinge about the body's lateral axis ``n`` (SMPL's x): its angle makes
    ``|a + R_n(theta) b|`` equal the hip-target distance, with thigh ``a`` and shin ``b`` the
    rest offsets. The hip then turns the bent leg onto the target with the knee hinge along
    ``knee_axis`` (world, e.g. the heading's left), and the ankle takes the foot to ``foot_rot``.
    Targets out of reach are clamped; the returned error (m) says by how much.
    """
    hip, knee, ankle = (skeleton.index(f"{side}_{n}") for n in ("hip", "knee", "ankle"))
    a, b = skeleton.offsets[knee], skeleton.offsets[ankle]  # body frame
    n = skeleton.lateral_axis()
    hip_pos = pelvis_pos + pelvis_rot @ skeleton.offsets[hip]
    v = ankle_target - hip_pos  # (T, 3)
    dist = np.linalg.norm(v, axis=-1)
    # Rodrigues about n: R b = b_par + cos(th) b_perp + sin(th) (n x b); solve
    # a.Rb = A cos + B sin + a.b_par = (d^2 - |a|^2 - |b|^2) / 2 for th.
    b_par = np.dot(b, n) * n
    A, B = np.dot(a, b - b_par), np.dot(a, np.cross(n, b))
    rhs = (dist**2 - a @ a - b @ b) / 2 - np.dot(a, b_par)
    amp = np.hypot(A, B)
    cos_arg = np.clip(rhs / amp, -1.0, 1.0)
    theta = np.arctan2(B, A) + np.arccos(cos_arg)  # the branch through theta = 0 at rest
    theta = np.where(theta > np.pi, theta - 2 * np.pi, theta)
    R_knee = axis_angle_to_matrix(torch.from_numpy(theta[:, None] * n)).numpy()  # (T, 3, 3)
    leg = a + (R_knee @ b)  # (T, 3) hip -> ankle in the hip's frame
    reach_error = np.abs(np.linalg.norm(leg, axis=-1) - dist)
    # Hip world rotation: leg vector onto v, hinge axis onto the knee axis.
    W_hip = _frame(v, knee_axis) @ np.swapaxes(_frame(leg, np.broadcast_to(n, leg.shape)), -1, -2)
    local_hip = np.swapaxes(pelvis_rot, -1, -2) @ W_hip
    W_knee = W_hip @ R_knee
    local_ankle = np.swapaxes(W_knee, -1, -2) @ foot_rot
    return local_hip, R_knee, local_ankle, reach_error


def max_hip_height(ankle: np.ndarray, hip_xy: np.ndarray, reach: float) -> np.ndarray:
    """Highest hip z (T,) from which an ankle at ``ankle`` (T, 3) is within ``reach``."""
    horizontal = np.linalg.norm(ankle[:, :2] - hip_xy, axis=-1)
    return ankle[:, 2] + np.sqrt(np.clip(reach**2 - horizontal**2, 0.0, None))
