"""WaveNet (van den Oord et al. 2016): causal dilated convolutions over token sequences, and mu-law.

p(x) = prod_t Categorical(x_t; softmax(f(x_<t))_t). A stack of 1-D convolutions with kernel k
and dilations 1, 2, 4, ..., 2^(L-1) (repeated ``stacks`` times), each padded on the left only,
sees an exponentially long past at linear cost: the receptive field is 1 + (k - 1) * sum of
the dilations. Each layer is a gated residual block, tanh(W_f * h) * sigmoid(W_g * h), with a
1x1 residual connection (to the next layer) and a 1x1 skip connection (to the output head).

Audio is put on a token scale by mu-law companding (:func:`mu_law_encode`): quantising
sign(x) ln(1 + mu |x|) / ln(1 + mu) spends the levels where quiet signals need them.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn
from torch.nn import functional as F

from mimicgym.errors import ConfigError
from mimicgym.generative.base import GenerativeModel, categorical_log_prob
from mimicgym.utils.checks import check_positive_int


# -- mu-law ----------------------------------------------------------------------------------
def _check_levels(levels: int, mu: float | None) -> float:
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 2:
        raise ConfigError(f"levels must be an int >= 2, got {levels!r}")
    mu = float(levels - 1) if mu is None else mu
    if not (isinstance(mu, (int, float)) and math.isfinite(mu) and mu > 0):
        raise ConfigError(f"mu must be a positive number, got {mu!r}")
    return float(mu)


def mu_law_encode(x: torch.Tensor, levels: int = 256, mu: float | None = None) -> torch.Tensor:
    """Signal x in [-1, 1] -> long tokens in [0, levels): sign(x) ln(1 + mu|x|) / ln(1 + mu),
    quantised uniformly (mu defaults to levels - 1, as in WaveNet's 8-bit audio)."""
    mu = _check_levels(levels, mu)
    bad = ~torch.isfinite(x) | (x.abs() > 1)
    if bool(bad.any()):
        index = tuple(int(i) for i in torch.nonzero(bad)[0])
        raise ValueError(f"x{list(index)} is {x[index].item()!r}; mu-law expects a signal in [-1, 1]")
    compressed = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)  # in [-1, 1]
    return ((compressed + 1) / 2 * (levels - 1) + 0.5).floor().long().clamp(0, levels - 1)


def mu_law_decode(tokens: torch.Tensor, levels: int = 256, mu: float | None = None) -> torch.Tensor:
    """The inverse of :func:`mu_law_encode`: tokens in [0, levels) -> the signal at each level's centre."""
    mu = _check_levels(levels, mu)
    compressed = 2 * tokens.to(torch.get_default_dtype()) / (levels - 1) - 1
    return torch.sign(compressed) * torch.expm1(compressed.abs() * math.log1p(mu)) / mu


# -- the network -----------------------------------------------------------------------------
class CausalConv1d(nn.Conv1d):
    """A 1-D convolution padded on the left only: output t sees inputs t - (k-1) d .. t."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left = (self.kernel_size[0] - 1) * self.dilation[0]
        return super().forward(F.pad(x, (left, 0)))


class GatedResidualBlock(nn.Module):
    """h -> tanh(W_f * h) * sigmoid(W_g * h) = z; returns (h + W_r z, W_s z): residual and skip."""

    def __init__(self, channels: int, skip_channels: int, kernel_size: int, dilation: int):
        super().__init__()
        self.dilated = CausalConv1d(channels, 2 * channels, kernel_size, dilation=dilation)  # filter and gate
        self.residual = nn.Conv1d(channels, channels, 1)
        self.skip = nn.Conv1d(channels, skip_channels, 1)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        filter_, gate = self.dilated(h).chunk(2, dim=1)  # (B, C, T) each
        z = torch.tanh(filter_) * torch.sigmoid(gate)
        return h + self.residual(z), self.skip(z)


@dataclasses.dataclass
class WaveNetConfig:
    vocab_size: int | None = None
    channels: int = 32  # residual channels
    skip_channels: int = 64
    kernel_size: int = 2
    layers_per_stack: int = 5  # dilations 1, 2, ..., 2^(layers_per_stack - 1)
    stacks: int = 2

    def __post_init__(self):
        for field in dataclasses.fields(self):
            check_positive_int(field.name, getattr(self, field.name))
        if self.kernel_size < 2:
            raise ConfigError(f"kernel_size must be >= 2 (a kernel of 1 sees no past), got {self.kernel_size!r}")


class WaveNet(GenerativeModel):
    """WaveNet over token sequences: ``WaveNet((T,), vocab_size=V)``.

    Tokens are embedded, shifted right behind a learned start vector ([start, x_0, ..,
    x_{T-2}]), and passed through ``stacks`` x ``layers_per_stack`` gated residual blocks of
    causal dilated convolutions; the summed skips go through ReLU, 1x1, ReLU, 1x1 to V logits.
    ``logits(x)[:, t]`` (B, T, V) depends on x_{t-R} .. x_{t-1} only, R = ``receptive_field``.
    """

    Config = WaveNetConfig
    support = "tokens"

    def build(self) -> None:
        if len(self.data_shape) != 1:
            raise ConfigError(f"WaveNet models sequences: data_shape must be (T,), got {self.data_shape}")
        c = self.config
        self.embedding = nn.Embedding(c.vocab_size, c.channels)
        self.start = nn.Parameter(torch.randn(c.channels))
        self.dilations = [2**i for _ in range(c.stacks) for i in range(c.layers_per_stack)]
        self.blocks = nn.ModuleList(GatedResidualBlock(c.channels, c.skip_channels, c.kernel_size, d)
                                    for d in self.dilations)
        self.head = nn.Sequential(nn.ReLU(), nn.Conv1d(c.skip_channels, c.skip_channels, 1), nn.ReLU(),
                                  nn.Conv1d(c.skip_channels, c.vocab_size, 1))
        # How many past tokens one output sees: the shift contributes 1, each layer (k - 1) d.
        self.receptive_field = 1 + (c.kernel_size - 1) * sum(self.dilations)

    def _logits_from_embedded(self, embedded: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, V) from the embedded, not yet shifted, tokens (B, T, C)."""
        B = embedded.shape[0]
        shifted = torch.cat([self.start.expand(B, 1, -1), embedded[:, :-1]], dim=1)  # (B, T, C)
        h = shifted.transpose(1, 2)  # (B, C, T): channels first for Conv1d
        skips = 0
        for block in self.blocks:
            h, skip = block(h)
            skips = skips + skip
        return self.head(skips).transpose(1, 2)  # (B, T, V)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, V): logits[:, t] parameterises p(x_t | x_<t), aligned with x."""
        return self._logits_from_embedded(self.embedding(self.check_input(x)))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        x = self.check_input(x)
        return categorical_log_prob(self._logits_from_embedded(self.embedding(x)), x)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n sequences (n, T), long, drawn left to right: T passes over the growing prefix."""
        rng = self.rng(generator)
        x = torch.zeros(n, *self.data_shape, dtype=torch.long, device=self.device)
        for t in range(self.data_shape[0]):
            # A window of the receptive field is all the next token can see.
            window = x[:, max(0, t + 1 - self.receptive_field - 1): t + 1]
            logits = self._logits_from_embedded(self.embedding(window))[:, -1]  # (n, V)
            x[:, t] = torch.multinomial(logits.softmax(-1), 1, generator=rng).squeeze(1)
        return x
