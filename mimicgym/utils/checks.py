"""Validation of hyperparameters and inputs, shared by agents, generative models and the run layer.

Every check raises a :class:`~mimicgym.errors.ConfigError` (or ``ValueError`` for data) that
names the field and the offending value.
"""

from __future__ import annotations

import numpy as np

from mimicgym.errors import ConfigError


def check_number(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    return float(value)


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    number = check_number(name, value)
    if not np.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be {bound}, got {value!r}")


def check_probability(name: str, value: float) -> None:
    if not (0.0 <= check_number(name, value) <= 1.0):
        raise ConfigError(f"{name} must lie in [0, 1], got {value!r}")


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {sorted(choices)}, got {value!r}")


def check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive int, got {value!r}")


def check_finite_input(name: str, array: np.ndarray) -> None:
    """A ``ValueError`` naming ``name`` and the first NaN or inf entry, if there is one
    (float arrays only; integer observations cannot hold either)."""
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        raise ValueError(f"{name}{list(where)} is {array[where]}: a non-finite input "
                         f"(switch the check off with agent.check_finite_inputs = False)")


def check_env_step(observation, reward, timestep: int) -> None:
    """A ``ValueError`` if an env step returned a NaN or inf observation or reward, naming the
    timestep and the first bad entry: a training loop stops there instead of learning from it."""
    observation, reward = np.asarray(observation), np.asarray(reward, dtype=np.float64)
    if np.isfinite(reward).all() and (observation.dtype.kind != "f" or np.isfinite(observation).all()):
        return  # the common case: one pass each, no message built
    check_finite_input(f"env.step at timestep {timestep}: observation", observation)
    check_finite_input(f"env.step at timestep {timestep}: reward", reward)
