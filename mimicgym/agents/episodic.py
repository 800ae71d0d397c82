"""``EpisodicAgent``: the shared loop of the tabular agents that learn from episodes of
experience (Monte Carlo, TD(0), SARSA, Expected SARSA, Q-learning)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from mimicgym.agents.base import TabularAgent
from mimicgym.agents.callbacks import MaybeCallback
from mimicgym.agents.env_state import EpisodeReplay, env_rng_state, not_restored, set_env_rng_state
from mimicgym.errors import ConfigError

if TYPE_CHECKING:
    from stable_baselines3.common.callbacks import BaseCallback


class Carry(NamedTuple):
    """Where an unfinished episode stands: what the episode loop needs to go on with it."""

    state: int  # the state the next action is taken in
    action: int | None  # that action, if already drawn (SARSA-style loops), else None
    episode_return: float
    length: int
    trajectory: tuple[list, list] | None = None  # Monte Carlo's (states, rewards) so far


class EpisodicAgent(TabularAgent):
    """A tabular agent that learns from episodes of experience (Monte Carlo, TD).

    Subclasses implement ``_run_episode(max_steps, callback) -> stopped``: play one episode
    (at most ``max_steps`` steps), learning as they go, counting each step and calling
    ``_end_step`` after the last one or whenever there is a callback;
    they may record their own metrics in ``_record_train_metrics``. The env is reset with a
    seed derived from the agent's seed on its first reset, so one seed fixes the whole run.
    Their config has a ``log_interval`` (episodes between two logger dumps).

    An episode a stop or the step budget leaves unfinished is kept (``_carry``, taken up by the
    next ``_run_episode``), and with it how the env got there (``_replay``: the actions since
    the episode's reset); a checkpoint holds both and the env's generator state, so a loaded
    agent's env is replayed to the same point and the run continues as if never stopped.
    """

    budget_units = ("timesteps", "episodes")

    def __init__(self, env, *, seed: int = 0, **hyperparameters):
        super().__init__(env, seed=seed, **hyperparameters)
        self._env_seeded = False
        self._carry: Carry | None = None
        self._replay = EpisodeReplay()
        self._loaded_env_state: dict[str, Any] | None = None  # from load(), until learn() replays it

    def _reset_env(self, options: dict | None = None) -> int:
        seed = None
        if not self._env_seeded:
            # An independent stream: the env must not replay the agent's own random numbers.
            seed = int(np.random.SeedSequence(self.seed, spawn_key=(1,)).generate_state(1)[0])
            self._env_seeded = True
        obs, _ = self._replay.reset(self.env, seed=seed, options=options)
        return int(obs)

    def _take_carry(self) -> Carry | None:
        carry, self._carry = self._carry, None
        return carry

    # ----------------------------------------------------------------- checkpoint state
    def _extra_state(self) -> dict[str, Any]:
        if self._loaded_env_state is not None:  # loaded and not yet replayed: still the truth
            return self._loaded_env_state
        if not self._env_seeded:
            return {"env_seeded": False}
        carry = self._carry
        if carry is not None and carry.trajectory is not None:
            carry = carry._replace(trajectory=tuple(list(x) for x in carry.trajectory))
        return {"env_seeded": True, "env_rng": env_rng_state(self.env),
                "carry": None if carry is None else list(carry),
                "replay": None if carry is None else self._replay.state_dict(self.env)}

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        self._loaded_env_state = extra if extra.get("env_seeded") else None

    def _restore_env(self, continue_episode: bool) -> None:
        """Bring the env to the checkpoint's point: replay its unfinished episode (if the run
        continues it), else set the env's generator where the checkpoint left it."""
        state, self._loaded_env_state = self._loaded_env_state, None
        self._env_seeded = True
        if continue_episode and state["carry"] is not None:
            carry = Carry(*state["carry"])
            obs = self._replay.restore(self.env, state["replay"])
            if obs is not None and int(obs) == carry.state:
                self._carry = carry
                return
            not_restored("unfinished episode")
        set_env_rng_state(self.env, state["env_rng"])

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

    def _check_finite(self, episode: int) -> None:
        """Stop at the first episode that leaves a NaN or inf in a learned table."""
        for name in self._arrays:
            table = getattr(self, name)
            if table.dtype.kind == "f" and not np.isfinite(table).all():
                where = tuple(int(i) for i in np.argwhere(~np.isfinite(table))[0])
                raise FloatingPointError(
                    f"{type(self).__name__}: {name}{list(where)} became {table[where]} in episode "
                    f"{episode} (step {self.num_timesteps}); check the rewards and hyperparameters"
                )

    def _run_episode(self, max_steps: float, callback: BaseCallback | None) -> bool:
        raise NotImplementedError

    def _end_step(self, callback: BaseCallback | None, action: int, obs, reward: float,
                  done: bool, info: dict, carry: Carry) -> bool:
        """After a step that ended an episode or has a callback to call (loops test that
        first and count ``num_timesteps`` themselves: the common step costs nothing more):
        count the episode, or keep where it stands (``carry``) for a save from the callback or
        a stop; then call the callback. False when the callback asks to stop."""
        if done:
            self._finish_episode(carry.episode_return, carry.length)
            self._carry = None
        else:
            self._carry = carry
        if callback is None:
            return True
        return self._step_callback(callback, new_obs=np.array([obs]), rewards=np.array([reward]),
                                   dones=np.array([done]), infos=[info], actions=np.array([action]))

    def learn(self, total_timesteps: int | None = None, *, total_episodes: int | None = None,
              callback: MaybeCallback = None, log_interval: int | None = None,
              progress_bar: bool = False, reset_num_timesteps: bool = True) -> "EpisodicAgent":
        """Run episodes until ``total_timesteps`` more steps or ``total_episodes`` more episodes.

        An episode cut by the step budget is not counted as finished and not logged; with
        ``reset_num_timesteps=False`` the next ``learn`` continues it. With only
        ``total_episodes``, episodes must end: use an env with a time limit (gym.make adds the
        registered one). ``log_interval`` defaults to the config's.
        """
        if total_timesteps is None and total_episodes is None:
            raise ConfigError("learn() needs total_timesteps or total_episodes")
        if log_interval is None:
            log_interval = self.config.log_interval
        with self._learning(total_timesteps, callback, progress_bar, reset_num_timesteps,
                            log_interval, total_episodes) as callback:
            if reset_num_timesteps:
                self._carry = None  # a fresh run starts a new episode
            if self._loaded_env_state is not None:
                self._restore_env(continue_episode=not reset_num_timesteps)
            while (self.num_timesteps < self._total_timesteps
                   and self.num_episodes < self._total_episodes and not self._interrupt):
                if callback is not None:
                    callback.on_rollout_start()
                episode = self.num_episodes
                stopped = self._run_episode(self._total_timesteps - self.num_timesteps, callback)
                self._check_finite(episode)
                if callback is not None:
                    callback.on_rollout_end()
                self._update_progress()
                if stopped:
                    break
        return self
