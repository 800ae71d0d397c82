"""Monte Carlo prediction and control from complete episodes (Sutton & Barto, ch. 5).

One agent covers the chapter's on-policy methods:

- prediction (``control=False``): ``V`` (and ``Q`` of the actions taken) of a fixed policy
  (default uniform random), first-visit or every-visit (S&B section 5.1);
- on-policy control (``control=True``): epsilon-greedy w.r.t. ``Q``, i.e. first-visit MC
  control for epsilon-soft policies (section 5.4); greedy ties broken at random;
- exploring starts (``exploring_starts=True``, with ``epsilon=0`` for the book's Monte
  Carlo ES of section 5.3): each episode starts in a uniformly random non-terminal state
  with a uniformly random first action. The env must accept ``reset(options={"state": s})``
  (the mimicgym gridworlds do) and expose ``model()``, read once for the set of states an
  episode may start in (non-terminal, not a wall).

After each episode the returns ``G_t`` are computed backwards with numpy and every
visited entry is updated at once: sample averages (``learning_rate="1/n"``, the default)
or a constant/scheduled step size. An episode cut by a time limit is used as it is (its
returns miss the unobserved tail), as Monte Carlo has no value to bootstrap from.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

import numpy as np

from mimicgym.agents.base import check_policy, epsilon_greedy_probabilities
from mimicgym.agents.episodic import Carry, EpisodicAgent
from mimicgym.agents.schedules import INVERSE_VISIT_COUNT, StepSize, make_schedule, schedule_spec
from mimicgym.utils.checks import check_positive_int, check_probability


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """(T,) returns ``G_t = r_t + gamma * G_{t+1}`` of one episode, ``r_t`` the reward after step t.

    Within a block ``G_t = gamma^-t * sum_{k >= t} gamma^k r_k`` (a reversed cumulative sum);
    blocks are short enough that ``gamma^k`` never underflows, and each block adds the
    discounted return of the block after it.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    if gamma == 0.0:
        return rewards.copy()
    block = 256 if gamma >= 0.1 else max(1, int(250 / -np.log10(gamma)))  # gamma^block >= 1e-256
    returns = np.empty(len(rewards))
    following = 0.0  # G at the first step after the block
    for end in range(len(rewards), 0, -block):
        start = max(0, end - block)
        k = np.arange(end - start)
        powers = gamma**k  # (L,)
        tail = np.cumsum((rewards[start:end] * powers)[::-1])[::-1]
        returns[start:end] = tail / powers + following * gamma ** (end - start - k)
        following = returns[start]
    return returns


def incremental_update(table: np.ndarray, counts: np.ndarray, index: np.ndarray, targets: np.ndarray,
                       alpha: float | None) -> None:
    """Apply ``X[i] <- X[i] + step * (G - X[i])`` for every (i, G) in order, vectorised.

    ``table`` and ``counts`` are flat; ``index`` may repeat (every-visit). With ``alpha=None``
    the step is ``1/N(i)`` (sample average): ``X[i]`` becomes the mean of all its targets so
    far, whatever the order. With a constant ``alpha`` the ``c`` updates of one entry give
    ``(1 - alpha)^c X + sum_j alpha (1 - alpha)^(c - 1 - j) G_j`` (j: order of update).
    """
    n_entries = len(table)
    visits = np.bincount(index, minlength=n_entries)
    hit = visits > 0
    counts += visits
    if alpha is None:
        sums = np.bincount(index, weights=targets, minlength=n_entries)
        table[hit] += (sums[hit] - visits[hit] * table[hit]) / counts[hit]
        return
    order = np.argsort(index, kind="stable")
    group_start = np.cumsum(visits) - visits  # first position of each entry in ``order``
    rank = np.empty(len(index), dtype=np.int64)
    rank[order] = np.arange(len(index)) - group_start[index[order]]
    weights = alpha * (1.0 - alpha) ** (visits[index] - 1 - rank)
    table[hit] = (1.0 - alpha) ** visits[hit] * table[hit] + np.bincount(
        index, weights=weights * targets, minlength=n_entries)[hit]


