"""One-step temporal-difference learning (Sutton & Barto, ch. 6): TD(0), SARSA, Expected
SARSA and Q-learning.

Each agent steps its env through the Gymnasium API and updates one table entry per step:
``X <- X + alpha * (target - X)``. The control methods act epsilon-greedily on their Q
table; greedy ties are broken uniformly at random with the agent's rng during learning
(first maximum only in a deterministic ``predict``). A time-limit truncation is not a
terminal state, so the target still bootstraps from the next state there.

The inner loop works on Python scalars (``row.tolist()``, ``rng.random()``) because for a
handful of actions they are several times cheaper than numpy's per-call overhead.
Step sizes and epsilon follow :mod:`mimicgym.agents.schedules` (indexed by episode).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

import numpy as np

from mimicgym.agents.base import check_policy, epsilon_greedy_probabilities
from mimicgym.agents.episodic import Carry, EpisodicAgent
from mimicgym.agents.schedules import StepSize, make_schedule, schedule_spec
from mimicgym.utils.checks import check_positive_int, check_probability


@dataclass
class TDConfig:
    learning_rate: float | str = 0.1  # number, schedule string, or "1/n" per visit count
    gamma: float = 0.99  # discount factor
    log_interval: int = 10  # episodes between logger dumps

    def __post_init__(self) -> None:
        self.learning_rate = schedule_spec(self.learning_rate)
        StepSize(self.learning_rate)  # validates
        check_probability("gamma", self.gamma)
        check_positive_int("log_interval", self.log_interval)


@dataclass
class TDControlConfig(TDConfig):
    learning_rate: float | str = 0.5  # S&B's cliff-walking and windy-gridworld value
    epsilon: float | str = 0.1  # number or schedule string, indexed by episode
    initial_q: float = 0.0  # optimistic initial values encourage exploration

    def __post_init__(self) -> None:
        super().__post_init__()
        self.epsilon = schedule_spec(self.epsilon)
        make_schedule(self.epsilon, "epsilon")
        if not np.isfinite(self.initial_q):
            raise ValueError(f"initial_q must be finite, got {self.initial_q!r}")


class TD0(EpisodicAgent):
    """TD(0) prediction of ``v_pi`` for a fixed ``policy`` (S, A) (default: uniform random).

    ``V(S) <- V(S) + alpha [R + gamma V(S') - V(S)]`` (S&B section 6.1). ``values`` starts at
    ``initial_value`` (S&B's random walk uses 0.5); terminal states stay 0.
    """

    @dataclass
    class Config(TDConfig):
        initial_value: float = 0.0  # V of every non-terminal state before learning

        def __post_init__(self) -> None:
            super().__post_init__()
            if not np.isfinite(self.initial_value):
                raise ValueError(f"initial_value must be finite, got {self.initial_value!r}")

    _arrays = ("values", "policy", "visit_counts")

    def __init__(self, env, policy: np.ndarray | None = None, *, seed: int = 0, **hyperparameters):
        super().__init__(env, seed=seed, **hyperparameters)
        shape = (self.n_states, self.n_actions)
        self.policy = np.full(shape, 1.0 / self.n_actions) if policy is None else check_policy(policy, shape)
        self.values = np.full(self.n_states, float(self.config.initial_value))
        self.visit_counts = np.zeros(self.n_states, dtype=np.int64)
        self._alpha = StepSize(self.config.learning_rate)

    def greedy_actions(self) -> np.ndarray:
        return np.argmax(self.policy, axis=1)

    def action_probabilities(self) -> np.ndarray:
        return self.policy

    def _run_episode(self, max_steps: float, callback) -> bool:
        env, v, counts, rng = self.env, self.values, self.visit_counts, self.rng
        gamma = self.config.gamma
        alpha = self._alpha.current(self.num_episodes, counts)
        inverse_count = self._alpha.inverse_count
        cumulative = np.cumsum(self.policy, axis=1)
        cumulative[:, -1] = 1.0  # rounding must not leave a gap above the last action
        cumulative = cumulative.tolist()
        carry = self._take_carry()
        if carry is None:
            state, episode_return, length = self._reset_env(), 0.0, 0
        else:
            state, _, episode_return, length, _ = carry
        record, end = self._replay.actions.append, length + max_steps
        while length < end:
            action = bisect_right(cumulative[state], rng.random())
            record(action)
            obs, reward, terminated, truncated, info = env.step(action)
            next_state, reward = int(obs), float(reward)
            length += 1
            episode_return += reward
            target = reward if terminated else reward + gamma * v[next_state]
            counts[state] += 1
            if inverse_count:
                alpha = 1.0 / counts[state]
            v[state] += alpha * (target - v[state])
            if terminated:
                v[next_state] = 0.0  # terminal by definition, whatever initial_value said
            done = terminated or truncated
            self.num_timesteps += 1
            if (done or callback is not None) and not self._end_step(
                    callback, action, obs, reward, done, info,
                    Carry(next_state, None, episode_return, length)):
                return True
            if done:
                return False
            state = next_state
        self._carry = Carry(state, None, episode_return, length)  # cut by the step budget
        return False

    def _record_train_metrics(self) -> None:
        self.logger.record("train/learning_rate", self._alpha.current(self.num_episodes, self.visit_counts))


class _TDControl(EpisodicAgent):
    """Shared epsilon-greedy loop; subclasses define ``_update`` (the target) only."""

    Config = TDControlConfig
    _arrays = ("q_values", "visit_counts")

    def __init__(self, env, *, seed: int = 0, **hyperparameters):
        super().__init__(env, seed=seed, **hyperparameters)
        self.q_values = np.full((self.n_states, self.n_actions), float(self.config.initial_q))
        self.visit_counts = np.zeros((self.n_states, self.n_actions), dtype=np.int64)
        self._alpha = StepSize(self.config.learning_rate)
        self._episode_alpha = self._alpha.current(0, self.visit_counts)
        self._epsilon = make_schedule(self.config.epsilon, "epsilon")

    @property
    def values(self) -> np.ndarray:
        """(S,) greedy state values ``max_a Q(s, a)``."""
        return self.q_values.max(axis=1)

    @property
    def policy(self) -> np.ndarray:
        """(S, A) one-hot greedy policy (first maximum)."""
        return super().action_probabilities()

    def action_probabilities(self) -> np.ndarray:
        """(S, A) epsilon-greedy behaviour, the greedy mass shared among tied maxima."""
        return epsilon_greedy_probabilities(self.q_values, self._epsilon(self.num_episodes))

    def _step_size(self, state: int, action: int) -> float:
        counts = self.visit_counts
        counts[state, action] += 1
        if self._alpha.inverse_count:
            return 1.0 / counts[state, action]
        return self._episode_alpha

    def _update(self, s: int, a: int, r: float, s2: int, terminated: bool, eps: float) -> int:
        """Apply one TD update for (s, a, r, s2) and return the next action in s2."""
        raise NotImplementedError

    def _run_episode(self, max_steps: float, callback) -> bool:
        env = self.env
        eps = self._epsilon(self.num_episodes)
        self._episode_alpha = self._alpha.current(self.num_episodes, self.visit_counts)
        carry = self._take_carry()
        if carry is None:
            state = self._reset_env()
            action = self._epsilon_greedy(state, eps)
            episode_return, length = 0.0, 0
        else:
            state, action, episode_return, length, _ = carry
        record, end = self._replay.actions.append, length + max_steps
        while length < end:
            record(action)
            obs, reward, terminated, truncated, info = env.step(action)
            next_state, reward = int(obs), float(reward)
            length += 1
            episode_return += reward
            taken = action
            action = self._update(state, action, reward, next_state, terminated, eps)
            if terminated:
                self.q_values[next_state] = 0.0  # terminal: never bootstrapped from, shown as 0
            done = terminated or truncated
            self.num_timesteps += 1
            if (done or callback is not None) and not self._end_step(
                    callback, taken, obs, reward, done, info,
                    Carry(next_state, action, episode_return, length)):
                return True
            if done:
                return False
            state = next_state
        self._carry = Carry(state, action, episode_return, length)  # cut by the step budget
        return False

    def _record_train_metrics(self) -> None:
        self.logger.record("rollout/exploration_rate", self._epsilon(self.num_episodes))
        self.logger.record("train/learning_rate", self._alpha.current(self.num_episodes, self.visit_counts))


class Sarsa(_TDControl):
    """On-policy TD control: ``Q(S,A) += alpha [R + gamma Q(S',A') - Q(S,A)]``, A' ~ eps-greedy."""

    def _update(self, s, a, r, s2, terminated, eps):
        a2 = self._epsilon_greedy(s2, eps)
        q = self.q_values
        target = r if terminated else r + self.config.gamma * q[s2, a2]
        q[s, a] += self._step_size(s, a) * (target - q[s, a])
        return a2


class ExpectedSarsa(_TDControl):
    """SARSA with the expectation over the eps-greedy policy in S' instead of a sample of A'."""

    def _update(self, s, a, r, s2, terminated, eps):
        q = self.q_values
        if terminated:
            target = r
        else:
            row = q[s2].tolist()
            # Greedy mass (1 - eps) spread over tied maxima, all of value max(row).
            expected = eps * sum(row) / len(row) + (1.0 - eps) * max(row)
            target = r + self.config.gamma * expected
        q[s, a] += self._step_size(s, a) * (target - q[s, a])
        return self._epsilon_greedy(s2, eps)


class QLearning(_TDControl):
    """Off-policy TD control: ``Q(S,A) += alpha [R + gamma max_a Q(S',a) - Q(S,A)]``."""

    def _update(self, s, a, r, s2, terminated, eps):
        q = self.q_values
        target = r if terminated else r + self.config.gamma * max(q[s2].tolist())
        q[s, a] += self._step_size(s, a) * (target - q[s, a])
        # Chosen after the update, as in S&B's pseudocode (it matters when s2 == s).
        return self._epsilon_greedy(s2, eps)
