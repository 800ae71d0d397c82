"""PNG figures for runs: learning curves and value heatmaps with greedy-policy arrows.

matplotlib is imported with the non-interactive Agg backend, so plotting works headless.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np


def pyplot():
    """matplotlib's pyplot on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: float | None = None) -> Path:
    """Lay out ``fig``, write it atomically to ``path`` (format from the suffix) and close it."""
    from mimicgym.utils.io import atomic_write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    with atomic_write(path) as f:
        fig.savefig(f, format=path.suffix.lstrip(".") or "png", dpi=dpi)
    pyplot().close(fig)
    return path


def moving_average(x: Sequence[float], window: int) -> np.ndarray:
    """Trailing mean over up to ``window`` points (shorter at the start, never empty)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return x
    csum = np.cumsum(np.insert(x, 0, 0.0))
    idx = np.arange(1, x.size + 1)
    lo = np.maximum(idx - window, 0)
    return (csum[idx] - csum[lo]) / (idx - lo)


def plot_learning_curves(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: str | Path,
    *,
    xlabel: str = "episode",
    ylabel: str = "return",
    title: str | None = None,
    smooth: int = 1,
    ylim: tuple[float, float] | None = None,
) -> Path:
    """One line per label from ``{label: (x, y)}``; ``smooth`` is a moving-average window."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for label, (x, y) in curves.items():
        ax.plot(np.asarray(x), moving_average(y, smooth), label=label, lw=1.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel if smooth <= 1 else f"{ylabel} (moving average, {smooth})")
    if ylim is not None:
        ax.set_ylim(*ylim)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(curves) > 1:
        ax.legend()
    return save_figure(fig, path)


def plot_value_heatmap(
    values: np.ndarray,
    grid_shape: tuple[int, int],
    path: str | Path,
    *,
    greedy_actions: np.ndarray | None = None,
    moves: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    title: str | None = None,
    annotate: bool | None = None,
) -> Path:
    """State values on the grid, with an arrow per cell for the greedy action.

    ``moves`` is the (A, 2) array of (d_row, d_col) displacements of the actions; cells in
    ``mask`` (walls, terminals) get no arrow and, for walls, no colour.
    """
    plt = pyplot()
    rows, cols = grid_shape
    grid = np.asarray(values, dtype=np.float64).reshape(rows, cols)
    hidden = np.zeros((rows, cols), bool) if mask is None else np.asarray(mask).reshape(rows, cols)
    shown = np.ma.masked_array(grid, hidden)
    fig, ax = plt.subplots(figsize=(max(3.0, 0.6 * cols + 1.5), max(2.5, 0.6 * rows + 0.8)), dpi=120)
    im = ax.imshow(shown, cmap="viridis")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="value")
    if annotate is None:
        annotate = rows * cols <= 150
    if annotate:
        rr, cc = np.nonzero(~hidden)
        for r, c in zip(rr, cc):
            ax.text(c, r + 0.3, f"{grid[r, c]:.1f}", ha="center", va="center", fontsize=6, color="w")
    if greedy_actions is not None and moves is not None:
        moves = np.asarray(moves, dtype=np.float64)
        acts = np.asarray(greedy_actions).reshape(rows, cols)
        d = moves[acts]  # (rows, cols, 2) as (d_row, d_col)
        norm = np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-9)
        d = np.where(norm > 1e-6, d / norm, 0.0)
        rr, cc = np.nonzero(~hidden)
        # quiver's v points up in data coordinates; imshow's rows grow downward.
        ax.quiver(cc, rr - 0.1, d[rr, cc, 1], -d[rr, cc, 0], color="white",
                  scale=1.6, scale_units="xy", width=0.006, pivot="middle")
    ax.set_xticks(range(cols))
    ax.set_yticks(range(rows))
    ax.tick_params(labelsize=6)
    if title:
        ax.set_title(title)
    return save_figure(fig, path)
