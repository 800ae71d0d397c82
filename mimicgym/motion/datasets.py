"""Data sets of bodies and motion for learned priors, as tensors: ``generative`` knows nothing of bodies.

- :func:`body_poses`: the 69-d axis-angle body pose of every frame of the training clips (the
  generated library with variations, DeepMimic's clips retargeted to SMPL when pybullet ships
  them, each mirrored), for pose priors.
- :func:`joint_angle_windows`: windows of single joint-angle trajectories of the same clips,
  scaled to [-1, 1], for sequence models (mu-law quantise them to tokens for WaveNet or the
  causal Transformer: ``mimicgym.generative.wavenet.mu_law_encode``).
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


def joint_angle_windows(window: int = 64, stride: int = 8, fps: float = 30.0, loop_cycles: int = 3,
                        include_deepmimic: bool = True, min_range: float = 0.05, clips=None) -> torch.Tensor:
    """Windows (N, ``window``) of single joint-angle trajectories, in [-1, 1] (radians / pi).

    Every clip of ``clips`` (default :func:`training_clips`; split held-out data by clip, since
    the windows of one clip overlap) is resampled at ``fps`` (the clips come at 16 to 60
    frames per second) and a looping clip is played ``loop_cycles`` times, so that a window can
    span more than one gait cycle. Every axis-angle component of every joint is one 1-D
    signal, cut into windows of ``window`` frames every ``stride`` frames. Windows whose range
    is below ``min_range`` radians (a joint that barely moves) are left out: they would teach
    a sequence model only to repeat a constant.
    """
    if window < 2 or stride < 1 or loop_cycles < 1:
        raise ValueError(f"need window >= 2, stride >= 1 and loop_cycles >= 1, got window={window!r}, "
                         f"stride={stride!r}, loop_cycles={loop_cycles!r}")
    from mimicgym.motion.rotations import quat_to_axis_angle

    windows = []
    for clip in training_clips(include_deepmimic) if clips is None else clips:
        quats = np.asarray(clip.retime(fps=fps).rotations)
        if clip.loop:  # a loop's last frame repeats its first
            quats = np.concatenate([quats[:-1]] * loop_cycles + [quats[:1]])
        signals = quat_to_axis_angle(torch.as_tensor(quats[:, 1:])).reshape(len(quats), -1).T  # (69, T)
        if signals.shape[1] >= window:
            windows.append(signals.unfold(1, window, stride).reshape(-1, window))  # (69 * n, window)
    if not windows:
        raise ValueError(f"no clip has {window} frames; use a shorter window")
    angles = torch.cat(windows)
    keep = (angles.amax(1) - angles.amin(1)) >= min_range
    return (angles[keep] / torch.pi).clamp(-1.0, 1.0).float()
