"""Training runs as a user lives them: ``train(cfg)`` starts one, ``resume(run)`` continues it.

Order of work, so that bad input costs nothing and loses nothing: every option is checked and
the learner (env, agent or model) is built first; only then is the run directory made (or, on
resume, reopened). During training, ``--checkpoint-freq`` saves the model, its normalisation
statistics and the logs in place (atomically: a run killed at any moment, ``kill -9``
included, continues from its last checkpoint; the temporary files of a save it interrupted are
removed on resume); ``--eval-freq`` evaluates and appends to ``evals.jsonl`` (with a video
every ``--video-every`` evaluations on imitation envs). Ctrl-C or SIGTERM stops at the next
consistent point, saves, and prints the one command that continues the run.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mimicgym.agents.logging import Logger
from mimicgym.errors import ConfigError
from mimicgym.runs.callbacks import Periodic
from mimicgym.runs.config import RunConfig
from mimicgym.runs.directory import (
    create_run_dir,
    find_model,
    locate_run,
    record_resume,
    run_config,
    write_json,
    write_run_record,
)
from mimicgym.runs.envs import is_imitation_env, make_env
from mimicgym.runs.evaluation import EVAL_SEED_OFFSET, EvalResult, evaluate_episodes
from mimicgym.runs.learners import make_learner
from mimicgym.runs.plots import write_run_plots
from mimicgym.utils.io import remove_stale_temp_files

EVALS_FILE = "evals.jsonl"
# What may change when a run is continued; everything else is the run's own.
RESUME_OPTIONS = ("timesteps", "episodes", "eval_episodes", "eval_max_steps", "eval_freq",
                  "video_every", "checkpoint_freq", "progress_bar", "threads", "device", "address")


@dataclass
class RunResult:
    run_dir: Path
    model_path: Path
    evaluation: EvalResult | None
    agent: Any  # our agent, or the stable-baselines3 model

    @property
    def eval_returns(self) -> list[float]:
        return [] if self.evaluation is None else self.evaluation.returns.tolist()

    @property
    def eval_mean(self) -> float:
        returns = self.eval_returns
        return float(np.mean(returns)) if returns else float("nan")


def resume_command(run_dir: Path) -> str:
    return f"mimicgym train --resume {run_dir}"


def train(cfg: RunConfig) -> RunResult:
    """Train a new run as ``cfg`` says, in a new run directory."""
    learner = make_learner(cfg)
    try:
        run_dir = create_run_dir(cfg)
        write_run_record(run_dir, cfg, learner.agent_class, learner.hyperparameters)
        return _Session(cfg, learner, run_dir, resumed=False).run(_remaining(cfg, None))
    finally:
        learner.close()


def resume(path: str | Path, **changes: Any) -> RunResult:
    """Continue a run in its directory with everything it recorded; ``changes`` may set the
    options of ``RESUME_OPTIONS`` (e.g. a larger ``timesteps`` budget, which counts in total)."""
    run_dir = locate_run(path)
    refused = sorted(set(changes) - set(RESUME_OPTIONS))
    if refused:
        raise ConfigError(f"--resume continues {run_dir} with its own options; "
                          f"{', '.join(refused)} cannot change (these can: {', '.join(RESUME_OPTIONS)})")
    cfg = dataclasses.replace(run_config(run_dir), **changes)
    remove_stale_temp_files(run_dir)  # what a save interrupted by a kill left behind
    learner = make_learner(cfg, checkpoint=find_model(run_dir))
    try:
        done = learner.progress
        budget = _remaining(cfg, done)
        if any(left <= 0 for left in budget.values()):  # the budget ends at whichever comes first
            raise ConfigError(f"{run_dir} has run {done['timesteps']} timesteps, "
                              f"{done.get('episodes', 0)} episodes of its budget ({cfg.timesteps} "
                              f"timesteps, {cfg.episodes} episodes); give a larger --timesteps "
                              f"(or --episodes) to train it further")
        record_resume(run_dir, cfg, done["timesteps"])
        return _Session(cfg, learner, run_dir, resumed=True).run(budget)
    finally:
        learner.close()


def _remaining(cfg: RunConfig, done: dict[str, int] | None) -> dict[str, int]:
    """What is left of the run's budget (all of it for a new run, ``done`` None)."""
    done = done or {}
    budget = {}
    if cfg.timesteps is not None:
        budget["timesteps"] = cfg.timesteps - done.get("timesteps", 0)
    if cfg.episodes is not None:
        budget["episodes"] = cfg.episodes - done.get("episodes", 0)
    return budget


