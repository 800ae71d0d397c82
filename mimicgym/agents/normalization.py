"""Running observation normalisation as a module of the policy network.

What SB3's ``VecNormalize`` does to observations, but inside the network: the running mean
and variance are buffers, so they travel with the ``state_dict`` into every checkpoint and
onto the device, and acting, training and evaluation can never disagree about them.

Agents update the statistics *after* each gradient step, with the observations just trained
on: the next batch is then collected and trained under the same normalisation. Until the
first update the statistics are the identity (mean 0, variance 1), so only the clip acts.
"""

from __future__ import annotations

import torch
from torch import nn


class RunningObservationNormalizer(nn.Module):
    """``(obs - mean) / sqrt(var + eps)``, clipped to ``[-clip, clip]``; statistics in float64."""

    def __init__(self, shape: tuple[int, ...], clip: float = 10.0, epsilon: float = 1e-8):
        super().__init__()
        if clip <= 0:
            raise ValueError(f"clip must be > 0, got {clip!r}")
        self.clip, self.epsilon = float(clip), float(epsilon)
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(shape, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    @torch.no_grad()
    def update(self, batch: torch.Tensor) -> None:
        """Merge a ``(N, *shape)`` batch into the statistics (Chan et al.'s parallel update,
        exact for any split of the data into batches)."""
        batch = batch.to(torch.float64).reshape(-1, *self.mean.shape)
        n = batch.shape[0]
        if n == 0:
            return
        batch_mean = batch.mean(0)
        batch_var = batch.var(0, correction=0)
        total = self.count + n
        delta = batch_mean - self.mean
        m2 = self.var * self.count + batch_var * n + delta.square() * (self.count * n / total)
        self.mean += delta * (n / total)
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        scale = (self.var + self.epsilon).rsqrt().to(obs.dtype)
        return ((obs - self.mean.to(obs.dtype)) * scale).clamp_(-self.clip, self.clip)
