"""Glow's layers (Kingma & Dhariwal 2018) and the shape-changing layers of multi-scale flows.

A Glow step is ActNorm -> invertible 1x1 convolution -> affine coupling. ActNorm is a
per-channel affine map initialised from the first batch it sees so that its output starts
standardised (batch norm's benefit without batch statistics at test time). The 1x1
convolution is a learned C x C mixing of channels at every position, a generalised
permutation between couplings; in its LU form W = P L (U + diag(s)) its log-det costs
O(C) instead of O(C^3). :class:`Squeeze` trades space for channels; :class:`Split` factors
half the channels out at each scale (RealNVP's multi-scale architecture). All follow the
:class:`~mimicgym.generative.flows.FlowLayer` convention and act on images (B, C, H, W)
or vectors (B, C), a vector being an image of one pixel (H = W = 1).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from mimicgym.generative.flows import FlowLayer
from mimicgym.utils.checks import check_positive_int


def _per_channel(parameter: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A (C,) parameter shaped to broadcast over x (B, C, ...)."""
    return parameter.view(1, -1, *[1] * (x.dim() - 2))


def _positions(x: torch.Tensor) -> int:
    """H * W of an image (1 for a vector): how often a per-channel log-det counts."""
    return math.prod(x.shape[2:])


def _check_channels(x: torch.Tensor, channels: int, layer: str) -> None:
    if x.dim() < 2 or x.shape[1] != channels:
        raise ValueError(f"{layer} expects (batch, {channels}, ...) inputs, got shape {tuple(x.shape)}")


