"""The variational autoencoder (Kingma & Welling 2014), its beta-weighted variant, and the IWAE bound.

A latent-variable model p(x) = int p(x | z) N(z; 0, I) dz with a Gaussian encoder
q(z | x) = N(mu(x), diag exp(logvar(x))) trained on the evidence lower bound

    ELBO_beta(x) = E_q[log p(x | z)] - beta KL(q(z | x) || N(0, I)),

the expectation estimated with one reparameterised draw z = mu + exp(logvar / 2) * eps and the
KL in closed form. With beta = 1 it is a lower bound on log p(x). Larger beta (Higgins et al.
2017, :class:`BetaVAE`) presses q toward the factorised prior, trading reconstruction for
codes whose dimensions tend to follow independent factors of the data (see
:mod:`mimicgym.generative.disentanglement`).

The importance-weighted bound (Burda et al. 2016),

    IWAE_k(x) = E[log 1/k sum_i p(x, z_i) / q(z_i | x)],  z_1..z_k ~ q(z | x),

is the ELBO at k = 1, never decreases with k and tends to log p(x); ``nll`` reports -IWAE_k.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn
from torch.nn import functional as F

from mimicgym.errors import ConfigError
from mimicgym.generative.autoencoder import check_widths, mlp
from mimicgym.generative.base import GenerativeModel
from mimicgym.utils.checks import check_choice, check_positive, check_positive_int

DECODERS = ("bernoulli", "gaussian")
LOG_2PI = math.log(2 * math.pi)
_IWAE_ROWS = 2**15  # decoder rows per chunk of importance samples: bounds the memory of iwae


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) in closed form, summed over the last axis: (..., L) -> (...)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1)


def diagonal_normal_log_prob(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag exp(logvar)), summed over the last axis: (..., L) -> (...)."""
    return -0.5 * ((z - mu).pow(2) * torch.exp(-logvar) + logvar + LOG_2PI).sum(-1)


@dataclasses.dataclass
class VAEConfig:
    latent_dim: int = 16
    hidden: tuple[int, ...] = (256, 256)  # encoder widths; the decoder mirrors them
    decoder: str = "bernoulli"  # p(x | z): "bernoulli" (binary data) or "gaussian" (real data)
    beta: float = 1.0  # weight of the KL term; 1: the ELBO, a bound on log p(x)
    nll_samples: int = 50  # k of the IWAE bound that nll (validation) reports
    observation_std: float | None = None  # Gaussian decoder: a fixed std; None: learned per dimension

    def __post_init__(self):
        check_positive_int("latent_dim", self.latent_dim)
        self.hidden = check_widths("hidden", self.hidden)
        check_choice("decoder", self.decoder, DECODERS)
        check_positive("beta", self.beta, allow_zero=True)
        check_positive_int("nll_samples", self.nll_samples)
        if self.observation_std is not None:
            check_positive("observation_std", self.observation_std)
            if self.decoder != "gaussian":
                raise ConfigError(f"observation_std is the std of the Gaussian decoder; decoder={self.decoder!r} "
                                  f"has none, got observation_std={self.observation_std!r}")


