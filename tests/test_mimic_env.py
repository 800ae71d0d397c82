"""MimicEnv: the humanoid3d character against its published definition, kinematic playback,
reward terms, RSI, early termination, Gymnasium/SB3 API checks and rendering."""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported: headless rendering

import gymnasium as gym
import mujoco
import numpy as np
import pytest
import torch
from _mimic_checks import check_rsi, ghost_coverage, random_rollout_episodes

import mimicgym.envs  # noqa: F401  (registers the ids)
from mimicgym.envs.mimic.characters import HUMANOID3D_JOINTS
from mimicgym.envs.mimic.env import MimicEnv
from mimicgym.envs.mimic.factory import make_character
from mimicgym.envs.mimic.reference import ReferenceMotion, clip_to_qpos
from mimicgym.motion.deepmimic import load_deepmimic
from mimicgym.motion.rotations import quat_to_matrix

pytest.importorskip("pybullet_data")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "deepmimic"
DEFINITION = SHARED / "humanoid3d.txt"


@pytest.fixture(scope="module")
def character():
    return make_character("humanoid3d")


@pytest.fixture(scope="module")
def walk_env():
    env = MimicEnv(clip="walk")
    yield env
    env.close()


def _definition() -> dict:
    return json.loads(DEFINITION.read_text())


def test_character_matches_published_definition(character):
    m = character.model
    spec = _definition()
    assert m.nbody - 1 == 15 and m.body_mass.sum() == pytest.approx(45.0)
    types = m.jnt_type.tolist()
    assert types.count(mujoco.mjtJoint.mjJNT_BALL) == 8
    assert types.count(mujoco.mjtJoint.mjJNT_HINGE) == 4
    assert types.count(mujoco.mjtJoint.mjJNT_FREE) == 1
    for joint in spec["Skeleton"]["Joints"][1:]:
        bid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, joint["Name"])
        attach = [joint["AttachX"], joint["AttachY"], joint["AttachZ"]]
        np.testing.assert_allclose(m.body_pos[bid], attach, atol=1e-6)
    for body in spec["BodyDefs"]:
        bid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, body["Name"])
        assert m.body_mass[bid] == pytest.approx(body["Mass"])
    # DeepMimic's gains and torque limits, per the issue, in joint order.
    gains = {j.name: (j.kp, j.kd, j.torque_limit) for j in HUMANOID3D_JOINTS}
    assert gains["chest"] == (1000, 100, 200) and gains["neck"] == (100, 10, 50)
    assert gains["right_knee"] == (500, 50, 150) and gains["left_elbow"] == (300, 30, 60)
    limits = {j["Name"]: j["TorqueLim"] for j in spec["Skeleton"]["Joints"] if "TorqueLim" in j}
    for name, (_, _, lim) in gains.items():
        if name in limits and limits[name]:
            assert lim == limits[name], name
    # ...and in the model's PD actuators, whose force range enforces the limit.
    for j in HUMANOID3D_JOINTS:
        if j.kind in ("ball", "hinge"):
            acts = np.flatnonzero(m.actuator_trnid[:, 0] == m.body_jntadr[_body_id(m, j.name)])
            assert len(acts) == (3 if j.kind == "ball" else 1)
            np.testing.assert_array_equal(m.actuator_gainprm[acts, 0], j.kp)
            np.testing.assert_array_equal(m.actuator_biasprm[acts, 2], -j.kd)
            np.testing.assert_array_equal(m.actuator_forcerange[acts, 1], j.torque_limit)


def _body_id(m, name: str) -> int:
    return mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, name)


def test_actuator_targets_are_the_reference_poses_and_torques_stay_in_limits(walk_env):
    env, d, limit = walk_env, walk_env.data, walk_env.char.torque_limit
    for k in range(0, env.ref.n, 50):  # the targets hold the pose: zero P error on it
        env.set_state_to_reference(k)
        np.testing.assert_allclose(d.actuator_length, env.ref.pd_target[k], atol=1e-12)
    # Full-scale random actions ask for far more torque than the limits allow.
    env.reset(seed=3)
    rng, saturated = np.random.default_rng(3), 0
    for _ in range(60):
        _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, env.action_space.shape))
        assert (np.abs(d.actuator_force) <= limit + 1e-9).all()
        saturated += int((np.abs(d.actuator_force) >= limit - 1e-9).any())
        if terminated or truncated:
            env.reset(seed=4)
    assert saturated > 10


