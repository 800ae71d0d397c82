"""Gridworld dynamics as a sparse :class:`TabularModel`, built with array ops over all
(state, action, outcome) triples at once.

States index the whole grid row-major (``state = row * n_cols + col``), walls included.
Walls are unreachable; the model marks them terminal (absorbing, reward-free, value 0),
so dynamic programming, even undiscounted, needs no special case for them. One step:

1. slip: with probability ``slip`` the intended action is replaced by a uniformly random
   one (possibly itself), so action ``b`` is executed w.p. ``(1 - slip) [a == b] + slip / A``;
2. move: the executed move is blocked (agent stays) if it leaves the grid or hits a wall;
3. wind: the agent is pushed ``wind[col]`` cells up (negative: down), ``col`` being the
   column of the state it left, cell by cell, stopping at walls and the edge
   (``|wind| <= n_rows``: a push of ``n_rows`` already crosses the grid); with
   ``stochastic_wind`` the push in windy columns is ``wind - 1``, ``wind`` or ``wind + 1``
   with probability 1/3 each (S&B Exercise 6.10);
4. landing: rewards follow :mod:`mimicgym.envs.maps`; a cliff sends the agent to start;
   a jump source overrides 2-4.

Outcomes with the same (next state, reward) are merged, so ``K`` stays small (1 for a
deterministic grid).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from mimicgym.envs import maps
from mimicgym.envs.tabular import TabularModel
from mimicgym.errors import MapError

# (d_row, d_col) per action; "up" is row - 1.
_COMPASS = ((-1, 0), (0, 1), (1, 0), (0, -1))
_DIAGONAL = ((-1, 1), (1, 1), (1, -1), (-1, -1))
MOVES: dict[str, tuple[tuple[int, int], ...]] = {
    "compass": _COMPASS,
    "king": _COMPASS + _DIAGONAL,
    "left_right": ((0, -1), (0, 1)),
}
STAY = (0, 0)
MOVE_NAMES = {(-1, 0): "Up", (0, 1): "Right", (1, 0): "Down", (0, -1): "Left", (-1, 1): "UpRight",
              (1, 1): "DownRight", (1, -1): "DownLeft", (-1, -1): "UpLeft", STAY: "Stay"}


@dataclass(frozen=True, eq=False)
class GridConfig:
    """A fully resolved gridworld: every keyword validated, layout defaults applied."""

    chars: np.ndarray  # (rows, cols) <U1 map characters
    moves: np.ndarray  # (A, 2) int64 (d_row, d_col) per action
    slip: float
    wind: np.ndarray  # (cols,) int64 upward push per column
    stochastic_wind: bool
    step_reward: float
    bump_reward: float | None
    rewards: dict  # char or (row, col) -> entry reward
    jumps: dict  # source char -> (target char, reward)
    gamma: float
    name: str

    @property
    def shape(self) -> tuple[int, int]:
        return self.chars.shape

    @property
    def action_names(self) -> list[str]:
        return [MOVE_NAMES[tuple(m)] for m in self.moves.tolist()]


def _is_real(value) -> bool:
    """A real number (bools and complex numbers are not)."""
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, float, np.integer, np.floating))


def _finite(value) -> float | None:
    """``value`` as a float if it is a finite real number, else None (ints past 1e308 too)."""
    if not _is_real(value):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if np.isfinite(number) else None


def _integer(value) -> int | None:
    """``value`` as an int if it is a real number with an integral value, else None."""
    if isinstance(value, (int, np.integer)) and _is_real(value):
        return int(value)
    number = _finite(value)
    return int(number) if number is not None and number.is_integer() else None


def _check_reward(name: str, value) -> float:
    number = _finite(value)
    if number is None:
        raise MapError(f"{name} must be a finite number, got {maps.short_repr(value)}")
    return number


def _check_flag(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise MapError(f"{name} must be True or False, got {maps.short_repr(value)}")
    return bool(value)


def _base_layout(layout: str | None, grid_map, n_states: int | None) -> tuple[maps.Layout, str]:
    """The layout whose defaults apply, and its name ("custom" for a user map)."""
    if layout is not None and not isinstance(layout, str):
        raise MapError(f"layout must be a layout name or None, got {type(layout).__name__}")
    if grid_map is not None:
        if layout not in (None, "default"):
            raise MapError(f"map= replaces the layout, so it cannot be combined with layout={maps.short_repr(layout)}")
        base, name = maps.Layout(map=()), "custom"
    elif layout == "random_walk":
        base, name = maps.random_walk_layout(5 if n_states is None else n_states), layout
    elif layout in maps.LAYOUTS or layout is None:
        base, name = maps.LAYOUTS[layout or "default"], layout or "default"
    else:
        raise MapError(f"unknown layout {maps.short_repr(layout)}; choose one of {', '.join(maps.LAYOUTS)}")
    if n_states is not None and name != "random_walk":
        raise MapError(f"n_states={maps.short_repr(n_states)} only applies to layout 'random_walk', not {name!r}")
    return base, name


def _wind_array(wind, shape: tuple[int, int]) -> np.ndarray:
    """(cols,) int64 upward push per column (zeros without wind): integers, |wind| <= n_rows."""
    n_rows, cols = shape
    if wind is None:
        return np.zeros(cols, dtype=np.int64)
    if isinstance(wind, np.ndarray):
        wind = wind.tolist() if wind.ndim == 1 else wind
    if not isinstance(wind, (list, tuple)) or len(wind) != cols:
        got = len(wind) if isinstance(wind, (list, tuple)) else type(wind).__name__
        raise MapError(f"wind needs one entry per column ({cols}), got {got}")
    pushes = [_integer(v) for v in wind]  # one by one: a huge int, inf or a string is named, never cast
    for col, (value, push) in enumerate(zip(wind, pushes)):
        if push is None:
            raise MapError(f"wind entries must be integers (cells per step), "
                           f"got wind[{col}] = {maps.short_repr(value)}")
        if abs(push) > n_rows:
            raise MapError(f"wind[{col}] = {maps.short_repr(value)} is larger than the grid's {n_rows} rows "
                           f"(|wind| <= n_rows: a push of n_rows already crosses the grid)")
    return np.array(pushes, dtype=np.int64)


@dataclass(frozen=True)
class GridOptions:
    """The gridworld keywords beyond the map, as ``gym.make`` passes them to every gridworld
    env (the one list of them; ``make_config`` validates the values against the map)."""

    slip: float = 0.0  # probability that the intended action is replaced by a random one
    wind: Sequence[int] | None = None  # per-column upward push in cells (None: the layout's)
    stochastic_wind: bool = False  # windy columns push wind + {-1, 0, 1}, each w.p. 1/3
    king_moves: bool = False  # eight moves instead of four
    stay_action: bool = False  # add a "Stay" action
    step_reward: float | None = None  # reward of an ordinary move (None: the layout's)
    bump_reward: float | None = None  # reward when a wall or the edge blocks the move
    rewards: Mapping | None = None  # entry rewards per map character or (row, col) cell
    jumps: Mapping | None = None  # {source_char: (target_char, reward)} (None: the layout's)
    n_states: int | None = None  # length of the random walk (odd; layout "random_walk" only)

    @classmethod
    def from_keywords(cls, keywords: dict[str, Any]) -> "GridOptions":
        """``GridOptions(**keywords)``, with an unknown keyword named beside the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(keywords) - known)
        if unknown:
            raise TypeError(f"gridworld got unexpected keyword {', '.join(map(repr, unknown))}; "
                            f"its keywords are layout, map, {', '.join(sorted(known))}")
        return cls(**keywords)


