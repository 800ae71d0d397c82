"""Reproduce Sutton & Barto's (2nd ed.) numbers with the tabular agents on the mimicgym envs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import mimicgym  # noqa: F401  (registers the env ids)
from mimicgym import agents
from mimicgym.agents.dp import uniform_policy

# Figure 4.1 (k = infinity): v_pi of the equiprobable random policy, Example 4.1.
FIG_4_1 = np.array([[0, -14, -20, -22], [-14, -18, -20, -20], [-20, -20, -18, -14], [-22, -20, -14, 0]])
# Figure 3.2: v_pi of the random policy on the 5x5 gridworld of Example 3.5, gamma = 0.9.
FIG_3_2 = np.array([[3.3, 8.8, 4.4, 5.3, 1.5], [1.5, 3.0, 2.3, 1.9, 0.5], [0.1, 0.7, 0.7, 0.4, -0.4],
                    [-1.0, -0.4, -0.4, -0.6, -1.2], [-1.9, -1.3, -1.2, -1.4, -2.0]])
# Figure 3.5: v* of the same gridworld.
FIG_3_5 = np.array([[22.0, 24.4, 22.0, 19.4, 17.5], [19.8, 22.0, 19.8, 17.8, 16.0],
                    [17.8, 19.8, 17.8, 16.0, 14.4], [16.0, 17.8, 16.0, 14.4, 13.0],
                    [14.4, 16.0, 14.4, 13.0, 11.7]])


def greedy_episode_length(agent, env, limit: int = 100) -> int:
    state, _ = env.reset(seed=0)
    for step in range(1, limit + 1):
        action, _ = agent.predict(state, deterministic=True)
        state, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            return step
    return limit


@pytest.mark.parametrize("method", ["iterative", "exact"])
def test_example_4_1_random_policy_values(method):
    model = gym.make("mimicgym/SuttonGrid4x4-v0").unwrapped.model()
    evaluate = agents.policy_evaluation if method == "iterative" else agents.policy_evaluation_exact
    values = evaluate(model, uniform_policy(model), gamma=1.0)
    np.testing.assert_allclose(values.reshape(4, 4), FIG_4_1, atol=0.1)


def test_example_4_1_optimal_values_are_minus_distance_to_a_corner():
    env = gym.make("mimicgym/SuttonGrid4x4-v0")
    rows, cols = np.indices((4, 4))
    distance = np.minimum(rows + cols, 6 - rows - cols)  # corners (0, 0) and (3, 3)
    for agent in (agents.ValueIteration(env, gamma=1.0), agents.PolicyIteration(env, gamma=1.0)):
        agent.learn()
        np.testing.assert_allclose(agent.values.reshape(4, 4), -distance, atol=1e-8)


@pytest.mark.parametrize("method", ["iterative", "exact"])
def test_example_3_5_random_policy_values(method):
    model = gym.make("mimicgym/GridWorld5x5-v0").unwrapped.model()
    evaluate = agents.policy_evaluation if method == "iterative" else agents.policy_evaluation_exact
    values = evaluate(model, uniform_policy(model), gamma=0.9)
    np.testing.assert_allclose(values.reshape(5, 5), FIG_3_2, atol=0.051)


def test_example_3_5_optimal_values():
    env = gym.make("mimicgym/GridWorld5x5-v0")
    vi = agents.ValueIteration(env, gamma=0.9, tol=1e-10).learn()
    pi = agents.PolicyIteration(env, gamma=0.9).learn()
    np.testing.assert_allclose(vi.values.reshape(5, 5), FIG_3_5, atol=0.051)
    np.testing.assert_allclose(pi.values, vi.values, atol=1e-8)
    assert vi.values[1] == pytest.approx(24.4, abs=0.05)  # state A
    assert vi.values[6] == pytest.approx(22.0, abs=0.05)  # the cell below A


def cliff_runs(cls, seeds: int, episodes: int = 500):
    env = gym.make("mimicgym/CliffWalking-v0")
    returns, path_lengths = [], []
    for seed in range(seeds):
        agent = cls(env, learning_rate=0.5, epsilon=0.1, gamma=1.0, seed=seed)
        agent.learn(total_episodes=episodes)
        returns.append(agent.episode_stats.returns)
        path_lengths.append(greedy_episode_length(agent, env))
    return np.array(returns), np.array(path_lengths)


@pytest.mark.slow
def test_example_6_6_cliff_walking_sarsa_vs_q_learning():
    """Figure 6.4 averages 50 runs of 500 episodes: online returns near -25 (SARSA) and
    near -50 (Q-learning); Q-learning's greedy path runs along the cliff (13 steps),
    SARSA's takes the safer route one or two rows up (15 or 17 steps)."""
    q_returns, q_paths = cliff_runs(agents.QLearning, seeds=50)
    s_returns, s_paths = cliff_runs(agents.Sarsa, seeds=50)
    assert np.all(q_paths == 13), q_paths
    assert np.mean(s_paths == 17) >= 0.6, s_paths  # the safest path, for most seeds
    assert np.all(s_paths > 13), s_paths  # never the cliff edge
    sarsa_online = s_returns[:, -100:].mean()
    q_online = q_returns[:, -100:].mean()
    assert sarsa_online == pytest.approx(-28, abs=4), sarsa_online
    assert q_online == pytest.approx(-49, abs=4), q_online


