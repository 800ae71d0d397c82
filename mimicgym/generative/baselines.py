"""Reference models for binary data: a factorised Bernoulli and a Bernoulli mixture fitted by EM.

They are the yardsticks of the likelihood table: any model worth its parameters must beat the
mixture, and the factorised Bernoulli is what "no structure at all" costs.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from mimicgym.generative.base import GenerativeModel
from mimicgym.utils.checks import check_positive, check_positive_int


class FactorizedBernoulli(GenerativeModel):
    """p(x) = prod_d Bernoulli(x_d; sigmoid(l_d)): independent pixels, one logit each."""

    support = "binary"

    def build(self) -> None:
        self.logits = nn.Parameter(torch.zeros(self.data_shape))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        x = self.check_input(x)
        logits = self.logits.expand_as(x)
        return -nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        probs = torch.sigmoid(self.logits).expand(n, *self.data_shape)
        return torch.bernoulli(probs, generator=self.rng(generator))


@dataclasses.dataclass
class MixtureConfig:
    components: int = 20
    smoothing: float = 1.0  # Beta(1 + s, 1 + s) prior on each pixel mean: keeps logs finite

    def __post_init__(self):
        check_positive_int("components", self.components)
        check_positive("smoothing", self.smoothing, allow_zero=True)


class BernoulliMixture(GenerativeModel):
    """p(x) = sum_k pi_k prod_d Bernoulli(x_d; mu_kd), fitted by expectation-maximisation.

    Train with ``fit_em(x, iterations)`` (not by gradient): responsibilities in the E-step,
    closed-form weights and means (MAP under the smoothing prior) in the M-step.
    """

    Config = MixtureConfig
    support = "binary"

    def build(self) -> None:
        K, D = self.config.components, math.prod(self.data_shape)
        self.register_buffer("log_weights", torch.full((K,), -math.log(K)))
        self.register_buffer("means", 0.25 + 0.5 * torch.rand(K, D))  # random start, under the seed

    def _component_log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)  # (B, D)
        log_mu, log_1m = self.means.log(), (-self.means).log1p()  # (K, D)
        return flat @ (log_mu - log_1m).T + log_1m.sum(1)  # (B, K)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        x = self.check_input(x)
        return torch.logsumexp(self._component_log_likelihood(x) + self.log_weights, dim=1)

    @torch.no_grad()
    def fit_em(self, x: torch.Tensor, iterations: int = 100) -> list[float]:
        """Run ``iterations`` EM steps on ``x``; returns the mean log-likelihood before each."""
        x = self.check_input(x).flatten(1)
        s = self.config.smoothing
        history = []
        for _ in range(iterations):
            joint = self._component_log_likelihood(x) + self.log_weights  # (B, K)
            log_px = torch.logsumexp(joint, dim=1, keepdim=True)
            history.append(float(log_px.mean()))
            resp = (joint - log_px).exp()  # (B, K) responsibilities
            counts = resp.sum(0)  # (K,)
            self.log_weights.copy_((counts / len(x)).clamp_min(1e-12).log())
            self.means.copy_((resp.T @ x + s) / (counts[:, None] + 2 * s))
        return history

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        rng = self.rng(generator)
        component = torch.multinomial(self.log_weights.exp(), n, replacement=True, generator=rng)
        return torch.bernoulli(self.means[component], generator=rng).view(n, *self.data_shape)