def _mapping(name: str, value) -> dict:
    if not isinstance(value, Mapping):
        raise MapError(f"{name} must be a dict, got {type(value).__name__}")
    return dict(value)


def _check_jumps(jump_map: dict) -> dict:
    """Every jump is {source char: (target char, finite reward)}; returned with float rewards."""
    for source, spec in jump_map.items():
        if not (isinstance(spec, (tuple, list)) and len(spec) == 2):
            raise MapError(f"jumps[{source!r}] must be (target_char, reward), got {maps.short_repr(spec)}")
        for role, char in (("source", source), ("target", spec[0])):
            if not (isinstance(char, str) and len(char) == 1) or char in (maps.WALL, maps.START):
                raise MapError(f"jumps[{source!r}]: the {role} must be one map character other than "
                               f"'#' and 'S', got {char!r}")
        _check_reward(f"jumps[{source!r}] reward", spec[1])
    return {source: (target, float(reward)) for source, (target, reward) in jump_map.items()}


def _check_rewards(reward_map: dict, shape: tuple[int, int]) -> dict:
    """Every key a map character or an integer (row, col) inside the grid; values finite.
    Returned with float values and (row, col) keys as Python ints."""
    rows, cols = shape
    checked = {}
    for key, value in reward_map.items():
        checked[key] = _check_reward(f"rewards[{key!r}]", value)
        if isinstance(key, tuple) and len(key) == 2:
            r, c = (_integer(k) if isinstance(k, (int, np.integer)) else None for k in key)
            if r is not None and c is not None and 0 <= r < rows and 0 <= c < cols:
                checked[(r, c)] = checked.pop(key)
                continue
        if not isinstance(key, str):
            raise MapError(f"rewards key {key!r} is neither a map character "
                           f"nor a (row, col) inside the {rows}x{cols} grid")
    return checked


