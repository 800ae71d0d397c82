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


def check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def check_policy(policy, shape: tuple[int, int]) -> np.ndarray:
    """``policy`` as a float64 (S, A) array of action probabilities, or a clear error."""
    array = np.array(policy, dtype=np.float64)
    if array.shape != tuple(shape):
        raise ValueError(f"policy must have shape {tuple(shape)} (state x action probabilities), got {array.shape}")
    bad = (array < 0).any(1) | ~np.isclose(array.sum(1), 1.0, atol=1e-9)
    if bad.any():
        s = int(np.argmax(bad))
        raise ValueError(f"policy[{s}] is not a distribution over actions: {array[s]}")
    return array


def epsilon_greedy_probabilities(q_values: np.ndarray, epsilon: float) -> np.ndarray:
    """(S, A) epsilon-greedy policy of ``q_values`` (S, A), the greedy mass shared by tied maxima."""
    best = q_values == q_values.max(axis=1, keepdims=True)
    return epsilon / q_values.shape[1] + (1.0 - epsilon) * best / best.sum(axis=1, keepdims=True)


class Agent:
    """Base of every agent. Subclasses set ``Config`` and implement ``learn``/``predict``."""

    Config: ClassVar[type]
    vectorized: ClassVar[bool] = False  # True: the agent steps a gymnasium VectorEnv

    def __init__(self, env: gym.Env | str | None, *, seed: int = 0, **hyperparameters: Any):
        known = {f.name for f in dataclasses.fields(self.Config)}
        unknown = sorted(set(hyperparameters) - known)
        if unknown:
            raise ValueError(f"{type(self).__name__} has no hyperparameter {', '.join(map(repr, unknown))}; "
                             f"its hyperparameters are {', '.join(sorted(known))}")
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

    # --- acting: shared by every tabular agent -------------------------------------------

    def greedy_actions(self) -> np.ndarray:
        """(S,) action each state takes under ``predict(deterministic=True)``: first maximum."""
        return np.argmax(self.q_values, axis=1)

    def action_probabilities(self) -> np.ndarray:
        """(S, A) probabilities ``predict(deterministic=False)`` samples from."""
        probs = np.zeros((self.n_states, self.n_actions))
        probs[np.arange(self.n_states), self.greedy_actions()] = 1.0
        return probs

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        """Actions for one state index or an array of them (stable-baselines3's signature)."""
        obs = np.asarray(observation)
        if obs.dtype.kind == "f" and np.array_equal(obs, np.round(obs)):
            obs = obs.astype(np.int64)
        if obs.dtype.kind not in "iu" or ((obs < 0) | (obs >= self.n_states)).any():
            raise ValueError(
                f"{type(self).__name__}.predict expects state indices in [0, {self.n_states}), "
                f"got {observation!r}"
            )
        if deterministic:
            actions = self.greedy_actions()[obs]
        else:
            cumulative = np.cumsum(self.action_probabilities()[obs], axis=-1)  # (..., A)
            u = self.rng.random(obs.shape + (1,))
            actions = np.minimum((cumulative <= u).sum(-1), self.n_actions - 1)
        if obs.ndim == 0:
            return int(actions), state
        return actions.astype(np.int64), state


class EpisodicAgent(TabularAgent):
    """A tabular agent that learns from episodes of experience (Monte Carlo, TD).

    Subclasses implement ``_run_episode(max_steps) -> (return, length, finished)`` and may
    record their own metrics in ``_record_train_metrics``. The env is reset with a seed
    derived from the agent's seed on its first reset, so one seed fixes the whole run.
    Their config must have a ``log_interval`` (episodes between two logger dumps).
    """

    def __init__(self, env, *, seed: int = 0, **hyperparameters):
        super().__init__(env, seed=seed, **hyperparameters)
        self._env_seeded = False

    def _reset_env(self, options: dict | None = None) -> int:
        if self._env_seeded:
            obs, _ = self.env.reset(options=options)
        else:
            # An independent stream: the env must not replay the agent's own random numbers.
            env_seed = int(np.random.SeedSequence(self.seed, spawn_key=(1,)).generate_state(1)[0])
            obs, _ = self.env.reset(seed=env_seed, options=options)
            self._env_seeded = True
        return int(obs)

    def _epsilon_greedy(self, state: int, epsilon: float) -> int:
        """An action from ``q_values[state]``: uniform w.p. epsilon, else greedy with ties
        broken uniformly at random (Python scalars: cheaper than numpy for a few actions)."""
        rng = self.rng
        if rng.random() < epsilon:
            return int(rng.random() * self.n_actions)
        row = self.q_values[state].tolist()
        best = max(row)
        if row.count(best) == 1:
            return row.index(best)
        ties = [a for a, q in enumerate(row) if q == best]
        return ties[int(rng.random() * len(ties))]

    def _check_finite(self) -> None:
        """Stop at the first episode that leaves a NaN or inf in a learned table."""
        for name in self._arrays:
            table = getattr(self, name)
            if table.dtype.kind == "f" and not np.isfinite(table).all():
                where = tuple(int(i) for i in np.argwhere(~np.isfinite(table))[0])
                raise FloatingPointError(
                    f"{type(self).__name__}: {name}{list(where)} became {table[where]} in episode "
                    f"{self.num_episodes} (step {self.num_timesteps}); check the rewards and hyperparameters"
                )

    def _run_episode(self, max_steps: float) -> tuple[float, int, bool]:
        raise NotImplementedError

    def _record_train_metrics(self) -> None:
        """Record ``rollout/exploration_rate``, ``train/learning_rate``... before a dump."""

    def learn(self, total_timesteps: int | None = None, total_episodes: int | None = None,
              callback=None, progress_bar: bool = False) -> "EpisodicAgent":
        """Run episodes until ``total_timesteps`` more steps or ``total_episodes`` more episodes.

        ``callback(agent)`` runs after each finished episode; returning ``False`` stops.
        An episode cut by the step budget is not counted as finished and not logged. With
        only ``total_episodes``, episodes must end: use an env with a time limit (gym.make
        adds the registered one).
        """
        if total_timesteps is None and total_episodes is None:
            raise ValueError("learn() needs total_timesteps or total_episodes")
        for name, value in (("total_timesteps", total_timesteps), ("total_episodes", total_episodes)):
            if value is not None:
                check_positive_int(name, value)
        from tqdm.auto import tqdm

        max_steps = float("inf") if total_timesteps is None else int(total_timesteps)
        max_episodes = float("inf") if total_episodes is None else int(total_episodes)
        bar = tqdm(total=total_episodes if total_timesteps is None else total_timesteps,
                   disable=not progress_bar, unit="ep" if total_timesteps is None else "step")
        steps = episodes = 0
        try:
            while steps < max_steps and episodes < max_episodes:
                episode_return, length, finished = self._run_episode(max_steps - steps)
                steps += length
                self.num_timesteps += length
                bar.update(length if total_timesteps is not None else int(finished))
                self._check_finite()
                if not finished:
                    break
                episodes += 1
                self.num_episodes += 1
                self.episode_stats.add(episode_return, length)
                if self.num_episodes % self.config.log_interval == 0:
                    self.episode_stats.record(self.logger, self.num_timesteps)
                    self._record_train_metrics()
                    self.logger.dump(self.num_timesteps)
                if callback is not None and callback(self) is False:
                    break
        finally:
            bar.close()
        return self
