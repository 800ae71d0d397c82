"""``BatchedGridWorld``: N copies of a gridworld stepped together with numpy, the
``vector_entry_point`` of every ``mimicgym`` gridworld id (see the class docstring)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from mimicgym.envs.grid_dynamics import GridOptions, build_model, cumulative_probs, make_config
from mimicgym.envs.render import GridPainter, ansi, check_cell_size


class BatchedGridWorld(VectorEnv):
    """``num_envs`` gridworlds in one set of numpy arrays, stepped together.

    ## Description
    The vectorised :class:`~mimicgym.envs.gridworld.GridWorldEnv` (same layouts, maps and
    keywords; see its docstring for the maps and the Sutton & Barto examples), and the
    ``vector_entry_point`` of every ``mimicgym`` gridworld id. Its dynamics are the same
    :class:`TabularModel` arrays (``model()``): a step draws ``u ~ U[0, 1)`` per env and picks
    the successor ``k = #{cdf[s, a] <= u}``, exactly as the single env does with ``bisect``.
    One generator (``np_random``, seeded by ``reset(seed=...)``) drives all envs.

    ## Action Space
    ``MultiDiscrete([n_actions] * num_envs)``, one action per env (an integer array of shape
    ``(num_envs,)``); ``single_action_space`` is the single env's ``Discrete(n_actions)``:
    0 Up, 1 Right, 2 Down, 3 Left (+ 4 UpRight, 5 DownRight, 6 DownLeft, 7 UpLeft with
    ``king_moves``; + Stay last with ``stay_action``; random walk: 0 Left, 1 Right).

    ## Observation Space
    ``MultiDiscrete([n_states] * num_envs)``: an int64 array of shape ``(num_envs,)`` of state
    indices ``row * n_cols + col`` (walls included in the count); ``single_observation_space``
    is ``Discrete(n_rows * n_cols)``.

    ## Rewards
    As :class:`GridWorldEnv` (rules in :mod:`mimicgym.envs.maps`): the landing cell's entry
    reward (``step_reward`` by default, -1 in most layouts; trap -10, cliff -100 and back to
    start), ``bump_reward`` for a blocked move where set, jump rewards from jump sources; a
    float64 array of shape ``(num_envs,)``.

    ## Starting State
    Every env starts in the map's ``S`` cell. ``reset(options={"reset_mask": mask})`` (a bool
    array of shape ``(num_envs,)``) resets only the masked envs; there is no ``"state"``
    option.

    ## Episode End
    Termination as :class:`GridWorldEnv` (entering ``G`` or ``T``). Truncation after
    ``max_episode_steps`` steps (``gym.make_vec`` passes the registered limit; constructed
    directly, None never truncates); as Gymnasium's ``TimeLimit``, the last allowed step is
    truncated even if it also terminates. Autoreset is ``AutoresetMode.SAME_STEP``: the
    observation returned with a finished episode is already the first of the next one.

    ## Information
    ``reset`` returns ``{}``. ``step`` returns ``{}`` unless an episode ended, then
    ``info["final_obs"]`` (the last state of each finished episode) and ``info["_final_obs"]``
    (bool (N,), True for the envs that finished). Unlike Gymnasium's object array,
    ``final_obs`` is an int64 array of shape (N,) (entries where the mask is False hold the
    current state). The single env's per-step ``prob`` is not reported.

    ## Arguments
    - ``num_envs=1``: number of gridworlds N.
    - ``layout="default"``: a named layout, as for :class:`GridWorldEnv`.
    - ``map=None``: a custom ASCII map replacing the layout, as for :class:`GridWorldEnv`.
    - ``max_episode_steps=None``: truncate episodes after this many steps (None: never).
    - ``render_mode=None``: "ansi" or "rgb_array"; ``render()`` returns one frame per env.
    - ``cell_size=32``: pixels per cell for "rgb_array".
    - ``copy=True``: return fresh arrays from ``step``/``reset``; with False the returned
      arrays are internal buffers overwritten by the next call (faster).
    - ``**options``: the gridworld keywords of
      :class:`~mimicgym.envs.grid_dynamics.GridOptions`, as :class:`GridWorldEnv` takes them
      (``slip``, ``wind``, ``stochastic_wind``, ``king_moves``, ``stay_action``,
      ``step_reward``, ``bump_reward``, ``rewards``, ``jumps``, ``n_states``).

    ```python
    import gymnasium as gym
    envs = gym.make_vec("mimicgym/CliffWalking-v0", num_envs=8,
                        vectorization_mode="vector_entry_point", slip=0.1)
    ```

    ## Version History
    - v0: initial version: same-step autoreset, ``reset_mask``, the registered time limits
      through ``gym.make_vec``, and "ansi"/"rgb_array" rendering per env.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4,
                "autoreset_mode": AutoresetMode.SAME_STEP}

    Options = GridOptions  # the keywords ``**options`` takes, one list for every gridworld

    def __init__(
        self,
        num_envs: int = 1,
        layout: str | None = "default",
        map: str | Sequence[str] | None = None,  # noqa: A002
        *,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        cell_size: int = 32,
        copy: bool = True,
        **options: Any,
    ):
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        if max_episode_steps is not None and (
                isinstance(max_episode_steps, bool) or not isinstance(max_episode_steps, (int, np.integer))
                or max_episode_steps < 1):
            raise ValueError(f"max_episode_steps must be a positive int or None, got {max_episode_steps!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.config = make_config(layout, map, GridOptions.from_keywords(options))
        self._model = model = build_model(self.config)
        self.num_envs = n = int(num_envs)
        self.max_episode_steps = max_episode_steps
        self.render_mode = render_mode
        self.copy = copy
        self.painter = GridPainter(self.config.chars, cell_size) if render_mode == "rgb_array" else None
        check_cell_size(cell_size)
        self.single_observation_space = gym.spaces.Discrete(model.n_states)
        self.single_action_space = gym.spaces.Discrete(model.n_actions)
        self.observation_space = gym.spaces.MultiDiscrete(np.full(n, model.n_states))
        self.action_space = gym.spaces.MultiDiscrete(np.full(n, model.n_actions))

        # flat lookup tables: outcome index = (s * A + a) * K + k
        self._n_actions, self._k = model.n_actions, model.next_states.shape[-1]
        # cdf as (K - 1, S * A): the last slot is always 1.0 and never counted, and a
        # reduction over the short leading axis vectorises (one over rows of 4 does not)
        self._cdf = np.ascontiguousarray(cumulative_probs(model).reshape(-1, self._k)[:, :-1].T)
        self._next = model.next_states.reshape(-1).copy()
        self._reward = model.rewards.reshape(-1).copy()
        self._terminal = model.terminal.copy()
        self._start = int(np.argmax(model.initial))  # maps have exactly one start cell

        # preallocated per-step buffers
        self._state = np.full(n, self._start, dtype=np.int64)
        self._elapsed = np.zeros(n, dtype=np.int64)
        self._index = np.empty(n, dtype=np.int64)
        self._u = np.empty(n)
        self._cdf_rows = np.empty((self._k - 1, n))
        self._below = np.empty((self._k - 1, n), dtype=bool)
        self._slot = np.empty(n, dtype=np.uint8)  # K <= 9 actions x 3 wind outcomes
        self._rewards = np.empty(n)
        self._terminated = np.zeros(n, dtype=bool)
        self._truncated = np.zeros(n, dtype=bool)
        self._done = np.zeros(n, dtype=bool)
        self._final_obs = np.empty(n, dtype=np.int64)
        self._last_action = np.full(n, -1, dtype=np.int64)

    def model(self):
        """The exact :class:`TabularModel` shared with the single env."""
        return self._model

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset all envs, or only those in ``options["reset_mask"]`` (bool array (N,))."""
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise ValueError(f"seed must be an int or None (one generator drives all envs), got {seed!r}")
        super().reset(seed=seed)
        _ = self.np_random  # create the generator now if no seed was given
        mask = None if not options else options.get("reset_mask")
        if mask is None:
            self._state.fill(self._start)
            self._elapsed.fill(0)
            self._last_action.fill(-1)
        else:
            mask = np.asarray(mask)
            if mask.shape != (self.num_envs,) or mask.dtype != bool:
                raise ValueError(f"options['reset_mask'] must be a bool array of shape ({self.num_envs},), "
                                 f"got {mask.dtype} {mask.shape}")
            np.copyto(self._state, self._start, where=mask)
            np.copyto(self._elapsed, 0, where=mask)
            np.copyto(self._last_action, -1, where=mask)
        return self._out(self._state), {}

    def step(self, actions):
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,) or actions.dtype.kind not in "iu":
            raise ValueError(f"actions must be an integer array of shape ({self.num_envs},), "
                             f"got {actions.dtype} {actions.shape}")
        if actions.size and (actions.min() < 0 or actions.max() >= self._n_actions):
            bad = int(np.flatnonzero((actions < 0) | (actions >= self._n_actions))[0])
            raise ValueError(f"actions[{bad}] = {actions[bad]} is outside the action space Discrete({self._n_actions})")

        index = self._index  # s * A + a, then the chosen outcome
        np.multiply(self._state, self._n_actions, out=index)
        index += actions
        if self._k > 1:
            self.np_random.random(out=self._u)
            np.take(self._cdf, index, axis=1, out=self._cdf_rows, mode="clip")  # (K - 1, N)
            np.less_equal(self._cdf_rows, self._u, out=self._below)
            np.add.reduce(self._below.view(np.uint8), axis=0, out=self._slot)  # k = #{cdf <= u}
            index *= self._k
            index += self._slot
        # indices are valid by construction; mode="clip" lets take write into out unbuffered
        np.take(self._next, index, out=self._state, mode="clip")
        np.take(self._reward, index, out=self._rewards, mode="clip")
        np.take(self._terminal, self._state, out=self._terminated, mode="clip")
        self._elapsed += 1
        np.copyto(self._last_action, actions)

        if self.max_episode_steps is not None:
            # as gym's TimeLimit: the last allowed step is truncated even if it also terminates
            np.greater_equal(self._elapsed, self.max_episode_steps, out=self._truncated)
        np.logical_or(self._terminated, self._truncated, out=self._done)
        infos: dict[str, Any] = {}
        if self._done.any():
            np.copyto(self._final_obs, self._state)
            np.copyto(self._state, self._start, where=self._done)
            np.copyto(self._elapsed, 0, where=self._done)
            infos = {"final_obs": self._out(self._final_obs), "_final_obs": self._out(self._done)}
        return (self._out(self._state), self._out(self._rewards), self._out(self._terminated),
                self._out(self._truncated), infos)

    def _out(self, array: np.ndarray) -> np.ndarray:
        return array.copy() if self.copy else array

    def render(self) -> tuple | None:
        """One frame per env (a tuple, like ``SyncVectorEnv``)."""
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi' or 'rgb_array'")
            return None
        if self.render_mode == "ansi":
            names = self.config.action_names
            return tuple(ansi(self.config.chars, s, names[a] if a >= 0 else None)
                         for s, a in zip(self._state.tolist(), self._last_action.tolist()))
        return tuple(self.painter.draw(s) for s in self._state.tolist())
