"""``mimicgym/GridWorld-v0`` and the textbook gridworlds: finite MDPs from ASCII maps.

The map legend and reward rules are in :mod:`mimicgym.envs.maps`, the dynamics (slip,
wind, cliffs, jumps) in :mod:`mimicgym.envs.grid_dynamics`; :class:`GridWorldEnv`
documents spaces, rewards, episode ends and arguments.
"""

from __future__ import annotations

import operator
from bisect import bisect_right
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import gymnasium as gym
import numpy as np

from mimicgym.envs.grid_dynamics import GridOptions, build_model, cumulative_probs, make_config
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
    """A gridworld MDP read from an ASCII map: the textbook gridworlds of Sutton & Barto.

    ## Description
    The agent walks the cells of a grid drawn as ASCII rows (legend in
    :mod:`mimicgym.envs.maps`: ``#`` wall, ``.`` floor, ``S`` start, ``G`` goal, ``T`` trap,
    ``C`` cliff, digits = floor with that entry reward, other characters named in ``rewards``
    or ``jumps``). Registered ids and their ``layout``:

    - ``GridWorld-v0`` ("default"): a 9x10 maze with walls, two traps and a goal (gamma 0.99);
    - ``SuttonGrid4x4-v0`` ("sutton_4x4"): S&B Example 4.1, two terminal corners;
    - ``GridWorld5x5-v0`` ("gridworld_5x5"): S&B Example 3.5, jumps A -> A' and B -> B',
      continuing (no terminal cell, gamma 0.9);
    - ``CliffWalking-v0`` ("cliff_walking"): S&B Example 6.6, 4x12 with a cliff along the
      bottom row;
    - ``WindyGridWorld-v0`` ("windy"): S&B Example 6.5, 7x10 with upward wind per column
      ``(0, 0, 0, 1, 1, 1, 2, 2, 1, 0)`` (S&B Exercises 6.9/6.10 through ``king_moves``,
      ``stay_action`` and ``stochastic_wind``);
    - ``RandomWalk-v0`` ("random_walk"): S&B Example 6.2 (5 states) or, with ``n_states``,
      Example 7.1 (any odd length).

    A ``map=`` replaces the layout. The exact model is exposed toy-text style as
    ``env.unwrapped.P[s][a] = [(prob, next_state, reward, terminated), ...]`` and as
    ``env.unwrapped.model()`` (a :class:`TabularModel`); ``step`` samples from that same
    model. ``env.unwrapped.gamma`` is the discount the textbook uses for the layout (1.0
    unless stated above).

    ## Action Space
    ``Discrete(4)``: 0 Up, 1 Right, 2 Down, 3 Left. With ``king_moves=True`` ``Discrete(8)``,
    adding 4 UpRight, 5 DownRight, 6 DownLeft, 7 UpLeft; ``stay_action=True`` appends Stay as
    the last action (``Discrete(5)`` or ``Discrete(9)``). The random walk is ``Discrete(2)``:
    0 Left, 1 Right (``king_moves``/``stay_action`` raise there). Names are in
    ``env.unwrapped.action_names``. With ``slip`` the executed action is uniformly random with
    probability ``slip`` (possibly the intended one), so action ``b`` runs with probability
    ``(1 - slip) [a == b] + slip / n_actions``.

    ## Observation Space
    ``Discrete(n_rows * n_cols)``: the state index ``row * n_cols + col`` (row 0 at the top)
    over the whole grid, walls included (walls are never occupied; the model marks them
    absorbing). E.g. CliffWalking ``Discrete(48)`` starting in 36, WindyGridWorld
    ``Discrete(70)`` starting in 30, RandomWalk ``Discrete(7)`` starting in 3.

    ## Rewards
    A move earns, in order of precedence: the jump reward if it starts on a jump source
    (every action from a source moves to the target: gridworld_5x5 A -> A' +10, B -> B' +5);
    else, if it ends in another cell, that cell's entry reward ``rewards[(row, col)]``, else
    ``rewards[char]``, else the digit's value, else ``step_reward``; else (the agent stays)
    ``bump_reward`` if a wall or the edge blocked the move and ``bump_reward`` is set, else
    ``step_reward``. ``step_reward`` is -1 except for gridworld_5x5 and random_walk (0);
    ``bump_reward`` is unset except for gridworld_5x5 (-1). Defaults: trap ``T`` -10, cliff
    ``C`` -100 and the agent is sent back to ``S``; the goal ``G`` earns ``step_reward``
    unless ``rewards["G"]`` is given (random walk: right exit ``G`` +1, left exit ``T`` 0 for 5
    states, -1 otherwise). Wind pushes ``wind[col]`` cells up (negative: down), ``col`` being
    the column left, cell by cell, stopping at walls and the edge; with ``stochastic_wind``
    windy columns push ``wind - 1``, ``wind`` or ``wind + 1`` with probability 1/3 each.
    Terminal states are absorbing with reward 0.

    ## Starting State
    The map's single ``S`` cell. ``reset(options={"state": s})`` starts in state ``s``
    instead (any non-wall state, e.g. for exploring starts; a wall or out-of-range state
    raises ``ValueError``).

    ## Episode End
    Termination: entering a goal ``G`` or trap ``T`` cell (a cliff ``C`` is not terminal).
    GridWorld5x5-v0 has no terminal cell. Truncation: the env itself never truncates; the
    ``TimeLimit`` that ``gym.make`` adds does, at the registered ``max_episode_steps``:
    200 for GridWorld, SuttonGrid4x4 and GridWorld5x5, 5,000 for CliffWalking, 10,000 for
    WindyGridWorld (its first episodes run for thousands of steps), 1,000 for RandomWalk.

    ## Information
    ``reset`` and ``step`` return ``{"prob": p}``: the probability of the sampled outcome
    (outcomes with the same next state and reward merged; 1.0 after ``reset`` and on a
    deterministic grid).

    ## Arguments
    - ``layout="default"``: a named layout of :data:`mimicgym.envs.maps.LAYOUTS`.
    - ``map=None``: a custom ASCII map (multi-line string or list of rows) replacing the
      layout (only with ``layout`` None or "default"; -1 per step, no wind, compass moves).
    - ``**options``: the keywords of :class:`~mimicgym.envs.grid_dynamics.GridOptions`, the
      one list every gridworld (single or batched) takes:
    - ``slip=0.0``: probability that the intended action is replaced by a uniformly random one.
    - ``wind=None``: per-column upward push in cells, negative pushes down (None: the layout's).
    - ``stochastic_wind=False``: windy columns push ``wind + {-1, 0, 1}`` w.p. 1/3 each.
    - ``king_moves=False``: eight moves instead of four.
    - ``stay_action=False``: add a "Stay" action.
    - ``step_reward=None``: reward of an ordinary move (None: the layout's).
    - ``bump_reward=None``: reward when a wall or the edge blocks the move (None: the
      layout's, else ``step_reward``).
    - ``rewards=None``: entry rewards per map character or per ``(row, col)`` cell, merged
      over the defaults (``T`` -10, ``C`` -100) and the layout's.
    - ``jumps=None``: ``{source_char: (target_char, reward)}``; every action from a source cell
      moves to the (unique) target cell with that reward (None: the layout's).
    - ``n_states=None``: length of the random walk (odd; layout "random_walk" only; None: 5).
    - ``render_mode=None``: "ansi" (text grid and last action) or "rgb_array".
    - ``cell_size=32``: pixels per cell for "rgb_array".

    ```python
    import gymnasium as gym
    env = gym.make("mimicgym/WindyGridWorld-v0", king_moves=True, stochastic_wind=True)
    env = gym.make("mimicgym/GridWorld-v0", map=["S..#", "..CG"], slip=0.1)
    ```

    ## Version History
    - v0: initial version: the six textbook layouts and custom maps, slip, (stochastic) wind,
      king moves and a stay action, cliffs, traps and jumps, the exact model (``P`` and
      ``model()``), "ansi" and "rgb_array" rendering, and :class:`BatchedGridWorld` as the
      ``vector_entry_point``.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    Options = GridOptions  # the keywords ``**options`` takes, one list for every gridworld

    def __init__(
        self,
        layout: str | None = "default",
        map: str | Sequence[str] | None = None,  # noqa: A002 (the natural keyword)
        *,
        render_mode: str | None = None,
        cell_size: int = 32,
        **options: Any,
    ):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, "
                             f"got {render_mode!r}")
        self.config = make_config(layout, map, GridOptions.from_keywords(options))
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
                raise ValueError(f"options['state'] must be a non-wall state in {self.observation_space}, "
                                 f"got {state!r}")
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
