"""Behaviour pinned across refactors: for fixed seeds, Q-learning's Q table and the logged
learning curves of Q-learning, DQN and A2C equal values recorded before the agent contract
was unified (``tests/data/reference_runs.json``; ``python tests/test_reference_runs.py``
re-records them, which only a deliberate change of behaviour should need). Bit-identical on one
machine; across CPUs the float32 losses may differ in their last bit, so those compare to 1e-5."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from mimicgym import agents

REFERENCE = Path(__file__).parent / "data" / "reference_runs.json"


def _curves(agent) -> dict[str, list]:
    """Every logged series except wall-clock ones, as JSON-ready [step, value] pairs."""
    return {key: [[int(s), float(v)] for s, v in points]
            for key, points in sorted(agent.logger.history.items()) if not key.startswith("time/")}


def q_learning_run():
    agent = agents.QLearning("mimicgym/WindyGridWorld-v0", learning_rate=0.5, epsilon=0.1,
                             gamma=1.0, log_interval=10, seed=3)
    agent.learn(total_episodes=120)
    return {"q_values": agent.q_values.tolist(), "curves": _curves(agent)}


def dqn_run():
    agent = agents.DQN("CartPole-v1", seed=2, device="cpu", learning_starts=200, train_freq=16,
                       gradient_steps=8, batch_size=32, target_update_interval=100,
                       net_arch=(32, 32), exploration_fraction=0.3)
    agent.learn(3000, log_interval=4)
    return {"curves": _curves(agent)}


def a2c_run():
    agent = agents.A2C("CartPole-v1", seed=2, device="cpu", n_envs=4, net_arch=[32, 32])
    agent.learn(4000, log_interval=20)
    return {"curves": _curves(agent)}


RUNS = {"q_learning": q_learning_run, "dqn": dqn_run, "a2c": a2c_run}


def _record() -> None:
    torch.set_num_threads(1)
    REFERENCE.write_text(json.dumps({name: run() for name, run in RUNS.items()}, indent=1))


def _check(name: str) -> None:
    expected = json.loads(REFERENCE.read_text())[name]
    got = json.loads(json.dumps(RUNS[name]()))  # through JSON, as the reference was stored
    if "q_values" in expected:
        np.testing.assert_array_equal(np.array(got["q_values"]), np.array(expected["q_values"]))
    assert got["curves"].keys() == expected["curves"].keys()
    for key, points in expected["curves"].items():
        if key.startswith("train/"):
            # Losses are float32 reductions whose last bit depends on the CPU's kernels (AVX2
            # and AVX-512 sum in different orders); the steps and everything the agent did
            # (returns, lengths, exploration) must match exactly.
            assert [s for s, _ in got["curves"][key]] == [s for s, _ in points], f"{name}: {key} steps changed"
            np.testing.assert_allclose([v for _, v in got["curves"][key]], [v for _, v in points],
                                       rtol=1e-5, atol=1e-6, err_msg=f"{name}: logged curve {key} changed")
        else:
            assert got["curves"][key] == points, f"{name}: logged curve {key} changed"


def test_q_learning_table_and_curves_are_unchanged():
    _check("q_learning")


def test_dqn_curves_are_unchanged():
    _check("dqn")


def test_a2c_curves_are_unchanged():
    _check("a2c")


if __name__ == "__main__":
    _record()
