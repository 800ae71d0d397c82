"""Normalizing flows: the layer interface, the composing container, and affine couplings.

A flow is a bijection f from data x to a base variable z = f(x) with a tractable Jacobian;
the change of variables gives the exact density

    log p(x) = log p_base(f(x)) + log |det df/dx|.

Every layer here is a :class:`FlowLayer` whose ``forward`` goes from data toward the base and
returns the log-det of that map (see FlowLayer for the convention). :class:`Flow` composes
layers with a base distribution (:mod:`mimicgym.generative.flow_bases`) into a density with
``log_prob`` and ``sample``; a Flow is itself a FlowLayer, so flows nest.

The affine coupling (Dinh et al. 2017, RealNVP) splits the features with a binary mask m:
the masked part passes unchanged and parameterises a scale and shift of the rest,

    z = m * x + (1 - m) * (x * exp(s(m * x, c)) + t(m * x, c)),   log |det| = sum (1 - m) * s,

so the Jacobian is triangular and the inverse needs only s and t at m * z = m * x. The
conditioner (s, t) may be any network and may read a context c: a class embedding, a feature
map (SRFlow's conditional coupling), or another flow's latent (C-Flow: couple two flows by
feeding ``z_a = flow_a(x_a)[0]`` as the context of flow_b)::

    flow_a = Flow([AffineCoupling(checkerboard_mask((2,), p)) for p in (0, 1)], StandardNormal((2,)))
    flow_b = Flow([AffineCoupling(checkerboard_mask((2,), p), context_dim=2) for p in (0, 1)],
                  StandardNormal((2,)))
    log_joint = flow_a.log_prob(x_a) + flow_b.log_prob(x_b, context=flow_a(x_a)[0])

:class:`AffineInjector` (SRFlow, Lugmayr et al. 2020) scales and shifts every feature by
functions of the context alone.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from mimicgym.errors import ConfigError
from mimicgym.generative.autoencoder import check_widths
from mimicgym.utils.checks import check_choice, check_positive

SCALES = ("softclamp", "tanh", "sigmoid")


class FlowLayer(nn.Module):
    """One invertible map of a normalizing flow.

    Convention: ``forward(x, context=None) -> (z, log_abs_det)`` maps data toward the base
    distribution and ``log_abs_det`` is log |det dz/dx| of that map; ``inverse(z, context=None)
    -> (x, log_abs_det)`` maps back and returns log |det dx/dz|, the negative of forward's at
    the corresponding point. Both log-dets have shape (B,). Density evaluation uses forward,
    sampling uses inverse. nflows' ``Transform.forward`` (and zuko's transforms) run in this
    same direction; normflows' ``Flow.forward`` runs the other way (base to data) and its
    ``inverse`` is our ``forward``.

    Features lie along axis 1: vectors (B, D) or images (B, C, H, W). Layers that take no
    context ignore one passed to them, so a container can hand its context to every layer.
    """

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def inverse(self, z: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of one example after ``forward`` (without the batch axis)."""
        return tuple(shape)


