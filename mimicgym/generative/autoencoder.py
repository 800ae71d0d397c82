"""Autoencoders: an encoder f to a code z, a decoder g back, trained to reconstruct, x ~ g(f(x)).

- undercomplete (``latent_dim`` < D): the bottleneck forces a compressed code; with
  ``linear=True`` (no hidden layers, no nonlinearity, squared error) the optimum spans the
  principal subspace of the data, the same as PCA's top ``latent_dim`` directions (Baldi &
  Hornik 1989), though the code itself is any invertible mix of the principal components;
- overcomplete (``latent_dim`` > D): the identity is within reach, so something else must stop
  the copy; here it is corruption, the denoising autoencoder (Vincent et al. 2008): the encoder
  sees x~ ~ C(x~ | x) (additive Gaussian or masking noise) and the loss asks for the clean x;
- ``inpaint`` fills missing entries by iterating the reconstruction on them while clamping
  the known ones, a fixed-point use of a denoising autoencoder.

An autoencoder is no density model: ``log_prob`` and ``nll`` do not exist,
``validation_loss`` is the reconstruction error (so that ``fit`` can early-stop on validation
data; ``has_likelihood`` is False, so no table calls it an NLL), and ``sample`` draws
codes from a Gaussian fitted to the codes of the data (``fit_code_distribution``), a heuristic
the VAE (:mod:`mimicgym.generative.vae`) replaces by a prior it was trained with.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from mimicgym.errors import ConfigError
from mimicgym.generative.base import GenerativeModel
from mimicgym.utils.checks import check_choice, check_positive, check_positive_int

RECONSTRUCTIONS = ("mse", "bce")
NOISE_TYPES = ("gaussian", "masking")


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """``Linear -> activation`` per hidden width, then a linear head; no hidden widths: one Linear."""
    dims = [in_dim, *hidden]
    layers: list[nn.Module] = []
    for d_in, d_out in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(d_in, d_out), activation()]
    return nn.Sequential(*layers, nn.Linear(dims[-1], out_dim))


def check_widths(name: str, widths) -> tuple[int, ...]:
    """``widths`` as a tuple of positive ints, or a ConfigError naming ``name`` and the value."""
    try:
        widths = tuple(widths)
    except TypeError:
        raise ConfigError(f"{name} must be a sequence of positive ints, got {widths!r}") from None
    for width in widths:
        check_positive_int(f"{name} entries", width)
    return widths


@dataclasses.dataclass
class AutoencoderConfig:
    latent_dim: int = 16  # < D: undercomplete; > D: overcomplete (then use noise > 0)
    hidden: tuple[int, ...] = (128,)  # encoder widths; the decoder mirrors them
    linear: bool = False  # no hidden layers, no nonlinearity, squared error: the PCA autoencoder
    reconstruction: str = "mse"  # "mse": squared error, real data; "bce": cross-entropy, data in [0, 1]
    noise: float = 0.0  # corruption while training: Gaussian std, or the masking probability
    noise_type: str = "gaussian"  # "gaussian": x + noise * eps; "masking": each entry zeroed w.p. noise

    def __post_init__(self):
        check_positive_int("latent_dim", self.latent_dim)
        self.hidden = check_widths("hidden", self.hidden)
        if not isinstance(self.linear, bool):
            raise ConfigError(f"linear must be a bool, got {self.linear!r}")
        check_choice("reconstruction", self.reconstruction, RECONSTRUCTIONS)
        check_choice("noise_type", self.noise_type, NOISE_TYPES)
        check_positive("noise", self.noise, allow_zero=True)
        if self.noise_type == "masking" and self.noise >= 1:
            raise ConfigError(f"noise is a masking probability with noise_type='masking': it must be < 1, "
                              f"got {self.noise!r}")
        if self.linear and self.reconstruction != "mse":
            raise ConfigError(f"linear=True is the linear (PCA) autoencoder, which needs reconstruction='mse', "
                              f"got reconstruction={self.reconstruction!r}")


class Autoencoder(GenerativeModel):
    """A deterministic MLP autoencoder on examples of any shape, flattened to D entries.

    Encoder: D -> ``hidden`` (ReLU) -> ``latent_dim``; decoder: ``latent_dim`` -> reversed
    ``hidden`` (ReLU) -> D, or single linear maps when ``linear``. ``loss(x)`` is the
    reconstruction error per example, summed over its entries and averaged over the batch:
    the squared error ||x - g(f(x~))||^2 (``reconstruction="mse"``, support "real", identity
    output), or the binary cross-entropy of x against sigmoid outputs (``"bce"``, support
    "unit": grey levels in [0, 1] are soft targets). x~ is x corrupted (``noise`` > 0,
    training mode only, drawn from the model's generator); in eval mode x~ = x.
    """

    Config = AutoencoderConfig
    support = "real"
    has_likelihood = False
    validation_metric = "reconstruction_error"

    def build(self) -> None:
        c = self.config
        D = math.prod(self.data_shape)
        hidden = () if c.linear else c.hidden
        self.encoder = mlp(D, hidden, c.latent_dim)
        self.decoder = mlp(c.latent_dim, hidden[::-1], D)
        self.support = "unit" if c.reconstruction == "bce" else "real"
        # A Gaussian fitted to the codes of the data, for `sample` (see fit_code_distribution).
        self.register_buffer("code_mean", torch.zeros(c.latent_dim))
        self.register_buffer("code_scale_tril", torch.eye(c.latent_dim))
        self.register_buffer("codes_fitted", torch.tensor(False))

    # -- the maps --------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes z = f(x), shape (B, latent_dim)."""
        return self.encoder(self.check_input(x).flatten(1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's output g(z) (B, *data_shape): values for "mse", probabilities for "bce"."""
        return self._output(self.decoder(self._check_codes(z)))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """g(f(x)) (B, *data_shape), without corruption."""
        return self._output(self.decoder(self.encode(x)))

    def _output(self, raw: torch.Tensor) -> torch.Tensor:
        raw = raw.view(len(raw), *self.data_shape)
        return torch.sigmoid(raw) if self.config.reconstruction == "bce" else raw

    def _check_codes(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.config.latent_dim:
            raise ValueError(f"z has shape {tuple(z.shape)}; expected (batch, {self.config.latent_dim})")
        return z.to(self.device, torch.get_default_dtype())

    # -- training --------------------------------------------------------------------------
    def corrupt(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x~ ~ C(x~ | x): x + noise * eps (Gaussian), or x with each entry zeroed w.p. ``noise``."""
        rng = self.rng(generator)
        if self.config.noise_type == "gaussian":
            return x + self.config.noise * torch.randn(x.shape, generator=rng, device=x.device, dtype=x.dtype)
        keep = torch.rand(x.shape, generator=rng, device=x.device) >= self.config.noise
        return x * keep

    def reconstruction_error(self, x: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        """Per example (B,): squared error or binary cross-entropy of x, summed over entries."""
        if self.config.reconstruction == "bce":
            per_entry = F.binary_cross_entropy(output, x, reduction="none")
        else:
            per_entry = (output - x).pow(2)
        return per_entry.flatten(1).sum(1)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of the reconstruction error of x from its corrupted copy (training mode)."""
        x = self.check_input(x)
        inputs = self.corrupt(x) if self.training and self.config.noise > 0 else x
        output = self._output(self.decoder(self.encoder(inputs.flatten(1))))
        return self.reconstruction_error(x, output).mean()

    def validation_loss(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction error per example (B,), the criterion ``fit`` validates and
        early-stops on (an autoencoder has no likelihood)."""
        x = self.check_input(x)
        return self.reconstruction_error(x, self.reconstruct(x))

    # -- uses ------------------------------------------------------------------------------
    @torch.no_grad()
    def inpaint(self, x: torch.Tensor, mask: torch.Tensor, steps: int = 20) -> torch.Tensor:
        """Fill the entries of x where ``mask`` is true (missing), keeping the others.

        Missing entries start at 0 (what masking noise shows a denoising autoencoder), then
        each of ``steps`` iterations replaces them by their reconstruction: x <- m * g(f(x)) +
        (1 - m) * x. Missing entries of x may hold anything, NaN included. Returns (B, *data_shape).
        """
        check_positive_int("steps", steps)
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != x.shape:
            raise ValueError(f"mask must be a bool tensor shaped like x {tuple(x.shape)}, got "
                             f"{getattr(mask, 'dtype', type(mask).__name__)} {tuple(getattr(mask, 'shape', ()))}")
        mask = mask.to(self.device)
        known = self.check_input(torch.where(mask.to(x.device), torch.zeros_like(x), x))
        filled = known
        for _ in range(steps):  # a fixed-point iteration: each step needs the previous one
            filled = torch.where(mask, self.reconstruct(filled), known)
        return filled

    @torch.no_grad()
    def fit_code_distribution(self, x: torch.Tensor) -> None:
        """Fit N(mean, cov) to the codes f(x) of data x (N, *data_shape), for ``sample``."""
        codes = self.encode(x)  # (N, L)
        mean = codes.mean(0)
        centred = codes - mean
        cov = centred.T @ centred / max(len(codes) - 1, 1)
        jitter = 1e-5 * cov.diagonal().mean().clamp_min(1e-8) * torch.eye(len(mean), device=self.device)
        self.code_mean.copy_(mean)
        self.code_scale_tril.copy_(torch.linalg.cholesky(cov + jitter))
        self.codes_fitted.fill_(True)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """g(z) for n codes z from the Gaussian fitted by ``fit_code_distribution``: decoder
        outputs (means or probabilities), (n, *data_shape). A plain autoencoder has no prior."""
        if not bool(self.codes_fitted):
            raise NotImplementedError(
                "an autoencoder has no prior over codes: call fit_code_distribution(x) first to sample from "
                "a Gaussian fitted to the codes of x, or use a VAE, which learns one")
        eps = torch.randn(n, self.config.latent_dim, generator=self.rng(generator), device=self.device)
        return self.decode(self.code_mean + eps @ self.code_scale_tril.T)
