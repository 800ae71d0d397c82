"""The agent API every algorithm shares: construct, ``learn``, ``predict``, ``save``, ``load``.

``predict`` has stable-baselines3's signature, so ``evaluate_policy`` accepts our agents.
Hyperparameters live in one dataclass per agent (``Agent.Config``) whose ``__post_init__``
validates them with errors that name the field and the value.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

import mimicgym
from mimicgym.agents.logging import EpisodeStats, Logger
from mimicgym.utils.io import atomic_save_npz
from mimicgym.utils.seeding import make_rng


def make_env(env: gym.Env | str, **kwargs) -> gym.Env:
    """An env instance from an instance or a registered id."""
    if isinstance(env, str):
        return gym.make(env, **kwargs)
    if kwargs:
        raise ValueError(f"env keyword arguments {sorted(kwargs)} need an env id, not an instance")
    return env


def env_id(env: gym.Env | None) -> str | None:
    spec = getattr(env, "spec", None)
    return spec.id if spec is not None else None


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value!r}")


def check_probability(name: str, value: float) -> None:
    if not (0.0 <= value <= 1.0):
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")


class Agent:
    """Base of every agent. Subclasses set ``Config`` and implement ``learn``/``predict``."""

    Config: ClassVar[type]

    def __init__(self, env: gym.Env | str | None, *, seed: int = 0, **hyperparameters: Any):
        self.config = self.Config(**hyperparameters)
        self.env = make_env(env) if env is not None else None
        self.seed = seed
        self.rng = make_rng(seed)
        self.num_timesteps = 0
        self.num_episodes = 0
        self.logger = Logger(None)
        self.episode_stats = EpisodeStats()

    def set_logger(self, logger: Logger) -> None:
        self.logger = logger

    @property
    def hyperparameters(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    def learn(self, *args, **kwargs) -> "Agent":
        raise NotImplementedError

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        raise NotImplementedError

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters.items())
        return f"{type(self).__name__}(env={env_id(self.env)!r}, seed={self.seed}, {params})"


class TabularAgent(Agent):
    """An agent whose whole state is a few numpy arrays (values, Q table, visit counts).

    Subclasses list those attribute names in ``_arrays``; ``save`` writes them with the
    hyperparameters to one ``.npz`` atomically, ``load`` checks every key and shape.
    """

    _arrays: ClassVar[tuple[str, ...]] = ()

    def __init__(self, env, *, seed: int = 0, **hyperparameters):
        super().__init__(env, seed=seed, **hyperparameters)
        obs_space, act_space = self.env.observation_space, self.env.action_space
        if not isinstance(obs_space, gym.spaces.Discrete) or not isinstance(act_space, gym.spaces.Discrete):
            raise TypeError(
                f"{type(self).__name__} needs Discrete observation and action spaces, got "
                f"{obs_space} and {act_space}"
            )
        self.n_states = int(obs_space.n)
        self.n_actions = int(act_space.n)

    def _array_shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: getattr(self, name).shape for name in self._arrays}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        meta = {
            "class": type(self).__name__,
            "mimicgym_version": mimicgym.__version__,
            "env_id": env_id(self.env),
            "seed": self.seed,
            "config": self.hyperparameters,
            "num_timesteps": self.num_timesteps,
            "num_episodes": self.num_episodes,
            "rng_state": self.rng.bit_generator.state,
        }
        arrays = {name: np.asarray(getattr(self, name)) for name in self._arrays}
        atomic_save_npz(path, __meta__=np.array(json.dumps(meta)), **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path, env: gym.Env | str | None = None):
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                contents = {k: data[k] for k in data.files}
        except FileNotFoundError:
            raise
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
            raise ValueError(f"{path}: not a readable mimicgym agent file ({e})") from e
        if "__meta__" not in contents:
            raise ValueError(f"{path}: missing '__meta__' entry; not a mimicgym agent file")
        try:
            meta = json.loads(str(contents.pop("__meta__")))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: corrupt '__meta__' entry ({e})") from e
        if meta.get("class") != cls.__name__:
            raise ValueError(f"{path} holds a {meta.get('class')!r} agent, not {cls.__name__}")
        env = env if env is not None else meta.get("env_id")
        if env is None:
            raise ValueError(f"{path} records no env id; pass env= to load()")
        agent = cls(env, seed=meta["seed"], **meta["config"])
        expected = agent._array_shapes()
        for name, shape in expected.items():
            if name not in contents:
                raise ValueError(f"{path}: missing array {name!r} (expected shape {shape})")
            if contents[name].shape != shape:
                raise ValueError(
                    f"{path}: array {name!r} has shape {contents[name].shape}, expected {shape}"
                )
            if contents[name].dtype.kind == "f" and not np.isfinite(contents[name]).all():
                raise ValueError(f"{path}: array {name!r} holds NaN or inf")
            setattr(agent, name, contents[name].astype(getattr(agent, name).dtype))
        agent.num_timesteps = int(meta.get("num_timesteps", 0))
        agent.num_episodes = int(meta.get("num_episodes", 0))
        if "rng_state" in meta:
            agent.rng.bit_generator.state = meta["rng_state"]
        return agent
