"""The agent contract every algorithm shares, stable-baselines3's: ``learn``, ``predict``,
``save``, ``load`` and SB3's callbacks.

``predict`` has SB3's signature, so ``evaluate_policy`` accepts our agents; ``learn`` has
SB3's signature and calls SB3's callbacks where SB3's algorithms do (see
:mod:`mimicgym.agents.callbacks`). Hyperparameters live in one dataclass per agent
(``Agent.Config``) whose ``__post_init__`` validates them with errors (``ConfigError``) that
name the field and the value.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Iterator

import gymnasium as gym
import numpy as np

import mimicgym
from mimicgym.agents.callbacks import MaybeCallback, SingleEnvView, as_callback
from mimicgym.agents.logging import EpisodeStats, Logger
from mimicgym.errors import CheckpointError, ConfigError
from mimicgym.utils.checks import check_positive_int
from mimicgym.utils.io import atomic_save_npz, payload_checksum, verify_checksum
from mimicgym.utils.progress import ProgressBar
from mimicgym.utils.seeding import make_rng
from mimicgym.utils.signals import InterruptFlag, interrupt_requests

if TYPE_CHECKING:
    from stable_baselines3.common.callbacks import BaseCallback


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


def _json_array(value: Any) -> Any:
    """numpy arrays in JSON (the resume state's logs), as lists: floats keep every bit."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class Agent:
    """Base of every agent: stable-baselines3's contract and the set-up every ``learn`` shares.

    Subclasses set ``Config`` and write ``learn`` as their algorithm loop inside
    ``with self._learning(...) as callback:``, which does what SB3's ``_setup_learn`` does
    (budget check, counters, callback, progress bar) plus the Ctrl-C guard; inside the loop
    they call ``_step_callback`` after each env step, ``_finish_episode`` when one ends,
    ``_update_progress`` at natural boundaries, and stop when ``_interrupt`` is set.
    """

    Config: ClassVar[type]
    vectorized: ClassVar[bool] = False  # True: the agent steps a gymnasium VectorEnv
    logs_per_episode: ClassVar[bool] = True  # log_interval counts episodes (else updates)
    budget_units: ClassVar[tuple[str, ...]] = ("timesteps",)  # what learn()'s budget counts
    # predict() refuses NaN/inf observations, naming the first; set False (on the class or an
    # instance) to skip the check where inputs are known finite.
    check_finite_inputs: ClassVar[bool] = True
    uses_device: ClassVar[bool] = False  # the constructor takes device= (torch agents)

    def __init__(self, env: gym.Env | str | None, *, seed: int = 0, **hyperparameters: Any):
        known = {f.name for f in dataclasses.fields(self.Config)}
        unknown = sorted(set(hyperparameters) - known)
        if unknown:
            raise ConfigError(f"{type(self).__name__} has no hyperparameter "
                              f"{', '.join(map(repr, unknown))}; its hyperparameters are "
                              f"{', '.join(sorted(known))}")
        self.config = self.Config(**hyperparameters)
        self.env = make_env(env) if env is not None else None
        self.seed = seed
        self.rng = make_rng(seed)
        self.num_timesteps = 0
        self.num_episodes = 0
        self.logger = Logger(None)
        self.episode_stats = EpisodeStats()
        self._total_timesteps: float = 0
        self._interrupt = InterruptFlag()
        self._bar: ProgressBar | None = None
        self._counts_episodes = False
        self._start_episodes = 0
        self._log_interval = 0
        self._start = (0, 0.0)  # (num_timesteps, perf_counter) when learn started

    def set_logger(self, logger: Logger) -> None:
        self.logger = logger

    def get_env(self):
        """The training env as SB3's callbacks expect it: a vector env with ``num_envs``."""
        if self.env is None or isinstance(self.env, gym.vector.VectorEnv):
            return self.env
        return SingleEnvView(self.env)

    def get_vec_normalize_env(self) -> None:
        """SB3's hook for ``VecNormalize``; ours normalise inside the network, if at all."""
        return None

    @property
    def hyperparameters(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    def learn(self, total_timesteps: int | None = None, *, callback: MaybeCallback = None,
              log_interval: int | None = None, progress_bar: bool = False,
              reset_num_timesteps: bool = True) -> "Agent":
        raise NotImplementedError

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        raise NotImplementedError

    # ----------------------------------------------------------------- learn's scaffolding
    @contextlib.contextmanager
    def _learning(self, total_timesteps: int | None, callback: MaybeCallback, progress_bar: bool,
                  reset_num_timesteps: bool, log_interval: int | None,
                  total_episodes: int | None = None) -> Iterator[BaseCallback | None]:
        """Set-up and teardown around an algorithm loop; yields the callback (None if none).

        ``total_timesteps`` (and ``total_episodes``) count from the current counters, which
        ``reset_num_timesteps`` first sets to zero (SB3's meaning: a fresh run; schedules
        restart). When the budget is spent, what was logged since the last dump is dumped; a
        run stopped before (by a callback or Ctrl-C) keeps it pending, for the next dump of the
        continued run (checkpoints carry it), so that a stop and resume logs what one run would.
        After a Ctrl-C the loop has stopped at a consistent point, ``_save_on_interrupt`` runs
        and ``KeyboardInterrupt`` is raised for the caller to save and exit.
        """
        for name, value in (("total_timesteps", total_timesteps), ("total_episodes", total_episodes)):
            if value is not None:
                check_positive_int(name, value)
        if reset_num_timesteps:
            self.num_timesteps, self.num_episodes = 0, 0
            self.episode_stats = EpisodeStats()
        self._total_timesteps = (float("inf") if total_timesteps is None
                                 else self.num_timesteps + int(total_timesteps))
        self._total_episodes = (float("inf") if total_episodes is None
                                else self.num_episodes + int(total_episodes))
        self._log_interval = 0 if log_interval is None else int(log_interval)  # 0: no periodic dumps
        self._start = (self.num_timesteps, time.perf_counter())
        self._start_episodes = self.num_episodes
        self._counts_episodes = total_timesteps is None and total_episodes is not None
        self._bar = ProgressBar(total_episodes if self._counts_episodes else total_timesteps,
                                unit="ep" if self._counts_episodes else "step", enabled=progress_bar)
        callback = as_callback(callback)
        if callback is not None:
            callback.init_callback(self)
        with interrupt_requests() as self._interrupt, self._numerics():
            if callback is not None:
                callback.on_training_start(locals(), globals())
            try:
                yield callback
                spent = (self.num_timesteps >= self._total_timesteps
                         or self.num_episodes >= self._total_episodes)
                if spent and self._log_interval and self.logger.has_pending:
                    self._dump_logs()  # runs shorter than one interval log too
            finally:
                self._update_progress()
                self._bar.close()
                if callback is not None:
                    callback.on_training_end()
        if self._interrupt:
            where = self._save_on_interrupt()
            self._interrupt = InterruptFlag()
            raise KeyboardInterrupt(f"training interrupted at step {self.num_timesteps}{where}")

    def _numerics(self) -> contextlib.AbstractContextManager:
        """Numerical settings for the duration of ``learn`` (torch agents flush subnormals)."""
        return contextlib.nullcontext()

    def _save_on_interrupt(self) -> str:
        """Hook run after a Ctrl-C stop; returns text for the message (e.g. where it saved)."""
        return ""

    def _step_callback(self, callback: BaseCallback, **step_locals: Any) -> bool:
        """Hand one env step's locals to ``callback``; False when it asks to stop."""
        callback.update_locals({"self": self, **step_locals})
        return bool(callback.on_step())

    def _finish_episode(self, episode_return: float, length: int) -> None:
        """Count a finished episode; dump the logs every ``log_interval`` episodes for agents
        that log per episode (``logs_per_episode``)."""
        self.num_episodes += 1
        self.episode_stats.add(episode_return, length)
        if self.logs_per_episode and self._log_interval and self.num_episodes % self._log_interval == 0:
            self._dump_logs()

    def _update_progress(self) -> None:
        if self._bar is not None:
            returns = self.episode_stats.returns
            done = (self.num_episodes - self._start_episodes if self._counts_episodes
                    else self.num_timesteps - self._start[0])
            self._bar.update(done, returns[-1] if returns else None)

    def _record_train_metrics(self) -> None:
        """Record the agent's own keys (``train/...``, ``rollout/exploration_rate``) before a dump."""

    def _dump_logs(self) -> None:
        """SB3's ``rollout/`` keys (means over the last 100 episodes), ``time/`` keys and the
        agent's own, then one dump at ``num_timesteps``."""
        stats = self.episode_stats
        if stats.returns:
            self.logger.record("rollout/ep_rew_mean", float(np.mean(stats.returns[-100:])))
            self.logger.record("rollout/ep_len_mean", float(np.mean(stats.lengths[-100:])))
        start_steps, start_time = self._start
        elapsed = max(time.perf_counter() - start_time, 1e-9)
        self.logger.record("time/fps", (self.num_timesteps - start_steps) / elapsed)
        self.logger.record("time/episodes", self.num_episodes)
        self._record_train_metrics()
        self.logger.dump(self.num_timesteps)

    # ----------------------------------------------------------------- saving
    def _metadata(self) -> dict[str, Any]:
        """What every saved agent records about itself, beside its arrays or tensors."""
        return {
            "class": type(self).__name__,
            "mimicgym_version": mimicgym.__version__,
            "env_id": env_id(self.env),
            "seed": self.seed,
            "config": self.hyperparameters,
            "num_timesteps": self.num_timesteps,
            "num_episodes": self.num_episodes,
            "rng_state": self.rng.bit_generator.state,
        }

    def _resume_state(self) -> dict[str, Any]:
        """What a continued run needs beyond the learned tables or weights and the counters: the
        finished episodes (``rollout/`` means) and the log with its pending values. (Where the
        env and the unfinished episode stand is each family's ``_extra_state``.)"""
        return {"episode_returns": np.array(self.episode_stats.returns, dtype=np.float64),
                "episode_lengths": np.array(self.episode_stats.lengths, dtype=np.int64),
                "logger": self.logger.state_dict()}

    def _load_resume_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`_resume_state`; entries a file of an older version lacks stay fresh."""
        self.episode_stats = EpisodeStats()
        self.episode_stats.returns = np.asarray(state.get("episode_returns", []), dtype=np.float64).tolist()
        self.episode_stats.lengths = np.asarray(state.get("episode_lengths", []), dtype=np.int64).tolist()
        if "logger" in state:
            self.logger = Logger(None)
            self.logger.load_state_dict(state["logger"])

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters.items())
        return f"{type(self).__name__}(env={env_id(self.env)!r}, seed={self.seed}, {params})"


class TabularAgent(Agent):
    """An agent whose whole state is a few numpy arrays (values, Q table, visit counts).

    Subclasses list those attribute names in ``_arrays``; ``save`` writes them to one ``.npz``
    atomically, with a JSON ``__meta__`` entry (hyperparameters, counters, rng, the resume state
    and the subclass's ``_extra_state``) and a ``__checksum__`` of all other entries
    (:func:`~mimicgym.utils.io.payload_checksum`); ``load`` checks the checksum, every key and
    shape. Files written before checksums load unverified.
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

    def _extra_state(self) -> dict[str, Any]:
        """JSON state beyond the arrays that a continued run needs (subclasses: env, episode)."""
        return {}

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        pass

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        meta = {**self._metadata(), "resume": self._resume_state(), "extra": self._extra_state()}
        entries = {"__meta__": np.array(json.dumps(meta, default=_json_array)),
                   **{name: np.asarray(getattr(self, name)) for name in self._arrays}}
        checksum = payload_checksum({k: entries[k] for k in sorted(entries)})
        atomic_save_npz(path, __checksum__=np.array(checksum), **entries)
        return path

    @classmethod
    def load(cls, path: str | Path, env: gym.Env | str | None = None):
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                contents = {k: data[k] for k in data.files}
        except FileNotFoundError:
            raise
        except Exception as e:  # a corrupt zip or .npy header raises all kinds (BadZipFile,
            # zlib.error, NotImplementedError, tokenize errors...). The zip's own CRC-32 catches
            # most flipped bits in compressed entries; the checksum below, the rest.
            what = "checksum (CRC-32) mismatch: corrupt" if "CRC" in str(e) else "not a readable"
            raise CheckpointError(f"{path}: {what} mimicgym agent file ({e})") from e
        if "__meta__" not in contents:
            raise CheckpointError(f"{path}: missing '__meta__' entry; not a mimicgym agent file")
        if "__checksum__" in contents:
            recorded = str(contents.pop("__checksum__"))
            verify_checksum(path, recorded, {k: contents[k] for k in sorted(contents)})
        try:
            meta = json.loads(str(contents.pop("__meta__")))
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{path}: corrupt '__meta__' entry ({e})") from e
        if meta.get("class") != cls.__name__:
            raise CheckpointError(f"{path} holds a {meta.get('class')!r} agent, not {cls.__name__}")
        env = env if env is not None else meta.get("env_id")
        if env is None:
            raise CheckpointError(f"{path} records no env id; pass env= to load()")
        agent = cls(env, seed=meta["seed"], **meta["config"])
        expected = agent._array_shapes()
        for name, shape in expected.items():
            if name not in contents:
                raise CheckpointError(f"{path}: missing array {name!r} (expected shape {shape})")
            if contents[name].shape != shape:
                raise CheckpointError(
                    f"{path}: array {name!r} has shape {contents[name].shape}, expected {shape}"
                )
            if contents[name].dtype.kind == "f" and not np.isfinite(contents[name]).all():
                raise CheckpointError(f"{path}: array {name!r} holds NaN or inf")
            setattr(agent, name, contents[name].astype(getattr(agent, name).dtype))
        agent.num_timesteps = int(meta.get("num_timesteps", 0))
        agent.num_episodes = int(meta.get("num_episodes", 0))
        if "rng_state" in meta:
            agent.rng.bit_generator.state = meta["rng_state"]
        agent._load_resume_state(meta.get("resume", {}))
        agent._load_extra_state(meta.get("extra", {}))
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
