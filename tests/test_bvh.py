"""BVH import/export: channel and Euler orders, units, End Sites, round trips, bad files."""

from pathlib import Path

import numpy as np
import pytest
import torch

from mimicgym.motion.bvh import load_bvh, save_bvh
from mimicgym.motion.clip import MotionClip
from mimicgym.motion.deepmimic import load_deepmimic
from mimicgym.motion.rotations import axis_angle_to_quat, euler_to_matrix, quat_to_matrix
from mimicgym.motion.skeleton import HUMANOID3D_SKELETON, SMPL_SKELETON

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "deepmimic"

SMALL = """HIERARCHY
ROOT Hips
{
  OFFSET 0.0 0.0 0.0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Chest
  {
    OFFSET 0.0 20.0 0.0
    CHANNELS 3 Xrotation Yrotation Zrotation
    End Site
    {
      OFFSET 0.0 30.0 0.0
    }
  }
  JOINT LeftLeg
  {
    OFFSET 10.0 0.0 0.0
    CHANNELS 3 Yrotation Xrotation Zrotation
    End Site
    {
      OFFSET 0.0 0.0 0.0
    }
  }
}
MOTION
Frames: 3
Frame Time: 0.04
0 90 0 0 0 0 0 0 0 0 0 0
10 95 -20 30 0 0 90 0 0 0 45 0
20 100 -40 0 0 0 0 0 0 10 20 30
"""


def _mat(q):
    return quat_to_matrix(torch.from_numpy(np.asarray(q))).numpy()


def test_small_file_channels_units_and_end_sites(tmp_path):
    (tmp_path / "small.bvh").write_text(SMALL)
    clip = load_bvh(tmp_path / "small.bvh", scale=0.01)
    sk = clip.skeleton
    # The End Site with a length becomes a fixed joint; the zero-length one is dropped.
    assert sk.joint_names == ("Hips", "Chest", "Chest_end", "LeftLeg")
    assert sk.parents == (-1, 0, 1, 0)
    assert sk.joint_types == ("free", "spherical", "fixed", "spherical")
    np.testing.assert_allclose(sk.offsets[2], [0, 0.3, 0])
    assert clip.fps == pytest.approx(25.0) and clip.num_frames == 3
    # y-up file -> z-up world: (x, y, z) -> (x, -z, y), in metres.
    np.testing.assert_allclose(clip.root_trans[1], [0.10, 0.20, 0.95])
    # Frame 1: Chest "Xrotation Yrotation Zrotation" = 90, 0, 0 -> Rx(90).
    np.testing.assert_allclose(_mat(clip.rotations[1, 1]), [[1, 0, 0], [0, 0, -1], [0, 1, 0]], atol=1e-12)
    # Frame 2: LeftLeg "Yrotation Xrotation Zrotation" = 10, 20, 30 -> Ry Rx Rz.
    expected = euler_to_matrix(torch.tensor(np.radians([10.0, 20, 30])), "YXZ").numpy()
    np.testing.assert_allclose(_mat(clip.rotations[2, 3]), expected, atol=1e-12)
    # Root: Rx(90) (y-up to z-up) times the file's Rz(30) at frame 1.
    root = euler_to_matrix(torch.tensor(np.radians([90.0, 0, 0])), "XYZ").numpy() @ \
        euler_to_matrix(torch.tensor(np.radians([30.0, 0, 0])), "ZXY").numpy()
    np.testing.assert_allclose(_mat(clip.rotations[1, 0]), root, atol=1e-12)
    # The chest's end point sits 0.5 m above the hips when everything is at rest (frame 0).
    np.testing.assert_allclose(clip.joint_positions()[0, 2], [0, 0, 0.9 + 0.5], atol=1e-12)


def test_braces_on_the_joint_line(tmp_path):
    compact = SMALL.replace("ROOT Hips\n{", "ROOT Hips {").replace("JOINT Chest\n  {", "JOINT Chest {")
    compact = compact.replace("End Site\n    {", "End Site {")
    assert compact.count("{") == SMALL.count("{") and "ROOT Hips {" in compact and "End Site {" in compact
    for folder, text in (("a", SMALL), ("b", compact)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "m.bvh").write_text(text)
    a, b = load_bvh(tmp_path / "a" / "m.bvh"), load_bvh(tmp_path / "b" / "m.bvh")
    assert a.skeleton == b.skeleton
    np.testing.assert_array_equal(a.rotations, b.rotations)


