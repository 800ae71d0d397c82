"""Experience replay (Lin 1992; Mnih et al. 2015): a preallocated ring of transitions.

Arrays are allocated once at full capacity; ``add`` writes one row, ``sample`` draws
uniform indices for several minibatches at once (one fancy-index per field), so a training
round of ``gradient_steps`` updates costs one gather instead of one per update.
"""

from __future__ import annotations

from typing import Any

import numpy as np

FIELDS = ("observations", "actions", "rewards", "next_observations", "terminations")


class ReplayBuffer:
    """Uniform replay over the last ``capacity`` transitions ``(s, a, r, s', terminated)``.

    Only *termination* is stored as the bootstrap mask: a time-limit truncation still
    bootstraps from ``s'`` (Pardo et al. 2018), so the caller passes ``terminated`` alone.
    """

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], obs_dtype: np.dtype | type):
        if int(capacity) <= 0:
            raise ValueError(f"buffer capacity must be > 0, got {capacity!r}")
        self.capacity = int(capacity)
        self.obs_shape = tuple(obs_shape)
        self.observations = np.zeros((self.capacity, *self.obs_shape), dtype=obs_dtype)
        self.next_observations = np.zeros_like(self.observations)
        self.actions = np.zeros(self.capacity, dtype=np.int64)
        self.rewards = np.zeros(self.capacity, dtype=np.float32)
        self.terminations = np.zeros(self.capacity, dtype=np.float32)
        self.pos = 0  # next row to write
        self.size = 0  # rows holding data

    def __len__(self) -> int:
        return self.size

    def add(self, obs: Any, action: int, reward: float, next_obs: Any, terminated: bool) -> None:
        i = self.pos
        self.observations[i] = obs
        self.actions[i] = action
        self.rewards[i] = reward
        self.next_observations[i] = next_obs
        self.terminations[i] = terminated
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample_indices(self, rng: np.random.Generator, batch_size: int, n_batches: int = 1
                       ) -> np.ndarray:
        """Uniform indices with replacement, shape ``(n_batches, batch_size)``."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        return rng.integers(0, self.size, size=(n_batches, batch_size))

    def sample(self, rng: np.random.Generator, batch_size: int, n_batches: int = 1
               ) -> dict[str, np.ndarray]:
        """``n_batches`` minibatches: each field has shape ``(n_batches, batch_size, ...)``."""
        idx = self.sample_indices(rng, batch_size, n_batches)
        return {name: getattr(self, name)[idx] for name in FIELDS}

    # ----------------------------------------------------------------- checkpointing
    def state_dict(self) -> dict[str, Any]:
        """The filled rows only, with the write position (a full buffer is stored whole)."""
        state: dict[str, Any] = {name: getattr(self, name)[: self.size] for name in FIELDS}
        state.update(capacity=self.capacity, pos=self.pos, size=self.size)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["capacity"]) != self.capacity:
            raise ValueError(f"replay buffer capacity {state['capacity']} in the checkpoint, "
                             f"this buffer has {self.capacity}")
        size = int(state["size"])
        for name in FIELDS:
            rows = np.asarray(state[name])
            target = getattr(self, name)
            if rows.shape != (size, *target.shape[1:]):
                raise ValueError(f"replay buffer field {name!r} has shape {rows.shape}, "
                                 f"expected {(size, *target.shape[1:])}")
            target[:size] = rows
        self.pos, self.size = int(state["pos"]), size
