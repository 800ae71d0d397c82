"""Generated clips: plausibility measured with FK (foot slip, penetration, loop closure),
determinism, parameters, and the two-link leg IK they are built on."""

import numpy as np
import pytest

from mimicgym.motion import clip_library as lib
from mimicgym.motion.gait import foot_pose, leg_ik, rot
from mimicgym.motion.plausibility import foot_contacts, loop_closure
from mimicgym.motion.skeleton import SMPL_SKELETON

SK = SMPL_SKELETON


@pytest.fixture(scope="module")
def clips():
    return {name: lib.make_clip(name) for name in lib.LIBRARY}


@pytest.mark.parametrize("name", sorted(lib.LIBRARY))
def test_plausibility(clips, name):
    clip = clips[name]
    report = foot_contacts(clip, contact_height=0.01)
    assert report.max_slip < 0.02, report  # per stance phase
    assert report.max_penetration < 0.01, report
    assert report.num_phases >= 2
    if clip.loop:
        dp, dang = loop_closure(clip)
        assert dp < 0.01 and dang < 1.0
        # The seam is smooth: velocities at the first and last frame agree.
        v = clip.linear_velocities()
        np.testing.assert_allclose(v[0], v[-1], atol=1e-9)


def test_contact_patterns(clips):
    def airborne(clip):
        return ~np.stack(list(_contacts(clip).values())).any(0)

    # Walking always has a foot down (double support), running and jumping jacks fly.
    assert not airborne(clips["walk"]).any()
    assert airborne(clips["run"]).mean() > 0.05
    assert airborne(clips["jumping_jacks"]).mean() > 0.2
    assert all(c.all() for c in _contacts(clips["squat"]).values())
    walk = _contacts(clips["walk"])
    assert 0.4 < walk["left_ankle"].mean() < 0.7  # flat-foot stance, then the heel rises
    assert walk["left_foot"].mean() > walk["left_ankle"].mean()  # the toe stays down longer


def _contacts(clip, height=0.01):
    pos, rest = clip.joint_positions(), SK.rest_positions()
    return {n: pos[:, SK.index(n), 2] - rest[SK.index(n), 2] < height
            for n in ("left_ankle", "right_ankle", "left_foot", "right_foot")}


def test_deterministic():
    a, b = lib.walk(speed=1.4), lib.walk(speed=1.4)
    np.testing.assert_array_equal(a.rotations, b.rotations)
    np.testing.assert_array_equal(a.root_trans, b.root_trans)


def test_parameters():
    clip = lib.walk(speed=1.5, stride=1.3, fps=60.0)
    assert clip.fps == 60.0 and clip.loop
    np.testing.assert_allclose(clip.cycle_displacement, [1.3, 0, 0], atol=1e-12)
    assert abs(clip.duration - 1.3 / 1.5) <= 0.5 / 60  # a whole number of frames per cycle
    run = lib.run()
    assert run.cycle_displacement[0] == pytest.approx(2.1)
    # Running is faster than walking and the body stays lower than standing.
    assert run.cycle_displacement[0] / run.duration > 2.5
    assert run.root_trans[:, 2].max() < SK.root_height


def test_walk_is_left_right_symmetric():
    """Mirroring the walk equals playing it half a cycle later (the right leg leads)."""
    clip = lib.walk(speed=1.2, stride=1.2, fps=30.0)  # 30 frames per cycle
    half = (clip.num_frames - 1) // 2
    m = clip.mirror().joint_positions()[: half + 1]
    later = clip.joint_positions()[half:] - clip.cycle_displacement / 2
    np.testing.assert_allclose(m, later, atol=1e-9)
    # Arms swing against the legs: the left wrist is back when the left ankle is forward.
    pos = clip.joint_positions()
    wrist = pos[:, SK.index("left_wrist"), 0] - pos[:, 0, 0]
    ankle = pos[:, SK.index("left_ankle"), 0] - pos[:, 0, 0]
    assert np.corrcoef(wrist, ankle)[0, 1] < -0.8


