"""Typed options: values from the command line or a TOML file checked against a dataclass
(a run's config, an agent's hyperparameters) or a constructor signature (stable-baselines3's
algorithms), before anything is built. Errors name the field, the expected type and the value.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import math
import re
import tokenize
from typing import Any

from mimicgym.errors import ConfigError

_NAMES = {"int": "an int", "float": "a number", "str": "a string", "bool": "true or false",
          "list": "a list", "dict": "a table", "None": "none"}


def _type_names(annotation: Any) -> set[str]:
    """Base type names of an annotation string such as ``"float | str"`` or ``"int | None"``."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    names = set()
    for part in re.split(r"\s*\|\s*|Union\[|Optional\[|,\s*", text):
        base = part.strip(" ]").split("[")[0].split(".")[-1]
        if base in ("Sequence", "tuple", "list"):
            names.add("list")
        elif base in ("dict", "Mapping"):
            names.add("dict")
        elif base in ("int", "float", "str", "bool", "None", "Any"):
            names.add(base)
        elif base == "Optional":
            names.add("None")
    return names or {"Any"}


def coerce(name: str, value: Any, annotation: Any, what: str = "") -> Any:
    """``value`` as the annotation's type (an int where a float is expected becomes a float),
    or a ``ConfigError`` naming ``what`` + ``name``, the expected type and the value."""
    allowed = _type_names(annotation)
    if "Any" in allowed:
        return value
    if value is None and "None" in allowed:
        return None
    if isinstance(value, bool):
        ok = "bool" in allowed
    elif isinstance(value, int):
        if "int" in allowed:
            return value
        if "float" in allowed:
            return float(value)
        ok = False
    elif isinstance(value, float):
        ok = "float" in allowed
    elif isinstance(value, str):
        ok = "str" in allowed
    elif isinstance(value, (list, tuple)):
        ok = "list" in allowed
    elif isinstance(value, dict):
        ok = "dict" in allowed
    else:
        ok = False
    if not ok:
        expected = " or ".join(_NAMES.get(n, n) for n in sorted(allowed))
        raise ConfigError(f"{what}{name} must be {expected}, got {value!r}")
    return value


def coerce_fields(cls: type, values: dict[str, Any], what: str = "") -> dict[str, Any]:
    """``values`` checked against the fields of dataclass ``cls``: unknown names are refused
    (listing the known ones), each value is coerced to its field's type."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"unknown {what or 'option'} {', '.join(map(repr, unknown))}; "
                          f"known: {', '.join(sorted(fields))}")
    return {k: coerce(k, v, fields[k].type, f"{what} " if what else "") for k, v in values.items()}


def field_docs(cls: type) -> dict[str, str]:
    """The trailing ``# comment`` of each field in a dataclass's source: its one-line doc."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        tokens = tokenize.generate_tokens(io.StringIO(source).readline)
        line_field: dict[int, str] = {}
        for tok in tokens:
            first_on_line = tok.start[1] == len(tok.line) - len(tok.line.lstrip())
            if tok.type == tokenize.NAME and first_on_line and tok.line.strip().startswith(
                    f"{tok.string}:"):
                line_field[tok.start[0]] = tok.string
            elif tok.type == tokenize.COMMENT and tok.start[0] in line_field:
                docs[line_field[tok.start[0]]] = tok.string.lstrip("# ").strip()
    return docs


def describe_dataclass(cls: type) -> list[tuple[str, str, str]]:
    """(name, default, doc) for each field of a hyperparameter or option dataclass."""
    docs = field_docs(cls)
    rows = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            default = "(required)"
        rows.append((f.name, repr(default), docs.get(f.name, "")))
    return rows


def check_range(name: str, value: Any, low: float, high: float, *, low_open: bool = False,
                what: str = "") -> None:
    """``low <= value <= high`` (``low < value`` with ``low_open``) for numbers; others pass."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    too_low = value <= low if low_open else value < low
    if math.isnan(value) or too_low or value > high:
        left = "(" if low_open else "["
        right = "]" if math.isfinite(high) else ")"
        raise ConfigError(f"{what}{name} must lie in {left}{low}, {high}{right}, got {value!r}")
