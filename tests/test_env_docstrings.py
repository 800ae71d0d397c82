"""Every registered ``mimicgym`` env class carries Gymnasium's docstring template.

The classes are loaded from their entry-point strings, which imports the env modules but
constructs nothing (no MuJoCo model is compiled).
"""

import dataclasses
import inspect
import re

import gymnasium as gym
import pytest
from gymnasium.envs.registration import load_env_creator

import mimicgym  # noqa: F401  (registers the ids)

HEADINGS = (
    "## Description",
    "## Action Space",
    "## Observation Space",
    "## Rewards",
    "## Starting State",
    "## Episode End",
    "## Information",
    "## Arguments",
    "## Version History",
)

SPECS = sorted((env_id, spec) for env_id, spec in gym.registry.items() if env_id.startswith("mimicgym/"))


def _entry_points() -> dict[str, tuple[str, ...]]:
    """Entry-point string -> the ids registered with it (single and vector entry points)."""
    points: dict[str, list[str]] = {}
    for env_id, spec in SPECS:
        for point in (spec.entry_point, spec.vector_entry_point):
            if isinstance(point, str):
                points.setdefault(point, []).append(env_id)
            elif point is not None:  # a callable registered directly
                points.setdefault(f"{point.__module__}:{point.__qualname__}", []).append(env_id)
    return {point: tuple(ids) for point, ids in sorted(points.items())}


ENTRY_POINTS = _entry_points()


def _class(entry_point: str) -> type:
    cls = load_env_creator(entry_point)
    assert inspect.isclass(cls), f"{entry_point} is not a class"
    return cls


def _arguments_section(doc: str) -> str:
    """The text between ``## Arguments`` and the next ``## `` heading."""
    if "## Arguments" not in doc:
        return ""
    after = doc.split("## Arguments", 1)[1]
    return after.split("\n", 1)[1].split("## ", 1)[0] if "\n" in after else ""


def test_registry_has_mimicgym_ids_with_entry_points():
    assert SPECS, "no mimicgym/ ids registered"
    assert {"mimicgym.envs.gridworld:GridWorldEnv", "mimicgym.envs.mimic.env:MimicEnv",
            "mimicgym.envs.batched:BatchedGridWorld"} <= set(ENTRY_POINTS)


@pytest.mark.parametrize("entry_point", list(ENTRY_POINTS))
def test_docstring_has_every_heading(entry_point):
    doc = _class(entry_point).__doc__ or ""
    missing = [h for h in HEADINGS if h not in doc]
    assert not missing, f"{entry_point} (ids {ENTRY_POINTS[entry_point]}) lacks {missing}"
    positions = [doc.index(h) for h in HEADINGS]
    assert positions == sorted(positions), f"{entry_point}: headings out of order"


@pytest.mark.parametrize("entry_point", list(ENTRY_POINTS))
def test_arguments_section_names_every_constructor_parameter(entry_point):
    cls = _class(entry_point)
    arguments = _arguments_section(cls.__doc__ or "")
    names = [name for name in inspect.signature(cls.__init__).parameters if name != "self"]
    options = getattr(cls, "Options", None)  # keywords gathered in one dataclass (gridworlds)
    names += [f.name for f in dataclasses.fields(options)] if options is not None else []
    missing = [name for name in names if not re.search(rf"\b{re.escape(name)}\b", arguments)]
    assert not missing, f"{entry_point}: the Arguments section does not mention {missing}"
    assert "gym.make" in arguments, f"{entry_point}: the Arguments section has no gym.make example"