def _fk_from_definition(frames: np.ndarray) -> np.ndarray:
    """Independent forward kinematics of the JSON skeleton: (T, 44) frames -> (T, 15, 3), z-up."""
    joints = _definition()["Skeleton"]["Joints"]
    f = torch.as_tensor(frames, dtype=torch.float64)
    col, pos, rot = 1 + 3 + 4, {}, {}
    for j in joints:
        if j["Parent"] < 0:
            pos[0], rot[0] = f[:, 1:4], quat_to_matrix(f[:, 4:8])
            continue
        if j["Type"] == "spherical":
            local = quat_to_matrix(f[:, col:col + 4])
            col += 4
        elif j["Type"] == "revolute":
            c, s = torch.cos(f[:, col]), torch.sin(f[:, col])
            z, o = torch.zeros_like(c), torch.ones_like(c)
            local = torch.stack([c, -s, z, s, c, z, z, z, o], -1).reshape(-1, 3, 3)
            col += 1
        else:
            local = torch.eye(3, dtype=torch.float64).expand(len(f), 3, 3)
        p = j["Parent"]
        attach = torch.tensor([j["AttachX"], j["AttachY"], j["AttachZ"]], dtype=torch.float64)
        pos[j["ID"]] = pos[p] + rot[p] @ attach
        rot[j["ID"]] = rot[p] @ local
    y_up = torch.stack([pos[i] for i in range(len(joints))], 1).numpy()  # (T, 15, 3)
    return np.stack([y_up[..., 0], -y_up[..., 2], y_up[..., 1]], -1)


@pytest.mark.parametrize("clip", ["walk", "cartwheel", "kick"])  # kick: quaternion norms 0.58+
def test_retargeted_joint_positions_match_source_within_1cm(character, clip):
    path = SHARED / f"humanoid3d_{clip}.txt"
    frames = np.array(json.loads(path.read_text())["Frames"])
    expected = _fk_from_definition(frames)
    qpos = clip_to_qpos(character, load_deepmimic(path))
    data = mujoco.MjData(character.model)
    got = np.empty_like(expected)
    for t, q in enumerate(qpos):
        data.qpos[:] = q
        mujoco.mj_kinematics(character.model, data)
        got[t] = data.xpos[character.body_ids]
    assert np.abs(got - expected).max() < 0.01
    # The physics-rate table passes through the keyframes.
    ref = ReferenceMotion.from_deepmimic(character, clip)
    np.testing.assert_allclose(ref.body_pos[0], expected[0], atol=1e-9)


def test_walk_clip_feet_stay_on_the_ground(character):
    ref = ReferenceMotion.from_deepmimic(character, "walk")
    soles = ref.body_pos[:, character.end_effector_index[[0, 2]], 2] - 0.05  # ankle to sole
    assert soles.min() > -0.01 and soles.min() < 0.02
    assert ref.loop and ref.cycle_offset[0] == pytest.approx(1.239, abs=1e-3)


def test_kinematic_playback_gives_unit_reward_terms(walk_env):
    env = walk_env
    env.reset(seed=0)
    for k in range(0, 3 * env.ref.n, env.substeps):  # three cycles, crossing the wrap
        env.set_state_to_reference(k)
        np.testing.assert_allclose(env.imitation_terms(), 1.0, atol=1e-6)


def test_reward_terms_hand_computed(walk_env):
    env = walk_env
    env.set_state_to_reference(100)
    knee = mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_JOINT, "right_knee")
    env.data.qpos[env.model.jnt_qposadr[knee]] -= 0.1
    env.data.qvel[env.model.jnt_dofadr[knee]] += 2.0
    mujoco.mj_forward(env.model, env.data)
    terms = env.imitation_terms()
    knee_weight = 0.3 / 4.8  # DeepMimic weights, normalised over root and 12 joints
    assert terms[0] == pytest.approx(np.exp(-2.0 * knee_weight * 0.1**2), rel=1e-9)
    assert terms[1] == pytest.approx(np.exp(-0.1 * 2.0**2), rel=1e-9)
    assert terms[2] < 1.0 and terms[3] < 1.0
    # An upward root shift changes neither pose nor end effectors, only the CoM: exp(-10 * 0.1^2).
    env.set_state_to_reference(100)
    env.data.qpos[2] += 0.1
    mujoco.mj_forward(env.model, env.data)
    np.testing.assert_allclose(env.imitation_terms(), [1, 1, 1, np.exp(-0.1)], atol=1e-9)


