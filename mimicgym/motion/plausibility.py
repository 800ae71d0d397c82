"""Physical plausibility figures of a clip, measured with forward kinematics.

Contact is read from the motion itself: a foot joint touches the floor while it is within
``contact_height`` of its standing height (the floor is where the skeleton's rest pose
stands, ``Skeleton.rest_positions``). Slip is how far a joint moves horizontally during one
contact phase; penetration how far it sinks below its standing height.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mimicgym.motion.clip import MotionClip
from mimicgym.motion.rotations import quat_conjugate, quat_multiply, quat_to_axis_angle

__all__ = ["ContactReport", "foot_contacts", "loop_closure"]

SMPL_FOOT_JOINTS = ("left_ankle", "right_ankle", "left_foot", "right_foot")


@dataclass(frozen=True)
class ContactReport:
    max_slip: float  # m, largest horizontal travel of a joint within one contact phase
    max_penetration: float  # m, deepest a joint goes below its standing height (>= 0)
    contact_fraction: dict[str, float]  # per joint, share of frames in contact
    num_phases: int  # contact phases measured


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of every run of True in a 1-D mask."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def foot_contacts(clip: MotionClip, joints: tuple[str, ...] = SMPL_FOOT_JOINTS,
                  contact_height: float = 0.01) -> ContactReport:
    """Foot slip and ground penetration of ``joints`` (contact phases read from heights).

    A looping clip is measured over two cycles so that a stance across the seam counts whole.
    """
    sk = clip.skeleton
    idx = [sk.index(j) for j in joints]
    rest_z = sk.rest_positions()[idx, 2]
    pos = clip.joint_positions()[:, idx]  # (T, K, 3)
    if clip.loop:
        pos = np.concatenate([pos, pos[1:] + clip.cycle_displacement], axis=0)
    clearance = pos[..., 2] - rest_z  # (T, K)
    contact = clearance < contact_height
    slip, phases = 0.0, 0
    for k in range(len(joints)):
        for start, stop in _runs(contact[:, k]):
            xy = pos[start:stop, k, :2]
            slip = max(slip, float(np.linalg.norm(xy - xy[0], axis=-1).max()))
            phases += 1
    n = clip.num_frames
    return ContactReport(max_slip=slip, max_penetration=float(max(0.0, -clearance.min())),
                         contact_fraction={j: float(contact[:n, k].mean()) for k, j in enumerate(joints)},
                         num_phases=phases)


def loop_closure(clip: MotionClip) -> tuple[float, float]:
    """How far the last frame is from the first one cycle later: (max joint distance in m,
    max local rotation angle in degrees)."""
    pos = clip.joint_positions()
    dp = np.linalg.norm(pos[-1] - (pos[0] + clip.cycle_displacement), axis=-1).max()
    dq = quat_multiply(torch.from_numpy(clip.rotations[-1]), quat_conjugate(torch.from_numpy(clip.rotations[0])))
    angle = np.degrees(np.linalg.norm(quat_to_axis_angle(dq).numpy(), axis=-1).max())
    return float(dp), float(angle)
