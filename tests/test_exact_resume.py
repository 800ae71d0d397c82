"""Stop and resume is exact for every sample-based agent: a run stopped at about N/2, saved,
loaded into a fresh agent (on a fresh env) and continued to N ends with the same tables or
weights, optimizer state, rng states (the agent's and its envs') and logged curves (wall-clock
``time/`` keys aside) as the run that never stopped. Three ways to stop: a callback returns
False; a callback only saves and the run goes on (a periodic checkpoint, then ``kill -9``);
Ctrl-C. The stop falls mid-episode (mid-rollout, mid-batch), the hard case."""

from __future__ import annotations

import os
import signal

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback

from mimicgym import agents

GRID = "mimicgym/GridWorld-v0"
TABULAR_HP = dict(learning_rate=0.5, epsilon=0.2, gamma=0.95, log_interval=5)
DQN_HP = dict(learning_starts=200, train_freq=16, gradient_steps=8, batch_size=32,
              target_update_interval=100, net_arch=(32,), exploration_fraction=0.3)

# name -> (agent factory on a fresh env, total steps, learn() keywords, step of the stop)
CASES = {
    # slip=0.1: the env draws from its own generator, which must be restored, not re-seeded
    "q_learning_slip": (lambda: agents.QLearning(gym.make(GRID, slip=0.1), seed=3, **TABULAR_HP),
                        3001, {}, 1500),
    "sarsa": (lambda: agents.Sarsa(gym.make(GRID, slip=0.1), seed=3, **TABULAR_HP), 3001, {}, 1500),
    "expected_sarsa": (lambda: agents.ExpectedSarsa(gym.make(GRID, slip=0.1), seed=3, **TABULAR_HP),
                       3001, {}, 1500),
    "td0": (lambda: agents.TD0(gym.make(GRID, slip=0.1), seed=3, learning_rate=0.1, log_interval=2),
            3001, {}, 1500),
    "monte_carlo": (lambda: agents.MonteCarlo(gym.make(GRID, slip=0.1), control=True, seed=3,
                                              log_interval=5), 3001, {}, 1500),
    "monte_carlo_prediction": (lambda: agents.MonteCarlo(gym.make(GRID, slip=0.1), first_visit=False,
                                                         learning_rate=0.05, seed=3, log_interval=2),
                               3001, {}, 1500),
    # exploring starts reset with options={"state": s}: the replay must repeat them
    "monte_carlo_es": (lambda: agents.MonteCarlo(gym.make(GRID), control=True, exploring_starts=True,
                                                 epsilon=0.0, seed=3, log_interval=5), 3001, {}, 1500),
    "dqn": (lambda: agents.DQN("CartPole-v1", seed=2, device="cpu", **DQN_HP), 1500,
            {"log_interval": 4}, 750),
    "a2c": (lambda: agents.A2C("CartPole-v1", seed=2, device="cpu", n_envs=4, net_arch=[16]), 2000,
            {"log_interval": 5}, 1000),
    # Box actions: the replayed env actions are float arrays
    "a2c_pendulum": (lambda: agents.A2C("Pendulum-v1", seed=2, device="cpu", n_envs=4, net_arch=[16],
                                        normalize_observations=True), 1200, {"log_interval": 5}, 600),
    "reinforce": (lambda: agents.Reinforce("CartPole-v1", seed=2, device="cpu", n_episodes=3,
                                           net_arch=[16]), 2000, {"log_interval": 1}, 1000),
}


class SaveAt(BaseCallback):
    """At the first step at or past ``at``: save the agent, then stop (``stop``) or Ctrl-C the
    process (``"ctrl_c"``, the real signal path) or go on (a periodic checkpoint)."""

    def __init__(self, at: int, path, mode: str):
        super().__init__()
        self.at, self.path, self.mode = at, path, mode
        self.unfinished = None

    def _on_step(self) -> bool:
        if self.mode == "ctrl_c":
            if self.num_timesteps >= self.at and self.unfinished is None:
                self.unfinished = False
                os.kill(os.getpid(), signal.SIGINT)
            return True
        if self.num_timesteps >= self.at and self.unfinished is None:
            self.unfinished = _mid_episode(self.model)
            self.model.save(self.path)
            return self.mode != "stop"
        return True


