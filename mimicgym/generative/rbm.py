"""The binary restricted Boltzmann machine, trained by contrastive divergence, with its partition function.

E(v, h) = -b.v - c.h - v^T W^T h over visible v in {0,1}^D and hidden h in {0,1}^H, and
p(v) = exp(-F(v)) / Z with the free energy F(v) = -b.v - sum_j softplus(c_j + W_j.v).

- Training: CD-k (Hinton 2002) or persistent CD (Tieleman 2008) through a surrogate loss,
  mean F(x) - mean F(v_negative), whose gradient is the CD estimate of the likelihood gradient;
- ``log_partition()``: exact when min(D, H) <= 20, by summing out one layer in closed form and
  enumerating the other; otherwise annealed importance sampling (Salakhutdinov & Murray 2008).
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn
from torch.nn import functional as F

from mimicgym.errors import ConfigError
from mimicgym.generative.base import GenerativeModel
from mimicgym.utils.checks import check_positive_int

EXACT_LIMIT = 20  # enumerate at most 2^20 states (in chunks) for the exact log Z
CHUNK = 2**15  # states per chunk of the enumeration


@dataclasses.dataclass
class RBMConfig:
    hidden: int = 20  # <= 20: exact log Z, exact likelihood
    k: int = 1  # Gibbs steps of the negative phase (CD-k)
    persistent: bool = False  # persistent CD: negative chains carried over between updates
    chains: int = 100  # persistent chains (fantasy particles), used when persistent
    ais_chains: int = 100  # AIS runs behind log_prob when min(D, hidden) > 20
    ais_betas: int = 1000  # AIS inverse temperatures behind log_prob when min(D, hidden) > 20

    def __post_init__(self):
        for name in ("hidden", "k", "chains", "ais_chains"):
            check_positive_int(name, getattr(self, name))
        check_positive_int("ais_betas", self.ais_betas)
        if self.ais_betas < 2:
            raise ConfigError(f"ais_betas must be >= 2 (both ends of the path), got {self.ais_betas!r}")
        if not isinstance(self.persistent, bool):
            raise ConfigError(f"persistent must be a bool, got {self.persistent!r}")


def binary_states(count: int, start: int, stop: int, device=None, dtype=None) -> torch.Tensor:
    """The binary vectors of indices start..stop-1 as rows (stop - start, count), bit i of the index in column i."""
    index = torch.arange(start, stop, device=device)
    return ((index[:, None] >> torch.arange(count, device=device)) & 1).to(dtype or torch.get_default_dtype())


class RBM(GenerativeModel):
    """Binary-binary restricted Boltzmann machine (Smolensky 1986; Hinton 2002).

    ``loss(x)`` is not a likelihood but the CD surrogate (its value drifts; its gradient is what
    counts); validation and ``log_prob`` use the likelihood. With min(D, hidden) <= 20 the
    likelihood is exact. Otherwise ``log_prob`` uses an AIS estimate of log Z (``ais_chains``
    runs, ``ais_betas`` temperatures, the model's generator): a stochastic estimate whose
    expectation lies below log Z (Jensen), so the reported NLL tends to be optimistic; it is
    computed once per parameter version and reused until the parameters change.
    """

    Config = RBMConfig
    support = "binary"

    def build(self) -> None:
        D, H = math.prod(self.data_shape), self.config.hidden
        self.W = nn.Parameter(0.01 * torch.randn(H, D))  # Hinton's "practical guide" scale
        self.b = nn.Parameter(torch.zeros(D))  # visible bias
        self.c = nn.Parameter(torch.zeros(H))  # hidden bias
        if self.config.persistent:  # the chains are state (saved, restored, resumed), not parameters
            self.register_buffer("chains", torch.bernoulli(torch.full((self.config.chains, D), 0.5)))
        self._log_z_cache: tuple[tuple, torch.Tensor] | None = None

    # -- energies --------------------------------------------------------------------------
    def free_energy(self, x: torch.Tensor) -> torch.Tensor:
        """F(v) = -log sum_h exp(-E(v, h)) per example: (B, *data_shape) -> (B,)."""
        return self._free_energy(self.check_input(x).flatten(1))

    def _free_energy(self, v: torch.Tensor) -> torch.Tensor:
        return -(v @ self.b) - F.softplus(F.linear(v, self.W, self.c)).sum(1)

    # -- Gibbs sampling --------------------------------------------------------------------
    def gibbs_step(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One block-Gibbs sweep v -> h ~ p(h | v) -> v' ~ p(v | h), shaped like x."""
        x = self.check_input(x)
        with torch.no_grad():
            return self._gibbs(x.flatten(1), self.rng(generator)).view_as(x)

    def _gibbs(self, v: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        h = torch.bernoulli(torch.sigmoid(F.linear(v, self.W, self.c)), generator=rng)  # (B, H)
        return torch.bernoulli(torch.sigmoid(h @ self.W + self.b), generator=rng)  # (B, D)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, steps: int = 1000) -> torch.Tensor:
        """``n`` samples after ``steps`` Gibbs sweeps from uniform random visible states."""
        check_positive_int("steps", steps)
        rng = self.rng(generator)
        v = torch.bernoulli(torch.full((n, self.b.numel()), 0.5, device=self.device), generator=rng)
        for _ in range(steps):
            v = self._gibbs(v, rng)
        return v.view(n, *self.data_shape)

    # -- training --------------------------------------------------------------------------
    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """mean F(x) - mean F(v_negative): its gradient is the CD-k (or PCD) gradient of the NLL.

        The negative samples are k Gibbs sweeps from the data (CD) or from the persistent
        chains (PCD, which then keep the new states), drawn with the model's generator.
        """
        v = self.check_input(x).flatten(1)
        rng = self.rng(None)
        with torch.no_grad():
            negative = self.chains if self.config.persistent else v
            for _ in range(self.config.k):
                negative = self._gibbs(negative, rng)
            if self.config.persistent:
                self.chains.copy_(negative)
        return self._free_energy(v).mean() - self._free_energy(negative).mean()

    # -- likelihood ------------------------------------------------------------------------
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) = -F(x) - log Z; log Z is a constant here (no gradient): train with ``loss``."""
        v = self.check_input(x).flatten(1)
        return -self._free_energy(v) - self._cached_log_partition()

    @torch.no_grad()
    def log_partition(self) -> torch.Tensor:
        """log Z: exact when min(D, hidden) <= 20, else an AIS estimate (see the class docstring)."""
        D, H = self.b.numel(), self.c.numel()
        if min(D, H) > EXACT_LIMIT:
            return self.ais_log_partition(self.config.ais_chains, self.config.ais_betas)
        if H <= D:
            # Sum out v in closed form: log sum_v exp(-E(v, h)) = c.h + sum_d softplus(b_d + (h W)_d).
            def unnormalised(h):
                return h @ self.c + F.softplus(h @ self.W + self.b).sum(1)
            count = H
        else:
            def unnormalised(v):
                return -self._free_energy(v)
            count = D
        chunks = [torch.logsumexp(unnormalised(binary_states(count, start, min(start + CHUNK, 2**count),
                                                              self.device, self.W.dtype)), dim=0)
                  for start in range(0, 2**count, CHUNK)]
        return torch.logsumexp(torch.stack(chunks), dim=0)

    @torch.no_grad()
    def ais_log_partition(self, num_chains: int = 100, num_betas: int = 1000,
                          generator: torch.Generator | None = None,
                          base_rate: torch.Tensor | None = None) -> torch.Tensor:
        """An annealed-importance-sampling estimate of log Z (Salakhutdinov & Murray 2008).

        Anneals from the base-rate RBM A (no weights, visible probabilities ``base_rate``, D;
        default sigmoid(b), the model with its weights switched off; the paper fits it to the
        data's pixel means) to this RBM through p_beta(v) ~ exp((1-beta) b_A.v + beta b.v) *
        prod_j (1 + exp(beta (c_j + W_j.v))), ``num_betas`` inverse temperatures evenly
        spaced on [0, 1], ``num_chains`` independent runs. Z = Z_A * E[w] exactly (unbiased),
        so the log of the average weight underestimates log Z on average, by less with more
        chains and temperatures.
        """
        check_positive_int("num_chains", num_chains)
        check_positive_int("num_betas", num_betas)
        if num_betas < 2:
            raise ConfigError(f"num_betas must be >= 2 (both ends of the path), got {num_betas!r}")
        rng = self.rng(generator)
        if base_rate is None:
            base_logits = self.b.detach()
        else:
            base_rate = base_rate.to(self.device, self.W.dtype).flatten()
            if base_rate.shape != self.b.shape:
                raise ValueError(f"base_rate has {base_rate.numel()} entries; expected {self.b.numel()}")
            base_logits = torch.logit(base_rate.clamp(1e-6, 1 - 1e-6))
        # log Z_A: D independent visible units and H hidden units of zero energy.
        log_z_base = F.softplus(base_logits).sum() + self.c.numel() * math.log(2)

        def log_unnormalised(v, beta):  # log p*_beta(v), (chains,)
            return (1 - beta) * (v @ base_logits) + beta * (v @ self.b) \
                + F.softplus(beta * F.linear(v, self.W, self.c)).sum(1)

        betas = torch.linspace(0, 1, num_betas).tolist()
        probs = torch.sigmoid(base_logits).expand(num_chains, -1)
        v = torch.bernoulli(probs, generator=rng)  # exact samples of p_0
        log_w = torch.zeros(num_chains, device=self.device, dtype=self.W.dtype)
        for previous, beta in zip(betas[:-1], betas[1:]):  # inherently sequential
            log_w += log_unnormalised(v, beta) - log_unnormalised(v, previous)
            # A Gibbs sweep that leaves p_beta invariant.
            h = torch.bernoulli(torch.sigmoid(beta * F.linear(v, self.W, self.c)), generator=rng)
            v = torch.bernoulli(torch.sigmoid((1 - beta) * base_logits + beta * (h @ self.W + self.b)),
                                generator=rng)
        return log_z_base + torch.logsumexp(log_w, dim=0) - math.log(num_chains)

    def _cached_log_partition(self) -> torch.Tensor:
        # In-place updates (optimiser steps, load_state_dict) bump a tensor's _version, so this
        # key changes exactly when the parameters may have.
        key = tuple((id(p), p.data_ptr(), p._version, p.dtype) for p in (self.W, self.b, self.c))
        if self._log_z_cache is None or self._log_z_cache[0] != key:
            self._log_z_cache = (key, self.log_partition())
        return self._log_z_cache[1]