@dataclass
class MonteCarloConfig:
    control: bool = False  # False: evaluate ``policy``; True: epsilon-soft control on Q
    first_visit: bool = True  # False: every-visit
    exploring_starts: bool = False  # control only; pair with epsilon=0 for MC ES
    epsilon: float | str = 0.1  # control only; number or schedule string (per episode)
    learning_rate: float | str = INVERSE_VISIT_COUNT  # "1/n": sample averages
    gamma: float = 0.99  # discount factor
    log_interval: int = 10  # episodes between logger dumps

    def __post_init__(self) -> None:
        for name in ("control", "first_visit", "exploring_starts"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if self.exploring_starts and not self.control:
            raise ValueError("exploring_starts=True needs control=True (it is a control method)")
        self.epsilon = schedule_spec(self.epsilon)
        make_schedule(self.epsilon, "epsilon")
        self.learning_rate = schedule_spec(self.learning_rate)
        StepSize(self.learning_rate)  # validates
        check_probability("gamma", self.gamma)
        check_positive_int("log_interval", self.log_interval)


class MonteCarlo(EpisodicAgent):
    """Monte Carlo prediction (``values`` of ``policy``) or control (``q_values``)."""

    Config = MonteCarloConfig
    _arrays = ("values", "q_values", "state_counts", "visit_counts", "target_policy")

    def __init__(self, env, policy: np.ndarray | None = None, *, seed: int = 0, **hyperparameters):
        super().__init__(env, seed=seed, **hyperparameters)
        shape = (self.n_states, self.n_actions)
        if policy is not None and self.config.control:
            raise ValueError("policy is the policy to evaluate; control=True learns its own")
        self.target_policy = np.full(shape, 1.0 / self.n_actions) if policy is None else check_policy(policy, shape)
        self.values = np.zeros(self.n_states)
        self.q_values = np.zeros(shape)
        self.state_counts = np.zeros(self.n_states, dtype=np.int64)
        self.visit_counts = np.zeros(shape, dtype=np.int64)
        self._epsilon = make_schedule(self.config.epsilon, "epsilon")
        self._alpha = StepSize(self.config.learning_rate)
        self._starts = self._start_states() if self.config.exploring_starts else None

    def _start_states(self) -> np.ndarray:
        """States an exploring start may use: non-terminal and not absorbing (walls)."""
        base = self.env.unwrapped
        if not hasattr(base, "model"):
            raise ValueError(f"exploring starts need an env with model() and reset(options={{'state': s}}); "
                             f"{type(base).__name__} has no model()")
        model = base.model()
        s = np.arange(model.n_states)[:, None, None]
        absorbing = ((model.next_states == s) | (model.probs == 0)).all(axis=(1, 2))
        return np.flatnonzero(~model.terminal & ~absorbing)

    @property
    def policy(self) -> np.ndarray:
        """(S, A): the evaluated policy (prediction) or the one-hot greedy policy (control)."""
        return super().action_probabilities() if self.config.control else self.target_policy

    def greedy_actions(self) -> np.ndarray:
        return np.argmax(self.q_values if self.config.control else self.target_policy, axis=1)

    def action_probabilities(self) -> np.ndarray:
        """(S, A) behaviour: the target policy, or epsilon-greedy on Q (ties share the mass)."""
        if not self.config.control:
            return self.target_policy
        return epsilon_greedy_probabilities(self.q_values, self._epsilon(self.num_episodes))

    def _reset_episode(self) -> tuple[int, int | None]:
        """Start state, and the forced first action of an exploring start (else None)."""
        if self._starts is None:
            return self._reset_env(), None
        start = int(self._starts[int(self.rng.random() * len(self._starts))])
        return self._reset_env(options={"state": start}), int(self.rng.random() * self.n_actions)

    def _run_episode(self, max_steps: float, callback) -> bool:
        env, eps = self.env, self._epsilon(self.num_episodes)
        cumulative = None
        if not self.config.control:
            cumulative = np.cumsum(self.target_policy, axis=1)
            cumulative[:, -1] = 1.0
            cumulative = cumulative.tolist()
        carry = self._take_carry()
        if carry is None:
            state, action = self._reset_episode()
            states, rewards, episode_return = [], [], 0.0
        else:
            state, action, episode_return, _, (states, rewards) = carry
        actions = self._replay.actions  # the episode's actions are those the env replays
        end = len(rewards) + max_steps
        while len(rewards) < end:
            if action is None:  # the target policy (prediction) or epsilon-greedy on Q (control)
                action = (self._epsilon_greedy(state, eps) if cumulative is None
                          else bisect_right(cumulative[state], self.rng.random()))
            obs, reward, terminated, truncated, info = env.step(action)
            states.append(state)
            actions.append(action)
            rewards.append(float(reward))
            episode_return += float(reward)
            done = terminated or truncated
            if done:  # learn before the step is reported: a callback sees the updated tables
                self._learn_from_episode(np.array(states), np.array(actions), np.array(rewards))
            self.num_timesteps += 1
            if (done or callback is not None) and not self._end_step(
                    callback, action, obs, float(reward), done, info,
                    Carry(int(obs), None, episode_return, len(rewards), (states, rewards))):
                return True
            if done:
                return False
            state, action = int(obs), None
        # A partial episode has no returns to learn from yet: the next learn() continues it.
        self._carry = Carry(state, action, episode_return, len(rewards), (states, rewards))
        return False

    def _learn_from_episode(self, states: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        returns = discounted_returns(rewards, self.config.gamma)  # (T,)
        pairs = states * self.n_actions + actions  # (T,) flat (s, a) index
        alpha = None if self._alpha.inverse_count else self._alpha.current(self.num_episodes, self.visit_counts)
        for table, counts, index in ((self.values, self.state_counts, states),
                                     (self.q_values.reshape(-1), self.visit_counts.reshape(-1), pairs)):
            if self.config.first_visit:
                _, first = np.unique(index, return_index=True)  # first occurrence of each entry
                keep = np.sort(first)
            else:
                keep = np.arange(len(index))
            # S&B's loop runs backwards in time; the update order matters for constant alpha.
            keep = keep[::-1]
            incremental_update(table, counts, index[keep], returns[keep], alpha)

    def _record_train_metrics(self) -> None:
        if self.config.control:
            self.logger.record("rollout/exploration_rate", self._epsilon(self.num_episodes))
        self.logger.record("train/learning_rate", self._alpha.current(self.num_episodes, self.visit_counts))
