"""MotionClip: sampling, looping, velocities, mirroring, retiming and .npz round trips."""

import numpy as np
import pytest
import torch

from mimicgym.motion.clip import MotionClip
from mimicgym.motion.rotations import axis_angle_to_quat, quat_to_matrix
from mimicgym.motion.skeleton import SMPL_SKELETON, Skeleton


def _aa(v) -> np.ndarray:
    return axis_angle_to_quat(torch.as_tensor(np.asarray(v, dtype=np.float64))).numpy()


def _spin_clip(T=11, fps=10.0, omega=2.0, loop=False) -> MotionClip:
    """Two joints: the root turns about z at omega rad/s and moves at 0.5 m/s along x."""
    sk = Skeleton("pair", ("root", "tip"), (-1, 0), np.array([[0, 0, 0], [1.0, 0, 0]]),
                  ("free", "spherical"))
    t = np.arange(T) / fps
    rot = np.zeros((T, 2, 4))
    rot[:, 0] = _aa(np.outer(omega * t, [0, 0, 1]))
    rot[:, 1] = _aa(np.outer(0.3 * t, [1, 0, 0]))
    trans = np.stack([0.5 * t, np.zeros(T), np.ones(T)], -1)
    return MotionClip(sk, fps, trans, rot, loop)


def _random_smpl_clip(seed=0, T=8) -> MotionClip:
    rng = np.random.default_rng(seed)
    rot = _aa(rng.normal(0, 0.4, (T, 24, 3)))
    return MotionClip(SMPL_SKELETON, 30.0, rng.normal(size=(T, 3)), rot, betas=rng.normal(size=10),
                      name="rand")


def _same_rotation(q1, q2, atol=1e-9):
    np.testing.assert_allclose(np.abs((q1 * q2).sum(-1)), 1.0, atol=atol)


def test_sample_slerps_between_frames():
    clip = _spin_clip()
    root, q = clip.sample(0.05)  # halfway between frames 0 and 1
    np.testing.assert_allclose(root, [0.025, 0, 1], atol=1e-12)
    _same_rotation(q[0], _aa([0, 0, 0.1]))  # 2 rad/s * 0.05 s
    root, q = clip.sample(np.array([[0.0, 0.1], [0.3, 0.42]]))
    assert root.shape == (2, 2, 3) and q.shape == (2, 2, 2, 4)
    _same_rotation(q[1, 1, 0], _aa([0, 0, 0.84]))
    # Not looping: holds the ends.
    np.testing.assert_allclose(clip.sample(5.0)[0], clip.root_trans[-1])
    np.testing.assert_allclose(clip.sample(-1.0)[0], clip.root_trans[0])


def test_looping_clip_advances_by_cycle_displacement():
    clip = _spin_clip(loop=True)
    assert clip.duration == pytest.approx(1.0)
    np.testing.assert_allclose(clip.cycle_displacement, [0.5, 0, 0])  # vertical dropped
    t = np.array([0.23, 0.71])
    r0, q0 = clip.sample(t)
    for k in (1, 3, -2):
        r, q = clip.sample(t + k * clip.duration)
        np.testing.assert_allclose(r, r0 + k * np.array([0.5, 0, 0]), atol=1e-12)
        _same_rotation(q, q0)
    np.testing.assert_allclose(clip.sample_phase(2.5)[0], clip.sample(2.5)[0])


def test_velocities_respect_quaternion_sign():
    clip = _spin_clip(T=21, omega=2.0)
    flipped = clip.rotations.copy()
    flipped[1::2] *= -1  # the same rotations, stored with the other sign
    clip_flipped = MotionClip(clip.skeleton, clip.fps, clip.root_trans, flipped)
    for c in (clip, clip_flipped):
        w = c.angular_velocities()
        np.testing.assert_allclose(w[:, 0], np.tile([0, 0, 2.0], (21, 1)), atol=1e-9)
        np.testing.assert_allclose(w[:, 1], np.tile([0.3, 0, 0], (21, 1)), atol=1e-9)
    v = clip.linear_velocities()
    np.testing.assert_allclose(v[:, 0], np.tile([0.5, 0, 0], (21, 1)), atol=1e-12)
    # The tip circles at radius 1: speed 2 m/s plus the root's, central differences of
    # a circle underestimate by sin(w dt)/(w dt).
    t = np.arange(21) / 10
    exact = np.stack([-2 * np.sin(2 * t) + 0.5, 2 * np.cos(2 * t), 0 * t], -1)
    np.testing.assert_allclose(v[1:-1, 1], (exact[1:-1] - [0.5, 0, 0]) * np.sin(0.2) / 0.2 + [0.5, 0, 0],
                               atol=1e-9)
    # World angular velocity of the tip: the root's spin plus its own, turned by the root.
    ww = clip.angular_velocities("world")[:, 1]
    R = quat_to_matrix(torch.from_numpy(clip.rotations[:, 0])).numpy()
    np.testing.assert_allclose(ww[5], [0, 0, 2.0] + R[5] @ [0.3, 0, 0], atol=2e-3)


