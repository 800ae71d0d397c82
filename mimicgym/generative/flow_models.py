"""RealNVP (Dinh et al. 2017) and Glow (Kingma & Dhariwal 2018) as generative models: Flows on
the GenerativeModel contract, for vectors (D,) and images (C, H, W).

Both are :class:`~mimicgym.generative.flows.Flow`\\ s: ``forward(x)`` and ``inverse(z)``
return ``(output, log_abs_det)``, ``log_prob``, ``sample`` and ``nll`` follow
:mod:`mimicgym.generative.base`. With ``num_classes`` the class label (``condition``, or the
``context`` of forward and inverse) is embedded and handed to every coupling as its context.

Discrete data (``levels`` = L > 0, e.g. the digits' 17 grey levels): an entry of x lies on
the grid -1 + 2k / (L - 1), k = 0..L-1. Uniform dequantisation (Theis et al. 2016) models the
continuous y = (k + u) / L, u ~ U[0, 1)^D, whose cell around k has volume L^-D, so by Jensen

    log P(k) = log E_u[p(y)] - D log L >= E_u[log p(y)] - D log L.

``log_prob(x)`` is this bound with one draw of u (from a generator seeded afresh from the
model's seed, so validation is deterministic; training draws from the model's generator).
The flow itself starts with a logit transform of y (RealNVP's preprocessing), whose log-det
is part of log p(y). ``bits_per_dim`` = nll / (D ln 2). Samples are quantised back,
k = clip(floor(L y), 0, L - 1); the mass the density puts outside [0, 1]^D then falls into
the edge cells, so the sampler's P(k) is at least the modelled one and the bound still holds.

Measured on one CPU thread (Adam, lr 1e-3 annealed by cosine): RealNVP on eight Gaussians
(20,000 training points, batch 256) reaches a test NLL of 3.04 nats in 20 epochs (12 s) with
the defaults and 2.90 in 150 epochs (100 s) with ``hidden=128`` (the data's entropy: 2.838);
on the digits (``levels=17``, batch 64) 2.07 bits/dim on the test split in 120 epochs (2 min).
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from mimicgym.errors import ConfigError
from mimicgym.generative.base import GenerativeModel
from mimicgym.generative.flow_bases import DiagonalGaussian, GaussianMixture, StandardNormal
from mimicgym.generative.flow_layers import ActNorm, InvertibleConv1x1, LogitTransform, Split, Squeeze
from mimicgym.generative.flows import SCALES, AffineCoupling, Flow, FlowLayer, channel_mask, checkerboard_mask
from mimicgym.utils.checks import check_choice, check_positive, check_positive_int

BASES = ("normal", "diagonal", "mixture")
_GRID_TOLERANCE = 1e-3  # how far (in grid steps) discrete data may sit from a level


def make_base(name: str, shape: tuple[int, ...], components: int = 8) -> nn.Module:
    """The base distribution called ``name`` ("normal", "diagonal" or "mixture") over ``shape``."""
    check_choice("base", name, BASES)
    if name == "normal":
        return StandardNormal(shape)
    return DiagonalGaussian(shape) if name == "diagonal" else GaussianMixture(shape, components)


@dataclasses.dataclass
class FlowModelConfig:
    hidden: int = 64  # width of each conditioner's hidden layers (channels for images)
    depth: int = 2  # hidden layers per conditioner
    scales: int = 2  # images: multi-scale levels (a Squeeze and a Split between them)
    coupling_scale: str = "softclamp"  # the couplings' log-scale: softclamp | tanh | sigmoid
    clamp: float = 2.0  # bound of the soft-clamped log-scale
    base: str = "normal"  # normal | diagonal (learned) | mixture (learned, diagonal)
    mixture_components: int = 8
    levels: int = 0  # 0: continuous data; L >= 2: data on L levels in [-1, 1], dequantised
    alpha: float = 0.05  # the logit transform of dequantised data: logit(alpha + (1 - 2 alpha) y)
    num_classes: int | None = None  # class-conditional when set
    embedding_dim: int = 16  # size of the class embedding, the couplings' context

    def __post_init__(self):
        for name in ("hidden", "depth", "scales", "mixture_components", "embedding_dim"):
            check_positive_int(name, getattr(self, name))
        check_choice("coupling_scale", self.coupling_scale, SCALES)
        check_positive("clamp", self.clamp)
        check_choice("base", self.base, BASES)
        if isinstance(self.levels, bool) or not isinstance(self.levels, int) or self.levels < 0 or self.levels == 1:
            raise ConfigError(f"levels must be 0 (continuous data) or an int >= 2, got {self.levels!r}")
        check_positive("alpha", self.alpha, allow_zero=True)
        if not self.alpha < 0.5:
            raise ConfigError(f"alpha must lie in [0, 0.5), got {self.alpha!r}")
        if self.num_classes is not None:
            check_positive_int("num_classes", self.num_classes)


class FlowModel(GenerativeModel, Flow):
    """What RealNVP and Glow share: conditioning, dequantisation, likelihood, sampling.

    Subclasses build their layers in ``build_layers(context_dim)``. ``forward``/``inverse``
    act on the continuous variable the flow models: the data themselves (``levels=0``) or the
    dequantised y in [0, 1]^D (``levels > 0``, see :meth:`dequantize`).
    """

    support = "real"
    has_likelihood = True
    validation_metric = "nll"

    def build(self) -> None:
        c = self.config
        if len(self.data_shape) not in (1, 3):
            raise ConfigError(f"{type(self).__name__} takes vectors (D,) or images (C, H, W); "
                              f"got data_shape={self.data_shape}")
        if len(self.data_shape) == 1 and self.data_shape[0] < 2:
            raise ConfigError(f"a coupling needs at least 2 features to split; got data_shape={self.data_shape}")
        self.embedding = nn.Embedding(c.num_classes, c.embedding_dim) if c.num_classes else None
        context_dim = c.embedding_dim if c.num_classes else 0
        preprocessing = [LogitTransform(c.alpha)] if c.levels else []
        self.layers = nn.ModuleList([*preprocessing, *self.build_layers(context_dim)])
        self.base = make_base(c.base, self.output_shape(self.data_shape), c.mixture_components)
        self.nll_is_bound = c.levels > 0

    def build_layers(self, context_dim: int) -> list[FlowLayer]:
        raise NotImplementedError

    def _coupling(self, mask: torch.Tensor, context_dim: int) -> AffineCoupling:
        c = self.config
        return AffineCoupling(mask, hidden=(c.hidden,) * c.depth, context_dim=context_dim,
                              scale=c.coupling_scale, clamp=c.clamp)

    def _check_divisible(self, squeezes: int) -> None:
        _, H, W = self.data_shape
        if H % 2**squeezes or W % 2**squeezes:
            raise ConfigError(f"scales={self.config.scales} needs H and W divisible by {2**squeezes}; "
                              f"got data_shape={self.data_shape}")

    # -- the Flow maps, with the class label as context ------------------------------------
    def _embed(self, condition: torch.Tensor | int | None, batch: int) -> torch.Tensor | None:
        condition = self.check_condition(condition, batch)
        return None if condition is None else self.embedding(condition)

    def forward(self, x: torch.Tensor, context: torch.Tensor | int | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Continuous inputs (B, *data_shape) -> (z, log |det dz/dx|); ``context``: class labels."""
        x = self.check_input(x)
        return Flow.forward(self, x, self._embed(context, len(x)))

    def inverse(self, z: torch.Tensor, context: torch.Tensor | int | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """z (B, *base shape) -> (continuous x, log |det dx/dz|); ``context``: class labels."""
        return Flow.inverse(self, z.to(self.device), self._embed(context, len(z)))

    def continuous_log_prob(self, y: torch.Tensor, condition: torch.Tensor | int | None = None) -> torch.Tensor:
        """The density of the continuous variable, log p(y) (B,): the data (levels=0) or the
        dequantised data in [0, 1]^D."""
        z, log_det = self.forward(y, condition)
        return self.base.log_prob(z) + log_det

    # -- discrete data -----------------------------------------------------------------------
    def grid_index(self, x: torch.Tensor) -> torch.Tensor:
        """The level k in [0, L) of each entry of x (on the grid -1 + 2k / (L - 1)), long."""
        L = self.config.levels
        scaled = (self.check_input(x) + 1) * (L - 1) / 2
        k = scaled.round()
        bad = (k < 0) | (k > L - 1) | ((scaled - k).abs() > _GRID_TOLERANCE)
        if bool(bad.any()):
            index = tuple(int(i) for i in torch.nonzero(bad)[0])
            raise ValueError(f"x{list(index)} is {x[index].item()!r}; with levels={L} the data lie on the "
                             f"grid -1 + 2k / {L - 1}, k = 0..{L - 1}")
        return k.long()

    def dequantize(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """y = (k + u) / L, u ~ U[0, 1)^D from ``generator`` (default the model's)."""
        k = self.grid_index(x)
        u = torch.rand(k.shape, generator=self.rng(generator), device=self.device, dtype=self._dtype())
        return (k + u) / self.config.levels

    def quantize(self, y: torch.Tensor) -> torch.Tensor:
        """The grid value of the cell holding y: k = clip(floor(L y), 0, L - 1) -> -1 + 2k / (L - 1)."""
        L = self.config.levels
        k = torch.floor(y * L).clamp(0, L - 1)
        return k * (2 / (L - 1)) - 1

    def _dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    # -- the contract ------------------------------------------------------------------------
    def log_prob(self, x: torch.Tensor, condition: torch.Tensor | int | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """log p(x) (B,) in nats: exact for continuous data; for discrete data (levels > 0) the
        dequantisation lower bound log p(y) - D log L with one draw y per example, from
        ``generator`` (default: one seeded afresh from the model's seed)."""
        if not self.config.levels:
            return self.continuous_log_prob(x, condition)
        if generator is None:
            generator = torch.Generator(device=self.device).manual_seed(self.seed)
        y = self.dequantize(x, generator)
        return self.continuous_log_prob(y, condition) - math.prod(self.data_shape) * math.log(self.config.levels)

    def loss(self, x: torch.Tensor, condition: torch.Tensor | int | None = None) -> torch.Tensor:
        """Mean -log p(x); discrete data are dequantised with the model's generator (fresh noise each step)."""
        return -self.log_prob(x, condition, self.generator).mean()

    def nll(self, x: torch.Tensor, condition: torch.Tensor | int | None = None,
            generator: torch.Generator | None = None) -> torch.Tensor:
        return -self.log_prob(x, condition, generator)

    def bits_per_dim(self, x: torch.Tensor, condition: torch.Tensor | int | None = None,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        """nll / (D ln 2) per example (B,)."""
        return self.nll(x, condition, generator) / (math.prod(self.data_shape) * math.log(2))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None,
               condition: torch.Tensor | int | None = None) -> torch.Tensor:
        """n examples (n, *data_shape): z ~ base through ``inverse``, quantised to the grid when
        levels > 0; every draw from ``generator`` (default the model's)."""
        check_positive_int("n", n)
        z = self.base.sample(n, self.rng(generator))
        y = self.inverse(z, condition)[0]
        return self.quantize(y) if self.config.levels else y


@dataclasses.dataclass
class RealNVPConfig(FlowModelConfig):
    layers: int | None = None  # couplings: vectors, in all (None: 8); images, per stage (None: 3)

    def __post_init__(self):
        super().__post_init__()
        if self.layers is not None:
            check_positive_int("layers", self.layers)


class RealNVP(FlowModel):
    """RealNVP: affine couplings with alternating masks.

    Vectors (D,): ``layers`` couplings, checkerboard masks of alternating parity, MLP
    conditioners (``depth`` hidden layers of ``hidden`` units). Images (C, H, W), the
    multi-scale architecture: each scale but the last has ``layers`` checkerboard couplings, a
    :class:`~.flow_layers.Squeeze`, ``layers`` channel couplings, then a
    :class:`~.flow_layers.Split` handing half the channels to N(0, I); the last scale has
    ``layers`` checkerboard couplings. Conditioners are 3x3 -> 1x1 -> 3x3 conv nets.
    """

    Config = RealNVPConfig

    def build_layers(self, context_dim: int) -> list[FlowLayer]:
        c = self.config
        if len(self.data_shape) == 1:
            return [self._coupling(checkerboard_mask(self.data_shape, i % 2), context_dim)
                    for i in range(c.layers or 8)]
        self._check_divisible(c.scales - 1)
        return self._scale(self.data_shape, 0, c.layers or 3, context_dim)

    def _scale(self, shape: tuple[int, ...], index: int, n: int, context_dim: int) -> list[FlowLayer]:
        layers: list[FlowLayer] = [self._coupling(checkerboard_mask(shape, i % 2), context_dim) for i in range(n)]
        if index == self.config.scales - 1:
            return layers
        layers.append(Squeeze())
        C, H, W = shape = Squeeze().output_shape(shape)
        layers += [self._coupling(channel_mask(shape, i % 2), context_dim) for i in range(n)]
        inner = Flow(self._scale((C - C // 2, H, W), index + 1, n, context_dim))
        return [*layers, Split(C, inner, learned_prior=False)]


@dataclasses.dataclass
class GlowConfig(FlowModelConfig):
    steps: int | None = None  # ActNorm, 1x1 conv, coupling steps: vectors in all (None: 8); images per scale (None: 4)
    lu: bool = True  # the 1x1 convolution in LU form (False: the full matrix)

    def __post_init__(self):
        super().__post_init__()
        if self.steps is not None:
            check_positive_int("steps", self.steps)
        if not isinstance(self.lu, bool):
            raise ConfigError(f"lu must be a bool, got {self.lu!r}")


class Glow(FlowModel):
    """Glow: steps of ActNorm -> invertible 1x1 convolution -> affine coupling (channel masks).

    Vectors (D,): ``steps`` steps, where the 1x1 convolution is an invertible linear map (LU
    form by default): the "ActNorm + LU-linear + coupling" flow for low-dimensional data.
    Images (C, H, W): ``scales`` levels, each a :class:`~.flow_layers.Squeeze` and ``steps``
    steps, with a :class:`~.flow_layers.Split` (learned conditional prior) between levels.
    """

    Config = GlowConfig

    def build_layers(self, context_dim: int) -> list[FlowLayer]:
        c = self.config
        if len(self.data_shape) == 1:
            return self._steps(self.data_shape, c.steps or 8, context_dim)
        self._check_divisible(c.scales)
        return self._scale(self.data_shape, 0, c.steps or 4, context_dim)

    def _steps(self, shape: tuple[int, ...], n: int, context_dim: int) -> list[FlowLayer]:
        C = shape[0]
        layers: list[FlowLayer] = []
        for i in range(n):
            layers += [ActNorm(C), InvertibleConv1x1(C, lu=self.config.lu),
                       self._coupling(channel_mask(shape, i % 2), context_dim)]
        return layers

    def _scale(self, shape: tuple[int, ...], index: int, n: int, context_dim: int) -> list[FlowLayer]:
        C, H, W = shape = Squeeze().output_shape(shape)
        layers: list[FlowLayer] = [Squeeze(), *self._steps(shape, n, context_dim)]
        if index == self.config.scales - 1:
            return layers
        inner = Flow(self._scale((C - C // 2, H, W), index + 1, n, context_dim))
        return [*layers, Split(C, inner, learned_prior=True)]
