"""Network building blocks: MLPs, the Nature-DQN CNN, and encoders that own obs preprocessing.

Agents feed raw env observations (as tensors, batch first) to ``make_encoder``'s module:
one-hot encoding of ``Discrete`` states, scaling of uint8 images to [0, 1] and the HWC ->
CHW transpose all happen inside the network, so ``predict`` and ``learn`` never duplicate
preprocessing.
"""

from __future__ import annotations

from typing import Sequence

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int | None,
        activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """``Linear -> activation`` for each hidden width, then a linear head (``out_dim=None``: no head)."""
    dims = [int(in_dim), *map(int, hidden)]
    if any(d <= 0 for d in dims) or (out_dim is not None and out_dim <= 0):
        raise ValueError(f"layer widths must be positive, got in={in_dim}, hidden={list(hidden)}, "
                         f"out={out_dim}")
    layers: list[nn.Module] = []
    for d_in, d_out in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(d_in, d_out), activation()]
    if out_dim is not None:
        layers.append(nn.Linear(dims[-1], int(out_dim)))
    return nn.Sequential(*layers)


# (out_channels, kernel, stride) of Mnih et al. (2015), designed for 84x84 Atari frames.
NATURE_LAYERS = ((32, 8, 4), (64, 4, 2), (64, 3, 1))
# The smallest square input the Nature stack maps to at least 1x1: ((36-8)/4+1-4)/2+1-3+1 = 1.
NATURE_MIN_SIZE = 36


def conv_layer_spec(height: int, width: int) -> list[tuple[int, int, int, int]]:
    """(out_channels, kernel, stride, padding) per conv layer for an HxW input.

    Rule: images whose short side is at least ``NATURE_MIN_SIZE`` (36 px) get the Nature
    stack unchanged. Smaller images (a gridworld rendered at a few pixels per cell) would
    be reduced to nothing by 8x8/4, so every kernel becomes 3x3 with padding 1 and only the
    middle layer keeps a stride (2): the map is halved once instead of shrunk 8x, so each
    cell's position survives to the linear layer, the last layer's units see 11x11 pixels
    (several cells), and the Nature channel counts are kept.
    """
    if min(height, width) >= NATURE_MIN_SIZE:
        return [(c, k, s, 0) for c, k, s in NATURE_LAYERS]
    return [(c, 3, stride, 1) for (c, _, _), stride in zip(NATURE_LAYERS, (1, 2, 1))]


class NatureCNN(nn.Module):
    """Mnih et al. (2015) encoder: three ReLU convs, flatten, ``Linear -> ReLU`` to ``features_dim``.

    Input: float images ``(B, C, H, W)`` in [0, 1]. Kernel sizes follow ``conv_layer_spec``.
    """

    def __init__(self, in_shape: tuple[int, int, int], features_dim: int = 512):
        super().__init__()
        channels, height, width = in_shape
        layers: list[nn.Module] = []
        for out_channels, kernel, stride, padding in conv_layer_spec(height, width):
            layers += [nn.Conv2d(channels, out_channels, kernel, stride, padding), nn.ReLU()]
            channels = out_channels
        layers.append(nn.Flatten())
        self.convs = nn.Sequential(*layers)
        with torch.no_grad():
            n_flat = self.convs(torch.zeros(1, *in_shape)).shape[1]
        self.linear = nn.Sequential(nn.Linear(n_flat, features_dim), nn.ReLU())
        self.features_dim = int(features_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.linear(self.convs(images))  # (B, features_dim)


class FlattenFloat(nn.Module):
    """Flat ``Box`` observations: cast to float32 and flatten everything after the batch axis."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.to(torch.float32).flatten(1)  # (B, prod(shape))


class OneHot(nn.Module):
    """``Discrete(n, start)`` observations -> one-hot float rows."""

    def __init__(self, n: int, start: int = 0):
        super().__init__()
        self.n, self.start = int(n), int(start)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return F.one_hot(obs.long().reshape(-1) - self.start, self.n).to(torch.float32)  # (B, n)


class ImageEncoder(nn.Module):
    """uint8 ``(B, H, W, C)`` images -> [0, 1] floats, channels first -> ``NatureCNN`` features."""

    def __init__(self, hwc_shape: tuple[int, int, int], features_dim: int = 512):
        super().__init__()
        height, width, channels = hwc_shape
        self.cnn = NatureCNN((channels, height, width), features_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).to(torch.float32) / 255.0  # (B, C, H, W)
        return self.cnn(x)


def is_image_space(space: gym.Space) -> bool:
    """uint8 ``Box`` of shape HxWxC with 1, 3 or 4 channels (SB3's convention, channels last)."""
    return (isinstance(space, gym.spaces.Box) and space.dtype == np.uint8
            and len(space.shape) == 3 and space.shape[-1] in (1, 3, 4))


def make_encoder(observation_space: gym.Space, features_dim: int = 512) -> tuple[nn.Module, int]:
    """The preprocessing + feature module for ``observation_space`` and its output width.

    ``features_dim`` applies to images only (the CNN's final linear layer).
    """
    if isinstance(observation_space, gym.spaces.Discrete):
        return OneHot(observation_space.n, observation_space.start), int(observation_space.n)
    if is_image_space(observation_space):
        encoder = ImageEncoder(observation_space.shape, features_dim)
        return encoder, encoder.cnn.features_dim
    if isinstance(observation_space, gym.spaces.Box):
        if observation_space.dtype == np.uint8 and len(observation_space.shape) == 3:
            raise TypeError(f"uint8 image observations must be HxWxC with 1, 3 or 4 channels, "
                            f"got shape {observation_space.shape}")
        return FlattenFloat(), int(np.prod(observation_space.shape))
    raise TypeError(f"unsupported observation space {observation_space}; use a Box or Discrete "
                    f"space (wrap gridworlds with OneHotObservation or ImageObservation)")
