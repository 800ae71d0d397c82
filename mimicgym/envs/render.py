"""Drawing gridworlds with numpy: a per-cell colour array blown up with ``np.repeat``.

Each cell is a ``cell_size``-pixel square of its character's colour; when cells are at
least :data:`GRID_LINE_MIN` pixels wide, the top row and left column of every cell are
drawn in the grid-line colour. The agent is a disk of radius ``0.35 * cell_size`` at the
cell centre (the whole cell below :data:`GRID_LINE_MIN` pixels).
"""

from __future__ import annotations

import numpy as np

from mimicgym.envs import maps

GRID_LINE_MIN = 6
GRID_LINE = (60, 60, 60)
AGENT = (31, 119, 180)
COLOURS = {  # RGB per map character
    maps.WALL: (40, 40, 40),
    maps.FLOOR: (245, 245, 245),
    maps.START: (200, 220, 255),
    maps.GOAL: (80, 190, 80),
    maps.TRAP: (200, 60, 60),
    maps.CLIFF: (120, 30, 30),
}
SPECIAL = (250, 210, 90)  # reward digits, jump sources and targets


def cell_colours(chars: np.ndarray) -> np.ndarray:
    """(rows, cols, 3) uint8 colour of every cell."""
    rgb = np.empty(chars.shape + (3,), dtype=np.uint8)
    rgb[:] = SPECIAL
    for char, colour in COLOURS.items():
        rgb[chars == char] = colour
    return rgb


def agent_mask(cell_size: int) -> np.ndarray:
    """(cell_size, cell_size) bool: the pixels of the agent inside its cell."""
    if cell_size < GRID_LINE_MIN:
        return np.ones((cell_size, cell_size), dtype=bool)
    centre = (cell_size - 1) / 2.0
    yy, xx = np.indices((cell_size, cell_size))
    return np.hypot(yy - centre, xx - centre) <= 0.35 * cell_size


def background(chars: np.ndarray, cell_size: int) -> np.ndarray:
    """(rows * cell_size, cols * cell_size, 3) uint8 image of the empty grid."""
    image = np.repeat(np.repeat(cell_colours(chars), cell_size, axis=0), cell_size, axis=1)
    if cell_size >= GRID_LINE_MIN:
        line = np.zeros((cell_size, cell_size), dtype=bool)
        line[0, :] = line[:, 0] = True
        image[np.tile(line, chars.shape)] = GRID_LINE
    return image


def check_cell_size(cell_size) -> int:
    if isinstance(cell_size, bool) or not isinstance(cell_size, (int, np.integer)) or cell_size < 1:
        raise ValueError(f"cell_size must be a positive int (pixels), got {cell_size!r}")
    return int(cell_size)


class GridPainter:
    """Caches the background and agent mask of one map at one cell size."""

    def __init__(self, chars: np.ndarray, cell_size: int):
        self.n_cols = chars.shape[1]
        self.cell_size = check_cell_size(cell_size)
        self.background = background(chars, self.cell_size)
        self.background.setflags(write=False)
        self.mask = agent_mask(self.cell_size)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.background.shape

    def draw(self, state: int | None, out: np.ndarray | None = None) -> np.ndarray:
        """The grid with the agent at ``state`` (no agent if None), into ``out`` if given."""
        if out is None:
            image = self.background.copy()
        else:
            image = out
            np.copyto(image, self.background)
        if state is not None:
            row, col = divmod(int(state), self.n_cols)
            cs = self.cell_size
            image[row * cs:(row + 1) * cs, col * cs:(col + 1) * cs][self.mask] = AGENT
        return image


def ansi(chars: np.ndarray, state: int | None, last_action: str | None = None) -> str:
    """The map as text, the agent shown as ``@``, and the last action if any."""
    grid = chars.copy()
    if state is not None:
        grid.flat[int(state)] = "@"
    text = "\n".join("".join(row) for row in grid) + "\n"
    return (f"  ({last_action})\n" if last_action else "") + text
