"""``RunConfig``: everything one training run is started from, checked before anything runs.

A run is an env (any Gymnasium id, with ``gym.make`` keywords and an optional observation
wrapper) and an agent (ours by name, ``q_learning``, ``dqn``..., stable-baselines3's as
``sb3:PPO``, RLlib's as ``rllib:PPO``) with hyperparameters, a budget, a seed and the run
layer's own settings (evaluation, checkpoints, threads). ``config.json`` in the run directory
records it whole, so ``mimicgym train --resume RUN`` needs no option repeated.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mimicgym.errors import ConfigError
from mimicgym.runs.options import check_range, coerce_fields

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SB3_PREFIX = "sb3:"
RLLIB_PREFIX = "rllib:"  # RLlib's algorithms by registered name (mimicgym.runs.rllib)
OBSERVATION_WRAPPERS = ("onehot", "image")
ENGINES = ("local", "ray")
KEYWORD_TABLES = ("hyperparameters", "env_kwargs", "eval_env_kwargs")  # dict options: TOML tables


@dataclass
class RunConfig:
    env: str = "mimicgym/CliffWalking-v0"  # Gymnasium id
    agent: str = "q_learning"  # ours (see `mimicgym list`), sb3:ALGO or rllib:ALGO
    timesteps: int | None = None  # total env steps of the run (sample-based agents)
    episodes: int | None = None  # tabular sample-based agents may count episodes instead
    seed: int = 0  # seeds the agent and, through it, the envs
    logdir: str = "runs"  # parent of the run directory
    run_name: str | None = None  # default: AGENT_ENV_sSEED, with _2, _3... when taken
    env_kwargs: dict[str, Any] = field(default_factory=dict)  # gym.make keywords
    # gym.make keywords of the evaluation envs, over env_kwargs: e.g. the paper's reward for a
    # policy trained on a shaped one, so that evaluations report the figure runs are compared by
    eval_env_kwargs: dict[str, Any] = field(default_factory=dict)
    hyperparameters: dict[str, Any] = field(default_factory=dict)  # the agent's (checked)
    wrapper: str | None = None  # observation wrapper for deep agents: onehot | image
    n_envs: int = 1  # parallel envs for stable-baselines3 algorithms
    subproc: bool = False  # SubprocVecEnv instead of DummyVecEnv (sb3)
    normalize: bool = False  # sb3: VecNormalize; a2c, reinforce: statistics in the network
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 1  # torch threads; small networks train fastest on one
    eval_episodes: int = 20  # deterministic episodes after training (0: none)
    eval_max_steps: int = 10_000  # an evaluation episode is cut after this many steps
    eval_freq: int = 0  # steps between evaluations during training (0: only at the end)
    video_every: int = 0  # imitation envs: every n-th evaluation writes an MP4 (0: never)
    checkpoint_freq: int = 0  # steps between checkpoints of the run (0: only at the end)
    progress_bar: bool = True  # a progress bar with the latest return
    engine: str = "local"  # ppo, a2c, rllib:*: local, or ray (rollout workers in Ray actors)
    workers: int = 1  # engine ray: Ray actors stepping the envs (they split n_envs); rllib: its env runners
    address: str | None = None  # engine ray: a cluster (auto, ray://HOST:10001, HOST:PORT); None: local Ray

    def __post_init__(self) -> None:
        for name, value in coerce_fields(RunConfig, dataclasses.asdict(self)).items():
            setattr(self, name, value)  # types checked (ints widened to floats where due)
        if self.wrapper is not None and self.wrapper not in OBSERVATION_WRAPPERS:
            raise ConfigError(f"wrapper must be one of {OBSERVATION_WRAPPERS}, got {self.wrapper!r}")
        for name in ("timesteps", "episodes"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{name} must be positive, got {value!r}")
        for name in ("n_envs", "threads", "eval_max_steps"):
            check_range(name, getattr(self, name), 1, float("inf"))
        for name in ("eval_episodes", "eval_freq", "video_every", "checkpoint_freq"):
            check_range(name, getattr(self, name), 0, float("inf"))
        if self.engine not in ENGINES:
            raise ConfigError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        check_range("workers", self.workers, 1, float("inf"))
        if self.engine == "local" and (self.workers != 1 or self.address is not None):
            given = f"workers={self.workers}" if self.workers != 1 else f"address={self.address!r}"
            raise ConfigError(f"{given} needs engine 'ray' (--engine ray)")
        if self.engine == "ray" and self.is_sb3:
            raise ConfigError(f"engine 'ray' runs the rollouts of our on-policy agents (ppo, a2c) and "
                              f"RLlib's, not {self.agent!r}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")

    @property
    def is_sb3(self) -> bool:
        return self.agent.startswith(SB3_PREFIX)

    @property
    def is_rllib(self) -> bool:
        return self.agent.startswith(RLLIB_PREFIX)

    def default_run_name(self) -> str:
        return f"{self.agent.replace(':', '_')}_{self.env.split('/')[-1]}_s{self.seed}"


def check_workers_divide(workers: int, n_envs: int, holder: str = "worker") -> None:
    """``--workers`` must split the run's envs evenly: each worker (or RLlib env runner) holds as many."""
    if n_envs % workers:
        raise ConfigError(f"--workers {workers} must divide the run's n_envs, {n_envs}: each {holder} "
                          f"holds the same number of envs")


def load_toml(path: str | Path) -> dict[str, Any]:
    """A TOML file's table, or a ``ConfigError`` naming the file and where it fails."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a text file ({e})") from None


def config_from_values(values: dict[str, Any], source: str = "") -> RunConfig:
    """A ``RunConfig`` from a dict of options (a TOML file's, or flags); unknown keys and
    bad values raise a ``ConfigError`` that names ``source`` (e.g. the file)."""
    try:
        return RunConfig(**coerce_fields(RunConfig, values, "option"))
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}" if source else str(e)) from None
