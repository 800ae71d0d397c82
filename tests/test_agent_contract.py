"""One agent contract: SB3's ``learn`` signature and callback protocol serve every agent."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, CheckpointCallback, StopTrainingOnMaxEpisodes

from mimicgym import agents
from mimicgym.agents.dp import value_iteration

CLIFF = "mimicgym/CliffWalking-v0"


class StopAt(BaseCallback):
    """Counts ``_on_step`` calls and the other events; returns False at the n-th step."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n
        self.events = {"training_start": 0, "training_end": 0, "rollout_start": 0, "rollout_end": 0}
        self.seen_locals: dict = {}

    def _on_training_start(self) -> None:
        self.events["training_start"] += 1
        self.num_envs = self.training_env.num_envs

    def _on_rollout_start(self) -> None:
        self.events["rollout_start"] += 1

    def _on_rollout_end(self) -> None:
        self.events["rollout_end"] += 1

    def _on_training_end(self) -> None:
        self.events["training_end"] += 1

    def _on_step(self) -> bool:
        self.seen_locals = dict(self.locals)
        return self.n_calls < self.n


def _make(name: str):
    if name == "q_learning":
        return agents.QLearning(CLIFF, seed=0), 1
    if name == "sarsa":
        return agents.Sarsa(CLIFF, seed=0), 1
    if name == "monte_carlo":
        return agents.MonteCarlo(CLIFF, control=True, seed=0), 1
    if name == "dqn":
        return agents.DQN("CartPole-v1", seed=0, learning_starts=50, train_freq=8, net_arch=(16,)), 1
    if name == "a2c":
        return agents.A2C("CartPole-v1", seed=0, n_envs=4), 4
    if name == "reinforce":
        return agents.Reinforce("CartPole-v1", seed=0), 1
    if name == "sb3:PPO":
        return PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=32, seed=0, device="cpu"), 1
    raise AssertionError(name)


@pytest.mark.parametrize("name", ["q_learning", "sarsa", "monte_carlo", "dqn", "a2c", "reinforce",
                                  "sb3:PPO"])
def test_the_same_callback_stops_every_agent_at_its_nth_step(name):
    agent, n_envs = _make(name)
    callback = StopAt(137)
    agent.learn(100_000, callback=callback)
    assert callback.n_calls == 137
    assert agent.num_timesteps == 137 * n_envs  # one call per (vector) env step, as SB3
    assert callback.events["training_start"] == callback.events["training_end"] == 1
    assert callback.events["rollout_start"] >= callback.events["rollout_end"] >= 1
    assert callback.num_envs == n_envs
    seen = callback.seen_locals
    assert len(seen["dones"]) == len(seen["rewards"]) == len(seen["infos"]) == n_envs
    assert len(seen["new_obs"]) == n_envs and isinstance(seen["infos"][0], dict)


def test_planning_agents_call_the_callback_once_per_iteration():
    env = gym.make("mimicgym/GridWorld5x5-v0")
    full = agents.ValueIteration(env, gamma=0.9, tol=1e-10).learn()
    callback = StopAt(5)
    stopped = agents.ValueIteration(env, gamma=0.9, tol=1e-10).learn(callback=callback)
    assert callback.n_calls == 5 and stopped.iterations == 5 < full.iterations
    # five synchronous backups from V = 0 are what value_iteration itself gives after five sweeps
    five = value_iteration(env.unwrapped.model(), 0.9, tol=1e-10, max_iterations=10_000,
                                     on_iteration=lambda i, v: i < 5)
    np.testing.assert_array_equal(stopped.values, five.values)
    rounds = StopAt(1)
    pi = agents.PolicyIteration(env, gamma=0.9).learn(callback=rounds)
    assert rounds.n_calls == 1 and pi.iterations == 1


def test_sb3_callbacks_work_with_our_agents(tmp_path):
    # StopTrainingOnMaxEpisodes counts dones across the envs, as in SB3
    q = agents.QLearning(CLIFF, seed=0).learn(1_000_000, callback=StopTrainingOnMaxEpisodes(7))
    assert q.num_episodes == 7
    a2c = agents.A2C("CartPole-v1", seed=0, n_envs=4)
    a2c.learn(1_000_000, callback=StopTrainingOnMaxEpisodes(3))  # 3 x num_envs episodes in all
    assert 12 <= a2c.num_episodes < 16
    # CheckpointCallback saves agents that load back (our formats, whatever the extension)
    dqn = agents.DQN("CartPole-v1", seed=0, learning_starts=50, net_arch=(8,))
    saver = CheckpointCallback(save_freq=100, save_path=str(tmp_path), name_prefix="dqn")
    dqn.learn(300, callback=CallbackList([saver]))
    saved = sorted(tmp_path.glob("dqn_*_steps.zip"))
    assert [p.name for p in saved] == ["dqn_100_steps.zip", "dqn_200_steps.zip", "dqn_300_steps.zip"]
    assert agents.DQN.load(saved[1]).num_timesteps == 200
    q_saver = CheckpointCallback(save_freq=50, save_path=str(tmp_path), name_prefix="q")
    agents.QLearning(CLIFF, seed=0).learn(120, callback=q_saver)
    assert agents.QLearning.load(tmp_path / "q_100_steps.zip").num_timesteps == 100


def test_a_plain_callable_gets_locals_and_globals_as_in_sb3():
    calls = []

    def callback(locals_, globals_):
        calls.append(locals_["self"].num_timesteps)
        return len(calls) < 10

    agent = agents.Reinforce("CartPole-v1", seed=0).learn(5_000, callback=callback)
    assert calls == list(range(1, 11)) and agent.num_timesteps == 10


def test_learn_has_one_signature():
    import inspect

    expected = ["total_timesteps", "callback", "log_interval", "progress_bar", "reset_num_timesteps"]
    for name in agents.AGENTS.values():
        params = inspect.signature(getattr(agents, name).learn).parameters
        assert [p for p in params if p not in ("self", "total_episodes")] == expected, name
