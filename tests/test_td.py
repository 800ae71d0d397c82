"""TD(0), SARSA, Expected SARSA, Q-learning: targets, API, determinism, files, errors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import mimicgym  # noqa: F401
from mimicgym import agents
from mimicgym.agents.schedules import Constant, ExponentialDecay, LinearDecay, make_schedule

CONTROL = [agents.Sarsa, agents.ExpectedSarsa, agents.QLearning]
CLIFF = "mimicgym/CliffWalking-v0"


def comparable(history):
    """Logger history without wall-clock keys."""
    return {k: v for k, v in history.items() if not k.startswith("time/fps")}


@pytest.mark.parametrize("cls", CONTROL)
def test_one_update_of_each_target(cls):
    agent = cls(CLIFF, learning_rate=0.5, epsilon=0.2, gamma=0.9, seed=0)
    agent.q_values[10] = [1.0, 4.0, 2.0, 1.0]
    agent.q_values[3, 2] = 6.0
    agent._episode_alpha = 0.5
    next_action = agent._update(3, 2, -1.0, 10, False, 0.2)
    # SARSA uses the sampled next action; the others its expectation or maximum
    next_value = {agents.Sarsa: agent.q_values[10, next_action],
                  agents.ExpectedSarsa: 0.2 * 2.0 + 0.8 * 4.0,
                  agents.QLearning: 4.0}[cls]
    assert agent.q_values[3, 2] == pytest.approx(6.0 + 0.5 * (-1.0 + 0.9 * next_value - 6.0))
    agent._update(3, 2, -1.0, 10, True, 0.2)  # terminal: no bootstrap
    assert agent.visit_counts[3, 2] == 2


def test_greedy_ties_are_random_while_learning_and_first_in_predict():
    agent = agents.QLearning(CLIFF, epsilon=0.0, seed=0)
    agent.q_values[5] = [1.0, 3.0, 3.0, 3.0]
    picks = np.bincount([agent._epsilon_greedy(5, 0.0) for _ in range(3000)], minlength=4)
    assert picks[0] == 0 and all(900 < n < 1100 for n in picks[1:]), picks
    assert agent.predict(5)[0] == 1
    np.testing.assert_allclose(agent.action_probabilities()[5], [0, 1 / 3, 1 / 3, 1 / 3])


@pytest.mark.parametrize("cls", CONTROL + [agents.TD0])
def test_same_seed_is_bit_identical_and_another_seed_differs(cls):
    env_kwargs = dict(king_moves=True, stochastic_wind=True)  # randomness in the env too
    runs = []
    for seed in (3, 3, 4):
        agent = cls(gym.make("mimicgym/WindyGridWorld-v0", **env_kwargs), learning_rate=0.5, gamma=1.0,
                    log_interval=5, seed=seed)
        agent.learn(total_episodes=30)
        table = agent.values if cls is agents.TD0 else agent.q_values
        runs.append((table.copy(), comparable(agent.logger.history), agent.episode_stats.lengths))
    assert np.array_equal(runs[0][0], runs[1][0]) and runs[0][1:] == runs[1][1:]
    assert not np.array_equal(runs[0][0], runs[2][0]) and runs[0][2] != runs[2][2]


def test_logging_keys_steps_and_schedules():
    agent = agents.Sarsa(CLIFF, epsilon="linear(0.5, 0.1, 40)", learning_rate="1/n", log_interval=10, seed=0)
    agent.learn(total_episodes=50)
    history = agent.logger.history
    for key in ("rollout/ep_rew_mean", "rollout/ep_len_mean", "rollout/exploration_rate",
                "train/learning_rate", "time/fps"):
        assert len(history[key]) == 5, key
    steps = np.cumsum(agent.episode_stats.lengths)[9::10]
    assert [s for s, _ in history["rollout/ep_rew_mean"]] == steps.tolist()
    # epsilon of episode 10, 20, ... of a 0.5 -> 0.1 ramp over 40 episodes
    assert [e for _, e in history["rollout/exploration_rate"]] == pytest.approx([0.4, 0.3, 0.2, 0.1, 0.1])
    counts = agent.visit_counts[agent.visit_counts > 0]
    assert history["train/learning_rate"][-1][1] == pytest.approx(np.mean(1.0 / counts))
    assert agent.visit_counts.sum() == agent.num_timesteps
    assert history["rollout/ep_rew_mean"][-1][1] == pytest.approx(np.mean(agent.episode_stats.returns[-50:]))


def test_schedules_parse_and_validate():
    assert make_schedule(0.3, "epsilon") == Constant(0.3)
    lin = make_schedule("linear(1.0, 0.1, 10)", "epsilon")
    assert isinstance(lin, LinearDecay) and lin(5) == pytest.approx(0.55) and lin(50) == pytest.approx(0.1)
    exp = make_schedule(ExponentialDecay(1.0, 0.05, 0.5), "epsilon")
    assert exp(2) == 0.25 and exp(10) == 0.05
    assert make_schedule(str(lin), "epsilon") == lin  # the text form round-trips
    with pytest.raises(ValueError, match=r"epsilon must lie in \[0.0, 1.0\], got 'linear\(1.0, 1.5, 10\)'"):
        make_schedule("linear(1.0, 1.5, 10)", "epsilon")
    with pytest.raises(ValueError, match="epsilon must be a number"):
        make_schedule("1/n", "epsilon")
    agent = agents.QLearning(CLIFF, epsilon=LinearDecay(0.5, 0.1, 40))  # objects are stored as text
    assert agent.config.epsilon == "linear(0.5, 0.1, 40)" and agent._epsilon(20) == pytest.approx(0.3)


def test_learn_budgets_callback_and_progress_bar():
    agent = agents.QLearning(CLIFF, seed=0)
    agent.learn(total_timesteps=777)
    assert agent.num_timesteps == 777
    assert sum(agent.episode_stats.lengths) <= 777  # the cut episode is not counted
    seen = []
    # SB3's callable protocol: called after every step with (locals, globals)
    agent.learn(total_episodes=100, progress_bar=True,
                callback=lambda locals_, _: not locals_["dones"][0]
                or seen.append(locals_["self"].num_episodes)
                or len(seen) < 3)
    assert len(seen) == 3 and agent.num_episodes == seen[-1]
    with pytest.raises(ValueError, match="total_timesteps or total_episodes"):
        agent.learn()
    with pytest.raises(ValueError, match="total_episodes must be a positive int, got 0"):
        agent.learn(total_episodes=0)


def test_predict_arrays_and_evaluate_policy():
    from stable_baselines3.common.evaluation import evaluate_policy

    env = gym.make(CLIFF)
    agent = agents.QLearning(env, learning_rate=0.5, epsilon=0.1, gamma=1.0, seed=0).learn(total_episodes=300)
    mean, std = evaluate_policy(agent, env, n_eval_episodes=2, warn=False)
    assert (mean, std) == (-13.0, 0.0)  # the greedy path along the cliff edge
    actions, state = agent.predict(np.array([[36, 24], [25, 26]]))
    assert actions.shape == (2, 2) and actions.dtype == np.int64 and state is None
    assert actions[0, 0] == agent.predict(36)[0] == np.argmax(agent.q_values[36])
    sampled = {agent.predict(36, deterministic=False)[0] for _ in range(200)}
    assert sampled == {0, 1, 2, 3}  # epsilon-greedy behaviour
    with pytest.raises(ValueError, match=r"state indices in \[0, 48\), got 48"):
        agent.predict(48)
    with pytest.raises(ValueError, match="got 1.5"):
        agent.predict(1.5)


@pytest.mark.parametrize("cls", CONTROL + [agents.TD0])
def test_save_load_round_trip(cls, tmp_path):
    agent = cls(CLIFF, learning_rate="exp(0.5, 0.1, 0.99)", gamma=0.95, seed=7).learn(total_episodes=20)
    path = agent.save(tmp_path / "agent.npz")
    loaded = cls.load(path)  # env from the recorded id
    assert loaded.config == agent.config and loaded.seed == 7
    assert (loaded.num_timesteps, loaded.num_episodes) == (agent.num_timesteps, agent.num_episodes)
    for name in cls._arrays:
        np.testing.assert_array_equal(getattr(loaded, name), getattr(agent, name))
    assert loaded.rng.random() == agent.rng.random()
    loaded.learn(total_episodes=2)  # keeps learning
    with pytest.raises(ValueError, match="holds a .* agent, not"):
        (agents.QLearning if cls is not agents.QLearning else agents.Sarsa).load(path)


def test_corrupt_files_give_clear_errors(tmp_path):
    path = agents.QLearning(CLIFF, seed=0).learn(total_episodes=3).save(tmp_path / "q.npz")
    data = path.read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.npz").write_bytes(b"\x00not a zip file at all" * 10)
    for name in ("truncated.npz", "garbage.npz"):
        with pytest.raises(ValueError, match=f"{name}: not a readable mimicgym agent file"):
            agents.QLearning.load(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        agents.QLearning.load(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="q_values' has shape"):
        agents.QLearning.load(path, env="mimicgym/WindyGridWorld-v0")


@pytest.mark.parametrize("cls", CONTROL)
@pytest.mark.parametrize("field, value, message", [
    ("epsilon", -0.1, r"epsilon must lie in \[0.0, 1.0\], got -0.1"),
    ("gamma", 1.5, r"gamma must lie in \[0, 1\], got 1.5"),
    ("learning_rate", 0.0, r"learning_rate must be > 0, got 0.0"),
    ("learning_rate", "fast", r"learning_rate must be a number.*got 'fast'"),
    ("log_interval", 0, r"log_interval must be a positive int, got 0"),
    ("initial_q", float("nan"), r"initial_q must be finite, got nan"),
])
def test_invalid_hyperparameters_name_field_and_value(cls, field, value, message):
    with pytest.raises(ValueError, match=message):
        cls(CLIFF, **{field: value})


def test_unknown_hyperparameter_is_named():
    with pytest.raises(ValueError, match="TD0 has no hyperparameter 'epsilon'; its hyperparameters are"):
        agents.TD0("mimicgym/RandomWalk-v0", epsilon=0.1)


def test_td0_validates_its_policy_and_follows_it():
    with pytest.raises(ValueError, match=r"policy\[0\] is not a distribution over actions"):
        agents.TD0("mimicgym/RandomWalk-v0", policy=np.ones((7, 2)))
    with pytest.raises(ValueError, match=r"policy must have shape \(7, 2\)"):
        agents.TD0("mimicgym/RandomWalk-v0", policy=np.ones((7, 3)) / 3)
    always_right = np.tile([0.0, 1.0], (7, 1))
    td = agents.TD0("mimicgym/RandomWalk-v0", policy=always_right, learning_rate=0.5, gamma=1.0, seed=0)
    td.learn(total_episodes=20)
    assert td.episode_stats.lengths == [3] * 20  # C -> D -> E -> right exit
    np.testing.assert_allclose(td.values[3:6], 1.0, atol=1e-3)  # geometric approach to 1
    assert td.visit_counts[1:3].sum() == 0


def test_nan_rewards_stop_learning_with_the_place():
    env = gym.wrappers.TransformReward(gym.make(CLIFF), lambda r: float("nan") if r == -100 else r)
    agent = agents.QLearning(env, epsilon=0.5, seed=0)
    with pytest.raises(FloatingPointError, match=r"QLearning: q_values\[\d+, \d+\] became nan in episode 0"):
        agent.learn(total_episodes=50)
