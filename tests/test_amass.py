"""AMASS-style .npz import: SMPL / SMPL-H layouts, pelvis placement, bad files."""

import numpy as np
import pytest
import torch

from mimicgym.motion.amass import load_amass
from mimicgym.motion.body_geometry import body_skeleton
from mimicgym.motion.body_model import BodyModel
from mimicgym.motion.rotations import axis_angle_to_quat
from mimicgym.motion.skeleton import SMPL_SKELETON


def _amass(tmp_path, T=6, width=156, seed=0, **extra):
    rng = np.random.default_rng(seed)
    arrays = dict(poses=rng.normal(0, 0.3, (T, width)), trans=rng.normal(0, 1, (T, 3)),
                  betas=rng.normal(0, 1, 16), mocap_framerate=np.float64(120.0), gender=np.str_("neutral"))
    arrays.update(extra)
    path = tmp_path / "motion_poses.npz"
    np.savez(path, **arrays)
    return path, arrays


def test_smplh_layout(tmp_path):
    path, a = _amass(tmp_path, width=156)
    clip = load_amass(path)
    assert clip.fps == 120.0 and clip.num_frames == 6 and clip.skeleton is SMPL_SKELETON
    expected = axis_angle_to_quat(torch.from_numpy(a["poses"][:, :66].reshape(6, 22, 3))).numpy()
    np.testing.assert_allclose(clip.rotations[:, :22], expected, atol=1e-15)
    np.testing.assert_array_equal(clip.rotations[:, 22:], np.tile([1.0, 0, 0, 0], (6, 2, 1)))
    np.testing.assert_allclose(clip.root_trans, a["trans"] + SMPL_SKELETON.offsets[0])
    np.testing.assert_array_equal(clip.betas, a["betas"])


def test_smpl_layout_keeps_hands_and_newer_rate_key(tmp_path):
    path, a = _amass(tmp_path, width=72, mocap_frame_rate=np.float64(60.0))
    arrays = dict(np.load(path))
    del arrays["mocap_framerate"]
    np.savez(path, **arrays)
    clip = load_amass(path)
    assert clip.fps == 60.0
    expected = axis_angle_to_quat(torch.from_numpy(a["poses"].reshape(6, 24, 3))).numpy()
    np.testing.assert_allclose(clip.rotations, expected, atol=1e-15)


def test_joint_positions_match_body_model(tmp_path):
    """Our FK on the body model's skeleton equals the body model's own posed joints."""
    bm = BodyModel.default(dtype=torch.float64)
    path, a = _amass(tmp_path, width=72, betas=np.array([1.5, -0.5, 0.3]))
    skeleton = body_skeleton(bm, torch.from_numpy(a["betas"][None]))
    clip = load_amass(path, skeleton=skeleton)
    out = bm(betas=torch.from_numpy(a["betas"][None]).expand(6, 3),
             global_orient=torch.from_numpy(a["poses"][:, :3]),
             body_pose=torch.from_numpy(a["poses"][:, 3:]), transl=torch.from_numpy(a["trans"]))
    np.testing.assert_allclose(clip.joint_positions(), out.joints[:, :24].numpy(), atol=1e-10)


def test_z_up_standing_pose(tmp_path):
    poses = np.zeros((2, 72))
    poses[:, 0] = np.pi / 2  # AMASS's usual root: +90 degrees about x stands SMPL up in z
    path, _ = _amass(tmp_path, T=2, width=72, poses=poses, trans=np.zeros((2, 3)))
    pos = load_amass(path).joint_positions()[0]
    sk = SMPL_SKELETON
    assert pos[sk.index("head"), 2] - pos[sk.index("pelvis"), 2] > 0.5
    assert pos[sk.index("left_ankle"), 2] - pos[sk.index("pelvis"), 2] < -0.8


@pytest.mark.parametrize("extra, message", [
    (dict(poses=np.zeros((6, 70))), r"'poses' must have shape \(T, 72 \| 156 \| 165\)"),
    (dict(trans=np.zeros((5, 3))), r"'trans' must have shape \(6, 3\)"),
    (dict(mocap_framerate=np.float64(0.0)), "positive frame rate"),
    (dict(poses=np.full((6, 72), np.nan)), r"'poses' has non-finite values, the first nan at index \(0, 0\)"),
])
def test_bad_files(tmp_path, extra, message):
    path, _ = _amass(tmp_path, **extra)
    with pytest.raises(ValueError, match=message):
        load_amass(path)


def test_missing_key(tmp_path):
    path, a = _amass(tmp_path)
    np.savez(path, poses=a["poses"], betas=a["betas"])
    with pytest.raises(ValueError, match=r"missing keys \['trans', 'mocap_framerate'\]"):
        load_amass(path)

