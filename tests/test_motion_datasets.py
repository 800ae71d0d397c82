"""The motion data sets for learned priors: body poses and joint-angle windows, as tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mimicgym.motion.datasets import body_poses, joint_angle_windows, training_clips
from mimicgym.motion.rotations import quat_to_axis_angle


def test_body_poses_are_the_clip_frames_with_their_mirrors():
    clips = training_clips(include_deepmimic=False)
    poses = body_poses(include_deepmimic=False)
    assert poses.shape == (sum(c.num_frames for c in clips), 69)
    first = quat_to_axis_angle(torch.as_tensor(np.asarray(clips[0].rotations[:, 1:]))).reshape(-1, 69)
    torch.testing.assert_close(poses[: len(first)], first.float())
    # The mirrored half moves the same amount: mirroring maps poses to poses of equal norm.
    half = len(poses) // 2
    torch.testing.assert_close(poses[:half].norm(dim=1), poses[half:].norm(dim=1), atol=1e-5, rtol=1e-5)


def test_joint_angle_windows_slide_over_each_signal():
    clip = training_clips(include_deepmimic=False)[0]  # the walk: a 30-frame loop at 30 fps
    assert clip.loop and clip.fps == 30.0
    signal = quat_to_axis_angle(torch.as_tensor(np.asarray(clip.rotations[:, 1:]))).reshape(-1, 69)[:, 0]
    played = torch.cat([signal[:-1]] * 2)  # two cycles, each without the repeated end frame
    windows = joint_angle_windows(window=32, stride=8, include_deepmimic=False, min_range=0.0)
    torch.testing.assert_close(windows[0], (played[:32] / torch.pi).float())
    torch.testing.assert_close(windows[1], (played[8:40] / torch.pi).float())
    assert windows.abs().max() <= 1.0


def test_joint_angle_windows_leave_out_still_joints_and_refuse_bad_sizes():
    windows = joint_angle_windows(window=32, stride=8, include_deepmimic=False, min_range=0.2)
    assert len(windows) > 0
    assert ((windows.amax(1) - windows.amin(1)) * torch.pi).min() >= 0.2 - 1e-6
    assert len(windows) < len(joint_angle_windows(window=32, stride=8, include_deepmimic=False, min_range=0.0))
    with pytest.raises(ValueError, match="window=1"):
        joint_angle_windows(window=1)
    with pytest.raises(ValueError, match="shorter window"):
        joint_angle_windows(window=100_000, include_deepmimic=False)
