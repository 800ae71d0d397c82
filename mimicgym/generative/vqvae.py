"""VQ-VAE (van den Oord et al. 2017): a discrete code grid, a vector quantiser, an autoregressive prior.

- :class:`VectorQuantizer`: nearest-neighbour quantisation against a codebook, the straight-through
  gradient, the commitment and codebook losses, exponential-moving-average (EMA) codebook updates
  and dead-code restarts;
- :class:`VQVAE`: a strided-conv encoder to an h x w grid of code vectors, the quantiser, a
  transposed-conv decoder with a Bernoulli output per pixel, and a
  :class:`~mimicgym.generative.attention.CausalTransformer` prior over the flattened code grid
  (fitted after the autoencoder, with ``fit_prior``), so that sampling works end to end.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn
from torch.nn import functional as F

from mimicgym.errors import ConfigError
from mimicgym.generative.attention import CausalTransformer
from mimicgym.generative.base import GenerativeModel
from mimicgym.generative.data import binarize_images
from mimicgym.generative.train import TrainConfig
from mimicgym.utils.checks import check_positive, check_positive_int, check_probability


class VectorQuantizer(nn.Module):
    """Replace each vector z (..., D) by its nearest codebook entry e_k, k = argmin_k ||z - e_k||^2.

    ``forward(z, generator)`` returns ``(z_q, codes, loss)``: z_q = z + sg(e_k - z) carries e_k
    forward and the decoder's gradient straight through to z (the argmin has none); ``loss``
    (B,) is ``commitment * ||z - sg(e_k)||^2``, plus the codebook loss ``||sg(z) - e_k||^2``
    when the codebook is learned by gradient, summed over the grid of each example.

    With ``ema=True`` the codebook is a buffer: in training mode each forward moves it to the
    running mean of the vectors assigned to it (Appendix A.1 of the paper), with counts N_k
    and sums m_k smoothed as N <- decay N + (1 - decay) n, m <- decay m + (1 - decay) sum z,
    e_k = m_k / N~_k, where N~_k = (N_k + eps) / (sum N + K eps) * sum N is Laplace-smoothed
    so that an unused code never divides by zero (sums and counts start at 0).

    Dead codes, in either mode: a code whose EMA count of assignments per batch falls below
    ``dead_code_threshold`` restarts at a random encoder output of the current batch, drawn
    with ``generator``, its count set to the threshold (so it restarts again while batches
    leave it unused, as in Jukebox). Counts start at 0, so the first training batch restarts
    nearly every code at an encoder output: a data-dependent initialisation.
    """

    def __init__(self, codebook_size: int, code_dim: int, *, commitment: float = 0.25, ema: bool = True,
                 decay: float = 0.99, epsilon: float = 1e-5, dead_code_threshold: float = 0.0):
        super().__init__()
        self.codebook_size, self.code_dim = codebook_size, code_dim
        self.commitment, self.ema, self.decay, self.epsilon = commitment, ema, decay, epsilon
        self.dead_code_threshold = dead_code_threshold
        initial = torch.randn(codebook_size, code_dim)  # under the owning model's seed
        if ema:
            self.register_buffer("codebook", initial)
            # Zero sums and counts, decaying alike: m_k / N_k is an unbiased mean from the first step.
            self.register_buffer("ema_sum", torch.zeros(codebook_size, code_dim))  # m_k
        else:
            self.codebook = nn.Parameter(initial)
        # N_k: usage, in both modes. Starting at 0, every code is dead at the first training batch.
        self.register_buffer("ema_count", torch.zeros(codebook_size))

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Code indices (...,) of the codebook entries nearest to z (..., D) in squared distance."""
        flat = z.reshape(-1, self.code_dim)  # (N, D)
        e = self.codebook.detach()
        # ||z||^2 - 2 z.e + ||e||^2 without the (N, K, D) difference tensor.
        distance = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ e.T + e.pow(2).sum(1)  # (N, K)
        return distance.argmin(1).view(z.shape[:-1])

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Codebook vectors (..., D) of code indices (...,)."""
        return F.embedding(codes, self.codebook)

    def forward(self, z: torch.Tensor, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        codes = self.nearest(z.detach())  # (B, ...)
        e = self.lookup(codes)  # (B, ..., D)
        loss = self.commitment * (z - e.detach()).pow(2).flatten(1).sum(1)  # (B,)
        if not self.ema:
            loss = loss + (z.detach() - e).pow(2).flatten(1).sum(1)
        z_q = z + (e - z).detach()  # straight-through: the value of e, the gradient of z
        if self.training:
            self._update(z.detach().reshape(-1, self.code_dim), codes.reshape(-1), generator)
        return z_q, codes, loss

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, codes: torch.Tensor, generator: torch.Generator | None) -> None:
        # One-hot matmuls, not index_add_: CUDA's scatter-add is not bit-reproducible.
        assign = F.one_hot(codes, self.codebook_size).to(flat.dtype)  # (N, K)
        self.ema_count.mul_(self.decay).add_(assign.sum(0), alpha=1 - self.decay)
        if self.ema:
            self.ema_sum.mul_(self.decay).add_(assign.T @ flat, alpha=1 - self.decay)
            total = self.ema_count.sum()
            smoothed = (self.ema_count + self.epsilon) / (total + self.codebook_size * self.epsilon) * total
            # A code never assigned (N_k = 0, only without restarts) keeps its initial vector.
            mean = self.ema_sum / smoothed[:, None]
            self.codebook.copy_(torch.where(self.ema_count[:, None] > 0, mean, self.codebook))
        if self.dead_code_threshold > 0:
            # K draws every step, used or not, so the generator advances the same way each step.
            pick = torch.randint(len(flat), (self.codebook_size,), generator=generator, device=flat.device)
            dead = (self.ema_count < self.dead_code_threshold)[:, None]  # (K, 1)
            fresh = flat[pick]  # (K, D)
            self.codebook.copy_(torch.where(dead, fresh, self.codebook))
            # Restarted at the threshold itself: a code the next batch leaves unused restarts again.
            self.ema_count.copy_(torch.where(dead[:, 0], self.dead_code_threshold, self.ema_count))
            if self.ema:
                self.ema_sum.copy_(torch.where(dead, fresh * self.dead_code_threshold, self.ema_sum))

    def extra_repr(self) -> str:
        return f"codebook_size={self.codebook_size}, code_dim={self.code_dim}, ema={self.ema}"


@dataclasses.dataclass
class VQVAEConfig:
    # K and the grid trade the reconstruction against the prior's h*w*log K nats: on the 8x8
    # digits a 4x4 grid of K = 4 codes bounds the NLL better than 2x2 (K = 8) or 1x1 (K = 32).
    codebook_size: int = 4  # K
    code_dim: int = 16  # D, the width of one code vector
    hidden: int = 64  # channels of the conv encoder and decoder
    downsample: int = 1  # stride-2 convolutions: an 8x8 image -> a 4x4 code grid
    commitment: float = 0.25  # beta
    ema: bool = True  # codebook by EMA of assigned vectors; False: by gradient on the codebook loss
    decay: float = 0.99  # of the EMA counts and sums
    epsilon: float = 1e-5  # Laplace smoothing of the EMA counts
    dead_code_threshold: float = 1.0  # EMA assignments per batch below which a code restarts; 0: never
    prior_layers: int = 3  # of the CausalTransformer prior over codes
    prior_d_model: int = 128
    prior_heads: int = 4
    prior_dropout: float = 0.0

    def __post_init__(self):
        for name in ("codebook_size", "code_dim", "hidden", "prior_layers", "prior_d_model", "prior_heads"):
            check_positive_int(name, getattr(self, name))
        if isinstance(self.downsample, bool) or not isinstance(self.downsample, int) or self.downsample < 0:
            raise ConfigError(f"downsample must be a non-negative int, got {self.downsample!r}")
        if self.codebook_size < 2:
            raise ConfigError(f"codebook_size must be at least 2, got {self.codebook_size!r}")
        check_positive("commitment", self.commitment, allow_zero=True)
        if not isinstance(self.ema, bool):
            raise ConfigError(f"ema must be a bool, got {self.ema!r}")
        check_probability("decay", self.decay)
        if self.decay == 1.0:
            raise ConfigError("decay must be < 1 (1 would freeze the codebook), got 1.0")
        check_positive("epsilon", self.epsilon)
        check_positive("dead_code_threshold", self.dead_code_threshold, allow_zero=True)
        if self.prior_d_model % self.prior_heads:
            raise ConfigError(f"prior_d_model must be divisible by prior_heads, got prior_d_model="
                              f"{self.prior_d_model!r}, prior_heads={self.prior_heads!r}")
        check_probability("prior_dropout", self.prior_dropout)


class VQVAE(GenerativeModel):
    """Vector-quantised VAE on binary images (C, H, W), with a Transformer prior over its codes.

    Encoder: conv 3x3, then ``downsample`` stride-2 convs and a 1x1 conv to ``code_dim``
    channels: z_e (B, D, h, w), h = H / 2^downsample. Each of the h*w vectors is quantised to
    one of K codebook entries; the decoder (mirror image, transposed convs) maps the quantised
    grid to one Bernoulli logit per pixel. ``loss(x)`` = -log p(x | z_q(x)) (binary cross-entropy
    summed per image) + the quantiser's commitment (and codebook) loss, mean over the batch.

    The likelihood bound: a deterministic encoder is a point-mass posterior q(z|x) = delta(z -
    z_q(x)), whose entropy term log q = 0, so the ELBO is log p(x | z_q(x)) + log p(z_q(x)) and
    ``nll(x)`` = -log p(x | z_q(x)) - log p_prior(z_q(x)) >= -log p(x) (``nll_is_bound``; no
    exact ``log_prob``; ``elbo(x)`` = -nll(x)). Until ``fit_prior`` has run, the prior is uniform
    over code grids, h*w*log K nats: still a valid bound, and what ``fit``'s validation reports.
    ``fit`` trains the autoencoder (the prior's parameters get no gradient from ``loss``); then
    ``fit_prior`` trains the prior on the code grids of the training images.
    """

    Config = VQVAEConfig
    support = "binary"
    nll_is_bound = True

    def build(self) -> None:
        c = self.config
        if len(self.data_shape) != 3:
            raise ConfigError(f"VQVAE models images: data_shape must be (C, H, W), got {self.data_shape}")
        channels, height, width = self.data_shape
        scale = 2**c.downsample
        if height % scale or width % scale:
            raise ConfigError(f"downsample={c.downsample} halves the image {c.downsample} times: H and W must "
                              f"be divisible by {scale}, got data_shape {self.data_shape}")
        self.grid = (height // scale, width // scale)  # (h, w)
        encoder = [nn.Conv2d(channels, c.hidden, 3, padding=1), nn.ReLU()]
        for _ in range(c.downsample):
            encoder += [nn.Conv2d(c.hidden, c.hidden, 4, stride=2, padding=1), nn.ReLU()]
        self.encoder = nn.Sequential(*encoder, nn.Conv2d(c.hidden, c.code_dim, 1))
        self.quantizer = VectorQuantizer(c.codebook_size, c.code_dim, commitment=c.commitment, ema=c.ema,
                                         decay=c.decay, epsilon=c.epsilon,
                                         dead_code_threshold=c.dead_code_threshold)
        decoder = [nn.Conv2d(c.code_dim, c.hidden, 3, padding=1), nn.ReLU()]
        for _ in range(c.downsample):
            decoder += [nn.ConvTranspose2d(c.hidden, c.hidden, 4, stride=2, padding=1), nn.ReLU()]
        self.decoder = nn.Sequential(*decoder, nn.Conv2d(c.hidden, channels, 3, padding=1))
        self.prior = CausalTransformer((math.prod(self.grid),), seed=self.seed, device=self.device,
                                       vocab_size=c.codebook_size, d_model=c.prior_d_model, heads=c.prior_heads,
                                       layers=c.prior_layers, dropout=c.prior_dropout)
        self.register_buffer("prior_fitted", torch.tensor(False))  # saved with the model

    # -- the autoencoder -------------------------------------------------------------------
    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x).permute(0, 2, 3, 1)  # z_e (B, h, w, D)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Code indices (B, h, w), long, of binary images x (B, C, H, W)."""
        return self.quantizer.nearest(self._encode(self.check_input(x)))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Bernoulli logits (B, C, H, W) of the images of code grids (B, h, w)."""
        if codes.dim() != 3 or tuple(codes.shape[1:]) != self.grid:
            raise ValueError(f"codes has shape {tuple(codes.shape)}; expected (batch, {self.grid[0]}, {self.grid[1]})")
        K = self.config.codebook_size
        if codes.dtype.is_floating_point or bool(((codes < 0) | (codes >= K)).any()):
            raise ValueError(f"codes must be integer indices in [0, {K}), got dtype {codes.dtype} with values "
                             f"in [{codes.min().item()}, {codes.max().item()}]")
        return self._decode(self.quantizer.lookup(codes.to(self.device).long()))

    def _decode(self, z_q: torch.Tensor) -> torch.Tensor:
        return self.decoder(z_q.permute(0, 3, 1, 2))  # (B, h, w, D) -> logits (B, C, H, W)

    def reconstruction_nll(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """-log p(x | z) per example (B,): Bernoulli cross-entropy summed over pixels."""
        return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        x = self.check_input(x)
        z_q, _, vq_loss = self.quantizer(self._encode(x), self.generator)
        return (self.reconstruction_nll(x, self._decode(z_q)) + vq_loss).mean()

    # -- the bound -------------------------------------------------------------------------
    def prior_nll(self, codes: torch.Tensor) -> torch.Tensor:
        """-log p(codes) per code grid (B,): the Transformer's once fitted, else uniform, h*w*log K."""
        if bool(self.prior_fitted):
            return -self.prior.log_prob(codes.flatten(1))
        return codes.new_full((len(codes),), math.prod(self.grid) * math.log(self.config.codebook_size),
                              dtype=torch.get_default_dtype())

    def nll(self, x: torch.Tensor) -> torch.Tensor:
        """-log p(x | z_q(x)) - log p(z_q(x)) (B,): an upper bound on -log p(x) (point-mass ELBO)."""
        x = self.check_input(x)
        codes = self.quantizer.nearest(self._encode(x))
        return self.reconstruction_nll(x, self._decode(self.quantizer.lookup(codes))) + self.prior_nll(codes)

    def elbo(self, x: torch.Tensor) -> torch.Tensor:
        """The evidence lower bound per example (B,) with q(z|x) a point mass: -nll(x)."""
        return -self.nll(x)

    # -- the prior -------------------------------------------------------------------------
    def fit_prior(self, x: torch.Tensor, *, epochs: int = 100, lr: float = 1e-3, batch_size: int = 64,
                  seed: int = 0) -> list[float]:
        """Train the prior by Adam on the flattened code grids (B, h*w) of images x; returns the
        mean prior NLL per code grid of each epoch.

        x holds binary images or Bernoulli probabilities in [0, 1]; probabilities are binarised
        anew each epoch with a generator seeded by ``seed`` (which also shuffles), as ``fit`` does.
        """
        options = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)
        x = self.check_input(x, "x", "unit")
        dynamic = not bool(((x == 0) | (x == 1)).all())
        generator = torch.Generator(device=self.device).manual_seed(options.seed)
        optimizer = torch.optim.Adam(self.prior.parameters(), lr=options.lr)
        was_training = self.training
        self.eval()
        self.prior.train()
        history, codes = [], None
        for _ in range(options.epochs):
            if codes is None or dynamic:
                images = binarize_images(x, generator) if dynamic else x
                with torch.no_grad():
                    codes = torch.cat([self.encode(chunk).flatten(1) for chunk in images.split(512)])  # (N, h*w)
            total = torch.zeros((), device=self.device)
            for index in torch.randperm(len(codes), generator=generator, device=self.device).split(options.batch_size):
                loss = self.prior.loss(codes[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.detach() * len(index)
            history.append(float(total) / len(codes))
        self.train(was_training)
        self.prior_fitted.fill_(True)
        return history

    # -- sampling --------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, mean: bool = False) -> torch.Tensor:
        """n images (n, C, H, W): codes from the prior (uniform before ``fit_prior``), decoded,
        then one Bernoulli draw per pixel (binary), or with ``mean=True`` the pixel probabilities."""
        rng = self.rng(generator)
        if bool(self.prior_fitted):
            codes = self.prior.sample(n, rng)
        else:
            codes = torch.randint(self.config.codebook_size, (n, math.prod(self.grid)), generator=rng,
                                  device=self.device)
        probs = torch.sigmoid(self.decode(codes.view(n, *self.grid)))
        return probs if mean else torch.bernoulli(probs, generator=rng)
