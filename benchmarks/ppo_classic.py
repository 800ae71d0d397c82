"""Our PPO on rl-baselines3-zoo's classic-control settings: when it reaches the solved return.

- ``CartPole-v1``, 100k steps, the zoo's settings (8 envs, 32 steps, 20 epochs, linear
  schedules): the step at which the mean return of the last 100 episodes first reaches 475.
- ``Pendulum-v1``, 1M steps, the zoo's settings without gSDE (which our PPO does not have: a
  state-independent log-std instead; 4 envs, 1024 steps, gamma 0.9, lr 1e-3, 10 epochs): the
  step at which the mean of the last 100 episodes first reaches -200.

Seeds 0-2, one torch thread per run, runs in parallel worker processes (``--workers``).
``--quick`` runs a tenth of the steps and checks nothing.

    python benchmarks/ppo_classic.py [--quick] [--seeds 0 1 2] [--out PATH]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mimicgym.utils.io import write_results  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "ppo_classic.json"
TASKS = {  # env -> (steps, solved return, our PPO's hyperparameters: the zoo's)
    "CartPole-v1": (100_000, 475.0, {
        "n_envs": 8, "n_steps": 32, "batch_size": 256, "gae_lambda": 0.8, "gamma": 0.98, "n_epochs": 20,
        "ent_coef": 0.0, "learning_rate": "lin_1e-3", "clip_range": "lin_0.2"}),
    "Pendulum-v1": (1_000_000, -200.0, {
        "n_envs": 4, "n_steps": 1024, "gae_lambda": 0.95, "gamma": 0.9, "n_epochs": 10, "ent_coef": 0.0,
        "learning_rate": 1e-3, "clip_range": 0.2}),
}


def run(env_id: str, seed: int, quick: bool) -> tuple[str, int, dict[str, Any]]:
    from mimicgym.agents import PPO

    torch.set_num_threads(1)
    steps, solved, hyperparameters = TASKS[env_id]
    steps = steps // 10 if quick else steps
    agent = PPO(env_id, seed=seed, device="cpu", **hyperparameters)
    curve: list[tuple[int, float, int]] = []  # (episodes, mean return of the last 100, timesteps)

    def record(_locals: dict, _globals: dict) -> bool:
        returns = agent.episode_stats.returns
        if returns and (not curve or len(returns) != curve[-1][0]):
            curve.append((len(returns), float(np.mean(returns[-100:])), agent.num_timesteps))
        return True

    start = time.perf_counter()
    agent.learn(steps, callback=record)
    seconds = time.perf_counter() - start
    reached = next((t for _, mean, t in curve if mean >= solved), None)
    return env_id, seed, {"steps": steps, "solved_return": solved, "first_step_solved": reached,
                          "final_mean_return_100": curve[-1][1] if curve else None, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the steps; checks nothing")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--envs", nargs="*", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    results: dict[str, dict[str, Any]] = {env_id: {} for env_id in args.envs}
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = [pool.submit(run, env_id, seed, args.quick) for env_id in args.envs for seed in args.seeds]
        for future in futures:
            env_id, seed, row = future.result()
            results[env_id][f"seed {seed}"] = row
            print(f"{env_id:<12} seed {seed}: solved at {row['first_step_solved']}, final mean "
                  f"{row['final_mean_return_100']:.1f} ({row['seconds']:.0f} s)", flush=True)
    lines = ["| env | seed | steps | first step at the solved return | final mean of 100 | seconds |",
             "|---|---|---|---|---|---|"]
    for env_id, rows in results.items():
        for seed, row in rows.items():
            lines.append(f"| {env_id} | {seed} | {row['steps']} | {row['first_step_solved']} | "
                         f"{row['final_mean_return_100']:.1f} | {row['seconds']:.0f} |")
    missed = [] if args.quick else [f"{env_id} {seed}" for env_id, rows in results.items()
                                      for seed, row in rows.items() if row["first_step_solved"] is None]
    table = "\n".join(lines)
    print("\n" + table + "\n" + ("" if args.quick else "targets: " + ("all met" if not missed else
                                                                          "MISSED: " + ", ".join(missed))))
    write_results(args.out, {**results, "meta": {"quick": args.quick, "machine": platform.machine(),
                                                 "torch": torch.__version__, "missed": missed}}, table)


if __name__ == "__main__":
    main()
