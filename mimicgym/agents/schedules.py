"""Exploration-rate and step-size schedules for the tabular agents, indexed by episode.

A schedule is given as a number (constant), a :class:`Schedule`, or its text form, which is
what agent configs store so that they stay JSON (saved agents, TensorBoard hparams, CLI):

- ``0.1``: constant; ``"linear(1.0, 0.05, 500)"``: from 1.0 to 0.05 over 500 episodes,
  then flat; ``"exp(1.0, 0.01, 0.99)"``: ``max(0.01, 1.0 * 0.99 ** episode)``;
- ``"1/n"`` (step sizes only): ``1 / N(s, a)``, the sample average of each pair's targets
  (S&B eq. 2.3), handled by the agent since it depends on visit counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

INVERSE_VISIT_COUNT = "1/n"


class Schedule:
    """A value as a function of the episode index ``t`` (0-based)."""

    def __call__(self, t: int) -> float:
        raise NotImplementedError

    def bounds(self) -> tuple[float, ...]:
        """The values the schedule can reach at its extremes (for range checks)."""
        raise NotImplementedError


@dataclass(frozen=True)
class Constant(Schedule):
    value: float

    def __call__(self, t: int) -> float:
        return self.value

    def bounds(self) -> tuple[float, ...]:
        return (self.value,)

    def __str__(self) -> str:
        return repr(float(self.value))


@dataclass(frozen=True)
class LinearDecay(Schedule):
    start: float
    end: float
    duration: int  # episodes from start to end

    def __post_init__(self) -> None:
        if self.duration < 1:
            raise ValueError(f"linear schedule duration must be >= 1 episode, got {self.duration!r}")

    def __call__(self, t: int) -> float:
        return self.start + (self.end - self.start) * min(t / self.duration, 1.0)

    def bounds(self) -> tuple[float, ...]:
        return (self.start, self.end)

    def __str__(self) -> str:
        return f"linear({self.start!r}, {self.end!r}, {self.duration})"


@dataclass(frozen=True)
class ExponentialDecay(Schedule):
    start: float
    end: float  # floor
    rate: float  # per-episode factor in (0, 1]

    def __post_init__(self) -> None:
        if not 0.0 < self.rate <= 1.0:
            raise ValueError(f"exponential schedule rate must lie in (0, 1], got {self.rate!r}")

    def __call__(self, t: int) -> float:
        return max(self.end, self.start * self.rate**t)

    def bounds(self) -> tuple[float, ...]:
        return (self.start, self.end)

    def __str__(self) -> str:
        return f"exp({self.start!r}, {self.end!r}, {self.rate!r})"


_NUMBER = r"\s*([-+0-9.eE]+)\s*"
_PATTERNS = {
    "linear": (re.compile(rf"linear\({_NUMBER},{_NUMBER},{_NUMBER}\)$"), LinearDecay),
    "exp": (re.compile(rf"exp\({_NUMBER},{_NUMBER},{_NUMBER}\)$"), ExponentialDecay),
}


def make_schedule(spec, name: str, low: float = 0.0, high: float = 1.0,
                  allow_inverse_count: bool = False) -> Schedule | str:
    """Parse ``spec`` and check that every value lies in ``[low, high]``.

    Returns a :class:`Schedule`, or ``"1/n"`` when allowed. Errors name ``name`` and ``spec``.
    """
    if isinstance(spec, Schedule):
        schedule = spec
    elif isinstance(spec, (int, float)) and not isinstance(spec, bool):
        schedule = Constant(float(spec))
    elif isinstance(spec, str):
        text = spec.strip().replace(" ", "")
        if text == INVERSE_VISIT_COUNT and allow_inverse_count:
            return INVERSE_VISIT_COUNT
        schedule = None
        for pattern, cls in _PATTERNS.values():
            match = pattern.match(text)
            if match:
                try:
                    a, b, c = (float(g) for g in match.groups())
                    schedule = cls(a, b, int(c) if cls is LinearDecay else c)
                except ValueError as e:
                    raise ValueError(f"{name}: {e}") from e
        if schedule is None:
            try:
                schedule = Constant(float(text))
            except ValueError:
                forms = "a number, 'linear(start, end, episodes)', 'exp(start, end, rate)'"
                if allow_inverse_count:
                    forms += " or '1/n'"
                raise ValueError(f"{name} must be {forms}; got {spec!r}") from None
    else:
        raise ValueError(f"{name} must be a number, a Schedule or a schedule string, got {spec!r}")
    for value in schedule.bounds():
        if not low <= value <= high:
            raise ValueError(f"{name} must lie in [{low}, {high}], got {spec!r} (reaches {value!r})")
    return schedule


def schedule_spec(spec) -> float | str:
    """The JSON form of a schedule argument (what configs store)."""
    if isinstance(spec, Schedule):
        return str(spec)
    return spec


class StepSize:
    """A learning rate ``alpha``: a schedule over episodes, or ``"1/n"`` per visit count.

    ``inverse_count`` tells the agent to use ``1 / N`` of the entry it updates; ``current``
    gives the episode's step size, or for ``"1/n"`` the mean of ``1 / N`` over visited
    entries (what the logger records as ``train/learning_rate``).
    """

    def __init__(self, spec):
        self.schedule = make_schedule(spec, "learning_rate", allow_inverse_count=True)
        self.inverse_count = self.schedule == INVERSE_VISIT_COUNT
        if not self.inverse_count and min(self.schedule.bounds()) <= 0:
            raise ValueError(f"learning_rate must be > 0, got {spec!r}")

    def current(self, episode: int, counts: np.ndarray) -> float:
        if self.inverse_count:
            visited = counts[counts > 0]
            return float(np.mean(1.0 / visited)) if visited.size else 1.0
        return float(self.schedule(episode))
