"""Base distributions of normalizing flows: where ``Flow.forward`` sends the data.

Each scores a batch z (B, *shape) with ``log_prob(z)`` (B,) in nats and draws ``sample(n,
generator)`` (n, *shape), every random number from ``generator`` (None: torch's global one).
A learned base (a diagonal Gaussian, a mixture) lets a short flow fit data whose shape a
standard normal would have to be bent into, e.g. well separated modes.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from mimicgym.utils.checks import check_positive_int

LOG_2PI = math.log(2 * math.pi)


class BaseDistribution(nn.Module):
    """Shared plumbing: the event ``shape``, shape checks, and the device and dtype of draws
    (a buffer that follows ``.to()`` and ``.double()``)."""

    def __init__(self, shape: Sequence[int] | int):
        super().__init__()
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        for d in shape:
            check_positive_int("shape entries", d)
        self.shape = shape
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def _check(self, z: torch.Tensor) -> torch.Tensor:
        if tuple(z.shape[1:]) != self.shape:
            raise ValueError(f"z has shape {tuple(z.shape)}; this base expects "
                             f"(batch, {', '.join(map(str, self.shape))})")
        return z.flatten(1)

    def _normal(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        check_positive_int("n", n)
        return torch.randn((n, *self.shape), generator=generator, device=self._anchor.device, dtype=self._anchor.dtype)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


class StandardNormal(BaseDistribution):
    """N(0, I) over ``shape``."""

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return -0.5 * (self._check(z).pow(2) + LOG_2PI).sum(1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self._normal(n, generator)


class DiagonalGaussian(BaseDistribution):
    """N(mu, diag sigma^2) with learned mu and log sigma per entry (starting at N(0, I))."""

    def __init__(self, shape: Sequence[int] | int):
        super().__init__(shape)
        self.loc = nn.Parameter(torch.zeros(self.shape))
        self.log_scale = nn.Parameter(torch.zeros(self.shape))

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        eps = (self._check(z) - self.loc.flatten()) * torch.exp(-self.log_scale.flatten())
        return -0.5 * (eps.pow(2) + LOG_2PI).sum(1) - self.log_scale.sum()

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.loc + self.log_scale.exp() * self._normal(n, generator)


class GaussianMixture(BaseDistribution):
    """sum_k w_k N(mu_k, diag sigma_k^2) over the flattened ``shape``, everything learned:
    the weights (as logits, starting uniform), the means (starting N(0, I) draws from torch's
    global generator, seeded by a model's construction) and log sigma_k (starting at 0)."""

    def __init__(self, shape: Sequence[int] | int, components: int = 8):
        super().__init__(shape)
        check_positive_int("components", components)
        D = math.prod(self.shape)
        self.components = components
        self.logits = nn.Parameter(torch.zeros(components))
        self.loc = nn.Parameter(torch.randn(components, D))
        self.log_scale = nn.Parameter(torch.zeros(components, D))

    def component_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z; mu_k, diag sigma_k^2) for every component, (B, K)."""
        eps = (self._check(z)[:, None, :] - self.loc) * torch.exp(-self.log_scale)  # (B, K, D)
        return -0.5 * (eps.pow(2) + LOG_2PI).sum(-1) - self.log_scale.sum(-1)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(self.logits.log_softmax(0) + self.component_log_prob(z), dim=1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        check_positive_int("n", n)
        k = torch.multinomial(self.logits.softmax(0), n, replacement=True, generator=generator)  # (n,)
        eps = self._normal(n, generator).flatten(1)
        return (self.loc[k] + self.log_scale[k].exp() * eps).view(n, *self.shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}, components={self.components}"
