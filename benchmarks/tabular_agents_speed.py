"""Per-step cost of the sample-based tabular agents (env step through Gymnasium's wrappers
included): 500 episodes of CliffWalking per agent, epsilon 0.1, alpha 0.5, gamma 1.

Prints a table and writes ``benchmarks/results/tabular_agents_speed.json``.
Usage: ``python benchmarks/tabular_agents_speed.py [--episodes 500] [--seeds 3]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import mimicgym  # noqa: F401  (registers the env ids)
from mimicgym import agents
from mimicgym.utils.io import atomic_write


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=500)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    env = gym.make("mimicgym/CliffWalking-v0")
    # a bare env step through the same wrappers, for reference
    env.reset(seed=0)
    start, n = time.perf_counter(), 100_000
    for _ in range(n):
        _, _, terminated, truncated, _ = env.step(0)
        if terminated or truncated:
            env.reset()
    rows = [{"agent": "env.step only", "us_per_step": 1e6 * (time.perf_counter() - start) / n, "steps": n}]
    candidates = {
        "QLearning": lambda s: agents.QLearning(env, learning_rate=0.5, epsilon=0.1, gamma=1.0, seed=s),
        "Sarsa": lambda s: agents.Sarsa(env, learning_rate=0.5, epsilon=0.1, gamma=1.0, seed=s),
        "ExpectedSarsa": lambda s: agents.ExpectedSarsa(env, learning_rate=0.5, epsilon=0.1, gamma=1.0, seed=s),
        "MonteCarlo (control)": lambda s: agents.MonteCarlo(env, control=True, epsilon=0.1, gamma=1.0, seed=s),
        "TD0 (random policy)": lambda s: agents.TD0(env, learning_rate=0.1, gamma=1.0, seed=s),
    }
    for name, make in candidates.items():
        best, steps = float("inf"), 0
        for seed in range(args.seeds):
            agent = make(seed)
            start = time.perf_counter()
            agent.learn(total_episodes=args.episodes if "TD0" not in name else 20)
            elapsed = time.perf_counter() - start
            best = min(best, elapsed / agent.num_timesteps)
            steps = agent.num_timesteps
        rows.append({"agent": name, "us_per_step": 1e6 * best, "steps": steps})

    print(f"{'agent':24s} {'us/step':>8s} {'steps':>9s}")
    for row in rows:
        print(f"{row['agent']:24s} {row['us_per_step']:8.2f} {row['steps']:9d}")
    out = Path(__file__).parent / "results" / "tabular_agents_speed.json"
    with atomic_write(out, "w") as f:
        json.dump({"machine": platform.processor() or platform.machine(), "numpy": np.__version__,
                   "rows": rows}, f, indent=2)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