def _random_smpl_clip(seed=0, T=12):
    rng = np.random.default_rng(seed)
    q = axis_angle_to_quat(torch.from_numpy(rng.normal(0, 0.8, (T, 24, 3)))).numpy()
    return MotionClip(SMPL_SKELETON, 30.0, rng.normal(size=(T, 3)), q)


@pytest.mark.parametrize("order", ["ZXY", "XYZ", "YZX"])
def test_round_trip_smpl(tmp_path, order):
    clip = _random_smpl_clip()
    save_bvh(clip, tmp_path / "c.bvh", scale=100.0, order=order)
    back = load_bvh(tmp_path / "c.bvh", scale=0.01, skeleton=SMPL_SKELETON)
    assert back.skeleton is SMPL_SKELETON and back.fps == pytest.approx(30.0)
    np.testing.assert_allclose(back.root_trans, clip.root_trans, atol=1e-6)
    np.testing.assert_allclose(np.abs((back.rotations * clip.rotations).sum(-1)), 1.0, atol=1e-6)
    np.testing.assert_allclose(back.joint_positions(), clip.joint_positions(), atol=1e-6)
    # Without a skeleton: the file's own (depth-first) joint order, the same joints and motion.
    own = load_bvh(tmp_path / "c.bvh", scale=0.01)
    assert sorted(own.skeleton.joint_names) == sorted(SMPL_SKELETON.joint_names)
    np.testing.assert_allclose(own.skeleton.upright, SMPL_SKELETON.upright, atol=1e-12)
    idx = [own.skeleton.index(n) for n in SMPL_SKELETON.joint_names]
    np.testing.assert_allclose(own.joint_positions()[:, idx], clip.joint_positions(), atol=1e-6)


def test_round_trip_deepmimic_walk(tmp_path):
    clip = load_deepmimic(DATA / "humanoid3d_walk.txt")
    save_bvh(clip, tmp_path / "walk.bvh")
    back = load_bvh(tmp_path / "walk.bvh", skeleton=HUMANOID3D_SKELETON)
    np.testing.assert_allclose(back.joint_positions(), clip.joint_positions(), atol=1e-6)
    own = load_bvh(tmp_path / "walk.bvh", forward_axis="x")
    np.testing.assert_allclose(own.skeleton.upright, HUMANOID3D_SKELETON.upright, atol=1e-12)
    # Default standing height: root above the lowest joint (the ankles).
    assert own.skeleton.root_height == pytest.approx(0.421546 + 0.409870)


@pytest.mark.parametrize("edit, message", [
    (lambda s: s[: s.index("20 100")], "truncated: header says 3 frames, file has 2"),
    (lambda s: s.replace("10 95 -20 30", "10 95 30"), "frame 1 has 11 values, expected 12"),
    (lambda s: s.replace("10 95 -20", "10 abc -20"), "frame 1 holds a non-number"),
    (lambda s: s[: s.index("MOTION")], "no MOTION section"),
    (lambda s: s.replace("CHANNELS 3 Xrotation Yrotation Zrotation",
                         "CHANNELS 4 Xposition Xrotation Yrotation Zrotation"), "'Chest' has position channels"),
    (lambda s: s.replace("CHANNELS 3 Yrotation", "CHANNELS 2 Yrotation"), "CHANNELS declares 2"),
    (lambda s: s.replace("  }\n}\nMOTION", "  }\nMOTION"), "MOTION inside an open block"),
])
def test_bad_files(tmp_path, edit, message):
    (tmp_path / "bad.bvh").write_text(edit(SMALL))
    with pytest.raises(ValueError, match=message):
        load_bvh(tmp_path / "bad.bvh")


def test_skeleton_mismatch(tmp_path):
    (tmp_path / "small.bvh").write_text(SMALL)
    with pytest.raises(ValueError, match="not in the skeleton"):
        load_bvh(tmp_path / "small.bvh", skeleton=SMPL_SKELETON)