def test_loop_seam_velocity_is_central_difference():
    clip = _spin_clip(T=11, loop=True)
    v = clip.linear_velocities()
    np.testing.assert_allclose(v[0, 0], [0.5, 0, 0], atol=1e-12)
    np.testing.assert_allclose(v[-1, 0], [0.5, 0, 0], atol=1e-12)


def test_mirror_reflects_positions_and_is_an_involution():
    clip = _random_smpl_clip()
    m = clip.mirror()
    idx = SMPL_SKELETON.mirror_indices()
    expected = clip.joint_positions()[:, idx] * np.array([1, -1, 1])
    np.testing.assert_allclose(m.joint_positions(), expected, atol=1e-12)
    mm = m.mirror()
    _same_rotation(mm.rotations, clip.rotations)
    np.testing.assert_allclose(mm.root_trans, clip.root_trans)


def test_retime_speed_and_fps():
    clip = _spin_clip(T=11, fps=10.0)
    fast = clip.retime(speed=2.0)
    assert fast.num_frames == 6 and fast.fps == pytest.approx(10.0)
    np.testing.assert_allclose(fast.root_trans, clip.root_trans[::2], atol=1e-12)
    fine = clip.retime(fps=30.0)
    assert fine.num_frames == 31 and fine.duration == pytest.approx(clip.duration)
    _same_rotation(fine.rotations[::3], clip.rotations)
    _same_rotation(fine.rotations[1, 0], _aa([0, 0, 2.0 / 30]))
    with pytest.raises(ValueError, match="speed"):
        clip.retime(speed=0.0)


def test_npz_round_trip(tmp_path):
    clip = _random_smpl_clip()
    clip.save(tmp_path / "c.npz")
    back = MotionClip.load(tmp_path / "c.npz")
    assert back.skeleton == clip.skeleton and back.name == "rand" and back.loop is False
    np.testing.assert_array_equal(back.rotations, clip.rotations)
    np.testing.assert_array_equal(back.root_trans, clip.root_trans)
    np.testing.assert_array_equal(back.betas, clip.betas)
    assert back.fps == clip.fps


@pytest.mark.parametrize("edit, message", [
    (lambda a: a.pop("rotations"), r"lacks keys \['rotations'\]"),
    (lambda a: a.update(rotations=a["rotations"][:, :5]), "'rotations' has shape"),
    (lambda a: a.update(root_trans=np.full_like(a["root_trans"], np.nan)), "'root_trans' has non-finite"),
    (lambda a: a.update(rotations=2 * a["rotations"]), "quaternion at index"),
    (lambda a: a.update(fps=np.float64(-3)), "fps must be a positive"),
])
def test_load_rejects_bad_files(tmp_path, edit, message):
    clip = _random_smpl_clip()
    clip.save(tmp_path / "c.npz")
    arrays = dict(np.load(tmp_path / "c.npz"))
    edit(arrays)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=message):
        MotionClip.load(tmp_path / "bad.npz")


def test_load_rejects_truncated_file(tmp_path):
    _random_smpl_clip().save(tmp_path / "c.npz")
    data = (tmp_path / "c.npz").read_bytes()
    (tmp_path / "t.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cannot read motion clip"):
        MotionClip.load(tmp_path / "t.npz")


def test_constructor_validation():
    sk = SMPL_SKELETON
    with pytest.raises(ValueError, match=r"shape \(T, 24, 4\)"):
        MotionClip(sk, 30, np.zeros((3, 3)), np.zeros((3, 23, 4)))
    with pytest.raises(ValueError, match="at least 2 frames"):
        MotionClip(sk, 30, np.zeros((1, 3)), _aa(np.zeros((1, 24, 3))))
