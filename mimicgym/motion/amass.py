"""AMASS-style ``.npz`` motions (SMPL / SMPL-H / SMPL-X axis-angle poses) as SMPL clips.

Keys: ``poses`` (T, 72 | 156 | 165) axis-angle per joint in SMPL order, ``trans`` (T, 3),
``betas`` (B,), ``mocap_framerate`` (or SMPL-X AMASS's ``mocap_frame_rate``). SMPL-H (156)
and SMPL-X (165) share SMPL's first 22 body joints; their hands have no SMPL counterpart
here, so SMPL's ``left_hand``/``right_hand`` stay at identity. AMASS is already z-up: the
global orientation maps SMPL's y-up body frame into the world, as our clips do.

SMPL rotates about the pelvis, so the pelvis sits at ``trans + J_pelvis(betas)``, not at
``trans``; ``J_pelvis`` is the skeleton's ``offsets[0]`` (SMPL's mean-shape template pelvis
for ``SMPL_SKELETON``; use ``humanoid.body_skeleton(model, betas)`` for a fitted body).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from mimicgym.errors import MotionFileError
from mimicgym.motion.clip import MAX_ABS_VALUE, MAX_FRAME_DURATION, MAX_FRAMES, MotionClip
from mimicgym.motion.npz_reader import read_npz, real_array
from mimicgym.motion.rotations import axis_angle_to_quat
from mimicgym.motion.skeleton import SMPL_SKELETON, Skeleton

__all__ = ["load_amass", "AMASS_POSE_SIZES"]

# poses width -> model: SMPL 24 joints, SMPL-H 52 (22 body + 2 x 15 finger), SMPL-X 55.
AMASS_POSE_SIZES = {72: "SMPL", 156: "SMPL-H", 165: "SMPL-X"}
_BODY_JOINTS = 22


def load_amass(path: str | os.PathLike, skeleton: Skeleton = SMPL_SKELETON, loop: bool = False,
               max_frames: int = MAX_FRAMES, max_abs: float = MAX_ABS_VALUE) -> MotionClip:
    """Read an AMASS ``.npz`` as a clip on ``skeleton`` (an SMPL-layout skeleton).

    A bad file (truncated or corrupt, a missing key, a wrong shape or dtype, a value non-finite
    or beyond ``max_abs`` (radians, metres), more than ``max_frames`` frames, a frame rate
    below 1 / ``MAX_FRAME_DURATION``) raises :class:`~mimicgym.errors.MotionFileError` naming it.
    """
    path = Path(path)
    if skeleton.joint_names != SMPL_SKELETON.joint_names:
        raise ValueError(f"AMASS poses need SMPL's 24 joints, skeleton {skeleton.name!r} has "
                         f"{skeleton.num_joints}")
    arrays = read_npz(path, MotionFileError, "AMASS file")
    rate_key = next((k for k in ("mocap_framerate", "mocap_frame_rate") if k in arrays), None)
    missing = [k for k in ("poses", "trans") if k not in arrays] + ([] if rate_key else ["mocap_framerate"])
    if missing:
        raise MotionFileError(f"{path}: missing keys {missing} (has {sorted(arrays)})")
    poses, trans = arrays["poses"], arrays["trans"]
    if poses.ndim != 2 or poses.shape[1] not in AMASS_POSE_SIZES:
        raise MotionFileError(f"{path}: 'poses' must have shape (T, 72 | 156 | 165) (SMPL, SMPL-H, SMPL-X), "
                              f"got {poses.shape}")
    T = poses.shape[0]
    if T > max_frames:
        raise MotionFileError(f"{path}: {T} frames, more than max_frames={max_frames}")
    if trans.shape != (T, 3):
        raise MotionFileError(f"{path}: 'trans' must have shape ({T}, 3) to match 'poses', got {trans.shape}")
    poses, trans = (real_array(arrays[k], k, str(path), MotionFileError, max_abs) for k in ("poses", "trans"))
    if arrays[rate_key].size != 1:
        raise MotionFileError(f"{path}: {rate_key!r} must be one number, got shape {arrays[rate_key].shape}")
    fps = float(real_array(arrays[rate_key], rate_key, str(path), MotionFileError, np.inf).reshape(()))
    if not fps >= 1.0 / MAX_FRAME_DURATION:
        raise MotionFileError(f"{path}: {rate_key!r} must be a positive frame rate of at least "
                              f"{1.0 / MAX_FRAME_DURATION:g}, got {fps}")
    betas = arrays.get("betas")
    if betas is not None:
        betas = real_array(betas, "betas", str(path), MotionFileError, max_abs).reshape(-1)

    n_joints = 24 if poses.shape[1] == 72 else _BODY_JOINTS
    axis_angle = np.zeros((T, 24, 3))
    axis_angle[:, :n_joints] = poses[:, : 3 * n_joints].reshape(T, n_joints, 3)
    quats = axis_angle_to_quat(torch.from_numpy(axis_angle)).numpy()
    try:
        return MotionClip(skeleton, fps, trans + skeleton.offsets[0], quats, loop, betas, name=path.stem)
    except ValueError as e:  # e.g. fewer than 2 frames
        raise MotionFileError(f"{path}: {e}") from e
