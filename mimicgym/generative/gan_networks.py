"""The two players of the GANs (MLPs for vectors, DCGAN's convolutional pair for images) and
the objectives they are scored by (the minimax value, the generator losses, WGAN-GP's penalty).

Every generator maps codes z (B, latent_dim), and class labels (B,) when conditional, to examples
(B, *data_shape); every discriminator maps examples (and labels) to one score per example (B,):
a logit for the minimax game, a critic value for WGAN-GP.

Class conditioning: the generator reads a learned label embedding concatenated to z; the
discriminator is a projection discriminator (Miyato & Koyama 2018),

    D(x, y) = psi(phi(x)) + <embed(y), phi(x)>,

with phi(x) its last hidden features (summed over positions for the convolutional one) and psi
its unconditional head: the label moves the score along the features rather than being one
more input the discriminator may learn to ignore.

DCGAN's rules (Radford et al. 2016), kept by :class:`ConvGenerator` and :class:`ConvDiscriminator`:
strided (transposed) convolutions instead of pooling, batch norm (not on the discriminator's
input layer nor on the generator's output), ReLU in the generator with a tanh output,
LeakyReLU(0.2) in the discriminator, no fully connected hidden layers (the code enters the
generator as a 1x1 map, projected to the first H0 x W0 map by a transposed convolution, and the
discriminator ends with a convolution over its whole last map).

The objectives take scores, not networks (see :mod:`.gan` for the game they define):
:func:`minimax_value`, :func:`generator_loss_from_logits`, :func:`gradient_penalty`.
"""

from __future__ import annotations

import contextlib
import math
from functools import partial
from typing import Callable, Iterator

import torch
from torch import nn
from torch.nn import functional as F

from mimicgym.errors import ConfigError
from mimicgym.generative.autoencoder import mlp
from mimicgym.utils.checks import check_choice

LEAKY_SLOPE = 0.2  # DCGAN's LeakyReLU slope in the discriminator
GENERATOR_LOSSES = ("non_saturating", "minimax")


def _with_label(z: torch.Tensor, embedding: nn.Embedding | None, condition: torch.Tensor | None) -> torch.Tensor:
    """The generator's input: z (B, L), or [z, embed(y)] (B, L + E) when conditional."""
    return z if embedding is None else torch.cat([z, embedding(condition)], dim=1)


def _project(score: torch.Tensor, features: torch.Tensor, projection: nn.Embedding | None,
             condition: torch.Tensor | None) -> torch.Tensor:
    """psi(phi) (B,) plus the projection term <embed(y), phi> (B,) when conditional; phi (B, F)."""
    return score if projection is None else score + (projection(condition) * features).sum(1)


