"""Retargeting a clip between skeletons by a joint-name map, with rest-pose alignment.

Both skeletons are first brought into the common upright frame (z up, facing +x) by their
``upright`` rotations ``C``. For a mapped target joint ``j`` (source joint ``m(j)``), its
world rotation is the source's composed with a constant alignment ``B_j``:

    W_t[j] = W_s[m(j)] C_s^T B_j C_t

``B_j`` turns the target's rest bone towards the source's: the shortest-arc rotation between
the directions to the single nearest mapped descendant (e.g. SMPL's T-pose arm onto
humanoid3d's hanging arm), or the identity where a joint leads to none or several (root,
chest). In the rest pose ``W_s = C_s``, so the target stands in its own rest pose too.
Unmapped target joints keep identity local rotations. The root translation is scaled by
the ratio of standing root heights (the leg-length ratio).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from mimicgym.motion.clip import MotionClip
from mimicgym.motion.rotations import axis_angle_to_matrix, matrix_to_quat
from mimicgym.motion.skeleton import Skeleton

__all__ = ["retarget", "HUMANOID3D_TO_SMPL", "SMPL_TO_HUMANOID3D", "default_joint_map"]

# target (SMPL) joint <- source (humanoid3d) joint
HUMANOID3D_TO_SMPL: dict[str, str] = {
    "pelvis": "root", "spine1": "chest", "neck": "neck",
    "left_hip": "left_hip", "left_knee": "left_knee", "left_ankle": "left_ankle",
    "right_hip": "right_hip", "right_knee": "right_knee", "right_ankle": "right_ankle",
    "left_shoulder": "left_shoulder", "left_elbow": "left_elbow", "left_wrist": "left_wrist",
    "right_shoulder": "right_shoulder", "right_elbow": "right_elbow", "right_wrist": "right_wrist",
}
# target (humanoid3d) joint <- source (SMPL) joint
SMPL_TO_HUMANOID3D: dict[str, str] = {v: k for k, v in HUMANOID3D_TO_SMPL.items()}


def default_joint_map(source: Skeleton, target: Skeleton) -> dict[str, str]:
    """The built-in target <- source map for a known pair, else every shared joint name."""
    known = {("humanoid3d", "smpl"): HUMANOID3D_TO_SMPL, ("smpl", "humanoid3d"): SMPL_TO_HUMANOID3D}
    if (source.name, target.name) in known:
        return dict(known[(source.name, target.name)])
    return {n: n for n in target.joint_names if n in source.joint_names}


def _shortest_arc(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(3, 3) rotation by the smallest angle taking unit vector u onto unit vector v."""
    axis = np.cross(u, v)
    s, c = np.linalg.norm(axis), float(np.dot(u, v))
    if s < 1e-12:
        if c > 0:
            return np.eye(3)
        # Opposite vectors: half a turn about any axis perpendicular to u.
        perp = np.cross(u, np.eye(3)[np.argmin(np.abs(u))])
        return axis_angle_to_matrix(torch.from_numpy(np.pi * perp / np.linalg.norm(perp))).numpy()
    return axis_angle_to_matrix(torch.from_numpy(axis / s * np.arctan2(s, c))).numpy()


def _mapped_descendants(sk: Skeleton, j: int, mapped: set[int]) -> list[int]:
    """The nearest mapped joint down each path from j (stopping at the first one)."""
    out: list[int] = []
    stack = sk.children(j)
    while stack:
        c = stack.pop()
        if c in mapped:
            out.append(c)
        else:
            stack.extend(sk.children(c))
    return out


def _alignments(source: Skeleton, target: Skeleton, src_of: dict[int, int]) -> dict[int, np.ndarray]:
    """B_j (3, 3) for every mapped target joint, from both rest poses in the upright frame."""
    p_s, p_t = source.rest_positions(), target.rest_positions()
    out = {}
    for j, s in src_of.items():
        desc = _mapped_descendants(target, j, set(src_of))
        B = np.eye(3)
        if len(desc) == 1:
            k = desc[0]
            u = p_t[k] - p_t[j]
            v = p_s[src_of[k]] - p_s[s]
            if np.linalg.norm(u) > 1e-9 and np.linalg.norm(v) > 1e-9:
                B = _shortest_arc(u / np.linalg.norm(u), v / np.linalg.norm(v))
        out[j] = B
    return out


def retarget(clip: MotionClip, target: Skeleton, joint_map: Mapping[str, str] | None = None
             ) -> MotionClip:
    """``clip`` played by ``target``; ``joint_map`` maps target joint names to source ones.

    The roots must map onto each other. Vectorised over frames; loops over joints only.
    """
    source = clip.skeleton
    joint_map = default_joint_map(source, target) if joint_map is None else dict(joint_map)
    src_of = {target.index(t): source.index(s) for t, s in joint_map.items()}
    if src_of.get(0) != 0:
        raise ValueError(f"the joint map must send the target root {target.joint_names[0]!r} to the "
                         f"source root {source.joint_names[0]!r}, got {joint_map.get(target.joint_names[0])!r}")
    B = _alignments(source, target, src_of)
    C_s, C_t = source.upright_matrix(), target.upright_matrix()

    _, W_s = clip.forward_kinematics()  # (T, Js, 3, 3)
    T = clip.num_frames
    W_t = np.zeros((T, target.num_joints, 3, 3))
    local = np.zeros_like(W_t)
    for j in range(target.num_joints):
        p = target.parents[j]
        if j in src_of:
            W_t[:, j] = W_s[:, src_of[j]] @ (C_s.T @ B[j] @ C_t)
            local[:, j] = W_t[:, j] if p < 0 else np.swapaxes(W_t[:, p], -1, -2) @ W_t[:, j]
        else:  # unmapped: rides along with its parent
            W_t[:, j] = W_t[:, p]
            local[:, j] = np.eye(3)
    quats = matrix_to_quat(torch.from_numpy(local)).numpy()
    scale = target.root_height / source.root_height
    return MotionClip(target, clip.fps, clip.root_trans * scale, quats, clip.loop,
                      name=clip.name)
