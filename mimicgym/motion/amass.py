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
import zipfile
from pathlib import Path

import numpy as np
import torch

from mimicgym.motion.clip import MotionClip
from mimicgym.motion.rotations import axis_angle_to_quat
from mimicgym.motion.skeleton import SMPL_SKELETON, Skeleton

__all__ = ["load_amass", "AMASS_POSE_SIZES"]

# poses width -> model: SMPL 24 joints, SMPL-H 52 (22 body + 2 x 15 finger), SMPL-X 55.
AMASS_POSE_SIZES = {72: "SMPL", 156: "SMPL-H", 165: "SMPL-X"}
_BODY_JOINTS = 22


def load_amass(path: str | os.PathLike, skeleton: Skeleton = SMPL_SKELETON, loop: bool = False
               ) -> MotionClip:
    """Read an AMASS ``.npz`` as a clip on ``skeleton`` (an SMPL-layout skeleton)."""
    path = Path(path)
    if skeleton.joint_names != SMPL_SKELETON.joint_names:
        raise ValueError(f"AMASS poses need SMPL's 24 joints, skeleton {skeleton.name!r} has "
                         f"{skeleton.num_joints}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"cannot read AMASS file {os.fspath(path)!r}: {e}") from e
    rate_key = next((k for k in ("mocap_framerate", "mocap_frame_rate") if k in arrays), None)
    missing = [k for k in ("poses", "trans") if k not in arrays] + ([] if rate_key else ["mocap_framerate"])
    if missing:
        raise ValueError(f"{path}: missing keys {missing} (has {sorted(arrays)})")
    poses = np.asarray(arrays["poses"], dtype=np.float64)
    trans = np.asarray(arrays["trans"], dtype=np.float64)
    if poses.ndim != 2 or poses.shape[1] not in AMASS_POSE_SIZES:
        raise ValueError(f"{path}: 'poses' must have shape (T, 72 | 156 | 165) (SMPL, SMPL-H, SMPL-X), "
                         f"got {poses.shape}")
    T = poses.shape[0]
    if trans.shape != (T, 3):
        raise ValueError(f"{path}: 'trans' must have shape ({T}, 3) to match 'poses', got {trans.shape}")
    for key, arr in (("poses", poses), ("trans", trans)):
        if not np.isfinite(arr).all():
            raise ValueError(f"{path}: {key!r} has a non-finite value at frame "
                             f"{int(np.argwhere(~np.isfinite(arr))[0][0])}")
    fps = float(np.asarray(arrays[rate_key]))
    if not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"{path}: {rate_key!r} must be a positive frame rate, got {fps}")
    betas = arrays.get("betas")
    if betas is not None:
        betas = np.asarray(betas, dtype=np.float64).reshape(-1)
        if not np.isfinite(betas).all():
            raise ValueError(f"{path}: 'betas' has non-finite values")

    n_joints = 24 if poses.shape[1] == 72 else _BODY_JOINTS
    axis_angle = np.zeros((T, 24, 3))
    axis_angle[:, :n_joints] = poses[:, : 3 * n_joints].reshape(T, n_joints, 3)
    quats = axis_angle_to_quat(torch.from_numpy(axis_angle)).numpy()
    return MotionClip(skeleton, fps, trans + skeleton.offsets[0], quats, loop, betas, name=path.stem)