def test_joint_weighted_velocity_error_and_reward_presets():
    """DeepMimic's code weights each joint's squared velocity error by its pose weight (the
    paper's eq. 7 sums them): a knee 2 rad/s off costs exp(-0.1 * w_knee * 4) there. Presets
    and mappings build the same configs; bad ones are refused by name."""
    from mimicgym.envs.mimic.reward import REWARD_PRESETS, RewardConfig

    env = MimicEnv(clip="walk", reward_config="keep_up")
    assert env.reward.config == REWARD_PRESETS["keep_up"]
    env.set_state_to_reference(100)
    knee = mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_JOINT, "right_knee")
    chest = mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_JOINT, "chest")
    env.data.qvel[env.model.jnt_dofadr[knee]] += 2.0
    env.data.qvel[env.model.jnt_dofadr[chest] + 1] -= 1.0  # one axis of a ball joint
    mujoco.mj_forward(env.model, env.data)
    knee_w, chest_w = 0.3 / 4.8, 0.5 / 4.8
    assert env.imitation_terms()[1] == pytest.approx(np.exp(-0.1 * (knee_w * 4.0 + chest_w * 1.0)), rel=1e-9)
    # The weights of the preset, and a perfect match still earns their sum.
    env.set_state_to_reference(100)
    assert env.reward.imitation(env.imitation_terms()[None])[0] == pytest.approx(env.reward.max_imitation)
    assert env.reward.max_imitation == pytest.approx(1.0)
    assert MimicEnv(clip="walk", reward_config={"com_weight": 0.3}).reward.config == RewardConfig(com_weight=0.3)
    assert MimicEnv(clip="walk", reward_config="paper").reward.config == RewardConfig()
    for bad, match in (("bogus", "preset must be one of"), ({"com_wieght": 1.0}, "no fields.*com_wieght"),
                       ({"velocity_joint_weights": 1}, "velocity_joint_weights"), (3, "got 3")):
        with pytest.raises(ValueError, match=match):
            MimicEnv(clip="walk", reward_config=bad)


def test_body_velocities_in_observation_match_mujoco(walk_env):
    env = walk_env
    env.reset(seed=3)
    for _ in range(5):
        obs, *_ = env.step(env.action_space.sample())
    d, c = env.data, env.char
    n = c.n_bodies
    lin = obs[1 + 3 * (n - 1) + 6 * n: 1 + 3 * (n - 1) + 9 * n].reshape(n, 3)
    root_xmat = d.xmat[c.body_ids[0]].reshape(3, 3)
    yaw = np.arctan2(root_xmat[1, 0], root_xmat[0, 0])
    rz = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
    v6 = np.zeros(6)
    for i, bid in enumerate(np.sort(c.body_ids)):  # observation order: model body order
        mujoco.mj_objectVelocity(env.model, d, mujoco.mjtObj.mjOBJ_XBODY, bid, v6, 0)  # body origin
        np.testing.assert_allclose(rz @ lin[i], v6[3:], atol=1e-4)


def test_observation_carries_the_next_reference_pose_as_a_target(walk_env):
    env, n = walk_env, walk_env.char.n_bodies
    k = 3 * env.substeps + 7  # on the reference: the target is the reference's own motion
    env.set_state_to_reference(k)
    obs = env._observation()
    targets = obs[1 + 3 * (n - 1) + 12 * n: -1]  # between the kinematics and the phase
    assert targets.shape == (28 + 3,) and obs[-1] == pytest.approx(env.ref.phase(k))
    nxt = k + env.substeps
    np.testing.assert_allclose(targets[:-3], env.ref.pd_target[nxt] - env.ref.pd_target[k],
                               atol=1e-6)
    root_xmat = env.data.xmat[env.char.body_ids[0]].reshape(3, 3)
    yaw = np.arctan2(root_xmat[1, 0], root_xmat[0, 0])
    to_heading = np.array([[np.cos(yaw), np.sin(yaw), 0], [-np.sin(yaw), np.cos(yaw), 0],
                           [0, 0, 1]])
    np.testing.assert_allclose(targets[-3:], to_heading @ (env.ref.qpos[nxt, :3]
                                                           - env.ref.qpos[k, :3]), atol=1e-6)
    # ...and without targets the observation is the kinematic part and the phase only.
    plain = MimicEnv(clip="walk", reference_targets=False)
    assert plain.observation_space.shape == (224,)
    np.testing.assert_array_equal(plain.reset(seed=1)[0][:-1],
                                  env.reset(seed=1)[0][:1 + 3 * (n - 1) + 12 * n])


