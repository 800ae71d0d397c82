"""ASCII gridworld maps: the legend, the parser, and the textbook layouts.

Map legend (one character per cell, rows of equal length)::

    #    wall: never entered; a move into it (or off the grid) leaves the agent in place
    .    floor
    S    start cell (exactly one)
    G    goal: terminal
    T    trap: terminal, entry reward ``rewards['T']`` (default -10)
    C    cliff: entering it gives ``rewards['C']`` (default -100) and sends the agent
         back to ``S`` (Sutton & Barto, Example 6.6)
    0-9  floor whose entry reward is the digit's value
    other characters are allowed when they are keys of ``rewards`` (floor with that entry
    reward) or sources/targets of ``jumps`` (every action from a source cell moves to
    the target cell with the jump's reward, as A -> A' in Example 3.5)

Rewards, in order of precedence: a move from a jump source earns the jump reward; a move
that ends in another cell earns that cell's entry reward (``rewards[(row, col)]``, else
``rewards[char]``, else the digit's value, else ``step_reward``); a move that leaves the
agent in place earns ``bump_reward`` if it was blocked by a wall or the edge and
``bump_reward`` is set, else ``step_reward``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from mimicgym.errors import MapError

WALL, FLOOR, START, GOAL, TRAP, CLIFF = "#", ".", "S", "G", "T", "C"
TERMINAL_CHARS = frozenset(GOAL + TRAP)
LEGEND_CHARS = frozenset("#.SGTC0123456789")
DEFAULT_REWARDS: dict[str, float] = {TRAP: -10.0, CLIFF: -100.0}
# Largest map accepted (rows x columns): the exact model holds a few (S, A, K) arrays, about
# 1 GB per million cells with king moves and stochastic wind, so larger maps are mistakes.
MAX_MAP_CELLS = 10**7


@dataclass(frozen=True)
class Layout:
    """A named gridworld: its map and the defaults of every keyword of the env."""

    map: tuple[str, ...]
    step_reward: float = -1.0
    bump_reward: float | None = None
    rewards: Mapping = field(default_factory=dict)
    jumps: Mapping[str, tuple[str, float]] = field(default_factory=dict)
    wind: tuple[int, ...] | None = None
    actions: str = "compass"  # see grid_dynamics.MOVES
    gamma: float = 1.0  # the discount the textbook uses with this task
    description: str = ""


def short_repr(value, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages about arbitrary input."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def random_walk_map(n_states: int) -> tuple[str, ...]:
    """``T`` + n floor cells with ``S`` in the middle + ``G``: the n-state random walk."""
    if isinstance(n_states, bool) or not isinstance(n_states, (int, np.integer)):
        raise MapError(f"n_states must be an odd positive int, got {short_repr(n_states)}")
    if n_states < 1 or n_states % 2 == 0:
        raise MapError(f"n_states must be odd and >= 1 so the walk starts in the middle, got {short_repr(n_states)}")
    if n_states + 2 > MAX_MAP_CELLS:
        raise MapError(f"n_states={short_repr(n_states)} makes a map of more than MAX_MAP_CELLS={MAX_MAP_CELLS} cells")
    half = FLOOR * (n_states // 2)
    return (TRAP + half + START + half + GOAL,)


def random_walk_layout(n_states: int = 5) -> Layout:
    """Example 6.2 (n=5: left exit 0, right exit +1) or Example 7.1 (any other n: -1 / +1)."""
    grid_map = random_walk_map(n_states)  # validates n_states first
    left = 0.0 if n_states == 5 else -1.0
    return Layout(
        map=grid_map,
        step_reward=0.0,
        rewards={TRAP: left, GOAL: 1.0},
        actions="left_right",
        description=f"{n_states}-state random walk (S&B Example {'6.2' if n_states == 5 else '7.1'})",
    )


def open_grid(rows: int, cols: int, *, start: tuple[int, int] = (0, 0),
              goal: tuple[int, int] | None = None) -> tuple[str, ...]:
    """A wall-free ``rows x cols`` map with ``S`` at ``start`` and ``G`` at ``goal``
    (default: the far corner), e.g. the 100x100 value-iteration benchmark grid."""
    if rows < 1 or cols < 1 or rows * cols < 2:
        raise MapError(f"open_grid needs at least two cells, got {rows}x{cols}")
    if rows * cols > MAX_MAP_CELLS:
        raise MapError(f"open_grid {rows}x{cols} has more than MAX_MAP_CELLS={MAX_MAP_CELLS} cells")
    goal = (rows - 1, cols - 1) if goal is None else goal
    grid = np.full((rows, cols), FLOOR)
    for name, (r, c) in (("start", start), ("goal", goal)):
        if not (0 <= r < rows and 0 <= c < cols):
            raise MapError(f"{name} {(r, c)} lies outside the {rows}x{cols} grid")
    if tuple(start) == tuple(goal):
        raise MapError(f"start and goal coincide at {tuple(start)}")
    grid[start], grid[goal] = START, GOAL
    return tuple("".join(row) for row in grid)


LAYOUTS: dict[str, Layout] = {
    "default": Layout(
        map=(
            "##########",
            "#S.......#",
            "#.####.#.#",
            "#....#.#.#",
            "####.#.#T#",
            "#T...#...#",
            "#.####.#.#",
            "#......#G#",
            "##########",
        ),
        gamma=0.99,
        description="small maze with walls and traps; -1 per step, traps -10",
    ),
    "sutton_4x4": Layout(
        map=("G...", "....", "....", "S..G"),
        description="S&B Example 4.1: terminal corners, -1 per step, undiscounted",
    ),
    "gridworld_5x5": Layout(
        map=(".A.B.", ".....", "..Sb.", ".....", ".a..."),
        step_reward=0.0,
        bump_reward=-1.0,
        jumps={"A": ("a", 10.0), "B": ("b", 5.0)},
        gamma=0.9,
        description="S&B Example 3.5: A -> A' (+10), B -> B' (+5), off-grid -1; continuing",
    ),
    "cliff_walking": Layout(
        map=("............", "............", "............", "SCCCCCCCCCCG"),
        description="S&B Example 6.6: -1 per step, cliff -100 and back to start",
    ),
    "windy": Layout(
        map=("..........",) * 3 + ("S......G..",) + ("..........",) * 3,
        wind=(0, 0, 0, 1, 1, 1, 2, 2, 1, 0),
        description="S&B Example 6.5: upward wind by column, -1 per step",
    ),
    "random_walk": random_walk_layout(5),
}


def _map_rows(grid_map) -> list[str]:
    """The rows of a map given as a multi-line string or a list/tuple/1-D array of strings."""
    if isinstance(grid_map, str):
        rows = [line.strip() for line in grid_map.strip("\n").splitlines()]
        return [row for row in rows if row]
    if isinstance(grid_map, np.ndarray) and grid_map.ndim == 1:
        grid_map = grid_map.tolist()
    if not isinstance(grid_map, (list, tuple)):
        raise MapError(f"map must be a multi-line string or a list of strings, got {type(grid_map).__name__}")
    bad = next((i for i, row in enumerate(grid_map) if not isinstance(row, str)), None)
    if bad is not None:
        raise MapError(f"map row {bad} must be a string, got {type(grid_map[bad]).__name__}")
    return list(grid_map)


def parse_map(grid_map: str | Sequence[str], allowed: frozenset[str] = LEGEND_CHARS,
              max_cells: int = MAX_MAP_CELLS) -> np.ndarray:
    """Validate an ASCII map; return its characters as a (rows, cols) ``<U1`` array.

    Raises :class:`~mimicgym.errors.MapError` naming the row (and column) at fault; maps of more
    than ``max_cells`` cells are refused before the character array is built."""
    rows = _map_rows(grid_map)
    if not rows:
        raise MapError("map must be a non-empty string or sequence of strings, got no rows")
    widths = [len(row) for row in rows]
    if min(widths) == 0 or len(set(widths)) > 1:
        bad = next(i for i, w in enumerate(widths) if w != widths[0] or w == 0)
        raise MapError(
            f"map rows must be non-empty and of equal length: row 0 has {widths[0]} characters, "
            f"row {bad} has {widths[bad]} characters ({rows[bad][:80]!r})"
        )
    if len(rows) * widths[0] > max_cells:
        raise MapError(f"map of {len(rows)}x{widths[0]} cells exceeds max_cells={max_cells}")
    chars = np.array([list(row) for row in rows], dtype="<U1")
    unknown = ~np.isin(chars, sorted(allowed))
    if unknown.any():
        r, c = np.argwhere(unknown)[0]
        raise MapError(
            f"unknown map character {str(chars[r, c])!r} at row {r}, column {c}; the legend is "
            f"'#' wall, '.' floor, 'S' start, 'G' goal, 'T' trap, 'C' cliff, digits 0-9, "
            f"plus characters named in rewards or jumps"
        )
    starts = np.argwhere(chars == START)
    if len(starts) != 1:
        where = ", ".join(str(tuple(int(v) for v in p)) for p in starts[:5]) or "nowhere"
        raise MapError(f"map needs exactly one start cell 'S', found {len(starts)} (at {where})")
    return chars


def find_unique(chars: np.ndarray, char: str, role: str) -> int:
    """Row-major index of the only cell holding ``char`` (a jump target)."""
    hits = np.flatnonzero(chars.ravel() == char)
    if len(hits) != 1:
        raise MapError(f"{role} character {char!r} must appear exactly once in the map, found {len(hits)}")
    return int(hits[0])