def _mid_episode(agent) -> bool:
    """Whether the agent is inside an episode (rollout, batch) that the checkpoint must carry."""
    if isinstance(agent, agents.A2C):
        return agent._rollout_step > 0
    if isinstance(agent, agents.Reinforce):
        return agent._episode is not None
    if isinstance(agent, agents.DQN):
        return bool(agent._replay.actions)
    return agent._carry is not None


def _state(agent) -> dict:
    """Everything that must come out the same: learned state, counters, rngs, curves."""
    state = {"num_timesteps": agent.num_timesteps, "num_episodes": agent.num_episodes,
             "returns": agent.episode_stats.returns, "lengths": agent.episode_stats.lengths,
             "rng": agent.rng.bit_generator.state,
             "curves": {k: v for k, v in agent.logger.history.items() if not k.startswith("time/")}}
    envs = agent.env.envs if isinstance(agent.env, gym.vector.VectorEnv) else [agent.env]
    state["env_rngs"] = [env.unwrapped.np_random.bit_generator.state for env in envs]
    if isinstance(agent, agents.TorchAgent):
        state["modules"] = {name: getattr(agent, name).state_dict() for name in agent._modules}
        state["optimizers"] = {name: getattr(agent, name).state_dict()["state"] for name in agent._optimizers}
        state["torch_rng"] = agent.torch_rng.get_state()
        state["n_updates"] = agent._n_updates
        if isinstance(agent, agents.DQN):
            state["replay"] = agent.replay_buffer.state_dict()
    else:
        state["tables"] = {name: getattr(agent, name) for name in agent._arrays}
    return state


def _assert_same(a, b, where="state"):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for key in a:
            _assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)) and a and isinstance(a[0], (torch.Tensor, np.ndarray, dict)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where} differs"


_straight: dict[str, dict] = {}


def _uninterrupted(name: str) -> dict:
    if name not in _straight:
        make, total, kwargs, _ = CASES[name]
        _straight[name] = _state(make().learn(total, **kwargs))
    return _straight[name]


def _load(agent_cls, path, like):
    """The checkpoint into a fresh agent on a fresh env (made as the original's was)."""
    fresh_env = CASES[like][0]().env
    extra = {"device": "cpu"} if issubclass(agent_cls, agents.TorchAgent) else {}
    return agent_cls.load(path, env=fresh_env, **extra)


@pytest.mark.parametrize("mode", ["stop", "checkpoint", "ctrl_c"])
@pytest.mark.parametrize("name", CASES)
def test_stop_and_resume_equals_the_uninterrupted_run(name, mode, tmp_path):
    make, total, kwargs, stop_at = CASES[name]
    path = tmp_path / ("agent.pt" if name in ("dqn", "a2c", "a2c_pendulum", "reinforce") else "agent.npz")
    first = make()
    saver = SaveAt(stop_at, path, mode)
    if mode == "ctrl_c":
        with pytest.raises(KeyboardInterrupt):
            first.learn(total, callback=saver, **kwargs)
        first.save(path)  # what the CLI does on Ctrl-C
    else:
        first.learn(total, callback=saver, **kwargs)
    if mode == "stop":
        assert saver.unfinished, f"the stop at {stop_at} should fall inside an episode"
    if mode == "checkpoint":  # saving along the way changes nothing
        _assert_same(_state(first), _uninterrupted(name), f"{name} run that saved")

    resumed = _load(type(first), path, name)
    resumed.learn(total - resumed.num_timesteps, reset_num_timesteps=False, **kwargs)
    _assert_same(_state(resumed), _uninterrupted(name), f"{name} resumed")


def test_a_resumed_episodic_run_continues_an_episode_the_budget_cut():
    """``learn(N/2)`` then ``learn(N/2, reset_num_timesteps=False)`` is one run of N: the episode
    the first budget cut is continued, not dropped."""
    make, total, kwargs, stop_at = CASES["q_learning_slip"]
    agent = make()
    agent.learn(stop_at)
    assert agent._carry is not None
    agent.learn(total - stop_at, reset_num_timesteps=False)
    _assert_same(_state(agent), _uninterrupted("q_learning_slip"))
