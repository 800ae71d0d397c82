"""Sweep throughput: the same N trials run one after another in this process, then as Ray Tune
trials (``mimicgym.runs.run_sweep``) on an embedded Ray with 1 and with 2 CPUs, same run.

Each trial is an ordinary run of the run layer: our DQN (its defaults, one torch thread) on
CartPole-v1 for ``--timesteps`` steps, seeds 0..N-1, the configs of ``seed_sweep`` in all three
ways. The default 70,000 steps is about 38 s of one core here (a 2-core Xeon; 50,000 steps
26 s), so a trial stays above the issue's 30 s of CPU on a somewhat faster core; the table says
whether it did. ``--quick`` runs 4 trials of 5,000 steps (about 3 s each) as a smoke check.

Ray's start-up (``ray.init``, a fresh local instance per way, ``num_cpus`` 1 then 2) is timed on
its own and left out of the sweep times, as the issue asks ("once Ray is up"); ``run_sweep``
uses the Ray it finds initialised. Tune reuses its worker processes between trials
(``reuse_actors=True`` in ``run_sweep``): the benchmark reads the worker pid of every trial from
Tune's ``result.json`` and reports how many distinct processes ran them (1 and 2 when reuse is
in effect, N when not).

Reported: wall time of each way, trials per minute, speed-up over sequential, the per-trial
overhead of Ray ``(wall on 1 CPU - sequential wall) / N``, split into the part inside the trials
(``run_trial``'s own clock against the sequential runs') and the part outside them: mostly once
per sweep (a worker's start and imports, about 3 s here; the sweep's summary and plot, about
1 s), Tune's hand-over from one trial to the next being a few hundredths of a second. Target
(issue #14): 2 CPUs at least 1.8x the sequential throughput.
Every way writes its runs under one temp directory, deleted at the end.

    python benchmarks/sweep_scaling.py [--quick] [--trials 8] [--timesteps 70000] [--out PATH]
"""

from __future__ import annotations

import os

# One BLAS/OpenMP thread in this process as in Ray's 1-CPU workers (Ray sets it there): the
# sequential way must not borrow the second core.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mimicgym.runs import RunConfig, run_sweep, seed_sweep, train  # noqa: E402
from mimicgym.runs.directory import package_versions  # noqa: E402
from mimicgym.runs.sweep import TUNE_DIR, import_ray  # noqa: E402
from mimicgym.utils.io import write_results  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "sweep_scaling.json"
TARGET_SPEEDUP = 1.8  # issue #14: 2 CPUs against sequential, once Ray is up
MIN_TRIAL_CPU_S = 30.0  # issue #14: each trial at least this much CPU


def trial_config(timesteps: int, logdir: Path) -> RunConfig:
    return RunConfig(env="CartPole-v1", agent="dqn", timesteps=timesteps, eval_episodes=1, logdir=str(logdir),
                     progress_bar=False, threads=1)


def sequential(cfg: RunConfig, seeds: list[int]) -> dict:
    """The sweep's own trial configs, trained one after another in this process."""
    trials = seed_sweep(cfg, seeds, name="sequential").trials()
    start, cpu = time.perf_counter(), time.process_time()
    per_trial = []
    for trial in trials:
        t = time.perf_counter()
        train(trial.config)
        per_trial.append(time.perf_counter() - t)
    return {"wall_s": time.perf_counter() - start, "cpu_s": time.process_time() - cpu, "trial_s": per_trial}


def tune_results(sweep_dir: Path) -> list[dict]:
    """The last result of each trial as Tune stored it (our ``run_trial`` dict plus Tune's
    ``pid``, ``trial_id``...), in trial order."""
    found = []
    for path in sorted((sweep_dir / TUNE_DIR).glob("*/*/result.json")):
        lines = path.read_text().strip().splitlines()
        if lines:
            found.append(json.loads(lines[-1]))
    return found


def on_ray(cfg: RunConfig, seeds: list[int], cpus: int) -> dict:
    """Start a fresh local Ray with ``cpus`` CPUs (timed), run the sweep on it (timed), stop it."""
    ray, _ = import_ray()
    start = time.perf_counter()
    # address="local": a new instance even when a `ray start` cluster runs on this machine
    # (plain ray.init() would join it, and refuse num_cpus).
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR)
    init = time.perf_counter() - start
    try:
        sweep = seed_sweep(cfg, seeds, name=f"ray{cpus}")
        start = time.perf_counter()
        result = run_sweep(sweep, progress=False)
        wall = time.perf_counter() - start
    finally:
        start = time.perf_counter()
        ray.shutdown()
        shutdown = time.perf_counter() - start
    if result.failed:
        raise RuntimeError(f"{len(result.failed)} of {len(seeds)} trials failed: see {result.sweep_dir}")
    results = tune_results(sweep.sweep_dir)
    if len(results) != len(seeds):
        raise RuntimeError(f"found {len(results)} Tune results for {len(seeds)} trials in {sweep.sweep_dir}")
    trial_s = [r["seconds"] for r in results]
    return {"init_s": init, "wall_s": wall, "shutdown_s": shutdown, "trial_s": trial_s,
            "worker_pids": len({r["pid"] for r in results}), "in_trials_s": sum(trial_s)}


