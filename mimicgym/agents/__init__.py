"""Agents with stable-baselines3's contract.

``Agent(env, seed=..., **hyperparameters)``; ``learn(total_timesteps, *, callback=None,
log_interval=..., progress_bar=False, reset_num_timesteps=True)`` with SB3's callbacks
(tabular episodic agents also take ``total_episodes``); ``predict(obs, deterministic=True)
-> (action, state)``; ``save(path)`` and ``Agent.load(path, env)``. Names resolve lazily, so
tabular work never imports torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    # dynamic programming on the exact model
    "policy_evaluation": "dp",
    "policy_evaluation_exact": "dp",
    "policy_improvement": "dp",
    "value_iteration": "dp",
    "policy_iteration": "dp",
    "ValueIteration": "dp",
    "PolicyIteration": "dp",
    # sample-based tabular methods
    "MonteCarlo": "monte_carlo",
    "TD0": "td",
    "Sarsa": "td",
    "ExpectedSarsa": "td",
    "QLearning": "td",
    # deep agents (torch)
    "DQN": "dqn",
    "Reinforce": "reinforce",
    "A2C": "a2c",
    "PPO": "ppo",
    # shared API and logging
    "Agent": "base",
    "TabularAgent": "base",
    "TorchAgent": "torch_agent",
    "PolicyAgent": "torch_agent",
    "Logger": "logging",
}

# CLI name -> public class name
AGENTS = {
    "value_iteration": "ValueIteration",
    "policy_iteration": "PolicyIteration",
    "monte_carlo": "MonteCarlo",
    "td0": "TD0",
    "sarsa": "Sarsa",
    "expected_sarsa": "ExpectedSarsa",
    "q_learning": "QLearning",
    "dqn": "DQN",
    "reinforce": "Reinforce",
    "a2c": "A2C",
    "ppo": "PPO",
}

__all__ = sorted(_EXPORTS) + ["AGENTS", "get_agent_class"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mimicgym.agents' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"mimicgym.agents.{module}"), name)
    globals()[name] = value
    return value


def get_agent_class(name: str):
    """The agent class for a CLI name such as ``q_learning`` or ``dqn``."""
    if name not in AGENTS:
        raise ValueError(f"unknown agent {name!r}; choose one of {', '.join(AGENTS)}")
    return __getattr__(AGENTS[name])
