"""Bringing a fresh env to where a checkpointed run left its env, through the Gymnasium API.

Gymnasium envs cannot save their state, but they are deterministic given their random
generator (``env.unwrapped.np_random``) and the actions they are given. So a checkpoint
records, per env, how its current episode began (the reset's seed, or the generator's state
just before an unseeded reset, and the reset options) and the actions since; a resumed run
replays them on its fresh env. The replay is checked against the generator state the
checkpoint recorded (and the caller compares observations): an env with randomness of its
own outside ``np_random`` does not come back, and the caller starts new episodes with a
warning instead of continuing a different one.
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np


def env_rng_state(env: gym.Env) -> dict[str, Any]:
    """The state of the env's generator (a copy; creates the generator if it has none yet)."""
    return env.unwrapped.np_random.bit_generator.state


def set_env_rng_state(env: gym.Env, state: dict[str, Any]) -> None:
    env.unwrapped.np_random.bit_generator.state = state


def not_restored(what: str) -> None:
    warnings.warn(f"replaying the checkpoint's {what} on this env did not reproduce it (an env made "
                  f"with other keywords than the checkpoint's, or one not deterministic given its "
                  f"np_random and the actions): starting new episodes instead", RuntimeWarning, stacklevel=3)


class EpisodeReplay:
    """How one env came to its current state: the reset that began its episode and the actions
    since. Agents append each action they send to ``actions``."""

    __slots__ = ("seed", "rng_state", "options", "actions")

    def __init__(self) -> None:
        self.begin(None, None)

    def begin(self, env: gym.Env | None, seed: int | None = None, options: dict | None = None) -> None:
        """Record a reset of ``env`` about to happen (the vector env's autoreset does it)."""
        # An unseeded reset draws from the generator: remember where it stood.
        self.rng_state = None if env is None or seed is not None else env_rng_state(env)
        self.seed, self.options, self.actions = seed, options, []

    def reset(self, env: gym.Env, seed: int | None = None, options: dict | None = None):
        """``env.reset(seed=seed, options=options)``, recorded."""
        self.begin(env, seed, options)
        return env.reset(seed=seed, options=options)

    def state_dict(self, env: gym.Env) -> dict[str, Any]:
        return {"seed": self.seed, "rng_state": self.rng_state, "options": self.options,
                "actions": list(self.actions), "rng_now": env_rng_state(env)}

    def restore(self, env: gym.Env, state: dict[str, Any]):
        """Replay ``state`` on ``env``; the last observation, or None if the env's generator did
        not come out where the checkpoint's was (the env is then in an undefined state)."""
        self.seed, self.rng_state, self.options = state["seed"], state["rng_state"], state["options"]
        self.actions = list(state["actions"])
        if self.rng_state is not None:
            set_env_rng_state(env, self.rng_state)
        obs, _ = env.reset(seed=self.seed, options=self.options)
        for action in self.actions:
            obs, *_ = env.step(action)
        expected = state.get("rng_now")  # None: a file that did not record it
        return obs if expected is None or env_rng_state(env) == expected else None


class VectorEnvReplay:
    """An :class:`EpisodeReplay` per sub-env of a ``SyncVectorEnv`` in NEXT_STEP autoreset mode.

    ``reset`` records the seeded reset of all sub-envs; around every vector step the agent calls
    ``before_step`` (sub-envs that finished an episode are reset by this step: their generator
    state is recorded) and ``after_step`` (the actions of the sub-envs that stepped). Other
    vector envs (subprocess workers, batched implementations) cannot be replayed: ``exact`` is
    False for them and a resumed run resets them.
    """

    def __init__(self, env: gym.vector.VectorEnv):
        self.exact = isinstance(env.unwrapped, gym.vector.SyncVectorEnv)
        self.replays = [EpisodeReplay() for _ in range(env.num_envs)]

    def reset(self, env: gym.vector.VectorEnv, seed: int):
        for i, replay in enumerate(self.replays):
            replay.begin(None, seed + i)  # the seed SyncVectorEnv gives sub-env i
        return env.reset(seed=seed)

    def before_step(self, env: gym.vector.VectorEnv, resetting: np.ndarray) -> None:
        if self.exact:
            for i in np.flatnonzero(resetting):
                self.replays[i].begin(env.unwrapped.envs[i])

    def after_step(self, actions: np.ndarray, stepped: np.ndarray) -> None:
        if self.exact:
            for i in np.flatnonzero(stepped):
                self.replays[i].actions.append(actions[i])

    def state_dict(self, env: gym.vector.VectorEnv) -> list[dict[str, Any]] | None:
        if not self.exact:
            return None
        return [replay.state_dict(sub) for replay, sub in zip(self.replays, env.unwrapped.envs)]

    def restore(self, env: gym.vector.VectorEnv, states: list[dict[str, Any]] | None,
                autoreset: np.ndarray, last_obs: np.ndarray) -> bool:
        """Replay every sub-env; True if all came back to ``last_obs`` and their generators.
        ``autoreset``: the sub-envs whose next step is a reset step (their episode ended)."""
        if not self.exact or states is None or len(states) != env.num_envs:
            return False
        base = env.unwrapped
        for i, (replay, sub, state) in enumerate(zip(self.replays, base.envs, states)):
            obs = replay.restore(sub, state)
            if obs is None or not np.array_equal(np.asarray(obs), last_obs[i]):
                return False
        # SyncVectorEnv keeps which sub-envs reset on the next step in this attribute, which no
        # public method sets: it is the vector env's only state beside its sub-envs'.
        base._autoreset_envs = np.array(autoreset, dtype=bool)
        return True
