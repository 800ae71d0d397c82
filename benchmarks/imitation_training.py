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

Beside them, so that a user can judge when a cluster pays off: our PPO with its rollouts in Ray
actors (``--engine ray --workers 1`` and ``2``: each worker steps its share of the 16 characters
on one thread, inference and update stay in the driver), and RLlib's PPO (``rllib:PPO`` with the
same settings, 4 envs on 1 and 2 remote env runners). RLlib pins Gymnasium 1.2.2, so its rows
run in ``--rllib-python`` (default ``.venv-rllib/bin/python``, as ``make test`` builds it) in a
subprocess of this script; where that interpreter is absent they are skipped, with a word.
Ray's start-up (and the actors' imports) is reported apart, not in the rates.

    python benchmarks/imitation_training.py [--quick] [--samples 100000] [--no-ray] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
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
RLLIB_PYTHON = Path(__file__).resolve().parent.parent / ".venv-rllib" / "bin" / "python"


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


def timed_learn(learner, samples: int) -> float:
    """Seconds of ``learner.learn(samples)`` with the reward-terms callback ``mimicgym train`` adds."""
    single = gym.make(ENV)
    callback = RewardTermsCallback(max_imitation_return(single))
    single.close()
    start = time.perf_counter()
    learner.learn(samples, callback=callback)
    return time.perf_counter() - start


def ours(samples: int, threads: int, workers: int = 0, seed: int = 0) -> dict:
    """Our PPO on the batched env in this process (``workers=0``), or on ``workers`` Ray actors
    (``--engine ray``; Ray's start-up timed apart)."""
    hp = dict(DEEPMIMIC_PPO_OURS)
    start = time.perf_counter()
    if workers:
        from mimicgym.runs.config import RunConfig
        from mimicgym.runs.ray_rollouts import RayVectorEnv

        env = RayVectorEnv(RunConfig(env=ENV, agent="ppo", engine="ray", workers=workers), hp["n_envs"], batched=True)
    else:
        env = gym.make_vec(ENV, num_envs=hp["n_envs"], vectorization_mode="vector_entry_point", threads=threads)
    startup = time.perf_counter() - start
    agent = TimedPPO(env, seed=seed, device="cpu", **hp)
    torch.set_num_threads(threads)
    wall = timed_learn(agent, samples)
    env.close()
    n = agent.num_timesteps
    return {"samples": n, "seconds": wall, "samples_per_hour": 3600 * n / wall, "startup_seconds": startup,
            "env_us_per_sample": 1e6 * agent.t_rollout / n, "update_us_per_sample": 1e6 * agent.t_update / n}


def rllib_ppo(samples: int, runners: int, threads: int, seed: int = 0) -> dict:
    """RLlib's PPO through our run layer (``--agent rllib:PPO --engine ray --workers R``), in the
    RLlib venv; the rate over the training iterations only (``time/time_elapsed``)."""
    from mimicgym import runs

    with tempfile.TemporaryDirectory() as tmp:
        cfg = runs.RunConfig(env=ENV, agent="rllib:PPO", timesteps=samples, seed=seed, logdir=tmp, n_envs=4,
                             engine="ray", workers=runners, eval_episodes=0, progress_bar=False, threads=threads)
        start = time.perf_counter()
        result = runs.train(cfg)
        total = time.perf_counter() - start
        history = json.loads((result.run_dir / "progress.json").read_text())
    n, wall = history["time/total_timesteps"][-1][1], history["time/time_elapsed"][-1][1]
    return {"samples": n, "seconds": wall, "samples_per_hour": 3600 * n / wall, "startup_seconds": total - wall,
            "ep_rew_mean": history.get("rollout/ep_rew_mean", [[0, None]])[-1][1]}


def rllib_in_its_venv(python: Path, samples: int, runners: int, threads: int) -> dict | None:
    """``rllib_ppo`` run by the RLlib venv's interpreter (a subprocess of this script), or None."""
    if not python.exists():
        print(f"  skipped: no {python} (make install-rllib builds it)", flush=True)
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rllib.json"
        subprocess.run([str(python), __file__, "--rllib-runners", str(runners), "--samples", str(samples),
                        "--cores", str(threads), "--out", str(out)], check=True)
        return json.loads(out.read_text())


