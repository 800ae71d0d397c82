"""Monte Carlo prediction and control: returns, batched updates, control, exploring starts."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import mimicgym  # noqa: F401
from mimicgym import agents
from mimicgym.agents import dp
from mimicgym.agents.monte_carlo import discounted_returns, incremental_update


def returns_by_loop(rewards, gamma):
    out, g = np.empty(len(rewards)), 0.0
    for t in range(len(rewards) - 1, -1, -1):
        g = rewards[t] + gamma * g
        out[t] = g
    return out


@pytest.mark.parametrize("gamma", [1.0, 0.99, 0.9, 0.5, 0.05, 1e-5, 0.0])
@pytest.mark.parametrize("length", [1, 7, 1000])
def test_discounted_returns_match_the_backward_recursion(gamma, length):
    rewards = np.random.default_rng(length).normal(size=length)
    np.testing.assert_allclose(discounted_returns(rewards, gamma), returns_by_loop(rewards, gamma),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("alpha", [None, 0.3])
def test_batched_update_equals_sequential_updates(alpha):
    rng = np.random.default_rng(0)
    index = rng.integers(5, size=40)  # repeated entries, as in every-visit MC
    targets = rng.normal(size=40)
    table, counts = rng.normal(size=6), rng.integers(0, 3, size=6)
    expected, expected_counts = table.copy(), counts.copy()
    for i, g in zip(index, targets):
        expected_counts[i] += 1
        step = 1.0 / expected_counts[i] if alpha is None else alpha
        expected[i] += step * (g - expected[i])
    incremental_update(table, counts, index, targets, alpha)
    np.testing.assert_allclose(table, expected, atol=1e-12)
    np.testing.assert_array_equal(counts, expected_counts)


def test_first_visit_prediction_averages_first_visit_returns():
    """One hand-checked episode on the random walk, gamma 0.5: the values are the first
    visits' returns, and every-visit averages all visits."""
    env = gym.make("mimicgym/RandomWalk-v0")
    first = agents.MonteCarlo(env, gamma=0.5, seed=0)
    every = agents.MonteCarlo(env, gamma=0.5, first_visit=False, seed=0)
    first._learn_from_episode(np.array([3, 4, 3, 4, 5]), np.array([1, 0, 1, 1, 1]), np.array([0, 0, 0, 0, 1.0]))
    every._learn_from_episode(np.array([3, 4, 3, 4, 5]), np.array([1, 0, 1, 1, 1]), np.array([0, 0, 0, 0, 1.0]))
    g = 0.5 ** np.arange(4, -1, -1)  # returns at t = 0..4
    np.testing.assert_allclose(first.values[[3, 4, 5]], [g[0], g[1], g[4]])
    np.testing.assert_allclose(every.values[[3, 4, 5]], [(g[0] + g[2]) / 2, (g[1] + g[3]) / 2, g[4]])
    np.testing.assert_allclose(first.q_values[3, 1], g[0])  # pair (3, right) first at t = 0
    np.testing.assert_allclose(every.q_values[4], [g[1], g[3]])
    assert first.state_counts.tolist() == [0, 0, 0, 1, 1, 1, 0]
    assert every.state_counts.tolist() == [0, 0, 0, 2, 2, 1, 0]


def optimal_values(env) -> np.ndarray:
    return agents.ValueIteration(env, gamma=1.0, tol=1e-10).learn().values


def test_exploring_starts_find_an_optimal_policy_on_example_4_1():
    """Monte Carlo ES starts everywhere, so its greedy policy, evaluated exactly on the
    model, achieves v* (minus the distance to a corner) in every state."""
    env = gym.make("mimicgym/SuttonGrid4x4-v0")
    agent = agents.MonteCarlo(env, control=True, exploring_starts=True, epsilon=0.0, gamma=1.0, seed=0)
    agent.learn(total_episodes=3000)
    model = env.unwrapped.model()
    np.testing.assert_allclose(dp.policy_evaluation_exact(model, agent.policy, gamma=1.0),
                               optimal_values(env), atol=1e-9)
    assert agent.state_counts[[0, 15]].sum() == 0  # never started in a terminal corner
    assert (agent.state_counts[1:15] > 0).all()