def test_turn_follows_the_arc():
    clip = lib.turn(angle_deg=90.0, radius=1.5)
    assert not clip.loop
    # The pelvis runs along the circle of radius 1.5 centred at (0, 1.5).
    np.testing.assert_allclose(np.linalg.norm(clip.root_trans[:, :2] - [0, 1.5], axis=-1), 1.5, atol=1e-9)
    # It ends facing +y: the body's forward axis (SMPL's z) turned 90 degrees.
    _, rot_w = clip.forward_kinematics()
    forward_end = rot_w[-1, 0] @ SK.upright_matrix().T @ [1.0, 0, 0]
    # (the pelvis twists +-5 degrees with the gait)
    assert forward_end[1] > np.cos(np.radians(8))
    full = lib.turn(angle_deg=360.0, radius=1.0)
    assert full.loop and loop_closure(full)[0] < 1e-9
    assert foot_contacts(full).max_slip < 0.02


def test_squat_and_jumping_jacks_shapes(clips):
    squat = clips["squat"]
    z = squat.root_trans[:, 2]
    assert z.max() - z.min() == pytest.approx(0.35, abs=0.01)
    jj = clips["jumping_jacks"]
    pos = jj.joint_positions()
    mid = jj.num_frames // 2
    feet_apart = pos[:, SK.index("left_ankle"), 1] - pos[:, SK.index("right_ankle"), 1]
    assert feet_apart[0] == pytest.approx(0.18) and feet_apart[mid] == pytest.approx(0.68)
    # Hands overhead when the feet are apart, by the hips when together.
    assert pos[mid, SK.index("left_wrist"), 2] > pos[mid, SK.index("head"), 2] + 0.2
    assert pos[0, SK.index("left_wrist"), 2] < pos[0, SK.index("spine1"), 2]


def test_leg_ik_reaches_targets():
    rng = np.random.default_rng(0)
    T = 50
    pelvis_rot = rot("z", rng.uniform(-0.5, 0.5, T)) @ rot("y", rng.uniform(-0.3, 0.3, T)) @ SK.upright_matrix()
    pelvis_pos = np.stack([np.zeros(T), np.zeros(T), np.full(T, 0.9)], -1)
    hip = pelvis_pos + pelvis_rot @ SK.offsets[SK.index("left_hip")]
    direction = np.stack([rng.uniform(-0.5, 0.5, T), rng.uniform(-0.2, 0.3, T), -np.ones(T)], -1)
    target = hip + direction / np.linalg.norm(direction, axis=-1, keepdims=True) * rng.uniform(0.45, 0.75, (T, 1))
    yaw, pitch = rng.uniform(-0.3, 0.3, T), rng.uniform(-0.3, 0.5, T)
    foot = foot_pose(SK, yaw, pitch)
    knee_axis = np.stack([-np.sin(yaw), np.cos(yaw), 0 * yaw], -1)
    local_hip, local_knee, local_ankle, err = leg_ik(SK, "left", pelvis_rot, pelvis_pos, target, foot, knee_axis)
    assert err.max() < 1e-12
    # Forward kinematics of the solution lands the ankle on the target with the foot's rotation.
    W_hip = pelvis_rot @ local_hip
    knee_pos = hip + W_hip @ SK.offsets[SK.index("left_knee")]
    ankle_pos = knee_pos + W_hip @ local_knee @ SK.offsets[SK.index("left_ankle")]
    np.testing.assert_allclose(ankle_pos, target, atol=1e-12)
    np.testing.assert_allclose(W_hip @ local_knee @ local_ankle, foot, atol=1e-12)
    # The knee only flexes (a hinge about the lateral axis, bending backwards).
    angle = np.arctan2(local_knee[:, 1, 2] * -1, local_knee[:, 1, 1])  # rotation about SMPL's +x
    assert (angle > -1e-9).all()
    # At the rest distance the knee is straight (angle 0).
    rest_len = np.linalg.norm(SK.offsets[SK.index("left_knee")] + SK.offsets[SK.index("left_ankle")])
    tgt = hip[:1] + [[0, 0, -rest_len]]
    _, k, _, _ = leg_ik(SK, "left", pelvis_rot[:1], pelvis_pos[:1], tgt, foot[:1], knee_axis[:1])
    np.testing.assert_allclose(k[0], np.eye(3), atol=1e-7)


def test_bad_parameters():
    with pytest.raises(ValueError, match="speed must be a positive number, got 0"):
        lib.walk(speed=0.0)
    with pytest.raises(ValueError, match="depth must be at most"):
        lib.squat(depth=0.8)
    with pytest.raises(RuntimeError, match="walk: left foot out of reach"):
        lib.walk(stride=3.5)  # 1.75 m steps for 0.86 m legs
    with pytest.raises(KeyError, match="available: .*'walk'"):
        lib.make_clip("moonwalk")