def sb3(samples: int, n_envs: int = 4, seed: int = 0) -> dict:
    from stable_baselines3 import PPO as SB3PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv, VecNormalize

    hp = {**DEEPMIMIC_PPO, "n_steps": 4096 // n_envs}
    torch.set_num_threads(1)
    venv = VecNormalize(make_vec_env(ENV, n_envs=n_envs, seed=seed, vec_env_cls=SubprocVecEnv), norm_reward=False)
    model = SB3PPO("MlpPolicy", venv, seed=seed, device="cpu", verbose=0, **hp)
    wall = timed_learn(model, samples)
    venv.close()
    return {"samples": model.num_timesteps, "seconds": wall, "samples_per_hour": 3600 * model.num_timesteps / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=100_000, help="per learner")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="40,960 samples per learner")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray and RLlib rows")
    parser.add_argument("--rllib-python", type=Path, default=RLLIB_PYTHON, help="the RLlib venv's python")
    parser.add_argument("--rllib-runners", type=int, help=argparse.SUPPRESS)  # the subprocess's own mode
    args = parser.parse_args()
    samples = 40_960 if args.quick else args.samples
    if args.rllib_runners is not None:
        args.out.write_text(json.dumps(rllib_ppo(samples, args.rllib_runners, args.cores)))
        return

    print(f"pipeline costs on one core ({samples // 2} samples) ...", flush=True)
    one = ours(samples // 2, threads=1)
    limit = 3600 * args.cores / ((one["env_us_per_sample"] + one["update_us_per_sample"]) * 1e-6)
    print(f"ours, {args.cores} threads ({samples} samples) ...", flush=True)
    mine = ours(samples, threads=args.cores)
    print(f"stable-baselines3, 4 subprocess envs ({samples} samples) ...", flush=True)
    theirs = sb3(samples)
    distributed: dict[str, dict | None] = {}
    if not args.no_ray:
        for workers in (1, 2):
            print(f"ours, Ray rollout workers: {workers} ({samples} samples) ...", flush=True)
            distributed[f"ray_workers_{workers}"] = ours(samples, threads=args.cores, workers=workers)
        for runners in (1, 2):
            print(f"RLlib PPO, {runners} env runners ({samples} samples) ...", flush=True)
            distributed[f"rllib_env_runners_{runners}"] = rllib_in_its_venv(args.rllib_python, samples, runners,
                                                                            args.cores)

    rows = [("pipeline limit", limit, f"env {one['env_us_per_sample']:.0f} + update "
             f"{one['update_us_per_sample']:.0f} us/sample on one core, x{args.cores} cores"),
            (f"ours, batched env, {args.cores} threads", mine["samples_per_hour"],
             f"env {mine['env_us_per_sample']:.0f} + update {mine['update_us_per_sample']:.0f} us/sample"),
            ("stable-baselines3, 4 SubprocVecEnv", theirs["samples_per_hour"], "")]
    for key, row in distributed.items():
        if row is not None:
            kind, n = key.rsplit("_", 1)
            name = (f"ours, {n} Ray rollout worker(s)" if kind == "ray_workers"
                    else f"RLlib PPO, {n} env runner(s), 4 envs")
            rows.append((name, row["samples_per_hour"], f"Ray start-up {row['startup_seconds']:.1f} s, apart"))
    table = "\n".join(["| learner | samples/hour | breakdown |", "|---|---:|---|",
                       *(f"| {name} | {rate / 1e6:.2f}M | {note} |" for name, rate, note in rows)])
    table += (f"\n\nours / SB3: {mine['samples_per_hour'] / theirs['samples_per_hour']:.2f}x; "
              f"ours / limit: {mine['samples_per_hour'] / limit:.0%}")
    print(table)
    payload = {
        "ours_samples_per_hour": mine["samples_per_hour"], "sb3_samples_per_hour": theirs["samples_per_hour"],
        "limit_samples_per_hour": limit, "ours_over_sb3": mine["samples_per_hour"] / theirs["samples_per_hour"],
        "ours_over_limit": mine["samples_per_hour"] / limit, "one_core": one, "ours": mine, "sb3": theirs,
        **{f"{key}_samples_per_hour": row["samples_per_hour"] for key, row in distributed.items() if row},
        "distributed": distributed,
        "cores": args.cores, "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
        "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
        "numpy": np.__version__,
    }
    for path in write_results(args.out, payload, table):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
