"""BatchedMimicEnv: make_vec wiring, trajectories equal to N single envs (Gymnasium's
SyncVectorEnv of gym.make, same-step autoreset) through terminations, truncations and
autoresets, seeding s + i, partial resets, threads, bad input."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported: headless rendering

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import mimicgym.envs  # noqa: F401  (registers the ids)
from mimicgym.envs import MIMIC_ENVS
from mimicgym.envs.mimic.batched import BatchedMimicEnv
from mimicgym.envs.mimic.env import MimicEnv
from mimicgym.envs.mimic.observation import heading_matrices
from mimicgym.envs.mimic.reward import ImitationReward, RewardConfig

TOL = 1e-9


def make_batched(env_id, n, **kwargs):
    return gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point", **kwargs)


def make_singles(env_id, n, **kwargs):
    """N single envs from gym.make, autoreset as the batched env does it."""
    return gym.make_vec(env_id, num_envs=n, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP}, **kwargs)


def rollout(envs, actions, seed):
    """[(obs, reward, terminated, truncated, info)] from reset(seed) through every action row."""
    obs, info = envs.reset(seed=seed)
    trace = [(obs, None, None, None, info)]
    for a in actions:
        trace.append(envs.step(a))
    return trace


def assert_info_close(batched: dict, single: dict, path: str = "info") -> None:
    assert set(batched) == set(single), f"{path}: keys {sorted(batched)} != {sorted(single)}"
    for key, value in single.items():
        where = f"{path}[{key!r}]"
        if isinstance(value, dict):
            assert_info_close(batched[key], value, where)
        elif key == "final_obs":  # Gymnasium's object array holds None where no episode ended
            ended = single["_final_obs"]
            np.testing.assert_allclose(batched[key][ended], np.stack(list(value[ended])), rtol=0, atol=TOL,
                                       err_msg=where)
        elif key.startswith("_"):
            np.testing.assert_array_equal(batched[key], value, err_msg=where)
        else:
            np.testing.assert_allclose(batched[key], value, rtol=0, atol=TOL, err_msg=where)


def actions_for(envs, steps, scale, seed=0):
    shape = (steps, envs.num_envs, *envs.single_action_space.shape)
    return (np.random.default_rng(seed).uniform(-1, 1, shape) * scale).astype(np.float32)


CASES = {
    # looping walk: falls (terminations) and 1 s time limits (truncations)
    "walk": ("mimicgym/MimicWalk-v0", 4, 90, 0.4, {"episode_seconds": 1.0}),
    # the heading task (reward, observation, direction drawn at reset) and tracking-error ends
    "run_task": ("mimicgym/MimicRun-v0", 3, 70, 0.3,
                 {"episode_seconds": 0.3, "task": True, "reward_config": RewardConfig(task_weight=0.3),
                  "max_tracking_error": 0.3}),
    # a clip that does not loop truncates when it has played out
    "kick": ("mimicgym/Mimic-v0", 3, 70, 0.3, {"clip": "kick"}),
    "smpl": ("mimicgym/MimicWalk-v0", 2, 50, 1.0,
             {"character": "smpl", "episode_seconds": 0.3, "max_tracking_error": 0.15, "reference_targets": False}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_trajectories_equal_single_envs_through_episode_ends_and_autoresets(case):
    env_id, n, steps, scale, kwargs = CASES[case]
    batched, singles = make_batched(env_id, n, **kwargs), make_singles(env_id, n, **kwargs)
    actions = actions_for(batched, steps, scale)
    ours, theirs = rollout(batched, actions, seed=11), rollout(singles, actions, seed=11)
    ended = np.zeros(2, dtype=int)
    for t, (mine, single) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(mine[0], single[0], rtol=0, atol=TOL, err_msg=f"obs at step {t}")
        assert mine[0].dtype == np.float32 and mine[0].shape == (n, *batched.single_observation_space.shape)
        if t:
            np.testing.assert_allclose(mine[1], single[1], rtol=0, atol=TOL, err_msg=f"reward at step {t}")
            np.testing.assert_array_equal(mine[2], single[2], err_msg=f"terminated at step {t}")
            np.testing.assert_array_equal(mine[3], single[3], err_msg=f"truncated at step {t}")
            ended += [mine[2].sum(), mine[3].sum()]
        assert_info_close(mine[4], single[4], f"info at step {t}")
    # every way an episode ends happened, so the autoreset path was compared too
    assert ended[0] >= 1 and ended[1] >= 1, f"terminations, truncations: {ended}"
    # threads only change who steps which character: bit-identical results
    threaded = rollout(make_batched(env_id, n, threads=2, **kwargs), actions, seed=11)
    for mine, other in zip(ours, threaded):
        for a, b in zip(mine[:4], other[:4]):
            np.testing.assert_array_equal(a, b)
    batched.close()
    singles.close()


def test_make_vec_returns_the_batched_env_for_every_imitation_id():
    for name in MIMIC_ENVS:
        envs = make_batched(f"mimicgym/{name}", 3)
        assert isinstance(envs, BatchedMimicEnv), name
        assert envs.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
        single = gym.make(f"mimicgym/{name}")
        assert envs.single_observation_space == single.observation_space
        assert envs.single_action_space == single.action_space
        assert envs.observation_space.shape == (3, *single.observation_space.shape)
        assert envs.action_space.shape == (3, *single.action_space.shape)
        assert envs.single_env.ref.name == single.unwrapped.ref.name  # the id's clip reaches the batch
        envs.close()


def test_reset_seeds_character_i_with_s_plus_i_and_resets_masked_characters_only():
    envs = make_batched("mimicgym/MimicWalk-v0", 4)
    obs, info = envs.reset(seed=7)
    for i in range(4):
        single_obs, single_info = gym.make("mimicgym/MimicWalk-v0").reset(seed=7 + i)
        np.testing.assert_array_equal(obs[i], single_obs)
        assert info["phase"][i] == single_info["phase"]
    assert len({round(p, 6) for p in info["phase"]}) == 4  # RSI: each its own phase
    np.testing.assert_array_equal(envs.reset(seed=[7, 8, 9, 10])[0], obs)  # one seed each
    np.testing.assert_array_equal(envs.reset(seed=7)[0], obs)  # same seed, same start
    assert not np.array_equal(envs.reset(seed=8)[0], obs)

    envs.reset(seed=7)
    stepped, *_ = envs.step(np.zeros((4, 28), dtype=np.float32))
    mask = np.array([False, True, False, True])
    again, info = envs.reset(options={"reset_mask": mask})
    np.testing.assert_array_equal(again[~mask], stepped[~mask])  # untouched characters
    assert not np.allclose(again[mask], stepped[mask])
    with pytest.raises(ValueError, match="reset_mask"):
        envs.reset(options={"reset_mask": np.ones(3, dtype=bool)})
    with pytest.raises(ValueError, match="seed must be"):
        envs.reset(seed=[1, 2])


def test_same_step_autoreset_returns_final_obs_and_the_next_episodes_first_obs():
    # full-scale actions topple the walker within a second; no time limit interferes
    envs = make_batched("mimicgym/MimicWalk-v0", 2, rsi=False)
    single = gym.make("mimicgym/MimicWalk-v0", rsi=False)
    envs.reset(seed=0)
    single.reset(seed=0)
    action = np.full(28, 1.0, dtype=np.float32)
    for t in range(60):
        obs, reward, terminated, truncated, info = envs.step(np.stack([action, action]))
        s_obs, s_reward, s_terminated, *_ = single.step(action)
        assert reward[0] == pytest.approx(s_reward, abs=TOL)
        if s_terminated:
            break
    assert s_terminated and terminated.all() and not truncated.any() and 0 < t < 59
    assert info["_final_obs"].all() and info["_final_info"].all()
    np.testing.assert_allclose(info["final_obs"][0], s_obs, rtol=0, atol=TOL)
    assert info["final_info"]["imitation_reward"][0] == pytest.approx(reward[0], abs=TOL)
    assert "reward_terms" not in info and info["_phase"].all()  # as SyncVectorEnv: all ended
    np.testing.assert_array_equal(obs[0], single.reset()[0])  # rsi=False: the same start
    assert info["phase"][0] == 0.0
    _, _, terminated, _, info = envs.step(np.zeros((2, 28), dtype=np.float32))
    assert not terminated.any() and "final_obs" not in info and info["_reward_terms"].all()


@pytest.mark.parametrize("actions,message", [
    (np.zeros((2, 28)), r"shape \(3, 28\)"),
    (np.array([np.zeros(28), np.zeros(28), np.r_[np.nan, np.zeros(27)]]), r"actions\[2\] has non-finite"),
])
def test_bad_actions_raise_naming_the_character(actions, message):
    envs = BatchedMimicEnv(3)
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        envs.step(actions)


def test_bad_construction():
    with pytest.raises(ValueError, match="num_envs must be a positive int, got 0"):
        BatchedMimicEnv(0)
    with pytest.raises(ValueError, match="threads must be a positive int, got 0"):
        BatchedMimicEnv(2, threads=0)
    with pytest.raises(ValueError, match="control_freq"):  # the single env's own checks
        BatchedMimicEnv(2, control_freq=7)
    assert BatchedMimicEnv(2, threads=8).threads == 2  # no more threads than characters


def test_render_gives_each_characters_frame():
    envs = BatchedMimicEnv(2, render_mode="rgb_array", width=64, height=48)
    envs.reset(seed=3)
    frames = envs.render()
    single = gym.make("mimicgym/MimicWalk-v0", render_mode="rgb_array", width=64, height=48)
    single.reset(seed=4)
    assert len(frames) == 2 and frames[1].shape == (48, 64, 3)
    np.testing.assert_array_equal(frames[1], single.render())
    envs.close()


def test_batched_pose_error_is_mujocos_position_difference():
    # the batch formula (quaternion products) against mj_differentiatePos, one pose at a time,
    # including quaternions with a negative w (the same rotation) and turns past a half turn
    env = MimicEnv()
    m, reward, rng = env.model, ImitationReward(env.char), np.random.default_rng(0)
    qpos = np.tile(m.qpos0, (6, 1))
    ref = qpos.copy()
    for q in (qpos, ref):
        for quat in reward._quat_adr:
            q[:, quat] = rng.normal(size=(6, 4))
        q[:, reward._hinge_adr] = rng.uniform(-3, 0, (6, len(reward._hinge_adr)))
    qpos[:3, reward._quat_adr.ravel()] *= -1  # whole quaternions negated: the same rotations
    com, ends, vel = np.zeros((6, 3)), np.zeros((6, len(env.char.end_effector_index), 3)), np.zeros((6, m.nv))
    # not unit quaternions: the batch formula does not need them
    errors = reward.errors(qpos, vel, ends, com, ref, vel, ends, com)
    dq = np.zeros(m.nv)
    for i in range(6):
        for q in (qpos[i], ref[i]):  # MuJoCo's wants unit ones
            for quat in reward._quat_adr:
                q[quat] /= np.linalg.norm(q[quat])
        mujoco.mj_differentiatePos(m, dq, 1.0, ref[i], qpos[i])
        assert errors[i, 0] == pytest.approx(env.char.dof_pose_weight @ dq**2, rel=1e-10)
    assert errors[:, 1:].max() == 0.0


def test_heading_frame_turns_with_the_yaw_and_is_the_world_frame_when_upright():
    yaw = np.array([0.3, -2.0, 3.0])
    root = np.zeros((4, 9))
    root[:3, 0], root[:3, 3], root[:3, 8] = np.cos(yaw), np.sin(yaw), 1.0  # level, turned by yaw
    root[3] = [0, 0, 1, 0, 1, 0, -1, 0, 0]  # local x straight up: no heading
    heading = heading_matrices(root)
    for i, a in enumerate(yaw):
        turn = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
        np.testing.assert_allclose(heading[i], turn.T, atol=1e-15)
    np.testing.assert_array_equal(heading[3], np.eye(3))
