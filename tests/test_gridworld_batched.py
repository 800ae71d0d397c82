"""BatchedGridWorld: make_vec wiring, transition statistics vs the model, autoreset, truncation."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import mimicgym  # noqa: F401
from mimicgym.envs.batched import BatchedGridWorld
from mimicgym.envs.gridworld import GridWorldEnv

UP, RIGHT, DOWN, LEFT = 0, 1, 2, 3


def make_vec(env_id, num_envs, **kwargs):
    return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)


def test_make_vec_returns_batched_env():
    envs = make_vec("mimicgym/CliffWalking-v0", 8, slip=0.1)
    assert isinstance(envs, BatchedGridWorld)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert envs.max_episode_steps == 5_000  # from the registry
    assert envs.single_observation_space == gym.spaces.Discrete(48)
    assert envs.action_space == gym.spaces.MultiDiscrete([4] * 8)
    single = gym.make("mimicgym/CliffWalking-v0", slip=0.1).unwrapped.model()
    for name in ("next_states", "probs", "rewards", "terminal", "initial"):
        np.testing.assert_array_equal(getattr(envs.model(), name), getattr(single, name))
    obs, info = envs.reset(seed=0)
    assert obs.tolist() == [36] * 8 and info == {} and envs.observation_space.contains(obs)


def test_transition_frequencies_match_single_env_model():
    # windy grid with slip, king moves and stochastic wind: up to 15 successors per (s, a)
    kwargs = dict(slip=0.2, king_moves=True, stochastic_wind=True)
    model = GridWorldEnv(layout="windy", **kwargs).model()
    n_envs, n_steps = 2048, 150
    envs = BatchedGridWorld(n_envs, layout="windy", max_episode_steps=40, **kwargs)
    obs, _ = envs.reset(seed=7)
    rng = np.random.default_rng(7)
    n_s, n_a = model.n_states, model.n_actions
    counts = np.zeros(n_s * n_a * n_s)
    for _ in range(n_steps):
        actions = rng.integers(0, n_a, n_envs)
        nxt, reward, terminated, truncated, info = envs.step(actions)
        landed = info["final_obs"] if info else nxt  # before the autoreset
        assert (landed == nxt)[~(terminated | truncated)].all()
        # each observed reward is the model's reward of that (s, a, s')
        sa = obs * n_a + actions
        match = (model.next_states.reshape(n_s * n_a, -1)[sa] == landed[:, None]) & \
                (model.rewards.reshape(n_s * n_a, -1)[sa] == reward[:, None]) & \
                (model.probs.reshape(n_s * n_a, -1)[sa] > 0)
        assert match.any(axis=1).all()
        counts += np.bincount(sa * n_s + landed, minlength=counts.size)
        obs = nxt
    counts = counts.reshape(n_s * n_a, n_s)
    visits = counts.sum(axis=1, keepdims=True)
    p = model.P.reshape(n_s * n_a, n_s)
    assert visits.sum() == n_envs * n_steps and (visits > 200).sum() > 100
    # binomial counts: within 5 standard deviations (plus one count) of n * p, exactly 0 where p = 0
    tolerance = 5 * np.sqrt(visits * p * (1 - p)) + 1
    assert (np.abs(counts - visits * p) <= tolerance).all()
    assert (counts[p == 0] == 0).all()


def test_autoreset_same_step_on_termination():
    envs = make_vec("mimicgym/CliffWalking-v0", 4)
    envs.reset(seed=0)
    path = [UP] + [RIGHT] * 11 + [DOWN]
    for t, a in enumerate(path):
        obs, reward, terminated, truncated, info = envs.step(np.full(4, a))
        assert (reward == -1).all() and not truncated.any()
        assert terminated.all() == (t == len(path) - 1)
    assert obs.tolist() == [36] * 4  # already the next episode's start
    assert info["final_obs"].tolist() == [47] * 4 and info["_final_obs"].all()
    obs, reward, terminated, _, info = envs.step(np.array([RIGHT, UP, UP, UP]))
    assert obs.tolist() == [36, 24, 24, 24] and reward.tolist() == [-100, -1, -1, -1] and info == {}


def test_truncation_like_time_limit():
    envs = BatchedGridWorld(3, layout="sutton_4x4", max_episode_steps=3)
    envs.reset(seed=0)  # all at (3, 0) = 12
    # rows are time steps: env 0 bumps left, env 1 walks up into the terminal (0, 0) on
    # the last allowed step, env 2 goes right twice and up
    actions = np.array([[LEFT, UP, RIGHT], [LEFT, UP, RIGHT], [LEFT, UP, UP]])
    results = [envs.step(a) for a in actions]
    terminated = np.array([r[2] for r in results])
    truncated = np.array([r[3] for r in results])
    assert terminated.tolist() == [[False, False, False], [False, False, False], [False, True, False]]
    # gym's TimeLimit also flags the last allowed step truncated when it terminates
    assert truncated.tolist() == [[False, False, False], [False, False, False], [True, True, True]]
    assert results[2][4]["final_obs"].tolist() == [12, 0, 10] and results[2][0].tolist() == [12, 12, 12]
    # the step counters restarted: two more steps are fine, the third truncates
    for t in range(3):
        _, _, terminated, truncated, _ = envs.step(np.array([LEFT, LEFT, LEFT]))
        assert truncated.all() == (t == 2) and not terminated.any()


def test_deterministic_layout_matches_single_envs_step_by_step():
    # without randomness the batched env must replay gym.make's single env (with its
    # TimeLimit) exactly, including Gymnasium's same-step autoreset
    n_envs, limit = 5, 15
    envs = make_vec("mimicgym/CliffWalking-v0", n_envs, max_episode_steps=limit)
    singles = [gym.make("mimicgym/CliffWalking-v0", max_episode_steps=limit) for _ in range(n_envs)]
    envs.reset(seed=0)
    for env in singles:
        env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 4, (60, n_envs))
    actions[:13] = np.array([UP] + [RIGHT] * 11 + [DOWN])[:, None]  # reach the goal once
    ended = np.zeros((2, n_envs), dtype=int)
    for step_actions in actions:
        obs, reward, terminated, truncated, info = envs.step(step_actions)
        ended += [terminated, truncated]
        for i, env in enumerate(singles):
            s_obs, s_reward, s_term, s_trunc, _ = env.step(int(step_actions[i]))
            assert (reward[i], terminated[i], truncated[i]) == (s_reward, s_term, s_trunc)
            if s_term or s_trunc:
                assert info["_final_obs"][i] and info["final_obs"][i] == s_obs
                s_obs, _ = env.reset()
            assert obs[i] == s_obs
    assert (ended[0] >= 1).all() and (ended[1] >= 1).all()  # both ways of ending happened


def test_seeding_partial_reset_and_copies():
    def rollout(seed):
        envs = BatchedGridWorld(16, layout="default", slip=0.3, max_episode_steps=20)
        envs.reset(seed=seed)
        rng = np.random.default_rng(0)
        return np.stack([envs.step(rng.integers(0, 4, 16))[0] for _ in range(60)])

    np.testing.assert_array_equal(rollout(3), rollout(3))
    assert (rollout(3) != rollout(4)).any()

    envs = BatchedGridWorld(3, layout="cliff_walking")
    envs.reset(seed=0)
    obs, *_ = envs.step(np.array([UP, UP, UP]))
    obs2, _ = envs.reset(options={"reset_mask": np.array([True, False, True])})
    assert obs.tolist() == [24, 24, 24] and obs2.tolist() == [36, 24, 36]
    obs2[:] = -1  # returned arrays are copies by default
    assert envs.step(np.array([UP, UP, UP]))[0].tolist() == [24, 12, 24]


@pytest.mark.parametrize("actions,message", [
    (np.array([0, 4, 1]), r"actions\[1\] = 4 is outside"),
    (np.array([0, -1, 1]), r"actions\[1\] = -1"),
    (np.array([0, 1]), r"shape \(3,\)"),
    (np.array([0.0, 1.0, 2.0]), r"integer array"),
])
def test_bad_actions_raise(actions, message):
    envs = BatchedGridWorld(3)
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        envs.step(actions)


def test_bad_construction_and_render():
    with pytest.raises(ValueError, match="num_envs must be a positive int, got 0"):
        BatchedGridWorld(0)
    with pytest.raises(ValueError, match="slip must be a probability"):
        BatchedGridWorld(2, slip=2.0)
    with pytest.raises(ValueError, match="max_episode_steps"):
        BatchedGridWorld(2, max_episode_steps=0)
    envs = BatchedGridWorld(2, layout="cliff_walking", render_mode="rgb_array", cell_size=4)
    envs.reset(seed=0)
    frames = envs.render()
    single = GridWorldEnv(layout="cliff_walking", cell_size=4)
    single.reset(seed=0)
    assert len(frames) == 2 and frames[0].shape == (16, 48, 3)
    np.testing.assert_array_equal(frames[1], single.rgb_frame())
    text = BatchedGridWorld(2, layout="random_walk", render_mode="ansi")
    text.reset(seed=0)
    text.step(np.array([0, 1]))
    assert text.render() == ("  (Left)\nT.@S..G\n", "  (Right)\nT..S@.G\n")