class MLPGenerator(nn.Module):
    """z (B, L) -> Linear-ReLU per ``hidden`` width -> Linear -> (B, *data_shape), tanh at the
    output when ``tanh_output`` (data in [-1, 1]), none otherwise (unbounded vectors)."""

    def __init__(self, latent_dim: int, hidden: tuple[int, ...], data_shape: tuple[int, ...],
                 num_classes: int | None = None, embedding_dim: int = 16, tanh_output: bool = False):
        super().__init__()
        self.data_shape = data_shape
        self.embedding = nn.Embedding(num_classes, embedding_dim) if num_classes else None
        layers = mlp(latent_dim + (embedding_dim if num_classes else 0), hidden, math.prod(data_shape))
        self.net = nn.Sequential(*layers, nn.Tanh()) if tanh_output else layers

    def forward(self, z: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(_with_label(z, self.embedding, condition)).view(len(z), *self.data_shape)


class MLPDiscriminator(nn.Module):
    """x (B, *data_shape), flattened -> Linear-LeakyReLU(0.2) per ``hidden`` width = phi(x) ->
    Linear -> one score (B,); a projection term when conditional. No normalisation layer, so
    each example's score depends on that example alone (the gradient penalty needs it)."""

    def __init__(self, data_shape: tuple[int, ...], hidden: tuple[int, ...], num_classes: int | None = None):
        super().__init__()
        layers = mlp(math.prod(data_shape), hidden, 1, partial(nn.LeakyReLU, LEAKY_SLOPE))
        self.features, self.head = layers[:-1], layers[-1]  # phi(x), and the score's linear head
        self.projection = nn.Embedding(num_classes, self.head.in_features) if num_classes else None

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        phi = self.features(x.flatten(1))  # (B, F)
        return _project(self.head(phi).squeeze(1), phi, self.projection, condition)


def base_size(data_shape: tuple[int, ...], upsamplings: int) -> tuple[int, int]:
    """The (H0, W0) map the convolutional generator starts from (and the discriminator ends on):
    the image's (H, W) halved ``upsamplings`` times; a ConfigError when that is not exact."""
    if len(data_shape) != 3:
        raise ConfigError(f"the convolutional players model images: data_shape must be (C, H, W), got {data_shape}")
    _, H, W = data_shape
    if H % 2**upsamplings or W % 2**upsamplings:
        raise ConfigError(f"upsamplings must halve the {H}x{W} image exactly (H and W divisible by "
                          f"2^upsamplings), got upsamplings={upsamplings!r}")
    return H >> upsamplings, W >> upsamplings


class ConvGenerator(nn.Module):
    """DCGAN's generator for images (C, H, W), with m = ``upsamplings``.

    z (B, L[+E], 1, 1) -> transposed conv over the whole (H0, W0) = (H, W) / 2^m map ->
    (width 2^(m-1), H0, W0), then m transposed convolutions of stride 2 (kernel 4, padding 1),
    each doubling the size and halving the channels, the last one to C channels;
    BatchNorm + ReLU after every layer but the last, tanh at the output. For 8x8 digits and
    m = 2: z -> (128, 2, 2) -> (64, 4, 4) -> (1, 8, 8).
    """

    def __init__(self, latent_dim: int, data_shape: tuple[int, int, int], width: int = 64, upsamplings: int = 2,
                 num_classes: int | None = None, embedding_dim: int = 16):
        super().__init__()
        C = data_shape[0]
        h0, w0 = base_size(data_shape, upsamplings)
        self.embedding = nn.Embedding(num_classes, embedding_dim) if num_classes else None
        channels = [width * 2 ** (upsamplings - 1 - i) for i in range(upsamplings)]  # (m,) halving
        in_dim = latent_dim + (embedding_dim if num_classes else 0)
        # Biases before batch norm would be cancelled by its mean subtraction.
        layers: list[nn.Module] = [nn.ConvTranspose2d(in_dim, channels[0], (h0, w0), bias=False),
                                   nn.BatchNorm2d(channels[0]), nn.ReLU()]
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
        layers += [nn.ConvTranspose2d(channels[-1], C, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(_with_label(z, self.embedding, condition)[:, :, None, None])


class ConvDiscriminator(nn.Module):
    """DCGAN's discriminator (``batch_norm=True``) or WGAN-GP's critic (``batch_norm=False``).

    x (B, C, H, W) -> m convolutions of stride 2 (kernel 4, padding 1), each halving the size,
    width 2^i channels, LeakyReLU(0.2), batch norm after all but the first -> phi (B, F, H0, W0)
    -> a convolution over the whole (H0, W0) map -> one score (B,). The projection term reads
    phi summed over positions.
    """

    def __init__(self, data_shape: tuple[int, int, int], width: int = 64, downsamplings: int = 2,
                 num_classes: int | None = None, batch_norm: bool = True):
        super().__init__()
        C = data_shape[0]
        h0, w0 = base_size(data_shape, downsamplings)
        channels = [C] + [width * 2**i for i in range(downsamplings)]
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:])):
            normalised = batch_norm and i > 0  # DCGAN: never on the input layer
            layers.append(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=not normalised))
            layers += [nn.BatchNorm2d(c_out)] if normalised else []
            layers.append(nn.LeakyReLU(LEAKY_SLOPE))
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(channels[-1], 1, (h0, w0))
        self.projection = nn.Embedding(num_classes, channels[-1]) if num_classes else None

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        phi = self.features(x)  # (B, F, H0, W0)
        return _project(self.head(phi).flatten(), phi.sum((2, 3)), self.projection, condition)


def dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation: convolution weights N(0, 0.02), batch-norm scales N(1, 0.02),
    biases zero (``module.apply(dcgan_init)``, under the model's seed)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """The module's parameters take no gradient inside the block (the other player's turn)."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


@contextlib.contextmanager
def evaluating(module: nn.Module) -> Iterator[None]:
    """The module in eval mode inside the block (batch norm on its running statistics, so each
    output depends on its own input alone), its previous mode restored after."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


# -- what the players are scored by ------------------------------------------------------------
def minimax_value(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """V(D, G) = E[log D(x)] + E[log(1 - D(G(z)))] from D's logits on real (B,) and fake (B',)
    examples, a scalar; D's loss is -V (binary cross-entropy with logits)."""
    return F.logsigmoid(real_logits).mean() + F.logsigmoid(-fake_logits).mean()  # log(1 - sigmoid(l)) = logsigmoid(-l)


def generator_loss_from_logits(fake_logits: torch.Tensor, kind: str = "non_saturating") -> torch.Tensor:
    """G's loss from D's logits on fakes (B,): ``"minimax"`` E[log(1 - D(G(z)))], or
    ``"non_saturating"`` -E[log D(G(z))]; a scalar."""
    check_choice("kind", kind, GENERATOR_LOSSES)
    if kind == "minimax":
        return F.logsigmoid(-fake_logits).mean()
    return -F.logsigmoid(fake_logits).mean()


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                     mix: torch.Tensor) -> torch.Tensor:
    """(||grad_x C(x_hat)|| - 1)^2 per example (B,) at x_hat = mix x + (1 - mix) fake, ``mix``
    (B,) in [0, 1]; differentiable in the critic's parameters (and in ``fake``'s graph, if any).

    ``critic`` maps (B, ...) to (B,) with each score depending on its own example only (no batch
    norm): then the gradient of the summed scores is every example's own gradient.
    """
    with torch.enable_grad():  # usable under no_grad too: the penalty is itself a gradient
        x_hat = torch.lerp(fake, real, mix.view(-1, *[1] * (real.dim() - 1)))
        if not x_hat.requires_grad:
            x_hat.requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
        return (torch.linalg.vector_norm(grad.flatten(1), dim=1) - 1).pow(2)
