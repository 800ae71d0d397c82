"""Training throughput on MimicWalk: samples per hour of our PPO on the batched env next to
stable-baselines3's PPO with 4 subprocess envs, same settings, same run, and next to the pipeline
limit measured in the same run.

Settings (both): the imitation defaults of ``mimicgym train`` (``DEEPMIMIC_PPO``): rollouts of
4,096 samples (ours 16 characters x 256 steps, SB3 4 envs x 1,024), minibatches of 512, 5
epochs, [512, 256] actor and critic, observation normalisation (ours in the network, SB3's
``VecNormalize`` without reward scaling), the reward-terms callback that ``mimicgym train``
adds. Ours runs the physics in ``--cores`` threads and the update on ``--cores`` torch threads;
SB3's learner uses one torch thread (its 4 env processes share the cores).

Pipeline limit: the two costs per sample, each measured on one core in this run (a rollout of
the batched env on one thread: physics, observations, rewards and the policy's actions; the
PPO update on one torch thread), spread over the cores: ``3600 * cores / (t_env + t_update)``.
Nothing that collects and updates in turn, on these cores, can go faster.

    python benchmarks/imitation_training.py [--quick] [--samples 100000] [--out PATH]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import mimicgym  # noqa: E402,F401
from mimicgym.agents import PPO  # noqa: E402
from mimicgym.runs.imitation import DEEPMIMIC_PPO, DEEPMIMIC_PPO_OURS, RewardTermsCallback, max_imitation_return  # noqa: E402
from mimicgym.utils.io import write_results  # noqa: E402

ENV = "mimicgym/MimicWalk-v0"
RESULTS = Path(__file__).parent / "results" / "imitation_training.json"


class TimedPPO(PPO):
    """Our PPO with the wall-clock time of its two phases summed."""

    t_rollout = t_update = 0.0

    def _collect_rollout(self, callback) -> bool:
        start = time.perf_counter()
        try:
            return super()._collect_rollout(callback)
        finally:
            self.t_rollout += time.perf_counter() - start

    def _train(self) -> None:
        start = time.perf_counter()
        super()._train()
        self.t_update += time.perf_counter() - start


def ours(samples: int, threads: int, seed: int = 0) -> dict:
    hp = dict(DEEPMIMIC_PPO_OURS)
    env = gym.make_vec(ENV, num_envs=hp["n_envs"], vectorization_mode="vector_entry_point", threads=threads)
    agent = TimedPPO(env, seed=seed, device="cpu", **hp)
    torch.set_num_threads(threads)
    callback = RewardTermsCallback(max_imitation_return(env.single_env))
    start = time.perf_counter()
    agent.learn(samples, callback=callback)
    wall = time.perf_counter() - start
    env.close()
    n = agent.num_timesteps
    return {"samples": n, "seconds": wall, "samples_per_hour": 3600 * n / wall,
            "env_us_per_sample": 1e6 * agent.t_rollout / n, "update_us_per_sample": 1e6 * agent.t_update / n}


def sb3(samples: int, n_envs: int = 4, seed: int = 0) -> dict:
    from stable_baselines3 import PPO as SB3PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv, VecNormalize

    hp = {**DEEPMIMIC_PPO, "n_steps": 4096 // n_envs}
    torch.set_num_threads(1)
    venv = VecNormalize(make_vec_env(ENV, n_envs=n_envs, seed=seed, vec_env_cls=SubprocVecEnv), norm_reward=False)
    model = SB3PPO("MlpPolicy", venv, seed=seed, device="cpu", verbose=0, **hp)
    single = gym.make(ENV)
    callback = RewardTermsCallback(max_imitation_return(single))
    single.close()
    start = time.perf_counter()
    model.learn(samples, callback=callback)
    wall = time.perf_counter() - start
    venv.close()
    return {"samples": model.num_timesteps, "seconds": wall, "samples_per_hour": 3600 * model.num_timesteps / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=100_000, help="per learner")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="40,960 samples per learner")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    samples = 40_960 if args.quick else args.samples

    print(f"pipeline costs on one core ({samples // 2} samples) ...", flush=True)
    one = ours(samples // 2, threads=1)
    limit = 3600 * args.cores / ((one["env_us_per_sample"] + one["update_us_per_sample"]) * 1e-6)
    print(f"ours, {args.cores} threads ({samples} samples) ...", flush=True)
    mine = ours(samples, threads=args.cores)
    print(f"stable-baselines3, 4 subprocess envs ({samples} samples) ...", flush=True)
    theirs = sb3(samples)

    rows = [("pipeline limit", limit, f"env {one['env_us_per_sample']:.0f} + update "
             f"{one['update_us_per_sample']:.0f} us/sample on one core, x{args.cores} cores"),
            (f"ours, batched env, {args.cores} threads", mine["samples_per_hour"],
             f"env {mine['env_us_per_sample']:.0f} + update {mine['update_us_per_sample']:.0f} us/sample"),
            ("stable-baselines3, 4 SubprocVecEnv", theirs["samples_per_hour"], "")]
    table = "\n".join(["| learner | samples/hour | breakdown |", "|---|---:|---|",
                       *(f"| {name} | {rate / 1e6:.2f}M | {note} |" for name, rate, note in rows)])
    table += (f"\n\nours / SB3: {mine['samples_per_hour'] / theirs['samples_per_hour']:.2f}x; "
              f"ours / limit: {mine['samples_per_hour'] / limit:.0%}")
    print(table)
    payload = {
        "ours_samples_per_hour": mine["samples_per_hour"], "sb3_samples_per_hour": theirs["samples_per_hour"],
        "limit_samples_per_hour": limit, "ours_over_sb3": mine["samples_per_hour"] / theirs["samples_per_hour"],
        "ours_over_limit": mine["samples_per_hour"] / limit, "one_core": one, "ours": mine, "sb3": theirs,
        "cores": args.cores, "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
        "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
        "numpy": np.__version__,
    }
    for path in write_results(args.out, payload, table):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
