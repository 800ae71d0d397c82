"""RLlib's PPO on CartPole-v1 through our run layer (``mimicgym train --agent rllib:PPO``): its
return after 100k samples, next to our PPO's on the same budget, same machine, same run.

- RLlib: ``rllib:PPO`` with RLlib's own tuned CartPole settings (its example
  ``rllib/examples/algorithms/ppo/cartpole_ppo.py``: lr 3e-4, 6 epochs, value-loss coefficient
  0.01; 2,000-sample iterations), sampling in this process (no remote env runner).
- Ours: ``ppo`` with rl-baselines3-zoo's CartPole settings (as ``benchmarks/ppo_classic.py``).

Reported per seed: the training curve's last ``rollout/ep_rew_mean`` (mean return of the recent
episodes), the deterministic evaluation after training (20 episodes) and the wall time. Needs the
``rllib`` extra, which pins Gymnasium 1.2.2: run it with the RLlib venv's interpreter,

    .venv-rllib/bin/python benchmarks/rllib_cartpole.py [--samples 100000] [--seeds 0] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mimicgym import runs  # noqa: E402
from mimicgym.utils.io import write_results  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "rllib_cartpole.json"
LEARNERS = {  # name -> (agent, hyperparameters)
    "RLlib PPO": ("rllib:PPO", {"lr": 3e-4, "num_epochs": 6, "vf_loss_coeff": 0.01,
                                "train_batch_size_per_learner": 2000}),
    "our PPO": ("ppo", {"n_envs": 8, "n_steps": 32, "batch_size": 256, "gae_lambda": 0.8, "gamma": 0.98,
                        "n_epochs": 20, "ent_coef": 0.0, "learning_rate": "lin_1e-3", "clip_range": "lin_0.2"}),
}


def train(agent: str, hyperparameters: dict, samples: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = runs.RunConfig(env="CartPole-v1", agent=agent, timesteps=samples, seed=seed, logdir=tmp,
                             hyperparameters=hyperparameters, eval_episodes=20, progress_bar=False)
        start = time.perf_counter()
        result = runs.train(cfg)
        seconds = time.perf_counter() - start
        history = json.loads((result.run_dir / "progress.json").read_text())
    curve = history["rollout/ep_rew_mean"]
    return {"samples": int(curve[-1][0]), "final_ep_rew_mean": float(curve[-1][1]),
            "eval_return_mean": float(np.mean(result.eval_returns)), "seconds": seconds, "curve": curve}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    results: dict[str, list[dict]] = {}
    for name, (agent, hyperparameters) in LEARNERS.items():
        for seed in args.seeds:
            print(f"{name}, seed {seed}, {args.samples} samples ...", flush=True)
            results.setdefault(name, []).append(train(agent, hyperparameters, args.samples, seed))
    lines = ["| learner | seed | samples | final ep_rew_mean | deterministic eval (20 ep.) | seconds |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, rows in results.items():
        lines += [f"| {name} | {seed} | {r['samples']} | {r['final_ep_rew_mean']:.1f} | {r['eval_return_mean']:.1f} "
                  f"| {r['seconds']:.0f} |" for seed, r in zip(args.seeds, rows)]
    table = "\n".join(lines)
    print(table)
    import gymnasium
    import ray
    import torch

    payload = {"samples": args.samples, "seeds": args.seeds, "results": results,
               **{f"{name.split()[0].lower()}_final_ep_rew_mean": float(np.mean([r["final_ep_rew_mean"] for r in rows]))
                  for name, rows in results.items()},
               "ray": ray.__version__, "gymnasium": gymnasium.__version__, "torch": torch.__version__,
               "machine": platform.processor() or platform.machine()}
    for path in write_results(args.out, payload, table):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