class _Session:
    """One stretch of training of a run: logger, callbacks, checkpoints, evaluations, the end."""

    def __init__(self, cfg: RunConfig, learner, run_dir: Path, resumed: bool):
        self.cfg, self.learner, self.run_dir, self.resumed = cfg, learner, run_dir, resumed
        self.imitation = is_imitation_env(cfg.env)
        start_step = learner.progress["timesteps"]
        self.logger = Logger(run_dir, hparams={"agent": cfg.agent, "env": cfg.env, "seed": cfg.seed,
                                               **learner.hyperparameters},
                             history=self._kept_history(start_step) if resumed else None,
                             purge_step=start_step + 1 if resumed else None)
        learner.set_logger(self.logger)
        self.hours_before = self._kept_evaluations(start_step) if resumed else 0.0
        self.start = time.time()
        self.n_evaluations = 0
        self._eval_env = None

    # -- the log files a resumed run keeps up to its checkpoint
    def _kept_history(self, step: int) -> dict[str, list]:
        path = self.run_dir / "progress.json"
        history = json.loads(path.read_text()) if path.is_file() else {}
        return {k: [p for p in points if p[0] <= step] for k, points in history.items()}

    def _kept_evaluations(self, step: int) -> float:
        """Drop evaluations past the checkpoint; return the hours the run had trained."""
        path = self.run_dir / EVALS_FILE
        if not path.is_file():
            return 0.0
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        rows = [r for r in rows if r["samples"] <= step]
        with open(path, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        return rows[-1]["hours"] if rows else 0.0

    # -- the pieces callbacks run
    def save(self) -> Path:
        path = self.learner.save(self.run_dir)
        self.logger.flush()
        return path

    def evaluate(self, final: bool = False) -> EvalResult | None:
        cfg = self.cfg
        episodes = cfg.eval_episodes if (final or cfg.eval_episodes) else 5
        if episodes == 0:
            return None
        if not final:
            self.n_evaluations += 1
        video = (self.imitation and cfg.video_every and not final
                 and self.n_evaluations % cfg.video_every == 0)
        if self._eval_env is None or video:
            if self._eval_env is not None:
                self._eval_env.close()
            extra = {"render_mode": "rgb_array", "width": 320, "height": 240} if video else {}
            self._eval_env = make_env(cfg, evaluation=True, **extra)
        frames = [] if video else None
        result = evaluate_episodes(self.learner.model, self._eval_env, episodes, cfg.seed + EVAL_SEED_OFFSET,
                                   normalize_obs=self.learner.normalize_obs,
                                   max_steps=cfg.eval_max_steps, frames=frames,
                                   progress_bar=final and cfg.progress_bar)
        step = self.learner.progress["timesteps"]
        summary = result.summary()
        if not final or cfg.eval_freq:
            for key, value in summary.items():
                if key == "reward_terms":  # eval/pose... beside the training's imitation/pose
                    for term, mean in value.items():
                        self.logger.record(f"eval/{term}", mean)
                elif key not in ("returns", "episodes", "cut_episodes"):
                    self.logger.record(f"eval/{key}", value)
            self.logger.dump(step)
            row = {"samples": step, "hours": self.hours_before + (time.time() - self.start) / 3600,
                   **{k: v for k, v in summary.items() if k != "returns"}}
            with open(self.run_dir / EVALS_FILE, "a") as f:
                f.write(json.dumps(row) + "\n")
        if frames:
            from mimicgym.runs.imitation import save_render

            save_render(frames, self.run_dir / "videos" / f"eval_{step}")
        if video:  # the next evaluations need no rendering
            self._eval_env.close()
            self._eval_env = None
        return result

    def callbacks(self) -> list:
        cfg, out = self.cfg, []
        if self.imitation:
            from mimicgym.runs.imitation import RewardTermsCallback, max_imitation_return

            env = make_env(self.cfg)
            out.append(RewardTermsCallback(max_imitation_return(env)))  # imitation/<term> in TensorBoard
            env.close()
        # Evaluation first: at a step where both fall, the checkpoint then holds the evaluation's
        # log point (a resumed run does not evaluate again at its first step).
        if cfg.eval_freq:
            out.append(Periodic(cfg.eval_freq, self.evaluate))
        if cfg.checkpoint_freq:
            out.append(Periodic(cfg.checkpoint_freq, self.save))
        return out

    def run(self, budget: dict[str, int]) -> RunResult:
        learner, run_dir = self.learner, self.run_dir
        try:
            learner.learn(budget, self.callbacks(), self.resumed)
        except KeyboardInterrupt:
            self.save()
            self.logger.close()
            print(f"\ninterrupted at step {learner.progress['timesteps']}: saved to {run_dir}\n"
                  f"continue with: {resume_command(run_dir)}", flush=True)
            raise
        model_path = self.save()
        result = self.evaluate(final=True)
        if result is not None:
            write_json(run_dir / "eval.json", result.summary())
        self.logger.close(final_metrics={"eval/mean_reward": result.summary()["mean_reward"]}
                          if result is not None else None)
        if self._eval_env is not None:
            self._eval_env.close()
        write_run_plots(run_dir, learner.model, getattr(learner, "env", None), self.logger.history)
        return RunResult(run_dir, model_path, result, learner.model)

