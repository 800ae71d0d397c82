"""Latent diffusion (Rombach et al. 2022): a DDPM in the latent space of a trained, frozen VAE.

The autoencoder does the perceptual compression once; the diffusion model then only has to
learn the distribution of the codes, a much smaller space (16 numbers instead of 64 pixels
for the digits), so a small MLP denoiser suffices and sampling is cheap.

The codes are the VAE encoder's means mu(x) (the variance of q(z | x) is noise the DDPM need
not learn), standardised per dimension,

    z = (mu(x) - shift) / scale,   shift, scale = mean and std of mu over the training data,

so that the DDPM's forward process, which assumes data of about unit scale (it ends at
N(0, I)), fits every dimension alike; a VAE's codes are far from unit variance, especially
where the KL term has collapsed a dimension. Rombach et al. use one scalar scale; per dimension
is the same idea, finer. The statistics are measured once by :meth:`fit_latent_scale` before
training and kept as buffers, so a checkpoint holds them next to the VAE and the DDPM.
A sample is x = E[x | z'] of the VAE decoder at z' = shift + scale * z, z from the DDPM.
"""

from __future__ import annotations

import dataclasses

import torch

from mimicgym.errors import ConfigError
from mimicgym.generative.base import FrozenBaseModel
from mimicgym.generative.diffusion import DDPM, DDPMConfig
from mimicgym.generative.vae import VAE
from mimicgym.utils.checks import check_positive_int
from mimicgym.utils.torch_utils import resolve_device

_MIN_SCALE = 1e-6  # a latent dimension constant on the data is shifted, not blown up by 1 / 0


@dataclasses.dataclass
class LatentDiffusionConfig(DDPMConfig):
    """The hyperparameters of the DDPM over the codes (see :class:`DDPMConfig`); its denoiser is an MLP."""

    network: str = "mlp"

    def __post_init__(self):
        super().__post_init__()
        if self.network not in ("auto", "mlp"):
            raise ConfigError(f"latent diffusion models codes (vectors) with an MLP denoiser: network must be "
                              f"'mlp' (or 'auto'), got network={self.network!r}")


class LatentDiffusion(FrozenBaseModel):
    """``LatentDiffusion(vae, **hyperparameters)``: a DDPM (attribute ``ddpm``) over the standardised
    codes of a trained VAE (attribute ``vae``, data_shape its own).

    The VAE is held, not copied, and frozen (``requires_grad=False``, kept in eval mode, left
    out of the optimiser) but saved in ``state_dict`` with the DDPM and the code statistics.
    Call :meth:`fit_latent_scale` on the training data before training; ``loss`` and
    ``validation_loss`` are the DDPM's on the codes, ``sample`` decodes the DDPM's samples.
    """

    Config = LatentDiffusionConfig
    base_name = "vae"
    has_likelihood = False
    validation_metric = "denoising_loss"

    def __init__(self, vae: VAE, *, seed: int = 0, device: str | torch.device | None = None, **hyperparameters):
        if not isinstance(vae, VAE):
            raise TypeError(f"LatentDiffusion needs a trained VAE, got {type(vae).__name__}")
        if device is not None and resolve_device(device) != vae.device:
            raise ConfigError(f"LatentDiffusion runs on its VAE's device ({vae.device}); move the VAE there "
                              f"first (a new VAE on that device, loaded from its state_dict), got device={device!r}")
        super().__init__(vae, seed=seed, **hyperparameters)

    def build(self) -> None:
        self.vae: VAE = self.take_base()
        self.support = self.vae.support
        latent_dim = self.vae.config.latent_dim
        ddpm_fields = {f.name for f in dataclasses.fields(DDPMConfig)}
        hyperparameters = {k: v for k, v in dataclasses.asdict(self.config).items() if k in ddpm_fields}
        self.ddpm = DDPM((latent_dim,), seed=self.seed, device=self.device, **hyperparameters)
        self.register_buffer("latent_shift", torch.zeros(latent_dim))
        self.register_buffer("latent_scale", torch.ones(latent_dim))
        self.register_buffer("latent_scale_fitted", torch.tensor(False))

    # -- the latent space --------------------------------------------------------------------
    @torch.no_grad()
    def fit_latent_scale(self, x: torch.Tensor, batch_size: int = 1024) -> LatentDiffusion:
        """Measure shift and scale (L,) of the codes mu(x) on the training data x (N, *data_shape):
        their mean and standard deviation per dimension. Call once, before training."""
        check_positive_int("batch_size", batch_size)
        x = self.check_input(x, "x")
        if len(x) < 2:
            raise ValueError(f"fit_latent_scale needs at least 2 examples to measure a spread, got {len(x)}")
        mu = torch.cat([self.vae.encode(batch)[0] for batch in x.split(batch_size)])  # (N, L)
        self.latent_shift.copy_(mu.mean(0))
        self.latent_scale.copy_(mu.std(0, unbiased=False).clamp_min(_MIN_SCALE))
        self.latent_scale_fitted.fill_(True)
        return self

    def _check_fitted(self) -> None:
        if not bool(self.latent_scale_fitted):
            raise RuntimeError("LatentDiffusion's code statistics are not measured yet: call "
                               "model.fit_latent_scale(train_data) before training or sampling")

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The standardised codes (mu(x) - shift) / scale of examples x (B, *data_shape): (B, L)."""
        self._check_fitted()
        mu, _ = self.vae.encode(x)
        return (mu - self.latent_shift) / self.latent_scale

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """E[x | shift + scale * z] of the VAE decoder for standardised codes z (B, L): (B, *data_shape)."""
        self._check_fitted()
        return self.vae.mean(z.to(self.device) * self.latent_scale + self.latent_shift)

    # -- training ----------------------------------------------------------------------------
    def loss(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """The DDPM's simple loss on the codes of x, its draws from this model's generator."""
        labels = self.check_condition(condition, len(x))
        return self.ddpm.loss(self.encode(x), labels, generator=self.generator)

    def validation_loss(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """The DDPM's per-example loss on the codes (B,), draws fixed by the seed."""
        labels = self.check_condition(condition, len(x))
        return self.ddpm.validation_loss(self.encode(x), labels)

    # -- sampling ----------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, condition: torch.Tensor | int | None = None,
               sampler: str = "ddpm", steps: int | None = None, guidance: float = 0.0, eta: float = 0.0
               ) -> torch.Tensor:
        """n examples (n, *data_shape): codes from the DDPM (arguments as :meth:`DDPM.sample`,
        ``condition`` and ``guidance`` for class labels), decoded to the VAE's E[x | z]."""
        self._check_fitted()
        z = self.ddpm.sample(n, self.rng(generator), condition, sampler, steps, guidance, eta)
        return self.decode(z)
