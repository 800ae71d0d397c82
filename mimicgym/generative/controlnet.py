"""A ControlNet-style branch (Zhang, Rao & Agrawala 2023): a new condition for a frozen diffusion model.

The trained U-Net eps_theta(x_t, t) of a :class:`~mimicgym.generative.diffusion.DDPM` is kept
frozen. A trainable copy of its encoder path (time embedding, stem, encoder blocks, middle
block) reads the same x_t plus the new condition c, which enters through a small hint encoder
added after the copied stem:

    h_0 = stem'(x_t) + hint_encoder(c),   h_i = block'_i(h_{i-1}, e),   m = middle'(h_last, e).

Each copied feature (one per skip feature of the U-Net, then the middle block's output) goes
through a 1x1 convolution initialised to zero and is added to the frozen U-Net's feature at
the same place (``UNet.forward(..., residuals=)``). The hint encoder also ends in a zero
convolution. At initialisation every residual is exactly zero, so the model is exactly the
frozen one; the zero convolutions still get a gradient (their input is not zero), so
training moves them first and the copy learns from there, without noise from a randomly
initialised branch reaching the frozen model.

Training is the frozen DDPM's simple loss with eps = the controlled prediction, the
condition computed from the clean image itself. The condition here (``hint="sketch"``) is
a coarse sketch of the image: the average of each k x k block (:func:`sketch`, 4x4 for the
8x8 digits), upsampled back to the image size (nearest) for the hint encoder. Sampling runs
the DDPM's own sampler loop (:meth:`DDPM.reverse_process`) around the controlled prediction;
a class-conditional frozen DDPM still takes its labels and classifier-free guidance, with the
hint given to both the conditional and the unconditional prediction.
"""

from __future__ import annotations

import copy
import dataclasses

import torch
from torch import nn
from torch.nn import functional as F

from mimicgym.errors import ConfigError
from mimicgym.generative.autoencoder import check_widths
from mimicgym.generative.base import FrozenBaseModel
from mimicgym.generative.denoisers import UNet
from mimicgym.generative.diffusion import DDPM
from mimicgym.utils.checks import check_choice, check_positive, check_positive_int

HINTS = ("sketch",)


