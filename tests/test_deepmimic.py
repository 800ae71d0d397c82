"""DeepMimic motion import on every published humanoid3d clip, and retargeting onto SMPL."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from mimicgym.errors import MotionFileError
from mimicgym.motion.clip import MotionClip
from mimicgym.motion.deepmimic import deepmimic_clip_path, load_deepmimic, load_deepmimic_clip
from mimicgym.motion.retargeting import retarget
from mimicgym.motion.skeleton import HUMANOID3D_SKELETON, SMPL_SKELETON

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "deepmimic"
CLIPS = sorted(DATA.glob("humanoid3d_*.txt"))


def _foot_sole_heights(clip: MotionClip) -> np.ndarray:
    """(T, 2) lowest corner of each foot box (from the character file) above the floor."""
    bodies = json.loads((DATA / "humanoid3d.txt").read_text())["BodyDefs"]
    pos, rot = clip.forward_kinematics()
    out = []
    for name in ("left_ankle", "right_ankle"):
        b = next(b for b in bodies if b["Name"] == name)
        half = np.array([b["Param0"], b["Param1"], b["Param2"]]) / 2
        signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)])
        corners = signs * half + [b["AttachX"], b["AttachY"], b["AttachZ"]]  # (8, 3)
        j = clip.skeleton.index(name)
        world = pos[:, j, None] + np.einsum("tij,kj->tki", rot[:, j], corners)
        out.append(world[..., 2].min(-1))
    return np.stack(out, -1)


def test_every_published_clip_imports():
    assert len(CLIPS) == 20
    for path in CLIPS:
        raw = json.loads(path.read_text())
        clip = load_deepmimic(path)
        frames = np.array(raw["Frames"])
        assert clip.loop == (raw["Loop"] == "wrap"), path.name
        assert clip.skeleton is HUMANOID3D_SKELETON
        np.testing.assert_allclose(np.linalg.norm(clip.rotations, axis=-1), 1.0, atol=1e-12)
        if np.ptp(frames[:-1, 0]) < 1e-6:  # uniform: frames carried over one to one
            assert clip.num_frames == len(frames) and clip.fps == pytest.approx(1 / frames[0, 0])
            # y-up (x, y, z) -> z-up (x, -z, y)
            np.testing.assert_allclose(clip.root_trans, frames[:, [1, 3, 2]] * [1, -1, 1])
        else:  # the roll clip: one doubled frame, resampled at 60 fps over the same time span
            assert clip.duration == pytest.approx(frames[:-1, 0].sum())
            assert clip.fps == pytest.approx(60, rel=1e-3)
        assert np.isfinite(clip.joint_positions()).all()


def test_walk_clip_facts():
    clip = load_deepmimic(DATA / "humanoid3d_walk.txt")
    assert clip.num_frames == 39 and clip.loop and clip.fps == pytest.approx(1 / 0.033332)
    np.testing.assert_allclose(clip.cycle_displacement, [1.23859, 0, 0], atol=1e-9)
    # Upright: the neck is ~1.3 m up, the pelvis ~0.85 m.
    pos = clip.joint_positions()
    assert np.all(pos[:, HUMANOID3D_SKELETON.index("neck"), 2] > 1.25)
    np.testing.assert_allclose(pos[0, 0], [0, 0, 0.847532])
    # The feet stay on the floor: the lower sole per frame lies within -5.3..+13.7 mm.
    low = _foot_sole_heights(clip).min(-1)
    assert -0.006 < low.min() and low.max() < 0.014
    # Stance foot: the walking clip's sole stays within 2 cm of the floor for >40% of frames each.
    assert ((_foot_sole_heights(clip) < 0.02).mean(0) > 0.4).all()


def test_joint_quaternion_conventions():
    """Revolute knees bend about local z; frame 0's first joint quaternions are the file's."""
    path = DATA / "humanoid3d_walk.txt"
    frame0 = np.array(json.loads(path.read_text())["Frames"][0])
    clip = load_deepmimic(path)
    sk = clip.skeleton
    np.testing.assert_allclose(clip.rotations[0, sk.index("chest")], frame0[8:12] / np.linalg.norm(frame0[8:12]))
    knee = clip.rotations[0, sk.index("right_knee")]
    np.testing.assert_allclose(knee, [np.cos(frame0[20] / 2), 0, 0, np.sin(frame0[20] / 2)], atol=1e-15)
    np.testing.assert_allclose(clip.rotations[:, sk.index("left_wrist")], np.tile([1.0, 0, 0, 0], (39, 1)))


def _write(tmp_path, obj) -> Path:
    p = tmp_path / "m.txt"
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p


def _frames(n=3):
    f = [0.1, 0, 0.9, 0, 1, 0, 0, 0] + [1, 0, 0, 0] * 2 + ([1, 0, 0, 0, 0.2, 1, 0, 0, 0, 1, 0, 0, 0, -0.3]) * 2
    return [list(f) for _ in range(n)]


def test_malformed_files(tmp_path):
    assert len(_frames()[0]) == 44
    load_deepmimic(_write(tmp_path, {"Loop": "none", "Frames": _frames()}))
    with pytest.raises(ValueError, match="not valid JSON"):
        load_deepmimic(_write(tmp_path, '{"Loop": "wrap", "Frames": [[0.1, 0'))
    bad = _frames()
    bad[2] = bad[2][:43]
    with pytest.raises(ValueError, match="frame 2 has 43 values, expected 44"):
        load_deepmimic(_write(tmp_path, {"Loop": "wrap", "Frames": bad}))
    bad = _frames()
    bad[1][12:16] = [0, 0, 0, 0]  # neck quaternion
    with pytest.raises(ValueError, match="frame 1, joint 'neck': quaternion norm 0"):
        load_deepmimic(_write(tmp_path, {"Loop": "wrap", "Frames": bad}))
    with pytest.raises(ValueError, match="'Loop' must be"):
        load_deepmimic(_write(tmp_path, {"Loop": "forever", "Frames": _frames()}))
    bad = _frames()
    bad[0][0] = 0.0
    with pytest.raises(MotionFileError, match="frame 0 value 0 .* is a non-positive duration"):
        load_deepmimic(_write(tmp_path, {"Loop": "wrap", "Frames": bad}))


def test_pybullet_shipped_clips():
    # pybullet comes with the mocap extra, part of the test install (Makefile).
    path = deepmimic_clip_path("walk")
    assert path.read_text() == (DATA / "humanoid3d_walk.txt").read_text()
    clip = load_deepmimic_clip("run")
    np.testing.assert_allclose(clip.rotations, load_deepmimic(DATA / "humanoid3d_run.txt").rotations)
    with pytest.raises(FileNotFoundError, match="available: .*'backflip'"):
        deepmimic_clip_path("moonwalk")


def test_missing_pybullet_has_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pybullet_data", None)
    with pytest.raises(ImportError, match="pip install"):
        deepmimic_clip_path("walk")


def test_retarget_walk_onto_smpl_keeps_feet_on_floor():
    clip = load_deepmimic(DATA / "humanoid3d_walk.txt")
    smpl = retarget(clip, SMPL_SKELETON)
    sk = SMPL_SKELETON
    scale = sk.root_height / HUMANOID3D_SKELETON.root_height
    np.testing.assert_allclose(smpl.cycle_displacement, clip.cycle_displacement * scale)
    pos, rest = smpl.joint_positions(), sk.rest_positions()
    for name in ("left_ankle", "right_ankle", "left_foot", "right_foot"):
        j = sk.index(name)
        # Each foot joint comes within 1 cm of its standing height and lifts in swing.
        assert abs(pos[:, j, 2].min() - rest[j, 2]) < 0.01, name
        assert pos[:, j, 2].max() - rest[j, 2] > 0.1, name
    # Arms hang down (humanoid3d's rest) although SMPL's rest pose is a T-pose.
    wrist = pos[:, sk.index("left_wrist")]
    assert np.all(wrist[:, 2] < pos[:, sk.index("left_shoulder"), 2] - 0.35)
    # Back to humanoid3d: the same motion, exactly.
    back = retarget(smpl, HUMANOID3D_SKELETON)
    np.testing.assert_allclose(back.joint_positions(), clip.joint_positions(), atol=1e-9)


def test_retarget_requires_root_map():
    clip = load_deepmimic(DATA / "humanoid3d_walk.txt")
    with pytest.raises(ValueError, match="target root 'pelvis'"):
        retarget(clip, SMPL_SKELETON, {"pelvis": "chest", "neck": "neck"})