@pytest.mark.slow
def test_example_6_5_windy_gridworld():
    """Example 6.5: SARSA, epsilon 0.1, alpha 0.5. The number of episodes finished within
    8,000 steps varies by seed (about 130 to 180); its mean over 20 seeds is asserted. A
    reference reimplementation of the book's experiment (Zhang's code) averages 159 over
    40 seeds; the book's single run shows about 170.

    SARSA's greedy policy after 8,000 steps is the optimal 15-step path only for some seeds
    (others still loop in rarely visited states), so the 15-step optimum is asserted for
    Q-learning with the same hyperparameters and budget, and against value iteration.
    """
    env = gym.make("mimicgym/WindyGridWorld-v0")
    episodes, greedy = [], []
    for seed in range(20):
        agent = agents.Sarsa(env, learning_rate=0.5, epsilon=0.1, gamma=1.0, seed=seed)
        agent.learn(total_timesteps=8_000)
        assert agent.num_timesteps == 8_000
        episodes.append(agent.num_episodes)
        greedy.append(greedy_episode_length(agent, env))
    assert 150 <= np.mean(episodes) <= 170, episodes
    assert min(greedy) == 15, greedy  # some runs have found the optimal path, none beat it

    vi = agents.ValueIteration(env, gamma=1.0).learn()
    start, _ = env.reset(seed=0)
    assert vi.values[start] == -15.0
    for seed in range(10):
        q = agents.QLearning(env, learning_rate=0.5, epsilon=0.1, gamma=1.0, seed=seed)
        assert greedy_episode_length(q.learn(total_timesteps=8_000), env) == 15


def test_king_moves_and_stochastic_wind_shorten_the_optimal_path():
    """Exercises 6.9 and 6.10: king's moves allow 7 steps; value iteration plans on the
    stochastic-wind model (optimal expected steps lie strictly between)."""
    king = gym.make("mimicgym/WindyGridWorld-v0", king_moves=True)
    start, _ = king.reset(seed=0)
    assert agents.ValueIteration(king, gamma=1.0).learn().values[start] == -7.0
    stochastic = gym.make("mimicgym/WindyGridWorld-v0", king_moves=True, stochastic_wind=True)
    v = agents.ValueIteration(stochastic, gamma=1.0, tol=1e-10).learn().values[start]
    assert -15.0 < v < -7.0


TRUE_RANDOM_WALK = np.arange(1, 6) / 6  # Example 6.2: states A..E


def rms_error(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean((values[1:6] - TRUE_RANDOM_WALK) ** 2)))


def test_random_walk_td0():
    """Example 6.2. With a step size decaying from 0.1 towards 0.01 over 300 episodes, TD(0)'s
    RMS error averaged over 10 runs (as in Figure 6.2) is below 0.05 (measured: 0.02); a
    constant alpha = 0.15 plateaus at a higher error, as the figure's large-alpha curves do."""
    env = gym.make("mimicgym/RandomWalk-v0")

    def mean_error(learning_rate) -> float:
        errors = []
        for seed in range(10):
            td = agents.TD0(env, learning_rate=learning_rate, gamma=1.0, initial_value=0.5, seed=seed)
            td.learn(total_episodes=300)
            assert td.values[0] == td.values[6] == 0.0  # terminal states
            errors.append(rms_error(td.values))
        return float(np.mean(errors))

    decaying = mean_error("exp(0.1, 0.01, 0.99)")
    assert decaying <= 0.05
    assert mean_error(0.15) > 1.5 * decaying


@pytest.mark.parametrize("first_visit", [True, False])
def test_random_walk_monte_carlo_prediction(first_visit):
    """Sample-average MC on Example 6.2. Returns are 0/1 with variance p(1 - p) <= 1/4, so
    after n first visits a state's error has standard deviation <= 0.5 / sqrt(n); 1,000
    episodes give n >= ~590 first visits per state (sd <= 0.021), so 0.05 (about 2.4 sd
    for each state, and the RMS averages 5 states) is a safe bound for a single run.
    Every-visit samples are correlated within an episode, hence a wider 0.06."""
    env = gym.make("mimicgym/RandomWalk-v0")
    mc = agents.MonteCarlo(env, gamma=1.0, first_visit=first_visit, seed=0).learn(total_episodes=1_000)
    assert rms_error(mc.values) <= (0.05 if first_visit else 0.06)
    if first_visit:
        assert mc.state_counts[3] == 1_000  # C, the start, is first-visited once per episode
