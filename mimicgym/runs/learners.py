"""The kinds of learner a run trains, behind one small interface: our agents and
stable-baselines3's algorithms (and RLlib's, in ``mimicgym.runs.rllib``). Each is built (or
loaded from a run) from a ``RunConfig`` with every option checked before an env is made, and
saves itself atomically."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

from mimicgym.errors import ConfigError
from mimicgym.runs.config import RunConfig
from mimicgym.runs.envs import agent_env_layout, is_imitation_env, make_agent_env, make_sb3_vec_env
from mimicgym.runs.normalization import STATS_FILE, load_vec_normalize, save_vec_normalize
from mimicgym.runs.options import coerce_fields


def agent_hyperparameters(agent_cls, cfg: RunConfig) -> dict[str, Any]:
    """``cfg.hyperparameters`` checked against the agent's config dataclass (names, types,
    its own validation), with ``--normalize`` as ``normalize_observations``."""
    values = coerce_fields(agent_cls.Config, cfg.hyperparameters, f"{cfg.agent} hyperparameter")
    if cfg.normalize:
        if "normalize_observations" not in {f for f in agent_cls.Config.__dataclass_fields__}:
            raise ConfigError(f"--normalize: agent {cfg.agent!r} has no observation normalisation "
                              f"(a2c and reinforce have; sb3 agents use VecNormalize)")
        values["normalize_observations"] = True
    if cfg.engine == "ray":
        from mimicgym.agents.on_policy import OnPolicyAgent

        if not issubclass(agent_cls, OnPolicyAgent):
            raise ConfigError(f"engine 'ray' runs the rollouts of our on-policy agents (ppo, a2c), "
                              f"not {cfg.agent!r}")
    try:
        agent_cls.Config(**values)  # the agent's own checks, before any env exists
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{cfg.agent} hyperparameters: {e}") from None
    return values


def set_torch_threads(threads: int) -> None:
    """Small networks train fastest on one thread per process (more only fight over cores)."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


class AgentLearner:
    """One of our agents (``q_learning``, ``dqn``, ``a2c``...)."""

    def __init__(self, cfg: RunConfig, checkpoint: Path | None = None):
        from mimicgym.agents import get_agent_class
        from mimicgym.agents.base import TabularAgent

        self.cfg = cfg
        try:
            agent_cls = get_agent_class(cfg.agent)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        hyperparameters = agent_hyperparameters(agent_cls, cfg)
        if cfg.agent == "ppo" and is_imitation_env(cfg.env):
            from mimicgym.runs.imitation import DEEPMIMIC_PPO_OURS

            hyperparameters = {**DEEPMIMIC_PPO_OURS, **hyperparameters}  # --set still overrides
        units = agent_cls.budget_units
        if cfg.episodes is not None and "episodes" not in units:
            raise ConfigError(f"agent {cfg.agent!r} counts timesteps, not episodes: give timesteps")
        if units and cfg.timesteps is None and cfg.episodes is None:
            raise ConfigError(f"agent {cfg.agent!r} learns from samples: give timesteps or episodes")
        if cfg.engine == "ray":
            from mimicgym.runs.ray_rollouts import RayVectorEnv

            self.env = RayVectorEnv(cfg, *agent_env_layout(agent_cls, cfg, hyperparameters))
        else:
            self.env = make_agent_env(agent_cls, cfg, hyperparameters)
        self.resumed = checkpoint is not None
        try:
            if checkpoint is not None:
                self.agent = agent_cls.load(checkpoint, env=self.env)
            else:
                extra = {"device": cfg.device} if agent_cls.uses_device else {}
                try:
                    self.agent = agent_cls(self.env, seed=cfg.seed, **extra, **hyperparameters)
                except TypeError as e:  # the agent's word on spaces it cannot handle
                    raise ConfigError(f"agent {cfg.agent!r} on {cfg.env!r}: {e}") from None
        except BaseException:
            self.env.close()  # engine ray: its actors, and the Ray it started, go too
            raise
        set_torch_threads(cfg.threads)
        self.units = units
        self.agent_class = agent_cls.__name__
        self.model_file = "model.npz" if isinstance(self.agent, TabularAgent) else "model.pt"
        self.normalize_obs = None  # ours normalise inside the network

    @property
    def model(self):
        return self.agent

    @property
    def hyperparameters(self) -> dict[str, Any]:
        return self.agent.hyperparameters

    @property
    def progress(self) -> dict[str, int]:
        return {"timesteps": self.agent.num_timesteps, "episodes": self.agent.num_episodes}

    def set_logger(self, logger) -> None:
        kept = self.agent.logger.state_dict()
        if self.resumed and (kept["history"] or kept["pending"]):
            # The checkpoint's log is exactly the run's up to its step (progress.json may be
            # older, or newer with points after it), and values recorded since its last dump
            # belong in the continued run's next dump.
            logger.load_state_dict(kept)
        self.agent.set_logger(logger)

    def learn(self, budget: dict[str, int], callbacks: list, resumed: bool) -> None:
        kwargs = {} if "episodes" not in self.units else {"total_episodes": budget.get("episodes")}
        self.agent.learn(budget.get("timesteps"), callback=callbacks or None,
                         progress_bar=self.cfg.progress_bar, reset_num_timesteps=not resumed,
                         **kwargs)

    def save(self, run_dir: Path) -> Path:
        return self.agent.save(run_dir / self.model_file)

    def close(self) -> None:
        self.env.close()


