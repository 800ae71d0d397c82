"""The noise-prediction networks of diffusion models: eps_theta(x_t, t, c), one per kind of data.

Every denoiser maps a noisy example x_t, its timestep t (B,) (a float: discrete steps and
continuous time share one scale) and an optional condition embedding c (B, E) to a tensor
shaped like x_t. The timestep enters through the sinusoidal embedding of the Transformer
(Vaswani et al. 2017) followed by a small MLP, as in Ho et al. (2020); the condition
embedding (a class embedding, say) has the same width E and is added to it, so one vector
per example modulates every block.

- :class:`MLPDenoiser`: vectors (D,), residual MLP blocks.
- :class:`UNet`: images (C, H, W), the DDPM U-Net without attention (encoder of residual
  blocks and strided downsamplings, a middle block, a decoder that concatenates the
  encoder's features). ``forward(..., residuals=)`` adds a tensor to each skip feature and to
  the middle block's output: the hook a ControlNet branch plugs into.
- :class:`TemporalConvNet`: windows (C, T) such as motion clips, non-causal residual 1-D
  convolutions with dilations 1, 2, 4, ...: any T, a receptive field that doubles per block.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features of (possibly fractional) timesteps: (B,) -> (B, dim), [cos | sin].

    Frequencies are geometric from 1 to 1 / max_period, so nearby timesteps get nearby
    features at every scale; an odd ``dim`` gets a trailing zero.
    """
    half = dim // 2
    frequencies = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)  # (half,)
    angles = t.float()[:, None] * frequencies[None, :]  # (B, half)
    embedding = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)
    return F.pad(embedding, (0, dim % 2)).to(torch.get_default_dtype())


class TimestepEmbedding(nn.Module):
    """sinusoid(t) -> Linear -> SiLU -> Linear: (B,) -> (B, dim)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_embedding(t, self.dim))


def _embed(time: TimestepEmbedding, t: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
    """The per-example vector every block reads: time embedding plus condition embedding (B, E)."""
    embedding = time(t)
    return embedding if condition is None else embedding + condition


def _groups(channels: int) -> int:
    """GroupNorm groups: 8 where the channels allow (a few channels per group normalise stably)."""
    return math.gcd(channels, 8)


# -- blocks --------------------------------------------------------------------------------
class ResidualBlock(nn.Module):
    """x -> skip(x) + conv(SiLU(GN(conv(SiLU(GN(x))) + W e))): the DDPM residual block, 1-D or 2-D.

    The embedding e (B, E) is projected to a per-channel bias. The second convolution starts at
    zero (Ho et al. 2020), so each block begins as its skip path and the network as a shallow one.
    """

    def __init__(self, in_channels: int, out_channels: int, embedding_dim: int, dims: int = 2, dilation: int = 1):
        super().__init__()
        Conv = nn.Conv2d if dims == 2 else nn.Conv1d
        self.norm1 = nn.GroupNorm(_groups(in_channels), in_channels)
        self.conv1 = Conv(in_channels, out_channels, 3, padding=dilation, dilation=dilation)
        self.embedding = nn.Linear(embedding_dim, out_channels)
        self.norm2 = nn.GroupNorm(_groups(out_channels), out_channels)
        self.conv2 = Conv(out_channels, out_channels, 3, padding=dilation, dilation=dilation)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Identity() if in_channels == out_channels else Conv(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, out, *spatial)
        h = h + self.embedding(embedding).view(*h.shape[:2], *(1,) * (h.dim() - 2))
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class Downsample(nn.Module):
    """A stride-2 3x3 convolution: (B, C, H, W) -> (B, C, H/2, W/2). Reads no embedding."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor, embedding: torch.Tensor | None = None) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour x2 then a 3x3 convolution (no checkerboard artefacts of transposed convs)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, embedding: torch.Tensor | None = None) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