def test_epsilon_soft_control_learns_the_shortest_path_from_the_start():
    """On-policy first-visit MC control (epsilon 0.1) from the fixed start (3, 0): the greedy
    policy reaches a terminal corner in the minimal 3 steps (states the behaviour rarely
    visits may stay suboptimal, which is why only the start's path is checked)."""
    env = gym.make("mimicgym/SuttonGrid4x4-v0")
    agent = agents.MonteCarlo(env, control=True, epsilon=0.1, gamma=1.0, seed=0).learn(total_episodes=2000)
    state, _ = env.reset(seed=0)
    for _ in range(3):
        state, _, terminated, _, _ = env.step(agent.predict(state)[0])
    assert terminated
    assert agent.q_values[12].max() == pytest.approx(-3.0, abs=0.5)  # epsilon-soft: a bit below -3


def test_exploring_starts_skip_walls_and_terminals():
    env = gym.make("mimicgym/GridWorld-v0")  # maze with walls and traps
    agent = agents.MonteCarlo(env, control=True, exploring_starts=True, epsilon=0.0, seed=0)
    chars = np.array([list(row) for row in env.unwrapped.config.chars]).ravel()
    assert set(chars[agent._starts]) <= {".", "S"}
    assert set(np.flatnonzero(np.isin(chars, [".", "S"]))) == set(agent._starts)
    agent.learn(total_episodes=50)
    assert agent.visit_counts.reshape(-1)[np.flatnonzero(chars == "#")[:, None] * 4 + np.arange(4)].sum() == 0


def test_constant_alpha_and_logging():
    env = gym.make("mimicgym/RandomWalk-v0")
    agent = agents.MonteCarlo(env, learning_rate=0.02, gamma=1.0, log_interval=50, seed=1).learn(total_episodes=500)
    assert np.sqrt(np.mean((agent.values[1:6] - np.arange(1, 6) / 6) ** 2)) < 0.1
    assert [v for _, v in agent.logger.history["train/learning_rate"]] == [0.02] * 10
    assert "rollout/exploration_rate" not in agent.logger.history  # prediction does not explore
    control = agents.MonteCarlo(env, control=True, epsilon="exp(0.5, 0.1, 0.9)", log_interval=10, seed=1)
    control.learn(total_episodes=20)
    assert [v for _, v in control.logger.history["rollout/exploration_rate"]] == pytest.approx(
        [max(0.1, 0.5 * 0.9**10), 0.1])


def test_determinism_save_load_and_errors(tmp_path):
    def run(seed):
        agent = agents.MonteCarlo("mimicgym/CliffWalking-v0", control=True, gamma=1.0, seed=seed)
        return agent.learn(total_episodes=30)

    a, b, c = run(5), run(5), run(6)
    np.testing.assert_array_equal(a.q_values, b.q_values)
    assert a.episode_stats.returns == b.episode_stats.returns
    assert a.logger.history["rollout/ep_rew_mean"] == b.logger.history["rollout/ep_rew_mean"]
    assert not np.array_equal(a.q_values, c.q_values)

    loaded = agents.MonteCarlo.load(a.save(tmp_path / "mc.npz"))
    assert loaded.config == a.config
    for name in agents.MonteCarlo._arrays:
        np.testing.assert_array_equal(getattr(loaded, name), getattr(a, name))
    assert loaded.predict(36)[0] == a.predict(36)[0]

    with pytest.raises(ValueError, match="exploring_starts=True needs control=True"):
        agents.MonteCarlo("mimicgym/CliffWalking-v0", exploring_starts=True)
    with pytest.raises(ValueError, match="control=True learns its own"):
        agents.MonteCarlo("mimicgym/CliffWalking-v0", policy=np.full((48, 4), 0.25), control=True)
    with pytest.raises(ValueError, match="first_visit must be a bool, got 'yes'"):
        agents.MonteCarlo("mimicgym/CliffWalking-v0", first_visit="yes")
    with pytest.raises(ValueError, match=r"gamma must lie in \[0, 1\], got -0.5"):
        agents.MonteCarlo("mimicgym/CliffWalking-v0", gamma=-0.5)
