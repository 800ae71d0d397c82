"""Train a DeepMimic-style imitation policy with stable-baselines3 PPO.

Subprocess vec envs, VecNormalize on observations (and rewards), DeepMimic-like PPO settings
(gamma 0.95, GAE lambda 0.95, clip 0.2), TensorBoard with each reward term, the normalised
return and the episode length; periodic deterministic evaluation (with an MP4 every
``--video-every`` evaluations), checkpoints, and resume from a run directory.

    python scripts/train_mimic.py --clip walk --timesteps 2000000 --n-envs 4 --logdir runs/mimic
    python scripts/train_mimic.py --resume runs/mimic/walk_s0 --timesteps 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402
import torch  # noqa: E402

import mimicgym.envs  # noqa: E402,F401
from mimicgym.envs.mimic.callbacks import (  # noqa: E402
    DEEPMIMIC_PPO,
    evaluate_imitation,
    reward_terms_callback,
)
from mimicgym.envs.mimic.env import MimicEnv  # noqa: E402
from mimicgym.utils.io import atomic_write  # noqa: E402


@dataclass
class TrainConfig:
    clip: str = "walk"
    character: str = "humanoid3d"
    reference_targets: bool = True  # the next reference pose in the observation
    action_scale: float = 0.5  # radians of PD-target offset per unit action
    timesteps: int = 2_000_000
    n_envs: int = 4
    seed: int = 0
    # PPO: the package's imitation defaults (DEEPMIMIC_PPO), as the CLI uses them.
    learning_rate: float = DEEPMIMIC_PPO["learning_rate"]
    n_steps: int = DEEPMIMIC_PPO["n_steps"]  # per env and rollout
    batch_size: int = DEEPMIMIC_PPO["batch_size"]
    n_epochs: int = DEEPMIMIC_PPO["n_epochs"]
    gamma: float = DEEPMIMIC_PPO["gamma"]
    gae_lambda: float = DEEPMIMIC_PPO["gae_lambda"]
    clip_range: float = DEEPMIMIC_PPO["clip_range"]
    target_kl: float = 0.0  # > 0: stop a PPO update's epochs once the KL exceeds it
    log_std_init: float = DEEPMIMIC_PPO["policy_kwargs"]["log_std_init"]
    net_arch: list[int] = field(
        default_factory=lambda: list(DEEPMIMIC_PPO["policy_kwargs"]["net_arch"]["pi"]))
    eval_every: int = 100_000  # steps; 0: only at the end
    eval_episodes: int = 5
    video_every: int = 5  # every n-th evaluation writes an MP4 (0: never)
    checkpoint_every: int = 250_000
    logdir: str = "runs/mimic"

    def __post_init__(self) -> None:
        for name in ("timesteps", "n_envs", "n_steps", "batch_size", "n_epochs", "eval_episodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("gamma", "gae_lambda", "clip_range"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(
                    f"TrainConfig.{name} must be in (0, 1], got {getattr(self, name)!r}")
        if self.learning_rate <= 0:
            raise ValueError(f"TrainConfig.learning_rate must be > 0, got {self.learning_rate!r}")
        for name in ("eval_every", "video_every", "checkpoint_every", "target_kl"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainConfig.{name} must be >= 0, got {getattr(self, name)!r}")


def env_kwargs(cfg: TrainConfig) -> dict:
    return {"clip": cfg.clip, "character": cfg.character,
            "reference_targets": cfg.reference_targets, "action_scale": cfg.action_scale}


def make_venv(cfg: TrainConfig):
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    # The class (not the id) travels to the subprocesses: it pickles by its importable name.
    return make_vec_env(MimicEnv, n_envs=cfg.n_envs, seed=cfg.seed,
                        env_kwargs=env_kwargs(cfg),
                        vec_env_cls=SubprocVecEnv if cfg.n_envs > 1 else DummyVecEnv)


def make_ppo(cfg: TrainConfig, venv):
    from stable_baselines3 import PPO

    return PPO("MlpPolicy", venv, learning_rate=cfg.learning_rate, n_steps=cfg.n_steps,
               batch_size=cfg.batch_size, n_epochs=cfg.n_epochs, gamma=cfg.gamma,
               gae_lambda=cfg.gae_lambda, clip_range=cfg.clip_range,
               target_kl=cfg.target_kl or None, seed=cfg.seed, device="cpu",
               policy_kwargs={"log_std_init": cfg.log_std_init,
                              "net_arch": {"pi": cfg.net_arch, "vf": cfg.net_arch}})


def evaluation_callback(cfg: TrainConfig, run_dir: Path):
    """Deterministic evaluation every ``cfg.eval_every`` steps: TensorBoard ``eval/*``,
    ``evals.jsonl`` (samples, hours, figures) and an MP4 with the reference ghost."""
    from stable_baselines3.common.callbacks import BaseCallback

    from mimicgym.envs.mimic.render import save_strip, save_video

    class Evaluate(BaseCallback):
        def _on_training_start(self) -> None:
            self.env = gym.make("mimicgym/Mimic-v0", **env_kwargs(cfg), render_mode="rgb_array",
                                width=320, height=240)
            self.start, self.last, self.count = time.time(), self.num_timesteps, 0
            log = run_dir / "evals.jsonl"
            if log.exists() and log.stat().st_size:  # resumed: hours continue from the last run
                self.start -= 3600 * json.loads(log.read_text().splitlines()[-1])["hours"]

        def evaluate(self) -> dict:
            self.count += 1
            video = cfg.video_every and self.count % cfg.video_every == 0
            frames = [] if video else None
            result = evaluate_imitation(self.model, self.env, cfg.eval_episodes, seed=10_000,
                                        obs_normalizer=self.model.get_vec_normalize_env(),
                                        frames=frames)
            summary = {"samples": self.num_timesteps,
                       "hours": (time.time() - self.start) / 3600, **result.summary()}
            for key, value in result.summary().items():
                self.logger.record(f"eval/{key}", value)
            with open(run_dir / "evals.jsonl", "a") as f:
                f.write(json.dumps(summary) + "\n")
            if frames:
                save_video(frames, run_dir / "videos" / f"eval_{self.num_timesteps}.mp4")
                save_strip(frames, run_dir / "videos" / f"eval_{self.num_timesteps}.png")
            return summary

        def _on_step(self) -> bool:
            if cfg.eval_every and self.num_timesteps - self.last >= cfg.eval_every:
                self.last = self.num_timesteps
                self.evaluate()
            return True

        def _on_training_end(self) -> None:
            if self.num_timesteps != self.last or self.count == 0:
                self.evaluate()
            self.env.close()

    return Evaluate()


def train(cfg: TrainConfig, run_dir: Path, resume: bool = False):
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import CheckpointCallback
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.vec_env import VecNormalize

    torch.set_num_threads(1)
    run_dir.mkdir(parents=True, exist_ok=True)
    venv = make_venv(cfg)
    if resume:
        venv = VecNormalize.load(str(run_dir / "vecnormalize.pkl"), venv)
        model = PPO.load(run_dir / "model.zip", env=venv, device="cpu")
    else:
        venv = VecNormalize(venv, gamma=cfg.gamma)
        model = make_ppo(cfg, venv)
        with atomic_write(run_dir / "config.json", "w") as f:
            json.dump(asdict(cfg), f, indent=2)
    model.set_logger(configure(str(run_dir), ["tensorboard", "csv"]))
    callbacks = [reward_terms_callback(), evaluation_callback(cfg, run_dir)]
    if cfg.checkpoint_every:
        callbacks.append(CheckpointCallback(max(1, cfg.checkpoint_every // cfg.n_envs),
                                            str(run_dir / "checkpoints"), "model",
                                            save_vecnormalize=True))
    try:
        model.learn(cfg.timesteps, callback=callbacks, reset_num_timesteps=not resume)
    finally:
        model.save(run_dir / "model.zip")
        venv.save(str(run_dir / "vecnormalize.pkl"))
        venv.close()
    return model


def _interrupt(signum, frame) -> None:
    # SIGTERM (a job scheduler, `kill`) ends the run like Ctrl-C: the model is still saved.
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    defaults = TrainConfig()
    for name, value in asdict(defaults).items():
        if isinstance(value, list):
            parser.add_argument(f"--{name.replace('_', '-')}", type=int, nargs="+", default=value)
        elif isinstance(value, bool):
            parser.add_argument(f"--{name.replace('_', '-')}", default=value,
                                action=argparse.BooleanOptionalAction)
        else:
            parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--run-name", default=None)
    parser.add_argument("--resume", default=None, help="a run directory to continue")
    args = vars(parser.parse_args())
    resume, run_name = args.pop("resume"), args.pop("run_name")
    if resume:
        run_dir = Path(resume)
        saved = json.loads((run_dir / "config.json").read_text())
        saved["timesteps"] = args["timesteps"]
        cfg = TrainConfig(**saved)
    else:
        cfg = TrainConfig(**args)
        run_dir = Path(cfg.logdir) / (run_name or f"{cfg.clip}_{cfg.character}_s{cfg.seed}")
    try:
        train(cfg, run_dir, resume=resume is not None)
    except KeyboardInterrupt:
        print(f"interrupted: model saved; continue with --resume {run_dir}")
        raise SystemExit(130)
    print(f"run directory: {run_dir}")


if __name__ == "__main__":
    main()
