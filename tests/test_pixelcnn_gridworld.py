"""A colour PixelCNN on the gridworld's RGB renders: channel-causal masks on real 3-channel data."""

from __future__ import annotations

import math

import numpy as np
import torch

from mimicgym.generative.pixelcnn import PixelCNN
from mimicgym.generative.train import fit


def _gridworld_renders() -> torch.Tensor:
    """The 48 RGB renders (one per agent cell) of cliff walking, one pixel per cell, each
    colour channel's values as tokens: long (48, 3, 4, 12) over 5 levels."""
    import gymnasium as gym

    import mimicgym  # noqa: F401  (registers the ids)
    from mimicgym.envs.wrappers import ImageObservation

    env = ImageObservation(gym.make("mimicgym/CliffWalking-v0"), cell_size=1)
    images = np.stack([env.observation(s) for s in range(48)]).transpose(0, 3, 1, 2)  # (48, 3, 4, 12)
    tokens = np.stack([np.unique(images[:, c], return_inverse=True)[1].reshape(48, 4, 12) for c in range(3)], 1)
    return torch.from_numpy(tokens)


def test_colour_pixelcnn_learns_gridworld_renders_with_causal_channels():
    x = _gridworld_renders()
    levels = int(x.max()) + 1
    model = PixelCNN((3, 4, 12), levels=levels, channels=24, layers=3, seed=0)
    # Channel order within a pixel: R from the context, G from R too, B from R and G.
    logits = model.logits(x[:2])
    for c, i, j in [(0, 1, 5), (1, 2, 3), (2, 3, 11)]:
        changed = x[:2].clone()
        changed[:, c:, i, j] = (changed[:, c:, i, j] + 1) % levels  # this sub-pixel and later channels
        changed[:, :, i, j + 1:] = (changed[:, :, i, j + 1:] + 1) % levels  # the rest of the row
        changed[:, :, i + 1:] = (changed[:, :, i + 1:] + 1) % levels  # the rows below
        torch.testing.assert_close(model.logits(changed)[:, c, i, j], logits[:, c, i, j], rtol=0, atol=0)
    uniform = 3 * 4 * 12 * math.log(levels)
    fit(model, x, epochs=60, lr=3e-3, batch_size=16)
    nll = -model.log_prob(x).mean().item()
    assert nll < 0.1 * uniform  # 48 images, almost all alike: a colour model nearly memorises them
    samples = model.sample(4, torch.Generator().manual_seed(0))
    assert samples.shape == (4, 3, 4, 12) and int(samples.max()) < levels
