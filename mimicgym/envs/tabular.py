"""The exact model of a finite MDP in sparse array form, shared by envs and DP agents.

For every state ``s`` and action ``a`` the model lists ``K`` possible successors with their
probabilities and rewards, so memory is ``O(S * A * K)`` rather than the dense
``O(S * A * S)`` (a 100x100 grid's dense tensor would take 3.2 GB). Unused successor
slots carry probability 0 and point at ``s`` itself.

Terminal states are absorbing: every action loops back with probability 1 and reward 0,
so dynamic programming needs no special case for them and their value is 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

_DENSE_LIMIT_BYTES = 512 * 2**20


@dataclass(frozen=True, eq=False)
class TabularModel:
    next_states: np.ndarray  # (S, A, K) int64 successor indices
    probs: np.ndarray  # (S, A, K) float64, sums to 1 over K
    rewards: np.ndarray  # (S, A, K) float64 reward of each transition
    terminal: np.ndarray  # (S,) bool, absorbing zero-reward states
    initial: np.ndarray = field(default=None)  # (S,) start distribution; uniform if None
    grid_shape: tuple[int, int] | None = None  # (rows, cols) when states index a grid

    def __post_init__(self) -> None:
        ns = np.asarray(self.next_states, dtype=np.int64)
        p = np.asarray(self.probs, dtype=np.float64)
        r = np.asarray(self.rewards, dtype=np.float64)
        term = np.asarray(self.terminal, dtype=bool)
        if ns.ndim != 3 or p.shape != ns.shape or r.shape != ns.shape:
            raise ValueError(
                "next_states, probs and rewards must share one (S, A, K) shape, got "
                f"{ns.shape}, {p.shape}, {r.shape}"
            )
        n_states = ns.shape[0]
        if term.shape != (n_states,):
            raise ValueError(f"terminal must have shape ({n_states},), got {term.shape}")
        if ns.size and (ns.min() < 0 or ns.max() >= n_states):
            raise ValueError(f"next_states must lie in [0, {n_states}), got [{ns.min()}, {ns.max()}]")
        if (p < 0).any() or not np.allclose(p.sum(-1), 1.0, atol=1e-9):
            bad = np.argwhere(~np.isclose(p.sum(-1), 1.0, atol=1e-9) | (p < 0).any(-1))[0]
            raise ValueError(f"probs[{bad[0]}, {bad[1]}] is not a distribution: {p[tuple(bad)]}")
        init = (
            np.full(n_states, 1.0 / n_states)
            if self.initial is None
            else np.asarray(self.initial, dtype=np.float64)
        )
        if init.shape != (n_states,) or not np.isclose(init.sum(), 1.0):
            raise ValueError(f"initial must be a distribution over {n_states} states")
        for name, value in (("next_states", ns), ("probs", p), ("rewards", r),
                            ("terminal", term), ("initial", init)):
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    @property
    def n_states(self) -> int:
        return self.next_states.shape[0]

    @property
    def n_actions(self) -> int:
        return self.next_states.shape[1]

    @cached_property
    def R(self) -> np.ndarray:
        """(S, A) expected immediate reward."""
        return np.einsum("sak,sak->sa", self.probs, self.rewards)

    @property
    def P(self) -> np.ndarray:
        """(S, A, S) dense transition tensor, built on demand (small models only)."""
        n_states, n_actions = self.n_states, self.n_actions
        nbytes = n_states * n_actions * n_states * 8
        if nbytes > _DENSE_LIMIT_BYTES:
            raise MemoryError(
                f"dense P for {n_states} states x {n_actions} actions needs "
                f"{nbytes / 2**30:.1f} GiB; use the sparse next_states/probs form"
            )
        dense = np.zeros((n_states, n_actions, n_states))
        s_idx, a_idx = np.indices((n_states, n_actions))
        np.add.at(dense, (s_idx[..., None], a_idx[..., None], self.next_states), self.probs)
        return dense

    def expected_next_value(self, values: np.ndarray) -> np.ndarray:
        """(S, A) expectation of ``values`` over successors: sum_k p_k V[s'_k]."""
        return np.einsum("sak,sak->sa", self.probs, values[self.next_states])

    def q_from_v(self, values: np.ndarray, gamma: float) -> np.ndarray:
        """(S, A) one-step lookahead ``R + gamma * E[V(s')]``."""
        return self.R + gamma * self.expected_next_value(values)
