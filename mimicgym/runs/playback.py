"""A finished (or interrupted) run played back: evaluated as training evaluated it, or rendered."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mimicgym.errors import ConfigError
from mimicgym.runs.config import RunConfig
from mimicgym.runs.directory import find_model, locate_run, run_config
from mimicgym.runs.envs import is_imitation_env, make_env
from mimicgym.runs.evaluation import EVAL_SEED_OFFSET, EvalResult, evaluate_episodes
from mimicgym.runs.learners import make_learner


def load_run_learner(run_dir: Path, cfg: RunConfig | None = None):
    """The run's saved model with its observation normalisation, on one in-process env."""
    cfg = cfg or run_config(run_dir)
    if cfg.is_rllib:  # its policy rebuilt from model.pt, no RLlib algorithm (nor Ray) started
        from mimicgym.runs.rllib_policy import load_rllib_run

        return load_rllib_run(run_dir, cfg, find_model(run_dir))
    light = dataclasses.replace(cfg, n_envs=1, subproc=False, progress_bar=False, engine="local", workers=1,
                                address=None)
    return make_learner(light, checkpoint=find_model(run_dir))


def evaluate_run(run_dir: str | Path, episodes: int | None = None, seed: int | None = None,
                 progress_bar: bool = False) -> EvalResult:
    """Evaluate a run's saved model with its env options, wrapper and normalisation; with the
    run's own seed this is the evaluation training ended with (same episodes, same figures)."""
    run_dir = locate_run(run_dir)
    cfg = run_config(run_dir)
    learner = load_run_learner(run_dir, cfg)
    env = make_env(cfg, evaluation=True)
    try:
        return evaluate_episodes(learner.model, env, cfg.eval_episodes if episodes is None else episodes,
                                 (cfg.seed if seed is None else seed) + EVAL_SEED_OFFSET,
                                 normalize_obs=learner.normalize_obs, max_steps=cfg.eval_max_steps,
                                 progress_bar=progress_bar)
    finally:
        env.close()
        learner.close()


def render_run(run_dir: str | Path, out: str | Path | None = None, seconds: float = 6.0,
               seed: int = 0, width: int = 480, height: int = 360,
               frames_in_strip: int = 8) -> tuple[Path, Path, EvalResult]:
    """An imitation run's policy beside its reference ghost, from the clip's start (no RSI):
    ``out.mp4`` and the PNG strip ``out.png`` (default ``RUN/render``)."""
    run_dir = locate_run(run_dir)
    cfg = run_config(run_dir)
    if not is_imitation_env(cfg.env):
        raise ConfigError(f"{run_dir} trained on {cfg.env}; render needs an imitation run")
    learner = load_run_learner(run_dir, cfg)
    env = make_env(cfg, evaluation=True, render_mode="rgb_array", width=width, height=height, rsi=False,
                   episode_seconds=seconds)
    try:
        return _render(learner.model, env, learner.normalize_obs, seed,
                       Path(out) if out else run_dir / "render", frames_in_strip)
    finally:
        learner.close()


def render_pretrained(name: str, out: str | Path | None = None, seconds: float = 6.0,
                      seed: int = 0, width: int = 480, height: int = 360,
                      frames_in_strip: int = 8) -> tuple[Path, Path, EvalResult]:
    """A shipped policy (``mimicgym.pretrained``) beside its reference ghost, from the clip's
    start: ``out.mp4`` and ``out.png`` (default ``renders/NAME``)."""
    from mimicgym import pretrained

    policy, env = pretrained.load(name, render_mode="rgb_array", width=width, height=height, rsi=False,
                                  episode_seconds=seconds)
    return _render(policy, env, None, seed, Path(out) if out else Path("renders") / Path(name).stem,
                   frames_in_strip)


def _render(policy, env, normalize_obs, seed: int, out: Path, frames_in_strip: int) -> tuple[Path, Path, EvalResult]:
    from mimicgym.runs.imitation import render_policy, save_render

    try:
        frames, result = render_policy(policy, env, normalize_obs, seed)
        fps = env.metadata.get("render_fps", 30)
    finally:
        env.close()
    video, strip = save_render(frames, out, frames_in_strip, fps)
    return video, strip, result