class ActNorm(FlowLayer):
    """z = (x + b) * exp(log_s) per channel; log |det| = H W sum log_s.

    Data-dependent initialisation: the first ``forward`` sets b and log_s so that its output
    on that batch has zero mean and unit variance per channel (over batch and positions). The
    ``initialized`` buffer travels with the state dict, so a loaded layer does not initialise
    again. Before any forward (or with an inverse first) the layer is the identity.
    """

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        check_positive_int("channels", channels)
        self.channels, self.eps = channels, eps
        self.loc = nn.Parameter(torch.zeros(channels))
        self.log_scale = nn.Parameter(torch.zeros(channels))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """Set b = -mean and log_s = -log std of ``x`` per channel (population std)."""
        dims = [0, *range(2, x.dim())]
        self.loc.copy_(-x.mean(dims))
        self.log_scale.copy_(-torch.log(x.std(dims, unbiased=False) + self.eps))
        self.initialized.fill_(True)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        _check_channels(x, self.channels, "ActNorm")
        if not bool(self.initialized):
            self.initialize(x)
        z = (x + _per_channel(self.loc, x)) * _per_channel(self.log_scale, x).exp()
        return z, (_positions(x) * self.log_scale.sum()).expand(len(x))

    def inverse(self, z: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        _check_channels(z, self.channels, "ActNorm")
        x = z * torch.exp(-_per_channel(self.log_scale, z)) - _per_channel(self.loc, z)
        return x, (-_positions(z) * self.log_scale.sum()).expand(len(z))

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


def _mix(weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The 1x1 convolution: weight (C, C) applied to the channels of x (B, C, ...) at every position."""
    if x.dim() == 2:
        return x @ weight.T
    return (weight @ x.flatten(2)).view_as(x)  # (C, C) @ (B, C, HW)


class InvertibleConv1x1(FlowLayer):
    """Glow's invertible 1x1 convolution z = W x at every position; log |det| = H W log |det W|.

    W starts as a random rotation (the Q of a Gaussian matrix's QR). ``lu=False`` learns W
    itself, its log-det by ``slogdet`` (O(C^3)). ``lu=True`` learns its LU factors
    W = P L (U + diag(s)): P a fixed permutation (buffer), L unit lower triangular, U strictly
    upper triangular, s stored as sign(s) (fixed, buffer) and log |s| (learned), so
    log |det W| = sum log |s| and W never becomes singular. On vectors (B, C) it is an
    invertible linear layer.
    """

    def __init__(self, channels: int, lu: bool = True):
        super().__init__()
        check_positive_int("channels", channels)
        self.channels, self.lu = channels, bool(lu)
        rotation = torch.linalg.qr(torch.randn(channels, channels))[0]
        if not self.lu:
            self.weight = nn.Parameter(rotation)
            return
        P, L, U = torch.linalg.lu(rotation)
        s = U.diagonal()
        self.register_buffer("permutation", P)
        self.register_buffer("sign_s", s.sign())
        self.lower = nn.Parameter(L.tril(-1))
        self.upper = nn.Parameter(U.triu(1))
        self.log_s = nn.Parameter(s.abs().log())

    def _factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """L (unit lower) and U + diag(s) (upper) of the LU form."""
        eye = torch.eye(self.channels, dtype=self.lower.dtype, device=self.lower.device)
        upper = self.upper.triu(1) + torch.diag(self.sign_s * self.log_s.exp())
        return self.lower.tril(-1) + eye, upper

    def weight_matrix(self) -> torch.Tensor:
        """W (C, C), built from the LU factors when ``lu``."""
        if not self.lu:
            return self.weight
        lower, upper = self._factors()
        return self.permutation @ lower @ upper

    def inverse_matrix(self) -> torch.Tensor:
        """W^-1: U^-1 L^-1 P^T by triangular solves when ``lu``, else a general inverse."""
        if not self.lu:
            return torch.linalg.inv(self.weight)
        lower, upper = self._factors()
        eye = torch.eye(self.channels, dtype=lower.dtype, device=lower.device)
        lower_inv = torch.linalg.solve_triangular(lower, eye, upper=False, unitriangular=True)
        return torch.linalg.solve_triangular(upper, lower_inv, upper=True) @ self.permutation.T

    def log_abs_det_weight(self) -> torch.Tensor:
        """log |det W| (a scalar)."""
        return self.log_s.sum() if self.lu else torch.linalg.slogdet(self.weight)[1]

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        _check_channels(x, self.channels, "InvertibleConv1x1")
        return _mix(self.weight_matrix(), x), (_positions(x) * self.log_abs_det_weight()).expand(len(x))

    def inverse(self, z: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        _check_channels(z, self.channels, "InvertibleConv1x1")
        return _mix(self.inverse_matrix(), z), (-_positions(z) * self.log_abs_det_weight()).expand(len(z))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, lu={self.lu}"


class Squeeze(FlowLayer):
    """Space to depth: (B, C, H, W) -> (B, 4C, H/2, W/2), each 2x2 block of a channel becoming
    four channels; a permutation, so log |det| = 0."""

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        B, C, H, W = self._check(x, "forward")
        z = x.view(B, C, H // 2, 2, W // 2, 2).permute(0, 1, 3, 5, 2, 4)  # (B, C, 2, 2, H/2, W/2)
        return z.reshape(B, 4 * C, H // 2, W // 2), x.new_zeros(B)

    def inverse(self, z: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        B, C4, H, W = self._check(z, "inverse")
        x = z.view(B, C4 // 4, 2, 2, H, W).permute(0, 1, 4, 2, 5, 3)  # (B, C, H, 2, W, 2)
        return x.reshape(B, C4 // 4, 2 * H, 2 * W), z.new_zeros(B)

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        C, H, W = shape
        return (4 * C, H // 2, W // 2)

    @staticmethod
    def _check(x: torch.Tensor, direction: str) -> tuple[int, int, int, int]:
        if x.dim() != 4:
            raise ValueError(f"Squeeze needs images (B, C, H, W), got shape {tuple(x.shape)}")
        if direction == "forward" and (x.shape[2] % 2 or x.shape[3] % 2):
            raise ValueError(f"Squeeze needs even H and W, got shape {tuple(x.shape)}")
        if direction == "inverse" and x.shape[1] % 4:
            raise ValueError(f"Squeeze.inverse needs channels divisible by 4, got shape {tuple(x.shape)}")
        return tuple(x.shape)


class Split(FlowLayer):
    """Multi-scale factor-out: the first C - C//2 channels continue through ``inner`` (the rest
    of the flow, e.g. the next scale); the last C//2 are factored out here.

    With ``learned_prior`` (Glow) the factored-out half x2 has the prior N(mu(x1), exp(log_s(x1)))
    given the continuing half x1 (a zero-initialised 3x3 conv), applied as the standardisation
    eps2 = (x2 - mu) exp(-log_s), log |det| = -sum log_s; without it (RealNVP) eps2 = x2, to be
    scored by N(0, I). Either way the output is [inner(x1) reshaped to x1's shape, eps2] on
    axis 1, the shape of the input, and the flow's base scores all of it: with an N(0, I)
    base this is exactly the sum of the per-scale priors of Glow and RealNVP. ``context``
    goes to ``inner``.
    """

    def __init__(self, channels: int, inner: FlowLayer, learned_prior: bool = True):
        super().__init__()
        check_positive_int("channels", channels)
        if channels < 2:
            raise ValueError(f"Split needs at least 2 channels, got {channels}")
        self.channels, self.keep = channels, channels - channels // 2
        self.inner = inner
        self.prior = None
        if learned_prior:
            self.prior = nn.Conv2d(self.keep, 2 * (channels // 2), 3, padding=1)
            nn.init.zeros_(self.prior.weight)
            nn.init.zeros_(self.prior.bias)

    def _prior(self, x1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """mu and log_s of the factored-out half given x1, shaped like x2."""
        image = x1 if x1.dim() == 4 else x1.view(*x1.shape, 1, 1)  # vectors as 1x1 images
        mu, log_s = self.prior(image).view(len(x1), -1, *x1.shape[2:]).chunk(2, dim=1)
        return mu, log_s

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        _check_channels(x, self.channels, "Split")
        x1, x2 = x[:, :self.keep], x[:, self.keep:]
        z1, log_det = self.inner(x1, context)
        if self.prior is not None:
            mu, log_s = self._prior(x1)
            x2 = (x2 - mu) * torch.exp(-log_s)
            log_det = log_det - log_s.flatten(1).sum(1)
        return torch.cat([z1.reshape(x1.shape), x2], 1), log_det

    def inverse(self, z: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        _check_channels(z, self.channels, "Split")
        z1, eps2 = z[:, :self.keep], z[:, self.keep:]
        x1, log_det = self.inner.inverse(z1.reshape(len(z), *self.inner.output_shape(z1.shape[1:])), context)
        if self.prior is None:
            return torch.cat([x1, eps2], 1), log_det
        mu, log_s = self._prior(x1)
        return torch.cat([x1, eps2 * log_s.exp() + mu], 1), log_det + log_s.flatten(1).sum(1)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, learned_prior={self.prior is not None}"


class LogitTransform(FlowLayer):
    """RealNVP's preprocessing of data in [0, 1]: z = logit(alpha + (1 - 2 alpha) y), so that
    bounded (dequantised) data become unbounded. ``alpha`` keeps the ends finite;
    log |det| = sum [log(1 - 2 alpha) - log p - log(1 - p)], p = alpha + (1 - 2 alpha) y."""

    def __init__(self, alpha: float = 0.05):
        super().__init__()
        if not 0.0 <= alpha < 0.5:
            raise ValueError(f"alpha must lie in [0, 0.5), got {alpha!r}")
        self.alpha = float(alpha)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.alpha + (1 - 2 * self.alpha) * x
        z = torch.log(p) - torch.log1p(-p)
        # -log p - log(1 - p) = softplus(-z) + softplus(z), stable in the tails
        log_det = math.log(1 - 2 * self.alpha) + F.softplus(-z) + F.softplus(z)
        return z, log_det.flatten(1).sum(1)

    def inverse(self, z: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x = (torch.sigmoid(z) - self.alpha) / (1 - 2 * self.alpha)
        log_det = -math.log(1 - 2 * self.alpha) - F.softplus(-z) - F.softplus(z)
        return x, log_det.flatten(1).sum(1)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"