class Flow(FlowLayer):
    """A stack of layers and a base distribution: ``log_prob``, ``sample``, and the composed maps.

    ``forward`` runs the layers in order (data to base), ``inverse`` in reverse; log-dets add.
    ``base`` is a :mod:`~mimicgym.generative.flow_bases` distribution over the shape forward
    outputs; a Flow without one is a composite layer (as inside :class:`~.flow_layers.Split`).
    """

    def __init__(self, layers: Sequence[FlowLayer] = (), base: nn.Module | None = None):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.base = base

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        total = x.new_zeros(len(x))
        for layer in self.layers:
            x, log_det = layer(x, context)
            total = total + log_det
        return x, total

    def inverse(self, z: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        total = z.new_zeros(len(z))
        for layer in reversed(self.layers):
            z, log_det = layer.inverse(z, context)
            total = total + log_det
        return z, total

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        for layer in self.layers:
            shape = layer.output_shape(shape)
        return tuple(shape)

    def log_prob(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x) = log p_base(z) + sum of the forward log-dets, per example (B,)."""
        z, log_det = self(x, context)
        return self._base().log_prob(z) + log_det

    def sample(self, n: int, generator: torch.Generator | None = None,
               context: torch.Tensor | None = None) -> torch.Tensor:
        """n draws z ~ base mapped through ``inverse``; every draw from ``generator`` (None:
        torch's global generator). ``context`` (n, ...) where the layers read one."""
        return self.inverse(self._base().sample(n, generator), context)[0]

    def _base(self) -> nn.Module:
        if self.base is None:
            raise ValueError("this Flow has no base distribution; give Flow(layers, base) one")
        return self.base


# -- masks -----------------------------------------------------------------------------------
def checkerboard_mask(shape: Sequence[int], parity: int = 0) -> torch.Tensor:
    """1 where (i + j + parity) is even, over the spatial positions of (C, H, W) (the same for
    every channel), or where (d + parity) is even for vectors (D,): a float tensor of ``shape``."""
    shape = tuple(shape)
    if len(shape) == 1:
        return ((torch.arange(shape[0]) + parity) % 2 == 0).to(torch.get_default_dtype())
    if len(shape) != 3:
        raise ValueError(f"a mask needs a shape (D,) or (C, H, W), got {shape}")
    C, H, W = shape
    board = (torch.arange(H)[:, None] + torch.arange(W)[None, :] + parity) % 2 == 0
    return board.expand(C, H, W).to(torch.get_default_dtype()).contiguous()


def channel_mask(shape: Sequence[int], parity: int = 0) -> torch.Tensor:
    """1 on the first half of the channels (parity 0) or the second half (parity 1), at every
    position: a float tensor of ``shape`` (D,) or (C, H, W)."""
    shape = tuple(shape)
    if len(shape) not in (1, 3):
        raise ValueError(f"a mask needs a shape (D,) or (C, H, W), got {shape}")
    first = torch.arange(shape[0]) < shape[0] - shape[0] // 2
    keep = first if parity % 2 == 0 else ~first
    return keep.view(-1, *[1] * (len(shape) - 1)).expand(shape).to(torch.get_default_dtype()).contiguous()


# -- conditioners ----------------------------------------------------------------------------
def coupling_network(in_channels: int, out_channels: int, hidden: Sequence[int] = (64, 64),
                     image: bool = False) -> nn.Sequential:
    """The default conditioner: an MLP (vectors) or a 3x3 -> 1x1 ... -> 3x3 conv net (images,
    as in Glow), ReLU between layers. The last layer starts at zero, so a coupling built on it
    starts as the identity (deep flows then train stably from the first step)."""
    hidden = check_widths("hidden", hidden)
    widths = [in_channels, *hidden]
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(zip(widths[:-1], widths[1:])):
        layer = nn.Conv2d(d_in, d_out, 3 if i == 0 else 1, padding=1 if i == 0 else 0) if image \
            else nn.Linear(d_in, d_out)
        layers += [layer, nn.ReLU()]
    head = nn.Conv2d(widths[-1], out_channels, 3, padding=1) if image else nn.Linear(widths[-1], out_channels)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return nn.Sequential(*layers, head)


def broadcast_context(context: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``context`` laid out like ``like`` (B, ...) for concatenation on axis 1: a vector (B, K)
    is repeated at every position of an image; a feature map (B, K, H, W) must match its size."""
    if context.dim() == 2 and like.dim() > 2:
        context = context.view(*context.shape, *[1] * (like.dim() - 2)).expand(-1, -1, *like.shape[2:])
    if context.shape[0] != like.shape[0] or context.shape[2:] != like.shape[2:] or context.dim() != like.dim():
        raise ValueError(f"context has shape {tuple(context.shape)}; expected (batch={like.shape[0]}, K"
                         f"{''.join(', ' + str(s) for s in like.shape[2:])}) or (batch, K)")
    return context.to(like.dtype)


def _log_scale(raw: torch.Tensor, kind: str, clamp: float, factor: torch.Tensor | None) -> torch.Tensor:
    """The coupling's log-scale from the conditioner's raw output. An unbounded exp(raw) can
    blow up early in training; each choice bounds or tames it."""
    if kind == "softclamp":  # |s| < clamp, and s ~ raw near 0
        return clamp * torch.tanh(raw / clamp)
    if kind == "tanh":  # RealNVP: a learned per-feature factor times tanh
        return factor * torch.tanh(raw)
    return nn.functional.logsigmoid(raw + 2.0)  # Glow: scale sigmoid(raw + 2) in (0, 1), ~0.88 at raw = 0


def _check_mask(mask) -> torch.Tensor:
    mask = torch.as_tensor(mask, dtype=torch.get_default_dtype()).clone().contiguous()
    if mask.dim() not in (1, 3):
        raise ValueError(f"mask must have shape (D,) or (C, H, W), got {tuple(mask.shape)}")
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError("mask must hold only 0 and 1")
    if bool((mask == 1).all()) or bool((mask == 0).all()):
        raise ValueError("mask must hold both 0 and 1: it keeps some features to condition the others on")
    return mask


class AffineCoupling(FlowLayer):
    """RealNVP's affine coupling: features where ``mask`` is 1 pass unchanged and condition a
    scale and shift of the others.

    ``mask`` (D,) or (C, H, W), e.g. :func:`checkerboard_mask` or :func:`channel_mask`.
    ``conditioner``: any module mapping (B, C + K, ...) -> (B, 2C, ...) (raw log-scale, then
    shift), where the input is the masked x with the context's K features concatenated on
    axis 1; by default :func:`coupling_network` with ``hidden`` widths (MLP for vectors, conv
    net for images). ``context_dim`` K > 0 makes the layer conditional: ``context`` (B, K) or,
    for images, a feature map (B, K, H, W). ``scale`` bounds the log-scale: "softclamp"
    (clamp * tanh(raw / clamp)), "tanh" (RealNVP's learned factor * tanh) or "sigmoid" (Glow).
    """

    def __init__(self, mask, conditioner: nn.Module | None = None, *, hidden: Sequence[int] = (64, 64),
                 context_dim: int = 0, scale: str = "softclamp", clamp: float = 2.0):
        super().__init__()
        mask = _check_mask(mask)
        check_choice("scale", scale, SCALES)
        check_positive("clamp", clamp)
        if isinstance(context_dim, bool) or not isinstance(context_dim, int) or context_dim < 0:
            raise ConfigError(f"context_dim must be a non-negative int, got {context_dim!r}")
        self.register_buffer("mask", mask)
        channels = mask.shape[0]
        self.context_dim, self.scale, self.clamp = context_dim, scale, float(clamp)
        self.conditioner = conditioner if conditioner is not None else coupling_network(
            channels + context_dim, 2 * channels, hidden, image=mask.dim() == 3)
        self.factor = nn.Parameter(torch.ones(channels, *[1] * (mask.dim() - 1))) if scale == "tanh" else None

    def _scale_shift(self, kept: torch.Tensor, context: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """log-scale s and shift t (B, *shape), zero where the mask keeps the feature."""
        if tuple(kept.shape[1:]) != tuple(self.mask.shape):
            raise ValueError(f"input has shape {tuple(kept.shape)}; this coupling's mask expects "
                             f"(batch, {', '.join(map(str, self.mask.shape))})")
        h = kept
        if self.context_dim:
            if context is None:
                raise ValueError(f"this coupling is conditional (context_dim={self.context_dim}); pass a context")
            context = broadcast_context(context, kept)
            if context.shape[1] != self.context_dim:
                raise ValueError(f"context has {context.shape[1]} features; this coupling expects {self.context_dim}")
            h = torch.cat([kept, context], 1)
        out = self.conditioner(h)
        expected = (len(kept), 2 * self.mask.shape[0], *self.mask.shape[1:])
        if tuple(out.shape) != expected:
            raise ValueError(f"the conditioner returned shape {tuple(out.shape)}; a coupling needs {expected} "
                             f"(log-scale, then shift, on axis 1)")
        raw, shift = out.chunk(2, dim=1)
        free = 1 - self.mask
        return _log_scale(raw, self.scale, self.clamp, self.factor) * free, shift * free

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        log_s, t = self._scale_shift(x * self.mask, context)
        return x * log_s.exp() + t, log_s.flatten(1).sum(1)

    def inverse(self, z: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        log_s, t = self._scale_shift(z * self.mask, context)  # m * z = m * x: the kept part is unchanged
        return (z - t) * torch.exp(-log_s), -log_s.flatten(1).sum(1)

    def extra_repr(self) -> str:
        return f"mask={tuple(self.mask.shape)}, context_dim={self.context_dim}, scale={self.scale!r}"


class AffineInjector(FlowLayer):
    """SRFlow's affine injector: z = x * exp(s(c)) + t(c), every feature scaled and shifted by a
    function of the context c alone (so the map is invertible whatever the network);
    log |det| = sum s(c).

    ``channels``: C of x (B, C) or (B, C, H, W). ``context_dim``: K of the context, a vector
    (B, K) (an MLP gives one scale and shift per channel, shared over positions) or, with
    ``spatial=True``, a feature map (B, K, H, W) (a conv net gives them per position, as in
    SRFlow). Starts as the identity; the log-scale is soft-clamped to (-clamp, clamp).
    """

    def __init__(self, channels: int, context_dim: int, *, hidden: Sequence[int] = (64,), spatial: bool = False,
                 clamp: float = 2.0):
        super().__init__()
        check_positive("clamp", clamp)
        self.channels, self.context_dim, self.spatial, self.clamp = channels, context_dim, spatial, float(clamp)
        self.network = coupling_network(context_dim, 2 * channels, hidden, image=spatial)

    def _scale_shift(self, x: torch.Tensor, context: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if context is None:
            raise ValueError("AffineInjector needs a context")
        if context.shape[1] != self.context_dim or context.dim() != (4 if self.spatial else 2):
            raise ValueError(f"context has shape {tuple(context.shape)}; expected (batch, {self.context_dim}"
                             f"{', H, W' if self.spatial else ''})")
        out = self.network(context.to(x.dtype))  # (B, 2C) or (B, 2C, H, W)
        if not self.spatial and x.dim() > 2:
            out = out.view(*out.shape, *[1] * (x.dim() - 2))
        raw, shift = out.chunk(2, dim=1)
        log_s = self.clamp * torch.tanh(raw / self.clamp)
        return log_s.expand_as(x), shift.expand_as(x)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        log_s, t = self._scale_shift(x, context)
        return x * log_s.exp() + t, log_s.flatten(1).sum(1)

    def inverse(self, z: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        log_s, t = self._scale_shift(z, context)
        return (z - t) * torch.exp(-log_s), -log_s.flatten(1).sum(1)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, context_dim={self.context_dim}, spatial={self.spatial}"
