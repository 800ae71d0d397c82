"""Learning on the imitation envs: our PPO (``mimicgym train --agent ppo``, the imitation defaults)
on each clip for a sample budget, with checkpoints, then the curves and a results table.

Runs of several hours: each clip's run directory ``<logdir>/<clip>_<character>_s<seed>`` is
trained, or resumed from its last checkpoint if one exists, or left alone once finished; so the
same command, run again after an interruption (or in a later session), goes on where it stopped.
Every ``--eval-every`` samples: 10 deterministic episodes of 10 s (``evals.jsonl``: normalised
return, per-step imitation reward, each reward term, episode length, samples and hours).

Results (``--report-only`` reads the run directories without training): per run the last and
best evaluation, the samples at which the normalised return first reached 0.5, 0.8, 0.85 and
0.9, the reward terms at the last evaluation, and the curves against samples and hours beside
the paper's points (PNG).

    python benchmarks/imitation_learning.py --clips walk run --samples 10000000
    python benchmarks/imitation_learning.py --clips walk --report-only
    python benchmarks/imitation_learning.py --runs runs/imitation/walk_humanoid3d_s0 other/run_dir
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import mimicgym  # noqa: E402,F401
from mimicgym.cli import parse_assignments  # noqa: E402
from mimicgym.envs.mimic.env import MimicEnv  # noqa: E402
from mimicgym.envs.mimic.reward import REWARD_PRESETS, RewardConfig  # noqa: E402
from mimicgym.runs import RunConfig, resume, train  # noqa: E402
from mimicgym.runs.directory import find_model  # noqa: E402
from mimicgym.runs.imitation_curves import load_run, plot, summary  # noqa: E402
from mimicgym.utils.io import write_results  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "imitation_learning.json"
IDS = {"walk": "mimicgym/MimicWalk-v0", "run": "mimicgym/MimicRun-v0"}
THRESHOLDS = (0.5, 0.8, 0.85, 0.9)
TERMS = ("pose", "velocity", "end_effector", "com")


def run_dir_of(logdir: Path, clip: str, character: str, seed: int, reward: str = "paper", tag: str = "") -> Path:
    return logdir / f"{clip}_{character}{'' if reward == 'paper' else '_' + reward}{'_' + tag if tag else ''}_s{seed}"


def train_clip(logdir: Path, clip: str, character: str, seed: int, samples: int, eval_every: int,
               threads: int, reward: str = "paper", train_env_kwargs: dict | None = None,
               tag: str = "") -> None:
    run_dir = run_dir_of(logdir, clip, character, seed, reward, tag)
    if (run_dir / "eval.json").is_file():
        print(f"{run_dir}: finished, left alone")
        return
    if run_dir.exists():  # started earlier: go on from its last checkpoint (none is an error naming it)
        find_model(run_dir)
        print(f"{run_dir}: resuming from its last checkpoint")
        resume(run_dir, timesteps=samples)
        return
    env_kwargs = {} if clip in IDS else {"clip": clip}
    if character != "humanoid3d":
        env_kwargs["character"] = character
    # A shaped training reward or a training-only keyword is only that: evaluations score the
    # paper's reward on the default env, as every run is.
    eval_env_kwargs = {}
    if reward != "paper":
        env_kwargs["reward_config"], eval_env_kwargs["reward_config"] = reward, "paper"
    defaults = inspect.signature(MimicEnv).parameters
    for key, value in (train_env_kwargs or {}).items():
        if key not in defaults:
            raise SystemExit(f"--train-env-kwarg: MimicEnv takes no keyword {key!r}")
        if key == "reward_config" and isinstance(value, dict):  # fields over the --train-reward preset
            value = asdict(RewardConfig.of({**asdict(RewardConfig.of(reward)), **value}))
        env_kwargs[key] = value
        eval_env_kwargs[key] = "paper" if key == "reward_config" else defaults[key].default
    cfg = RunConfig(env=IDS.get(clip, "mimicgym/Mimic-v0"), agent="ppo", timesteps=samples, seed=seed,
                    logdir=str(logdir), run_name=run_dir.name, env_kwargs=env_kwargs,
                    eval_env_kwargs=eval_env_kwargs, threads=threads,
                    eval_freq=eval_every, eval_episodes=10, checkpoint_freq=eval_every, progress_bar=False)
    train(cfg)


def first_reaching(run: dict, level: float) -> float | None:
    hits = (run["normalised_return"] >= level).nonzero()[0]
    return float(run["samples"][hits[0]]) if len(hits) else None


def report(run_dirs: list[Path], out: Path) -> None:
    runs, rows, table = [], {}, ["| run | samples | hours | normalised return (last) | best | "
                                 + " | ".join(f"samples to {t}" for t in THRESHOLDS)
                                 + " | pose | velocity | end effector | com |", "|---" * (9 + len(THRESHOLDS)) + "|"]
    for run_dir in run_dirs:
        try:
            run = load_run(run_dir)
        except (FileNotFoundError, ValueError) as e:
            print(f"skipped: {e}")
            continue
        runs.append(run)
        last = json.loads((run_dir / "evals.jsonl").read_text().splitlines()[-1])
        s = summary(run)
        terms = last.get("reward_terms", {})
        rows[run_dir.name] = {**{k: float(v) for k, v in s.items()}, "reward_terms": terms,
                              **{f"samples_to_{t}": first_reaching(run, t) for t in THRESHOLDS}}
        reach = [f"{v / 1e6:.2f}M" if (v := rows[run_dir.name][f"samples_to_{t}"]) else "-" for t in THRESHOLDS]
        table.append(f"| {run_dir.name} | {s['samples'] / 1e6:.2f}M | {s['hours']:.2f} | {s['normalised_return']:.3f} "
                     f"| {s['best_normalised_return']:.3f} | " + " | ".join(reach) + " | "
                     + " | ".join(f"{terms.get(t, float('nan')):.3f}" for t in TERMS) + " |")
    if not runs:
        raise SystemExit("no run with evaluations to report")
    plot(runs, out.with_suffix(".png"))
    print("\n".join(table))
    for path in write_results(out, rows, "\n".join(table)):
        print(f"wrote {path}")
    print(f"wrote {out.with_suffix('.png')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", nargs="+", default=["walk", "run"])
    parser.add_argument("--character", default="humanoid3d", choices=["humanoid3d", "smpl"])
    parser.add_argument("--samples", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-reward", default="paper", choices=sorted(REWARD_PRESETS),
                        help="reward preset to train on (evaluations always score 'paper')")
    parser.add_argument("--train-env-kwarg", nargs="*", metavar="KEY=VALUE", default=[],
                        help="MimicEnv keywords of the training envs only (TOML values, e.g. "
                             "max_tracking_error=1.0 or reward_config={com_scale=3.0}); needs --tag")
    parser.add_argument("--tag", default="", help="added to the run directory's name")
    parser.add_argument("--eval-every", type=int, default=250_000)
    parser.add_argument("--threads", type=int, default=2, help="physics and update threads")
    parser.add_argument("--logdir", type=Path, default=Path("runs/imitation"))
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--runs", nargs="+", type=Path, help="report these run directories (implies --report-only)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    train_env_kwargs = parse_assignments(args.train_env_kwarg, "--train-env-kwarg")
    if train_env_kwargs and not args.tag:
        parser.error("--train-env-kwarg needs a --tag to name its run directories")
    if args.runs:
        return report(args.runs, args.out)
    if not args.report_only:
        for clip in args.clips:
            train_clip(args.logdir, clip, args.character, args.seed, args.samples, args.eval_every,
                       args.threads, args.train_reward, train_env_kwargs, args.tag)
    report([run_dir_of(args.logdir, c, args.character, args.seed, args.train_reward, args.tag) for c in args.clips],
           args.out)


if __name__ == "__main__":
    main()