def make_config(layout: str | None = "default", grid_map: str | Sequence[str] | None = None,
                options: GridOptions = GridOptions()) -> GridConfig:
    """Merge a named layout's defaults with explicit keywords and validate everything.

    A custom ``grid_map`` replaces the layout (allowed with ``layout`` None or "default"):
    it starts from the generic defaults (-1 per step, no wind, compass moves). Any bad map or
    option raises :class:`~mimicgym.errors.MapError` naming the keyword and the value.
    """
    (slip, wind, stochastic_wind, king_moves, stay_action, step_reward, bump_reward, rewards,
     jumps, n_states) = (getattr(options, f.name) for f in fields(GridOptions))
    base, name = _base_layout(layout, grid_map, n_states)
    user_rewards = {} if rewards is None else _mapping("rewards", rewards)
    reward_map = {**maps.DEFAULT_REWARDS, **dict(base.rewards), **user_rewards}
    jump_map = dict(base.jumps) if jumps is None else _mapping("jumps", jumps)
    jump_map = _check_jumps(jump_map)
    extra = {k for k in reward_map if isinstance(k, str)} | set(jump_map)
    extra |= {target for target, _ in jump_map.values()}
    for key in extra:
        if len(key) != 1 or key in (maps.WALL, maps.START):
            raise MapError(f"reward/jump keys must be single map characters other than '#' and 'S', got {key!r}")
    chars = maps.parse_map(base.map if grid_map is None else grid_map, maps.LEGEND_CHARS | extra)
    reward_map = _check_rewards(reward_map, chars.shape)
    for source, (target, _) in jump_map.items():
        if not (chars == source).any():
            raise MapError(f"jump source {source!r} does not appear in the map")
        maps.find_unique(chars, target, f"jump target of {source!r},")

    if _finite(slip) is None or not 0.0 <= slip <= 1.0:
        raise MapError(f"slip must be a probability in [0, 1], got {maps.short_repr(slip)}")
    wind_arr = _wind_array(base.wind if wind is None else wind, chars.shape)
    stochastic_wind, king_moves, stay_action = (_check_flag(n, v) for n, v in (
        ("stochastic_wind", stochastic_wind), ("king_moves", king_moves), ("stay_action", stay_action)))

    if base.actions == "left_right" and (king_moves or stay_action):
        raise MapError(f"layout {name!r} moves left/right only; king_moves/stay_action do not apply")
    bump = base.bump_reward if bump_reward is None else bump_reward
    moves = list(MOVES["king" if king_moves else base.actions])
    if stay_action:
        moves.append(STAY)

    return GridConfig(
        chars=chars,
        moves=np.array(moves, dtype=np.int64),
        slip=float(slip),
        wind=wind_arr,
        stochastic_wind=stochastic_wind,
        step_reward=_check_reward("step_reward", base.step_reward if step_reward is None else step_reward),
        bump_reward=None if bump is None else _check_reward("bump_reward", bump),
        rewards=reward_map,
        jumps=jump_map,
        gamma=base.gamma,
        name=name,
    )


