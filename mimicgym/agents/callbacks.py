"""stable-baselines3's callback protocol for our agents: one callback object serves both.

Our agents call a ``stable_baselines3.common.callbacks.BaseCallback`` exactly where SB3's
algorithms do: ``on_training_start`` and ``on_training_end`` around ``learn``,
``on_rollout_start``/``on_rollout_end`` around each collection phase (an A2C rollout, a DQN
``train_freq`` chunk, a REINFORCE batch, a tabular episode), and ``on_step`` after every
environment step (every vector step for vectorised agents), after ``update_locals`` with
SB3's names: ``self``, ``new_obs``, ``rewards``, ``dones``, ``infos`` and ``actions``, each
with a leading env axis. A plain callable is wrapped as SB3 wraps one (called with
``locals, globals``). ``False`` from ``on_step`` stops training.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Union

import gymnasium as gym
import numpy as np

if TYPE_CHECKING:
    from stable_baselines3.common.callbacks import BaseCallback

MaybeCallback = Union[None, "BaseCallback", list, Callable[[dict, dict], bool]]


def as_callback(callback: MaybeCallback) -> BaseCallback | None:
    """SB3's conversion (list -> ``CallbackList``, callable -> ``ConvertCallback``); None stays
    None, so loops that have nothing to call skip the per-step work altogether."""
    if callback is None:
        return None
    # Imported here: SB3 brings torch, which tabular work never needs.
    from stable_baselines3.common.callbacks import BaseCallback, CallbackList, ConvertCallback

    if isinstance(callback, list):
        return CallbackList([as_callback(c) for c in callback])
    if isinstance(callback, BaseCallback):
        return callback
    if callable(callback):
        return ConvertCallback(callback)
    raise TypeError(f"callback must be a BaseCallback, a list of them or a callable, "
                    f"got {type(callback).__name__}")


class SingleEnvView:
    """One ``gym.Env`` seen as a one-env vector env: what callbacks read of ``training_env``
    (``num_envs``, spaces, ``get_attr``, ``env_method``); anything else reaches the env."""

    num_envs = 1

    def __init__(self, env: gym.Env):
        self.env = env

    def get_attr(self, name: str, indices=None) -> list[Any]:
        return [self.env.get_wrapper_attr(name)]

    def env_method(self, name: str, *args, indices=None, **kwargs) -> list[Any]:
        return [getattr(self.env, name)(*args, **kwargs)]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)


def vector_infos(info: dict[str, Any], num_envs: int) -> list[dict[str, Any]]:
    """A Gymnasium vector env's info (a dict of arrays with ``_key`` masks) as SB3's list of
    per-env dicts, leaving out keys an env did not report on this step."""
    out: list[dict[str, Any]] = [{} for _ in range(num_envs)]
    for key, values in info.items():
        if key.startswith("_"):
            continue
        mask = info.get(f"_{key}", np.ones(num_envs, dtype=bool))
        if isinstance(values, dict):
            for i, sub in enumerate(vector_infos(values, num_envs)):
                if mask[i]:
                    out[i][key] = sub
        else:
            for i in np.flatnonzero(mask):
                out[i][key] = values[i]
    return out
