"""Image grids of samples, reconstructions, traversals: one tensor op, then one PNG."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from mimicgym.utils.io import atomic_write


def image_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 1, pad_value: float = 0.5
               ) -> torch.Tensor:
    """Tile images (N, C, H, W) with values in [0, 1] into one image (C, rows*(H+p)+p, nrow*(W+p)+p)."""
    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    n, c, h, w = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    canvas = images.new_full((rows * nrow, c, h + padding, w + padding), pad_value)
    canvas[:n, :, padding:, padding:] = images.detach().clamp(0, 1)
    # (rows, nrow, C, h+p, w+p) -> (C, rows, h+p, nrow, w+p): rows of tiles stacked vertically.
    grid = canvas.view(rows, nrow, c, h + padding, w + padding).permute(2, 0, 3, 1, 4)
    grid = grid.reshape(c, rows * (h + padding), nrow * (w + padding))
    return torch.nn.functional.pad(grid, (0, padding, 0, padding), value=pad_value)


def save_image_grid(path: str | Path, images: torch.Tensor, nrow: int | None = None, scale: int = 4) -> Path:
    """Write :func:`image_grid` of ``images`` as a PNG, each pixel ``scale`` x ``scale``, atomically."""
    import imageio.v3 as iio

    grid = image_grid(images.float().cpu(), nrow)
    array = (grid.numpy() * 255).round().astype(np.uint8).transpose(1, 2, 0)  # (H, W, C)
    array = array.repeat(scale, axis=0).repeat(scale, axis=1)
    if array.shape[2] == 1:
        array = array[:, :, 0]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        iio.imwrite(f, array, extension=".png")
    return path