# -- networks ------------------------------------------------------------------------------
class MLPDenoiser(nn.Module):
    """Vectors (B, D): Linear in, residual blocks h + Linear(SiLU(Linear(SiLU(h)) + W e)), Linear out.

    ``hidden`` gives the width of each block; consecutive blocks of unequal width join by a
    linear skip.
    """

    def __init__(self, dim: int, hidden: tuple[int, ...] = (256, 256, 256), embedding_dim: int = 128):
        super().__init__()
        self.time = TimestepEmbedding(embedding_dim)
        self.input = nn.Linear(dim, hidden[0])
        self.blocks = nn.ModuleList()
        widths = (hidden[0], *hidden)
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            self.blocks.append(nn.ModuleDict({
                "inner": nn.Linear(w_in, w_out), "embedding": nn.Linear(embedding_dim, w_out),
                "outer": nn.Linear(w_out, w_out),
                "skip": nn.Identity() if w_in == w_out else nn.Linear(w_in, w_out)}))
        self.output = nn.Linear(hidden[-1], dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        e = _embed(self.time, t, condition)  # (B, E)
        h = self.input(x)
        for block in self.blocks:
            inner = F.silu(block["inner"](F.silu(h)) + block["embedding"](e))
            h = block["skip"](h) + block["outer"](inner)
        return self.output(F.silu(h))


class UNet(nn.Module):
    """Images (B, C, H, W): a U-Net with ``len(widths)`` resolutions, H and W divisible by 2^(levels-1).

    Encoder: ``stem`` (3x3 conv), then ``encoder_blocks``, a flat list: per level ``blocks``
    residual blocks, and a :class:`Downsample` between levels. The stem's output and every
    encoder block's output are the skip features (``skip_channels`` lists their widths).
    ``middle``: two residual blocks at the lowest resolution. Decoder: ``decoder_blocks``,
    per level ``blocks + 1`` residual blocks, each reading the last unread skip feature
    concatenated to its input, and an :class:`Upsample` between levels; ``head`` maps back to C.

    ``residuals`` (to ``forward``): ``len(skip_channels) + 1`` tensors, one added to each
    skip feature (in encoder order) and the last to the middle block's output; any may be None.
    """

    def __init__(self, channels: int, widths: tuple[int, ...] = (32, 64), embedding_dim: int = 128,
                 blocks: int = 1):
        super().__init__()
        self.time = TimestepEmbedding(embedding_dim)
        self.stem = nn.Conv2d(channels, widths[0], 3, padding=1)
        self.encoder_blocks = nn.ModuleList()
        self.skip_channels = [widths[0]]
        width = widths[0]
        for level, level_width in enumerate(widths):
            for _ in range(blocks):
                self.encoder_blocks.append(ResidualBlock(width, level_width, embedding_dim))
                width = level_width
                self.skip_channels.append(width)
            if level < len(widths) - 1:
                self.encoder_blocks.append(Downsample(width))
                self.skip_channels.append(width)
        self.middle = nn.ModuleList([ResidualBlock(width, width, embedding_dim) for _ in range(2)])
        self.decoder_blocks = nn.ModuleList()
        skips = list(self.skip_channels)
        for level in reversed(range(len(widths))):
            for _ in range(blocks + 1):
                self.decoder_blocks.append(ResidualBlock(width + skips.pop(), widths[level], embedding_dim))
                width = widths[level]
            if level > 0:
                self.decoder_blocks.append(Upsample(width))
        self.head = nn.Sequential(nn.GroupNorm(_groups(width), width), nn.SiLU(),
                                  nn.Conv2d(width, channels, 3, padding=1))
        self.levels = len(widths)

    def embed(self, t: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """The per-example embedding (B, E) every block reads."""
        return _embed(self.time, t, condition)

    def encode(self, x: torch.Tensor, embedding: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The encoder: the lowest-resolution features and the skip features, in encoder order."""
        h = self.stem(x)
        skips = [h]
        for block in self.encoder_blocks:
            h = block(h, embedding)
            skips.append(h)
        return h, skips

    def forward(self, x: torch.Tensor, t: torch.Tensor, condition: torch.Tensor | None = None,
                residuals: list[torch.Tensor | None] | None = None) -> torch.Tensor:
        e = self.embed(t, condition)
        h, skips = self.encode(x, e)
        if residuals is not None:
            if len(residuals) != len(skips) + 1:
                raise ValueError(f"residuals must hold {len(skips) + 1} tensors (one per skip feature, "
                                 f"then the middle block's), got {len(residuals)}")
            skips = [s if r is None else s + r for s, r in zip(skips, residuals)]
        for block in self.middle:
            h = block(h, e)
        if residuals is not None and residuals[-1] is not None:
            h = h + residuals[-1]
        for block in self.decoder_blocks:
            h = block(torch.cat([h, skips.pop()], 1), e) if isinstance(block, ResidualBlock) else block(h)
        return self.head(h)


class TemporalConvNet(nn.Module):
    """Windows (B, C, T): 1x1 conv in, residual 1-D blocks with dilation 2^i (block i, cycling
    every ``cycle`` blocks), 1x1 conv out. Non-causal: a denoiser sees the whole window."""

    def __init__(self, channels: int, widths: tuple[int, ...] = (64, 64, 64, 64), embedding_dim: int = 128,
                 cycle: int = 4):
        super().__init__()
        self.time = TimestepEmbedding(embedding_dim)
        self.input = nn.Conv1d(channels, widths[0], 1)
        ins = (widths[0], *widths[:-1])
        self.blocks = nn.ModuleList(ResidualBlock(w_in, w_out, embedding_dim, dims=1, dilation=2 ** (i % cycle))
                                    for i, (w_in, w_out) in enumerate(zip(ins, widths)))
        self.head = nn.Sequential(nn.GroupNorm(_groups(widths[-1]), widths[-1]), nn.SiLU(),
                                  nn.Conv1d(widths[-1], channels, 1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        e = _embed(self.time, t, condition)
        h = self.input(x)
        for block in self.blocks:
            h = block(h, e)
        return self.head(h)
