"""Runs a stable-baselines3 algorithm (``--agent sb3:PPO``) through mimicgym's run layout.

Same run directory as our agents (config, TensorBoard, progress, model, eval, plots), with
SB3's own logger writing the TensorBoard and CSV files, periodic checkpoints that include
``VecNormalize`` statistics, and resume from a saved model.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from mimicgym.training import (
    SB3_PREFIX,
    RunConfig,
    RunResult,
    _eval_summary,
    is_imitation_env,
    new_run_dir,
    wrap_observation,
    write_json,
    write_run_config,
)


def sb3_algorithm(name: str):
    import stable_baselines3

    algo = name[len(SB3_PREFIX):] if name.startswith(SB3_PREFIX) else name
    cls = getattr(stable_baselines3, algo, None)
    if cls is None or not isinstance(cls, type):
        available = [n for n in ("A2C", "DDPG", "DQN", "PPO", "SAC", "TD3")]
        raise ValueError(f"unknown stable-baselines3 algorithm {algo!r}; choose one of {available}")
    return cls


def _policy_name(observation_space) -> str:
    from gymnasium import spaces
    from stable_baselines3.common.preprocessing import is_image_space

    if isinstance(observation_space, spaces.Dict):
        return "MultiInputPolicy"
    return "CnnPolicy" if is_image_space(observation_space) else "MlpPolicy"


def make_sb3_vec_env(cfg: RunConfig, seed: int, n_envs: int):
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    return make_vec_env(
        cfg.env, n_envs=n_envs, seed=seed, env_kwargs=cfg.env_kwargs,
        wrapper_class=(lambda env: wrap_observation(env, cfg.wrapper)) if cfg.wrapper else None,
        vec_env_cls=SubprocVecEnv if cfg.subproc and n_envs > 1 else DummyVecEnv,
    )


class _TqdmCallback:
    """A tqdm progress bar as an SB3 callback (SB3's own bar needs rich)."""

    def __new__(cls, total: int):
        from stable_baselines3.common.callbacks import BaseCallback
        from tqdm.auto import tqdm

        class Bar(BaseCallback):
            def _on_training_start(self) -> None:
                self.bar = tqdm(total=total, unit="step", dynamic_ncols=True)

            def _on_step(self) -> bool:
                self.bar.update(self.training_env.num_envs)
                return True

            def _on_training_end(self) -> None:
                self.bar.close()

        return Bar()


def train_sb3(cfg: RunConfig) -> RunResult:
    from stable_baselines3.common.callbacks import CheckpointCallback
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.vec_env import VecNormalize

    if cfg.timesteps is None:
        raise ValueError(f"agent {cfg.agent!r} needs timesteps")
    algo = sb3_algorithm(cfg.agent)
    venv = make_sb3_vec_env(cfg, cfg.seed, cfg.n_envs)
    if cfg.normalize:
        resumed_stats = Path(cfg.resume).with_name("vecnormalize.pkl") if cfg.resume else None
        if resumed_stats is not None and resumed_stats.exists():
            venv = VecNormalize.load(str(resumed_stats), venv)
        else:
            venv = VecNormalize(venv)
    hyperparameters = dict(cfg.hyperparameters)
    if is_imitation_env(cfg.env) and algo.__name__ == "PPO":
        from mimicgym.envs.mimic.callbacks import DEEPMIMIC_PPO

        hyperparameters = {**DEEPMIMIC_PPO, **hyperparameters}  # --set still overrides
    if cfg.resume:
        model = algo.load(cfg.resume, env=venv, device=cfg.device)
    else:
        model = algo(_policy_name(venv.observation_space), venv, seed=cfg.seed,
                     device=cfg.device, verbose=0, **hyperparameters)
    # The run directory is made only once the model exists: a bad option leaves nothing behind.
    run_dir = new_run_dir(cfg)
    stats_path = run_dir / "vecnormalize.pkl"
    model.set_logger(configure(str(run_dir), ["tensorboard", "csv"]))
    write_run_config(run_dir, cfg, f"stable_baselines3.{algo.__name__}", hyperparameters)
    callbacks = []
    if cfg.checkpoint_freq:
        callbacks.append(CheckpointCallback(
            save_freq=max(1, cfg.checkpoint_freq // cfg.n_envs), save_path=str(run_dir / "checkpoints"),
            name_prefix="model", save_vecnormalize=cfg.normalize))
    if cfg.progress_bar:
        callbacks.append(_TqdmCallback(cfg.timesteps))
    if is_imitation_env(cfg.env):
        from mimicgym.envs.mimic.callbacks import reward_terms_callback

        callbacks.append(reward_terms_callback())  # imitation/<term> in TensorBoard
    model_path = run_dir / "model.zip"
    try:
        model.learn(total_timesteps=cfg.timesteps, callback=callbacks or None,
                    reset_num_timesteps=cfg.resume is None)
    finally:
        # An interrupted run still leaves a resumable model and its normalisation stats.
        model.save(str(model_path))
        if cfg.normalize:
            venv.save(str(stats_path))
    returns = evaluate_sb3(model, cfg, stats_path if cfg.normalize else None)
    write_json(run_dir / "eval.json", _eval_summary(returns))
    _plot_progress_csv(run_dir)
    venv.close()
    return RunResult(run_dir, model_path, returns, model)


def evaluate_sb3(model, cfg: RunConfig, stats_path: Path | None) -> list[float]:
    if cfg.eval_episodes == 0:
        return []
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize

    venv = make_sb3_vec_env(cfg, cfg.seed + 10_000, 1)
    if stats_path is not None:
        venv = VecNormalize.load(str(stats_path), venv)
        venv.training, venv.norm_reward = False, False
    returns, _ = evaluate_policy(model, venv, n_eval_episodes=cfg.eval_episodes,
                                 deterministic=True, return_episode_rewards=True)
    venv.close()
    return [float(r) for r in returns]


def _plot_progress_csv(run_dir: Path) -> None:
    from mimicgym.plots import plot_learning_curves

    path = run_dir / "progress.csv"
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("rollout/ep_rew_mean")]
    if rows:
        steps = np.array([float(r["time/total_timesteps"]) for r in rows])
        rew = np.array([float(r["rollout/ep_rew_mean"]) for r in rows])
        plot_learning_curves({"sb3": (steps, rew)}, run_dir / "learning_curve.png",
                             xlabel="timesteps", ylabel="mean episode return")