def test_reference_state_initialisation(walk_env):
    env = walk_env
    check_rsi(env, 8)
    fixed = MimicEnv(clip="walk", rsi=False)
    for seed in range(3):
        _, info = fixed.reset(seed=seed)
        assert info["phase"] == 0.0
    # Same seed, same actions -> bit-identical trajectories.
    runs = []
    for _ in range(2):
        obs, _ = env.reset(seed=11)
        rng = np.random.default_rng(0)
        trace = [obs]
        for _ in range(10):
            trace.append(env.step(rng.uniform(-1, 1, 28).astype(np.float32))[0])
        runs.append(np.stack(trace))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_early_termination_on_fall_and_switch():
    zero = np.zeros(28, dtype=np.float32)
    env = MimicEnv(clip="walk", rsi=False)
    env.reset(seed=0)
    for step in range(1, 120):
        _, _, terminated, truncated, _ = env.step(zero)
        if terminated:
            break
    assert terminated and not truncated and 10 < step < 120
    assert env._bad_contact()
    # Switched off: the same fall runs to the time limit.
    env = MimicEnv(clip="walk", rsi=False, early_termination=False, episode_seconds=4.0)
    env.reset(seed=0)
    for step in range(1, 121):
        _, _, terminated, truncated, _ = env.step(zero)
        assert not terminated
        if truncated:
            break
    assert step == 120 and env.data.qpos[2] < 0.4  # it did fall
    # A tracking-error threshold ends an episode where the body drifts from the reference.
    env = MimicEnv(clip="walk", rsi=False, allowed_contacts=None, max_tracking_error=0.15)
    env.reset(seed=0)
    for step in range(1, 120):
        _, _, terminated, _, _ = env.step(zero)
        if terminated:
            break
    assert terminated and not env._bad_contact()


def test_non_looping_clip_ends_with_the_clip():
    env = MimicEnv(clip="kick", rsi=False, early_termination=False)
    env.reset(seed=0)
    steps = 0
    while True:
        steps += 1
        *_, truncated, _ = env.step(np.zeros(28, dtype=np.float32))
        if truncated:
            break
    assert steps == int(np.ceil(env.ref.n / env.substeps))


def test_api_checks_and_bad_input():
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make("mimicgym/MimicWalk-v0")
    check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(MimicEnv(clip="run"), warn=True)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(3))
    with pytest.raises(ValueError, match="non-finite"):
        env.step(np.full(28, np.nan))
    with pytest.raises(ValueError, match="betas only apply to character='smpl'"):
        gym.make("mimicgym/Mimic-v0", character="humanoid3d", betas=[1.0])
    with pytest.raises(ValueError, match="unknown character 'smplx'"):
        gym.make("mimicgym/Mimic-v0", character="smplx")
    with pytest.raises(ValueError, match="unknown clip 'jog'"):
        MimicEnv(clip="jog")
    with pytest.raises(ValueError, match="control_freq"):
        MimicEnv(control_freq=7)


@pytest.mark.slow
def test_ten_thousand_random_steps_stay_finite():
    env = gym.make("mimicgym/MimicRun-v0")
    assert random_rollout_episodes(env, 10_000) > 10


def test_rgb_render_shows_body_and_ghost():
    env = MimicEnv(clip="walk", render_mode="rgb_array", width=160, height=120)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (120, 160, 3) and frame.dtype == np.uint8
    assert 0.005 < ghost_coverage(env, frame) < 0.5  # the ghost covers part of the picture, not all
    env.close()


def test_task_reward_combines_with_imitation():
    from mimicgym.envs.mimic.reward import RewardConfig, heading_task_reward

    env = MimicEnv(clip="walk", task=True, target_speed=1.2,
                   reward_config=RewardConfig(task_weight=0.3))
    obs, _ = env.reset(seed=4)
    assert obs.shape == (255 + 3,) and obs[-1] == pytest.approx(1.2)
    _, reward, _, _, info = env.step(np.zeros(28, dtype=np.float32))
    assert reward == pytest.approx(0.7 * info["imitation_reward"] + 0.3 * info["task_reward"])
    # Hand values: on target at full speed -> 1; 1 m/s short -> exp(-2.5).
    d = np.array([0.0, 1.0])
    assert heading_task_reward(np.array([0.0, 1.2, 0.0]), d, 1.2) == 1.0
    assert heading_task_reward(np.array([3.0, 0.2, 0.0]), d, 1.2) == pytest.approx(np.exp(-2.5))
    with pytest.raises(ValueError, match="task_weight"):
        RewardConfig(task_weight=1.5)


def test_generated_and_fallback_clips(monkeypatch):
    import sys

    # A generated SMPL clip, retargeted onto humanoid3d, plays back with unit reward terms.
    env = MimicEnv(clip="jumping_jacks")
    env.reset(seed=0)
    env.set_state_to_reference(env.substeps * 7)
    np.testing.assert_allclose(env.imitation_terms(), 1.0, atol=1e-6)
    soles = env.ref.body_pos[:, env.char.end_effector_index[[0, 2]], 2] - 0.05
    assert -0.02 < soles.min() < 0.03
    # Without pybullet a DeepMimic name falls back to the generated clip, saying so.
    monkeypatch.setitem(sys.modules, "pybullet_data", None)
    with pytest.warns(UserWarning, match="pybullet is not installed"):
        env = MimicEnv(clip="run")
    assert env.ref.name == "run" and env.ref.loop