def sketch(x: torch.Tensor, size: int = 4) -> torch.Tensor:
    """The coarse sketch of images x (B, C, H, W): the mean of each (H/size, W/size) block,
    (B, C, size, size). For the 8x8 digits and size 4, 2x2 average pooling."""
    if x.dim() != 4:
        raise ValueError(f"x must be images (B, C, H, W), got shape {tuple(x.shape)}")
    H, W = x.shape[-2:]
    if isinstance(size, bool) or not isinstance(size, int) or size < 1 or H % size or W % size:
        raise ValueError(f"size must be a positive int dividing the image size {H}x{W}, got {size!r}")
    return F.avg_pool2d(x, (H // size, W // size))


def sketch_error(x: torch.Tensor, hint: torch.Tensor) -> torch.Tensor:
    """How far images x (B, C, H, W) are from following the sketches ``hint`` (B, C, s, s): the
    mean absolute difference between sketch(x) and hint, per example (B,)."""
    return (sketch(x, hint.shape[-1]) - hint.to(x.device, x.dtype)).abs().flatten(1).mean(1)


def zero_conv(channels_in: int, channels_out: int, kernel_size: int = 1) -> nn.Conv2d:
    """A convolution whose weight and bias start at zero: its output is exactly 0 until it is trained."""
    conv = nn.Conv2d(channels_in, channels_out, kernel_size, padding=kernel_size // 2)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


@dataclasses.dataclass
class ControlNetConfig:
    hint: str = "sketch"  # the new condition; "sketch": block means of the image (see sketch())
    sketch_size: int = 4  # the sketch is sketch_size x sketch_size (must divide H and W)
    hint_widths: tuple[int, ...] = (16, 16)  # the hint encoder's 3x3 convolutions before its zero conv

    def __post_init__(self):
        check_choice("hint", self.hint, HINTS)
        check_positive_int("sketch_size", self.sketch_size)
        self.hint_widths = check_widths("hint_widths", self.hint_widths)
        if not self.hint_widths:
            raise ConfigError(f"hint_widths must hold at least one width, got {self.hint_widths!r}")


class ControlNet(FrozenBaseModel):
    """``ControlNet(ddpm, **hyperparameters)``: a trainable branch steering a frozen U-Net DDPM.

    The DDPM is held, not copied: its parameters are set to ``requires_grad=False`` and it
    stays in eval mode; it is part of this model's ``state_dict``, so a checkpoint restores
    both. Only the branch is optimised (:meth:`make_optimizers`). ``loss(x, condition=None)``
    computes the hint from x (``condition``: the frozen DDPM's class labels, if it has any);
    ``sample(n, generator, condition=hint)`` takes the sketches (n, C, s, s) to follow (None:
    the frozen DDPM's own samples) and the class ``labels`` separately.
    """

    Config = ControlNetConfig
    base_name = "ddpm"
    has_likelihood = False
    validation_metric = "denoising_loss"

    def __init__(self, ddpm: DDPM, *, seed: int = 0, **hyperparameters):
        if not isinstance(ddpm, DDPM):
            raise TypeError(f"ControlNet steers a DDPM, got {type(ddpm).__name__}")
        if not isinstance(ddpm.network, UNet):
            raise ConfigError(f"ControlNet copies a U-Net's encoder: the DDPM's network must be 'unet', "
                              f"got network={ddpm.network_kind!r} ({type(ddpm.network).__name__}) for "
                              f"data_shape={ddpm.data_shape}")
        super().__init__(ddpm, seed=seed, **hyperparameters)

    def build(self) -> None:
        self.ddpm: DDPM = self.take_base()
        unet = self.ddpm.network
        C, H, W = self.data_shape
        size = self.config.sketch_size
        if H % size or W % size:
            raise ConfigError(f"sketch_size must divide the image size {H}x{W}, got sketch_size={size!r}")
        # The trainable copy of the encoder path, starting from the frozen weights.
        self.time = copy.deepcopy(unet.time)
        self.stem = copy.deepcopy(unet.stem)
        self.encoder_blocks = copy.deepcopy(unet.encoder_blocks)
        self.middle = copy.deepcopy(unet.middle)
        for module in (self.time, self.stem, self.encoder_blocks, self.middle):
            module.requires_grad_(True)
        layers, width = [], C
        for hint_width in self.config.hint_widths:
            layers += [nn.Conv2d(width, hint_width, 3, padding=1), nn.SiLU()]
            width = hint_width
        self.hint_encoder = nn.Sequential(*layers, zero_conv(width, unet.skip_channels[0], 3))
        # The middle block keeps the width of the last skip feature.
        self.zero_convs = nn.ModuleList(zero_conv(c, c) for c in (*unet.skip_channels, unet.skip_channels[-1]))

    @property
    def num_classes(self) -> int | None:
        """Class labels are the frozen DDPM's (None when it is unconditional)."""
        return self.ddpm.num_classes

    # -- the network -------------------------------------------------------------------------
    def make_hint(self, x: torch.Tensor) -> torch.Tensor:
        """The condition of clean images x (B, C, H, W): their sketch (B, C, s, s)."""
        return sketch(x, self.config.sketch_size)

    def check_hint(self, hint: torch.Tensor, batch: int, name: str = "hint") -> torch.Tensor:
        """``hint`` on the model's device, or an error naming its wrong shape or first non-finite entry."""
        C, s = self.data_shape[0], self.config.sketch_size
        if not isinstance(hint, torch.Tensor) or tuple(hint.shape) != (batch, C, s, s):
            shape = tuple(hint.shape) if isinstance(hint, torch.Tensor) else type(hint).__name__
            raise ValueError(f"{name} must be a tensor of shape ({batch}, {C}, {s}, {s}) (a {self.config.hint} "
                             f"per example), got {shape}")
        hint = hint.to(self.device, torch.get_default_dtype())
        if not bool(torch.isfinite(hint).all()):
            index = tuple(int(i) for i in torch.nonzero(~torch.isfinite(hint))[0])
            raise ValueError(f"{name}{list(index)} is {hint[index].item()!r}; expected a finite value")
        return hint

    def residuals(self, x_t: torch.Tensor, time: torch.Tensor, condition: torch.Tensor | None,
                  hint: torch.Tensor) -> list[torch.Tensor]:
        """The branch: one residual per skip feature of the frozen U-Net, then the middle block's.
        x_t (B, C, H, W), time (B,), condition (B, E) class embedding or None, hint (B, C, s, s)."""
        e = self.time(time)
        e = e if condition is None else e + condition  # (B, E), as the frozen U-Net embeds
        hint_image = F.interpolate(hint, size=x_t.shape[-2:], mode="nearest")  # (B, C, H, W)
        h = self.stem(x_t) + self.hint_encoder(hint_image)
        features = [h]
        for block in self.encoder_blocks:
            h = block(h, e)
            features.append(h)
        for block in self.middle:
            h = block(h, e)
        features.append(h)
        return [zero(f) for zero, f in zip(self.zero_convs, features)]

    def _eps(self, x_t: torch.Tensor, time: torch.Tensor, labels: torch.Tensor | None, hint: torch.Tensor,
             control_scale: float = 1.0) -> torch.Tensor:
        """The frozen U-Net with the branch's residuals (scaled by ``control_scale``) added."""
        condition = None if labels is None else self.ddpm.class_embedding(labels)
        residuals = self.residuals(x_t, time, condition, hint)
        if control_scale != 1.0:
            residuals = [control_scale * r for r in residuals]
        return self.ddpm.network(x_t, time, condition, residuals=residuals)

    def predict_noise(self, x_t: torch.Tensor, t: int | torch.Tensor, hint: torch.Tensor,
                      labels: torch.Tensor | int | None = None, guidance: float = 0.0,
                      control_scale: float = 1.0) -> torch.Tensor:
        """The controlled eps(x_t, t, hint[, labels]) (B, C, H, W), classifier-free guided with weight
        ``guidance`` over the labels; t an int or (B,) integer timesteps."""
        x_t = self.check_input(x_t, "x_t")
        hint = self.check_hint(hint, len(x_t))
        labels = self.check_condition(labels, len(x_t))
        self.ddpm._check_guidance(guidance)
        check_positive("control_scale", control_scale, allow_zero=True)
        time = torch.as_tensor(t, device=self.device).expand(len(x_t)).to(torch.get_default_dtype())
        return self._guided_eps(x_t, time, labels, hint, guidance, control_scale)

    def _guided_eps(self, x_t, time, labels, hint, guidance, control_scale):
        # Guidance doubles the batch (conditional half, then unconditional): the hint goes to both.
        hints = hint if guidance == 0.0 else torch.cat([hint, hint])
        return self.ddpm._guided_eps(x_t, time, labels, guidance,
                                     lambda x, tau, y: self._eps(x, tau, y, hints, control_scale))

    # -- training ----------------------------------------------------------------------------
    def _losses(self, x: torch.Tensor, condition, generator: torch.Generator, dropout: float) -> torch.Tensor:
        x = self.check_input(x)
        labels = self.check_condition(condition, len(x))
        hint = self.make_hint(x)
        return self.ddpm._denoising_losses(x, labels, generator, dropout,
                                           lambda x_t, time, y: self._eps(x_t, time, y, hint))

    def loss(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """The frozen DDPM's simple loss with the controlled eps, the hint made from x itself; the
        draws (and the class-label dropout of a conditional DDPM) from this model's generator."""
        return self._losses(x, condition, self.generator, self.ddpm.config.condition_dropout).mean()

    def validation_loss(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """The same per example (B,), no label dropped, with draws from a generator seeded afresh."""
        return self._losses(x, condition, torch.Generator(device=self.device).manual_seed(self.seed), 0.0)

    # -- sampling ----------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, condition: torch.Tensor | None = None,
               sampler: str = "ddpm", steps: int | None = None, guidance: float = 0.0, eta: float = 0.0,
               labels: torch.Tensor | int | None = None, control_scale: float = 1.0) -> torch.Tensor:
        """n images (n, C, H, W) following the sketches ``condition`` (n, C, s, s), by the frozen
        DDPM's sampler (``sampler``, ``steps``, ``eta`` as in :meth:`DDPM.sample`); ``labels`` and
        ``guidance``: the class condition of a class-conditional DDPM. ``condition=None``: the frozen
        DDPM's samples (the same draws from the same generator)."""
        check_positive_int("n", n)
        rng = self.rng(generator)
        if condition is None:
            return self.ddpm.sample(n, rng, labels, sampler, steps, guidance, eta)
        hint = self.check_hint(condition, n, "condition")
        labels = self.check_condition(labels, n)
        self.ddpm._check_guidance(guidance)
        check_positive("control_scale", control_scale, allow_zero=True)
        was_training = self.training
        self.eval()
        x = self.ddpm.reverse_process(n, lambda x_t, time: self._guided_eps(x_t, time, labels, hint, guidance,
                                                                            control_scale),
                                      rng, sampler, steps, eta)
        self.train(was_training)
        return x