def entry_rewards(config: GridConfig) -> np.ndarray:
    """(S,) reward for moving into each cell (before cliffs and jumps)."""
    chars = config.chars
    reward = np.full(chars.shape, config.step_reward)
    digits = np.char.isdigit(chars)
    reward[digits] = chars[digits].astype(np.float64)
    for key, value in config.rewards.items():
        if isinstance(key, str):
            reward[chars == key] = value
    for key, value in config.rewards.items():  # cells override characters
        if not isinstance(key, str):
            reward[key] = value
    return reward.ravel()


def build_model(config: GridConfig) -> TabularModel:
    """The exact sparse model of the gridworld (see the module docstring for the rules)."""
    chars = config.chars
    n_rows, n_cols = chars.shape
    n_states, n_actions = chars.size, len(config.moves)
    flat = chars.ravel()
    wall = flat == maps.WALL
    start = int(np.flatnonzero(flat == maps.START)[0])

    # action outcomes: executed action b w.p. slip_probs[a, b]; wind noise w w.p. noise_probs[w]
    slip_probs = (1.0 - config.slip) * np.eye(n_actions) + config.slip / n_actions  # (A, B)
    noise = np.array([-1, 0, 1] if config.stochastic_wind else [0])  # (W,)
    noise_probs = np.full(len(noise), 1.0 / len(noise))

    s = np.arange(n_states)[:, None, None]  # (S, 1, 1)
    row, col = s // n_cols, s % n_cols
    d_row = config.moves[:, 0][None, :, None]  # (1, B, 1)
    d_col = config.moves[:, 1][None, :, None]
    target_row, target_col = row + d_row, col + d_col  # (S, B, 1)
    inside = (target_row >= 0) & (target_row < n_rows) & (target_col >= 0) & (target_col < n_cols)
    target = np.where(inside, target_row * n_cols + target_col, s)
    bumped = ~inside | wall[target]
    row1 = np.where(bumped, row, target_row)
    col1 = np.where(bumped, col, target_col)

    windy = config.wind[col] != 0  # (S, 1, 1): the column being left
    push = config.wind[col] + noise[None, None, :] * windy  # (S, 1, W)
    row1, col1, push = np.broadcast_arrays(row1, col1, push)  # (S, B, W)
    # Cell by cell until a wall or the edge stops it: the push clamped to the reachable run.
    top, bottom = wind_reach(wall.reshape(n_rows, n_cols))
    row1 = np.where(push > 0, np.maximum(row1 - push, top[row1, col1]),
                    np.minimum(row1 - push, bottom[row1, col1]))
    landing = row1 * n_cols + col1  # (S, B, W)

    entry = entry_rewards(config)
    stay_reward = config.step_reward if config.bump_reward is None else config.bump_reward
    reward = np.where(landing != s, entry[landing],
                      np.where(bumped, stay_reward, config.step_reward))
    next_state = np.where(flat[landing] == maps.CLIFF, start, landing)

    for source, (target_char, jump_reward) in config.jumps.items():
        is_source = (flat == source)[:, None, None]
        next_state = np.where(is_source, maps.find_unique(chars, target_char, "jump target"), next_state)
        reward = np.where(is_source, jump_reward, reward)

    terminal = np.isin(flat, sorted(maps.TERMINAL_CHARS)) | wall
    absorbing = terminal[:, None, None]
    next_state = np.where(absorbing, s, next_state)
    reward = np.where(absorbing, 0.0, reward)

    # (S, A, B*W): every executed action and wind outcome of intended action a
    shape = (n_states, n_actions, n_actions * len(noise))
    next_state = np.broadcast_to(next_state[:, None], (n_states, n_actions) + next_state.shape[1:]).reshape(shape)
    reward = np.broadcast_to(reward[:, None], (n_states, n_actions) + reward.shape[1:]).reshape(shape)
    probs = np.broadcast_to((slip_probs[:, :, None] * noise_probs)[None], (n_states,) + slip_probs.shape + noise.shape)
    next_state, probs, reward = merge_outcomes(next_state, probs.reshape(shape), reward)

    initial = np.zeros(n_states)
    initial[start] = 1.0
    return TabularModel(next_states=next_state, probs=probs, rewards=reward, terminal=terminal,
                        initial=initial, grid_shape=(n_rows, n_cols))