def table_of(ways: dict, trials: int) -> str:
    rows = ["| way | wall s | trials/min | vs sequential | Ray start-up s | worker processes |",
            "|---|---:|---:|---:|---:|---:|"]
    for name, way in ways.items():
        init = f"{way['init_s']:.1f}" if "init_s" in way else "-"
        rows.append(f"| {name} | {way['wall_s']:.1f} | {way['trials_per_minute']:.2f} | {way['speedup']:.2f}x | "
                    f"{init} | {way.get('worker_pids', 1)} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=None, help="N (default 8; 4 with --quick)")
    parser.add_argument("--timesteps", type=int, default=None, help="DQN steps per trial (default 70,000)")
    parser.add_argument("--quick", action="store_true", help="4 trials of 5,000 steps: a smoke check")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    trials = args.trials or (4 if args.quick else 8)
    timesteps = args.timesteps or (5_000 if args.quick else 70_000)
    if trials < 1 or timesteps < 1:
        parser.error(f"--trials and --timesteps must be positive, got {trials} and {timesteps}")
    seeds = list(range(trials))
    root = Path(tempfile.mkdtemp(prefix="sweep_scaling_"))
    load_before = os.getloadavg()
    try:
        print(f"{trials} trials of DQN on CartPole-v1, {timesteps} steps each; runs in {root}", flush=True)
        print("sequential, in this process ...", flush=True)
        seq = sequential(trial_config(timesteps, root / "seq"), seeds)
        ways = {"sequential": seq}
        for cpus in (1, 2):
            print(f"Ray Tune, {cpus} CPU{'s' * (cpus > 1)} ...", flush=True)
            ways[f"ray_{cpus}cpu"] = on_ray(trial_config(timesteps, root / f"ray{cpus}"), seeds, cpus)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    base = seq["wall_s"]
    for way in ways.values():
        way["trials_per_minute"] = 60 * trials / way["wall_s"]
        way["speedup"] = base / way["wall_s"]
    one, two = ways["ray_1cpu"], ways["ray_2cpu"]
    overhead = (one["wall_s"] - base) / trials
    in_trial = (one["in_trials_s"] - sum(seq["trial_s"])) / trials  # run_trial's clock vs the sequential runs'
    between = (one["wall_s"] - one["in_trials_s"]) / trials  # worker start, Tune's hand-overs, the summary
    cpu_per_trial = seq["cpu_s"] / trials
    reused = one["worker_pids"] == 1 and two["worker_pids"] <= 2
    table = table_of(ways, trials)
    table += (f"\n\none trial: {cpu_per_trial:.1f} s of CPU sequentially (target >= {MIN_TRIAL_CPU_S:.0f} s: "
              f"{'met' if cpu_per_trial >= MIN_TRIAL_CPU_S else 'NOT met'}); "
              f"Ray's overhead per trial {overhead:.2f} s ({in_trial:.2f} s inside the trial, {between:.2f} s "
              f"outside them); first trial on Ray 1 CPU {one['trial_s'][0]:.1f} s vs "
              f"{seq['trial_s'][0]:.1f} s sequentially; workers reused: {'yes' if reused else 'NO'}; "
              f"2 CPUs / sequential: {two['speedup']:.2f}x (target >= {TARGET_SPEEDUP}x: "
              f"{'met' if two['speedup'] >= TARGET_SPEEDUP else 'NOT met'}); "
              f"load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}")
    print(table)
    ray, _ = import_ray()
    payload = {"trials": trials, "timesteps": timesteps, "workload": "dqn (defaults, 1 torch thread) on CartPole-v1",
               **ways, "cpu_s_per_trial": cpu_per_trial, "trial_cpu_target_met": cpu_per_trial >= MIN_TRIAL_CPU_S,
               "ray_overhead_per_trial_s": overhead,
               "ray_overhead_in_trial_s": in_trial, "ray_overhead_between_trials_s": between,
               "workers_reused": reused, "speedup_2cpu": two["speedup"], "target_speedup_2cpu": TARGET_SPEEDUP,
               "target_met": two["speedup"] >= TARGET_SPEEDUP, "cpu_count": os.cpu_count(),
               "load_average_before": load_before, "load_average_after": os.getloadavg(),
               "machine": platform.processor() or platform.machine(),
               "versions": {**package_versions(), "ray": ray.__version__}}
    for path in write_results(args.out, payload, table):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
