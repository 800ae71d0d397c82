"""``EpisodicAgent``: the shared loop of the tabular agents that learn from episodes of
experience (Monte Carlo, TD(0), SARSA, Expected SARSA, Q-learning)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mimicgym.agents.base import TabularAgent
from mimicgym.agents.callbacks import MaybeCallback
from mimicgym.errors import ConfigError

if TYPE_CHECKING:
    from stable_baselines3.common.callbacks import BaseCallback


class EpisodicAgent(TabularAgent):
    """A tabular agent that learns from episodes of experience (Monte Carlo, TD).

    Subclasses implement ``_run_episode(max_steps, callback) -> stopped``: play one episode
    (at most ``max_steps`` steps), learning as they go, counting each step and calling
    ``_end_step`` after the last one or whenever there is a callback;
    they may record their own metrics in ``_record_train_metrics``. The env is reset with a
    seed derived from the agent's seed on its first reset, so one seed fixes the whole run.
    Their config has a ``log_interval`` (episodes between two logger dumps).
    """

    budget_units = ("timesteps", "episodes")

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
                  done: bool, info: dict, episode_return: float, length: int) -> bool:
        """After a step that ended an episode or has a callback to call (loops test that
        first and count ``num_timesteps`` themselves: the common step costs nothing more):
        count the episode, then call the callback. False when the callback asks to stop."""
        if done:
            self._finish_episode(episode_return, length)
        if callback is None:
            return True
        return self._step_callback(callback, new_obs=np.array([obs]), rewards=np.array([reward]),
                                   dones=np.array([done]), infos=[info], actions=np.array([action]))

    def learn(self, total_timesteps: int | None = None, *, total_episodes: int | None = None,
              callback: MaybeCallback = None, log_interval: int | None = None,
              progress_bar: bool = False, reset_num_timesteps: bool = True) -> "EpisodicAgent":
        """Run episodes until ``total_timesteps`` more steps or ``total_episodes`` more episodes.

        An episode cut by the step budget is not counted as finished and not logged. With
        only ``total_episodes``, episodes must end: use an env with a time limit (gym.make
        adds the registered one). ``log_interval`` defaults to the config's.
        """
        if total_timesteps is None and total_episodes is None:
            raise ConfigError("learn() needs total_timesteps or total_episodes")
        if log_interval is None:
            log_interval = self.config.log_interval
        with self._learning(total_timesteps, callback, progress_bar, reset_num_timesteps,
                            log_interval, total_episodes) as callback:
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