class Sb3Learner:
    """A stable-baselines3 algorithm (``sb3:PPO``...), with ``VecNormalize`` under ``--normalize``."""

    model_file = "model.zip"
    units = ("timesteps",)

    def __init__(self, cfg: RunConfig, checkpoint: Path | None = None):
        import inspect

        from stable_baselines3.common.vec_env import VecNormalize

        from mimicgym.runs.imitation import DEEPMIMIC_PPO
        from mimicgym.runs.sb3 import build_model, check_sb3_hyperparameters, load_model, sb3_algorithm

        self.cfg = cfg
        algo = sb3_algorithm(cfg.agent)
        hyperparameters = check_sb3_hyperparameters(algo, cfg.hyperparameters)
        if algo.__name__ == "PPO" and is_imitation_env(cfg.env):
            hyperparameters = {**DEEPMIMIC_PPO, **hyperparameters}  # --set still overrides
        if cfg.timesteps is None:
            raise ConfigError(f"agent {cfg.agent!r} needs timesteps")
        if cfg.episodes is not None:
            raise ConfigError(f"agent {cfg.agent!r} counts timesteps, not episodes")
        self.venv = make_sb3_vec_env(cfg, cfg.seed, cfg.n_envs)
        try:
            if cfg.normalize:
                if checkpoint is not None:
                    self.venv = load_vec_normalize(checkpoint.with_name(STATS_FILE), self.venv)
                else:
                    gamma = hyperparameters.get(
                        "gamma", inspect.signature(algo.__init__).parameters["gamma"].default)
                    self.venv = VecNormalize(self.venv, gamma=gamma)
            if checkpoint is not None:
                self.sb3 = load_model(algo, checkpoint, self.venv, cfg.device, hyperparameters)
            else:
                self.sb3 = build_model(algo, self.venv, hyperparameters, cfg.seed, cfg.device)
        except BaseException:
            self.venv.close()
            raise
        set_torch_threads(cfg.threads)
        self.agent_class = f"stable_baselines3.{algo.__name__}"
        self.hyperparameters = hyperparameters

    @property
    def model(self):
        return self.sb3

    @property
    def normalize_obs(self):
        return self.venv.normalize_obs if self.cfg.normalize else None

    @property
    def progress(self) -> dict[str, int]:
        return {"timesteps": self.sb3.num_timesteps}

    def set_logger(self, logger) -> None:
        from stable_baselines3.common.logger import Logger as Sb3Logger

        from mimicgym.runs.callbacks import LoggerBridge

        self.sb3.set_logger(Sb3Logger(None, [LoggerBridge(logger)]))

    def learn(self, budget: dict[str, int], callbacks: list, resumed: bool) -> None:
        from mimicgym.runs.callbacks import ProgressBarCallback, StopOnInterrupt
        from mimicgym.utils.signals import interrupt_requests

        with interrupt_requests() as interrupted:
            extra = [ProgressBarCallback(budget["timesteps"])] if self.cfg.progress_bar else []
            self.sb3.learn(budget["timesteps"], callback=[*callbacks, *extra, StopOnInterrupt(interrupted)],
                           reset_num_timesteps=not resumed)
        if interrupted:
            raise KeyboardInterrupt(f"training interrupted at step {self.sb3.num_timesteps}")

    def save(self, run_dir: Path) -> Path:
        from mimicgym.runs.sb3 import save_model_file

        buffer = io.BytesIO()
        self.sb3.save(buffer)
        save_model_file(run_dir / self.model_file, buffer.getvalue())
        if self.cfg.normalize:
            save_vec_normalize(self.venv, run_dir / STATS_FILE)
        return run_dir / self.model_file

    def close(self) -> None:
        self.venv.close()


def make_learner(cfg: RunConfig, checkpoint: Path | None = None):
    if cfg.is_rllib:  # RLlib (the rllib extra) is imported only for rllib: agents
        from mimicgym.runs.rllib import RllibLearner

        return RllibLearner(cfg, checkpoint)
    return (Sb3Learner if cfg.is_sb3 else AgentLearner)(cfg, checkpoint)
