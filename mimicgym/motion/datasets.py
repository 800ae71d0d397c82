"""Data sets of bodies and motion for learned priors, as tensors: ``generative`` knows nothing of bodies.

- :func:`body_poses`: the 69-d axis-angle body pose of every frame of the training clips (the
  generated library with variations, DeepMimic's clips retargeted to SMPL when pybullet ships
  them, each mirrored), for pose priors.
- :func:`joint_angle_windows`: windows of single joint-angle trajectories of the same clips,
  mu-law quantised to tokens, for sequence models (WaveNet, the causal Transformer).
"""

from __future__ import annotations

import numpy as np
import torch


def clip_body_poses(clips) -> np.ndarray:
    """The 69-d axis-angle body poses (N, 69) of every frame of SMPL-skeleton ``clips``
    (local joint quaternions (T, 24, 4); joint 0 is the root, which the prior leaves out).
    """
    from mimicgym.motion.rotations import quat_to_axis_angle

    poses = []
    for clip in clips:
        quats = torch.as_tensor(np.asarray(clip.rotations), dtype=torch.float64)
        if quats.ndim != 3 or quats.shape[1:] != (24, 4):
            raise ValueError(f"clip {getattr(clip, 'name', '?')!r}: rotations must be (T, 24, 4), "
                             f"got {tuple(quats.shape)}")
        poses.append(quat_to_axis_angle(quats[:, 1:]).reshape(len(quats), 69))
    if not poses:
        raise ValueError("no clips given")
    return torch.cat(poses).numpy()


def training_clips(include_deepmimic: bool = True) -> list:
    """The clips the default prior is fitted to: the generated library with a few parameter
    variations, DeepMimic's clips retargeted to SMPL when pybullet (which ships them) is
    installed, and the mirror image of each.
    """
    from mimicgym.motion import clip_library as lib

    clips = [
        lib.walk(), lib.walk(speed=0.8, stride=0.9), lib.walk(speed=1.6, stride=1.4), lib.run(),
        lib.run(speed=4.0, stride=2.6), lib.turn(), lib.turn(angle_deg=-90.0), lib.turn(angle_deg=180.0, radius=1.0),
        lib.jumping_jacks(), lib.squat(), lib.squat(depth=0.2), lib.squat(depth=0.45),
    ]  # fmt: skip
    if include_deepmimic:
        import importlib.util

        include_deepmimic = importlib.util.find_spec("pybullet_data") is not None
    if include_deepmimic:
        from mimicgym.motion.deepmimic import deepmimic_clip_path, load_deepmimic
        from mimicgym.motion.retargeting import retarget
        from mimicgym.motion.skeleton import SMPL_SKELETON

        folder = deepmimic_clip_path("walk").parent
        for path in sorted(folder.glob("humanoid3d_*.txt")):
            clips.append(retarget(load_deepmimic(path), SMPL_SKELETON))
    return clips + [c.mirror() for c in clips]


def body_poses(include_deepmimic: bool = True, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Axis-angle body poses (N, 69) of every frame of :func:`training_clips` (mirrors included)."""
    return torch.as_tensor(clip_body_poses(training_clips(include_deepmimic)), dtype=dtype)
