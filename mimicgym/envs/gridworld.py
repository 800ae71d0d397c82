"""``mimicgym/GridWorld-v0`` and the textbook gridworlds: finite MDPs from ASCII maps.

The map legend and reward rules are in :mod:`mimicgym.envs.maps`, the dynamics (slip,
wind, cliffs, jumps) in :mod:`mimicgym.envs.grid_dynamics`. The env exposes its exact
model twice, Gymnasium toy-text style as ``env.unwrapped.P[s][a] -> [(prob, next_state,
reward, terminated)]`` and as ``env.unwrapped.model()`` (a :class:`TabularModel`), and
``step`` samples from that same model, so the dynamics agree by construction.

Example::

    env = gym.make("mimicgym/WindyGridWorld-v0", king_moves=True, stochastic_wind=True)
    env = gym.make("mimicgym/GridWorld-v0", map=["S..#", "..CG"], slip=0.1)
"""

from __future__ import annotations

import operator
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

import gymnasium as gym
import numpy as np

from mimicgym.envs.grid_dynamics import build_model, cumulative_probs, make_config
from mimicgym.envs.render import GridPainter, ansi, check_cell_size
from mimicgym.envs.tabular import TabularModel


def _step_table(model: TabularModel) -> list[list[tuple]]:
    """Plain Python lists for ``step``: ``table[s][a] = (cdf, outcomes)``, each outcome
    ``(next_state, reward, terminated, prob)``; ``cdf`` (the used slots of
    :func:`cumulative_probs`) is None when the successor is certain."""
    cdf = cumulative_probs(model).tolist()
    nxt, rew, prob = model.next_states.tolist(), model.rewards.tolist(), model.probs.tolist()
    term = model.terminal.tolist()
    n_used = (model.probs > 0).sum(-1).tolist()  # merge_outcomes packs used slots first
    table = []
    for s in range(model.n_states):
        row = []
        for a, k in enumerate(n_used[s]):
            outcomes = [(n, r, term[n], p) for n, r, p in zip(nxt[s][a][:k], rew[s][a][:k], prob[s][a][:k])]
            row.append((None if k == 1 else cdf[s][a][:k], outcomes))
        table.append(row)
    return table


class GridWorldEnv(gym.Env):
    """A gridworld MDP; observations are Discrete state indices ``row * n_cols + col``.

    Actions (``env.unwrapped.action_names``): 0 up, 1 right, 2 down, 3 left; with
    ``king_moves`` also 4 up-right, 5 down-right, 6 down-left, 7 up-left; ``stay_action``
    appends "stay"; the random walk has 0 left, 1 right.

    Args:
        layout: a named layout from :data:`mimicgym.envs.maps.LAYOUTS`.
        map: a custom ASCII map (multi-line string or list of rows) replacing the layout.
        slip: probability that the intended action is replaced by a uniformly random one.
        wind: per-column upward push in cells (negative pushes down).
        stochastic_wind: windy columns push ``wind + {-1, 0, 1}`` with probability 1/3 each.
        king_moves: eight moves instead of four. stay_action: add a "stay" action.
        step_reward: reward of an ordinary move. bump_reward: reward when a wall or the
            edge blocks the move (default: ``step_reward``).
        rewards: entry rewards per map character or per ``(row, col)`` cell.
        jumps: ``{source_char: (target_char, reward)}``: every action from a source cell
            moves to the target cell with that reward.
        n_states: length of the random walk (odd; layout "random_walk" only).
        render_mode: "ansi" or "rgb_array". cell_size: pixels per cell for "rgb_array".
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        layout: str | None = "default",
        map: str | Sequence[str] | None = None,  # noqa: A002 (the natural keyword)
        *,
        slip: float = 0.0,
        wind: Sequence[int] | None = None,
        stochastic_wind: bool = False,
        king_moves: bool = False,
        stay_action: bool = False,
        step_reward: float | None = None,
        bump_reward: float | None = None,
        rewards: Mapping | None = None,
        jumps: Mapping | None = None,
        n_states: int | None = None,
        render_mode: str | None = None,
        cell_size: int = 32,
    ):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.config = make_config(
            layout, map, slip=slip, wind=wind, stochastic_wind=stochastic_wind,
            king_moves=king_moves, stay_action=stay_action, step_reward=step_reward,
            bump_reward=bump_reward, rewards=rewards, jumps=jumps, n_states=n_states,
        )
        self._model = build_model(self.config)
        self.render_mode = render_mode
        self.cell_size = check_cell_size(cell_size)
        self.grid_shape = self.config.shape
        self.n_cols = self.grid_shape[1]
        self.gamma = self.config.gamma  # the discount the textbook uses for this task
        self.action_names = self.config.action_names
        self.moves = self.config.moves  # (A, 2) (d_row, d_col) of each action, for plots
        self.observation_space = gym.spaces.Discrete(self._model.n_states)
        self.action_space = gym.spaces.Discrete(self._model.n_actions)

        self._table = _step_table(self._model)
        self._start = int(np.argmax(self._model.initial))  # maps have exactly one start cell
        self.s = self._start
        self.last_action: int | None = None

    @cached_property
    def painter(self) -> GridPainter:
        """Draws frames; built on first use (a 100x100 grid at 32 px is a 30 MB image)."""
        return GridPainter(self.config.chars, self.cell_size)

    def model(self) -> TabularModel:
        """The exact model (states row-major over the whole grid, walls included)."""
        return self._model

    @cached_property
    def P(self) -> dict[int, dict[int, list[tuple[float, int, float, bool]]]]:
        """Toy-text form of the model: ``P[s][a] = [(prob, next_state, reward, terminated)]``."""
        return {
            s: {a: [(p, n, r, t) for n, r, t, p in outcomes] for a, (_, outcomes) in enumerate(row)}
            for s, row in enumerate(self._table)
        }

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode; ``options={"state": s}`` starts in state ``s`` instead
        (any non-wall state, e.g. for exploring starts)."""
        super().reset(seed=seed)
        if options and "state" in options:
            state = options["state"]
            if not self.observation_space.contains(state) or self.config.chars.flat[int(state)] == "#":
                raise ValueError(f"options['state'] must be a non-wall state in {self.observation_space}, got {state!r}")
            self.s = int(state)
        else:
            self.s = self._start
        self.last_action = None
        return self.s, {"prob": 1.0}

    def step(self, action):
        try:
            a = operator.index(action)
        except TypeError:
            raise ValueError(f"action must be an integer in {self.action_space}, got {action!r}") from None
        if not 0 <= a < self.action_space.n:
            raise ValueError(f"action {action!r} is outside the action space {self.action_space}")
        cdf, outcomes = self._table[self.s][a]
        next_state, reward, terminated, prob = (
            outcomes[0] if cdf is None else outcomes[bisect_right(cdf, self.np_random.random())]
        )
        self.s = next_state
        self.last_action = a
        # the TimeLimit wrapper from gym.make truncates
        return next_state, reward, terminated, False, {"prob": prob}

    def rgb_frame(self, state: int | None = None) -> np.ndarray:
        """(rows * cell_size, cols * cell_size, 3) uint8 image with the agent at ``state``
        (default: the current state)."""
        return self.painter.draw(self.s if state is None else state)

    def render(self):
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi' or 'rgb_array' to gym.make")
            return None
        if self.render_mode == "ansi":
            name = None if self.last_action is None else self.action_names[self.last_action]
            return ansi(self.config.chars, self.s, name)
        return self.rgb_frame()