def wind_reach(wall: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) highest and lowest row a vertical push can carry an agent to from each
    cell: up to the cell before the nearest wall or the edge (a wall cell stays put). One
    cumulative pass per direction, so the work does not depend on the wind's strength."""
    n_rows = wall.shape[0]
    r = np.arange(n_rows)[:, None]
    wall_above = np.maximum.accumulate(np.where(wall, r, -1), axis=0)  # nearest wall row <= r
    wall_below = np.minimum.accumulate(np.where(wall, r, n_rows)[::-1], axis=0)[::-1]  # >= r
    return np.where(wall, r, wall_above + 1), np.where(wall, r, wall_below - 1)


def merge_outcomes(next_state: np.ndarray, probs: np.ndarray, reward: np.ndarray):
    """Merge outcomes of each (s, a) with equal (next state, reward) and drop zero
    probabilities; (S, A, K0) -> (S, A, K) with K the largest count left. Empty slots
    point at ``s`` with probability 0 and reward 0."""
    n_states, n_actions, k0 = next_state.shape
    nxt = next_state.reshape(-1, k0)
    rew = reward.reshape(-1, k0)
    p = probs.reshape(-1, k0)
    key = np.where(p > 0, nxt, n_states)  # dropped outcomes sort last
    order = np.lexsort((rew, key), axis=-1)
    key, nxt, rew, p = (np.take_along_axis(x, order, axis=-1) for x in (key, nxt, rew, p))
    new_group = np.ones_like(key, dtype=bool)
    new_group[:, 1:] = (key[:, 1:] != key[:, :-1]) | (rew[:, 1:] != rew[:, :-1])
    group = np.cumsum(new_group, axis=-1) - 1  # (M, K0) slot of each outcome
    valid = key < n_states
    k = int(np.where(valid, group + 1, 0).max())
    rows = np.broadcast_to(np.arange(len(key))[:, None], key.shape)

    s_of_row = np.repeat(np.arange(n_states), n_actions)
    out_next = np.broadcast_to(s_of_row[:, None], (len(key), k)).copy()
    out_prob = np.zeros((len(key), k))
    out_rew = np.zeros((len(key), k))
    out_next[rows[valid], group[valid]] = nxt[valid]
    out_rew[rows[valid], group[valid]] = rew[valid]
    np.add.at(out_prob, (rows[valid], group[valid]), p[valid])
    shape = (n_states, n_actions, k)
    return out_next.reshape(shape), out_prob.reshape(shape), out_rew.reshape(shape)


def cumulative_probs(model: TabularModel) -> np.ndarray:
    """(S, A, K) cumulative successor probabilities, the last used slot and every empty
    slot set to exactly 1.0, so ``k = #{cdf <= u}`` for ``u ~ U[0, 1)`` never picks an
    empty slot and never runs past ``K - 1`` through rounding."""
    cdf = np.cumsum(model.probs, axis=-1)
    n_used = (model.probs > 0).sum(-1, keepdims=True)  # slots are packed left by merge
    slot = np.arange(model.probs.shape[-1])
    return np.where(slot >= n_used - 1, 1.0, cdf)