class VAE(GenerativeModel):
    """A VAE with MLP encoder and decoder on examples of any shape, flattened to D entries.

    Encoder: D -> ``hidden`` (tanh) -> 2 * ``latent_dim`` (mu, logvar). Decoder: ``latent_dim``
    -> reversed ``hidden`` (tanh) -> D, read as Bernoulli logits (``decoder="bernoulli"``,
    support "binary": the trainer binarises grey digits anew each epoch) or as Gaussian means
    (``"gaussian"``, support "real") with a std that is fixed (``observation_std``) or learned,
    one per dimension and shared by all z; log-densities are in nats either way.
    """

    Config = VAEConfig
    support = "binary"
    nll_is_bound = True

    def build(self) -> None:
        c = self.config
        D = math.prod(self.data_shape)
        self.encoder = mlp(D, c.hidden, 2 * c.latent_dim, nn.Tanh)
        self.decoder = mlp(c.latent_dim, c.hidden[::-1], D, nn.Tanh)
        self.support = "binary" if c.decoder == "bernoulli" else "real"
        if c.decoder == "gaussian" and c.observation_std is None:
            self.log_std = nn.Parameter(torch.zeros(D))

    # -- the two maps ----------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The parameters of q(z | x): mu and logvar, each (B, latent_dim)."""
        return self._encode(self.check_input(x).flatten(1))

    def _encode(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(flat).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's output for codes z (B, latent_dim): Bernoulli logits or Gaussian means,
        (B, *data_shape)."""
        if z.dim() != 2 or z.shape[1] != self.config.latent_dim:
            raise ValueError(f"z has shape {tuple(z.shape)}; expected (batch, {self.config.latent_dim})")
        z = z.to(self.device, torch.get_default_dtype())
        return self.decoder(z).view(len(z), *self.data_shape)

    def mean(self, z: torch.Tensor) -> torch.Tensor:
        """E[x | z] (B, *data_shape): pixel probabilities (Bernoulli) or means (Gaussian)."""
        out = self.decode(z)
        return torch.sigmoid(out) if self.config.decoder == "bernoulli" else out

    def _observation_log_std(self) -> torch.Tensor:
        if self.config.observation_std is not None:
            return torch.tensor(math.log(self.config.observation_std), device=self.device)
        return self.log_std

    def _log_likelihood(self, flat: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """log p(x | z) summed over D: x (B, D), decoder output (..., B, D) -> (..., B)."""
        if self.config.decoder == "bernoulli":
            return -F.binary_cross_entropy_with_logits(out, flat.expand_as(out), reduction="none").sum(-1)
        log_std = self._observation_log_std()
        return -(0.5 * ((flat - out) * torch.exp(-log_std)).pow(2) + log_std + 0.5 * LOG_2PI).sum(-1)

    def _draw(self, mu: torch.Tensor, logvar: torch.Tensor, k: int | None, generator: torch.Generator
              ) -> torch.Tensor:
        """z = mu + sigma * eps, the reparameterisation: (B, L), or (k, B, L) with k draws each."""
        shape = mu.shape if k is None else (k, *mu.shape)
        eps = torch.randn(shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    # -- the bounds ------------------------------------------------------------------------
    def elbo(self, x: torch.Tensor, generator: torch.Generator | None = None, *, beta: float | None = None,
             analytic_kl: bool = True) -> torch.Tensor:
        """One-sample estimate of E_q[log p(x | z)] - beta KL(q || p) per example (B,).

        ``beta`` defaults to the model's; with beta = 1 it estimates a lower bound on log p(x).
        The KL is in closed form; ``analytic_kl=False`` uses the draw itself, log q(z | x) -
        log p(z), which makes the estimate identical to ``iwae(x, 1)`` under the same generator state.
        """
        beta = self.config.beta if beta is None else beta
        flat = self.check_input(x).flatten(1)
        mu, logvar = self._encode(flat)
        z = self._draw(mu, logvar, None, self.rng(generator))
        reconstruction = self._log_likelihood(flat, self.decoder(z))
        if analytic_kl:
            kl = gaussian_kl(mu, logvar)
        else:
            kl = diagonal_normal_log_prob(z, mu, logvar) - diagonal_normal_log_prob(z, torch.zeros_like(z),
                                                                                    torch.zeros_like(z))
        return reconstruction - beta * kl

    def iwae(self, x: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """The importance-weighted bound log 1/k sum_i p(x, z_i) / q(z_i | x) per example (B,).

        The k draws go through the decoder in chunks of at most ``_IWAE_ROWS`` rows, merged by a
        running log-sum-exp, so that k = 1000 on a full test split fits in memory.
        """
        check_positive_int("k", k)
        flat = self.check_input(x).flatten(1)
        mu, logvar = self._encode(flat)
        rng = self.rng(generator)
        chunk = max(1, _IWAE_ROWS // len(flat))
        total = torch.full((len(flat),), -math.inf, device=self.device)  # log sum_i w_i so far
        for start in range(0, k, chunk):  # a loop over chunks of samples, vectorised within each
            z = self._draw(mu, logvar, min(chunk, k - start), rng)  # (c, B, L)
            log_w = (self._log_likelihood(flat, self.decoder(z))
                     + diagonal_normal_log_prob(z, torch.zeros_like(z), torch.zeros_like(z))
                     - diagonal_normal_log_prob(z, mu, logvar))  # (c, B)
            total = torch.logaddexp(total, torch.logsumexp(log_w, dim=0))
        return total - math.log(k)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """-ELBO_beta, averaged over the batch, with the model's generator."""
        return -self.elbo(x).mean()

    def nll(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """-IWAE_k(x) (B,), k = ``nll_samples``: an upper bound on -log p(x) (in expectation).

        Without a generator, one seeded from the model's seed afresh at each call: validation
        is then a function of the parameters alone, and the training draws are left alone.
        """
        if generator is None:
            generator = torch.Generator(device=self.device).manual_seed(self.seed)
        return -self.iwae(x, self.config.nll_samples, generator)

    # -- generation and inspection ---------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, mean: bool = False) -> torch.Tensor:
        """n examples (n, *data_shape): z ~ N(0, I), then x ~ p(x | z), one Bernoulli or Gaussian
        draw per entry; with ``mean=True`` E[x | z] instead (pixel probabilities or means)."""
        check_positive_int("n", n)
        rng = self.rng(generator)
        z = torch.randn(n, self.config.latent_dim, generator=rng, device=self.device)
        mean_x = self.mean(z)
        if mean:
            return mean_x
        if self.config.decoder == "bernoulli":
            return torch.bernoulli(mean_x, generator=rng)
        std = self._observation_log_std().exp().expand(math.prod(self.data_shape)).view(self.data_shape)
        return mean_x + std * torch.randn(mean_x.shape, generator=rng, device=self.device)

    @torch.no_grad()
    def traverse(self, x: torch.Tensor, dim: int, values) -> torch.Tensor:
        """Latent traversals: for each example, its code mu(x) with coordinate ``dim`` set to each of
        ``values``, decoded to E[x | z]. Returns (B * V, *data_shape), example-major, so that
        ``image_grid(out, nrow=len(values))`` shows one example per row."""
        if isinstance(dim, bool) or not isinstance(dim, int) or not 0 <= dim < self.config.latent_dim:
            raise ValueError(f"dim must be an int in [0, {self.config.latent_dim}), got {dim!r}")
        values = torch.as_tensor(values, dtype=torch.get_default_dtype(), device=self.device).flatten()
        mu, _ = self.encode(x)
        z = mu[:, None, :].repeat(1, len(values), 1)  # (B, V, L)
        z[:, :, dim] = values
        return self.mean(z.flatten(0, 1))

    @torch.no_grad()
    def interpolate(self, x0: torch.Tensor, x1: torch.Tensor, steps: int = 8) -> torch.Tensor:
        """Decoded E[x | z] along the straight line from mu(x0) to mu(x1), ``steps`` points
        including both ends; x0 and x1 (B, *data_shape). Returns (B * steps, *data_shape),
        example-major (``image_grid(out, nrow=steps)``)."""
        check_positive_int("steps", steps)
        mu0, _ = self.encode(x0)
        mu1, _ = self.encode(x1)
        if mu0.shape != mu1.shape:
            raise ValueError(f"x0 and x1 must hold as many examples, got {len(mu0)} and {len(mu1)}")
        t = torch.linspace(0, 1, steps, device=self.device)[None, :, None]  # (1, S, 1)
        z = mu0[:, None] + t * (mu1 - mu0)[:, None]  # (B, S, L)
        return self.mean(z.flatten(0, 1))


@dataclasses.dataclass
class BetaVAEConfig(VAEConfig):
    beta: float = 4.0


class BetaVAE(VAE):
    """The beta-VAE (Higgins et al. 2017): a :class:`VAE` whose KL weight defaults to beta = 4.

    With beta > 1 the training objective is no longer a bound on log p(x); ``elbo(x, beta=1.0)``
    and ``iwae`` (which ignores beta) still are.
    """

    Config = BetaVAEConfig
