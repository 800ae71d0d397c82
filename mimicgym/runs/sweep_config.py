"""Sweep configs: a grid of run configurations times a list of seeds, checked before Ray starts.

A sweep is read from a TOML file with a ``[sweep]`` table (``name``, ``seeds`` and any train
option by its long name: ``env``, ``agent``, ``episodes``, ``timesteps``, ``eval_episodes``...)
and optional ``[hyperparameters]`` and ``[env_kwargs]`` tables. In any of the three, a list
value is a grid axis: every combination of the axes is one configuration, and every
configuration runs once per seed. A hyperparameter whose value is itself a list (``net_arch``)
is written as a list of lists: ``net_arch = [[64, 64]]`` is one value, ``[[64], [64, 64]]`` two.

``seeds`` is an inclusive range ``"0-49"``, a list ``[0, 3, 7]``, or both joined by commas
(``"0-9,20"``). Each (configuration, seed) is one trial: an ordinary run of the run layer in
``<logdir>/<name>/<configuration key>/s<seed>``, where the configuration key names the values
that vary, ``key=value`` joined by ``,`` in sorted key order (``agent=sarsa``).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mimicgym.errors import ConfigError
from mimicgym.runs.config import KEYWORD_TABLES, RunConfig, config_from_values, load_toml

TABLES = ("sweep", "hyperparameters", "env_kwargs")
SWEEP_KEYS = ("name", "seeds")  # beside RunConfig's fields
# A trial's seed comes from ``seeds`` and its directory from the sweep; giving either is a mistake.
_REFUSED = {"seed": "give seeds (a range \"0-49\" or a list) instead of seed",
            "run_name": "trial directories are named by the sweep: <name>/<configuration>/s<seed>"}
# Options that place or show a run but do not change what it computes.
_LOCATIONAL = ("logdir", "run_name", "progress_bar")
_SEED_PART = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")
_UNSAFE_IN_DIRNAME = re.compile(r"[^A-Za-z0-9._=,+\-\[\]]")


def parse_seeds(value: Any, where: str = "seeds") -> list[int]:
    """Seeds from ``"0-49"`` (inclusive), ``"0-9,20"``, an int or a list of ints; a
    ``ConfigError`` naming ``where`` and the value otherwise (negative, reversed, repeated)."""
    if isinstance(value, bool):
        raise ConfigError(f"{where} must be a range such as \"0-49\" or a list of ints, got {value!r}")
    if isinstance(value, int):
        items: list[int] = [value]
    elif isinstance(value, str):
        items = []
        for part in value.split(","):
            match = _SEED_PART.match(part)
            if match is None:
                raise ConfigError(f"{where} must be a range such as \"0-49\" (inclusive), a list, or "
                                  f"both joined by commas, got {value!r}")
            first, last = int(match.group(1)), int(match.group(2) or match.group(1))
            if last < first:
                raise ConfigError(f"{where}: range {part.strip()!r} in {value!r} ends before it starts")
            items.extend(range(first, last + 1))
    elif isinstance(value, (list, tuple)):
        bad = [v for v in value if isinstance(v, bool) or not isinstance(v, int)]
        if bad:
            raise ConfigError(f"{where} must hold ints only, got {bad[0]!r} in {list(value)!r}")
        items = list(value)
    else:
        raise ConfigError(f"{where} must be a range such as \"0-49\" or a list of ints, got {value!r}")
    if not items:
        raise ConfigError(f"{where} names no seed, got {value!r}")
    negative = [s for s in items if s < 0]
    if negative:
        raise ConfigError(f"{where} must be non-negative, got {negative[0]} in {value!r}")
    repeated = sorted({s for s in items if items.count(s) > 1})
    if repeated:
        raise ConfigError(f"{where} repeats seed {repeated[0]} in {value!r}")
    return items


def _format_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def configuration_key(varying: dict[str, Any], agent: str) -> str:
    """``key=value`` of the varying values joined by ``,`` in sorted key order; ``agent=NAME``
    when nothing varies (a sweep over seeds only)."""
    items = sorted(varying.items()) or [("agent", agent)]
    return ",".join(f"{k}={_format_value(v)}" for k, v in items)


def configuration_dirname(key: str) -> str:
    """``key`` as one directory name (``/`` of env ids and ``:`` of ``sb3:PPO`` become ``_``)."""
    return _UNSAFE_IN_DIRNAME.sub("_", key)


@dataclass(frozen=True)
class Trial:
    """One run of the sweep: a configuration at one seed, with its own run directory."""

    key: str  # the configuration key, e.g. "agent=sarsa"
    seed: int
    config: RunConfig  # logdir is the configuration's directory, run_name "s<seed>"

    @property
    def run_dir(self) -> Path:
        return Path(self.config.logdir) / self.config.run_name


@dataclass
class SweepConfig:
    """A grid of configurations (each a :class:`RunConfig` at seed 0) and the seeds each runs."""

    name: str
    logdir: str
    seeds: list[int]
    configurations: dict[str, RunConfig]  # configuration key -> its run config
    varying: list[str] = field(default_factory=list)  # the names of the axes with several values

    @property
    def sweep_dir(self) -> Path:
        return Path(self.logdir).absolute() / self.name

    def trials(self) -> list[Trial]:
        """Every (configuration, seed), configurations in key order, then seeds as given."""
        out = []
        for key in sorted(self.configurations):
            parent = self.sweep_dir / configuration_dirname(key)
            for seed in self.seeds:
                cfg = dataclasses.replace(self.configurations[key], seed=seed, logdir=str(parent),
                                          run_name=f"s{seed}", progress_bar=False)
                out.append(Trial(key, seed, cfg))
        return out


def comparable(cfg: RunConfig | dict[str, Any]) -> dict[str, Any]:
    """What a run computes from: its config as ``config.json`` stores it, less where it lives."""
    values = dataclasses.asdict(cfg) if isinstance(cfg, RunConfig) else dict(cfg)
    values = json.loads(json.dumps(values, default=str))  # tuples as lists, as read back from disk
    return {k: v for k, v in values.items() if k not in _LOCATIONAL}


def check_run_options(cfg: RunConfig) -> None:
    """The run layer's checks that need no env: env id, agent name, hyperparameter names,
    types and ranges, budget units. Bad env keywords surface when a trial makes its env."""
    from mimicgym.runs.envs import env_spec

    env_spec(cfg.env)
    if cfg.is_sb3:
        from mimicgym.runs.sb3 import check_sb3_hyperparameters, sb3_algorithm

        check_sb3_hyperparameters(sb3_algorithm(cfg.agent), cfg.hyperparameters)
        if cfg.timesteps is None or cfg.episodes is not None:
            raise ConfigError(f"agent {cfg.agent!r} counts timesteps: give timesteps (not episodes)")
        return
    from mimicgym.agents import get_agent_class
    from mimicgym.runs.learners import agent_hyperparameters

    try:
        agent_cls = get_agent_class(cfg.agent)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    agent_hyperparameters(agent_cls, cfg)
    units = agent_cls.budget_units
    if cfg.episodes is not None and "episodes" not in units:
        raise ConfigError(f"agent {cfg.agent!r} counts timesteps, not episodes: give timesteps")
    if units and cfg.timesteps is None and cfg.episodes is None:
        raise ConfigError(f"agent {cfg.agent!r} learns from samples: give timesteps or episodes")


def _check_finishes(cfg: RunConfig) -> None:
    # A trial counts as finished once its eval.json exists: that is what a re-run skips.
    if cfg.eval_episodes == 0:
        raise ConfigError("eval_episodes must be at least 1 in a sweep (a trial is finished once it has "
                          "written eval.json), got 0")


def _check_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not name.strip() or name in (".", "..") or re.search(r"[/\\\x00]", name):
        raise ConfigError(f"{where}name must be a directory name (no '/'), got {name!r}")
    return name


def _axes(values: dict[str, Any], where: str) -> dict[str, list]:
    """Each value as a list of its grid values (a scalar: one value)."""
    axes = {}
    for key, value in values.items():
        if isinstance(value, list):
            if not value:
                raise ConfigError(f"{where}{key}: a grid axis needs at least one value, got []")
            seen = [json.dumps(v, sort_keys=True, default=str) for v in value]
            if len(set(seen)) < len(seen):
                raise ConfigError(f"{where}{key}: a grid axis repeats a value, got {value!r}")
            axes[key] = value
        else:
            axes[key] = [value]
    return axes


def sweep_from_values(values: dict[str, Any], source: str = "", logdir: str | None = None) -> SweepConfig:
    """A :class:`SweepConfig` from a TOML document's tables; ``logdir`` overrides the file's.
    Every configuration is checked (options, agent, hyperparameters) before anything runs."""
    where = f"{source}: " if source else ""
    unknown = sorted(set(values) - set(TABLES))
    if unknown:
        raise ConfigError(f"{where}unknown table or key {', '.join(map(repr, unknown))}; a sweep config "
                          f"has the tables {', '.join(f'[{t}]' for t in TABLES)}")
    tables = {}
    for table in TABLES:
        given = values.get(table, {})
        if not isinstance(given, dict):
            raise ConfigError(f"{where}[{table}] must be a table, got {given!r}")
        tables[table] = dict(given)
    head = tables["sweep"]
    options = {f.name for f in dataclasses.fields(RunConfig)} - set(KEYWORD_TABLES)
    for key in head:
        if key in _REFUSED:
            raise ConfigError(f"{where}[sweep] {key} = {head[key]!r}: {_REFUSED[key]}")
        if key not in options and key not in SWEEP_KEYS:
            raise ConfigError(f"{where}[sweep] unknown key {key!r} (value {head[key]!r}); known: "
                              f"{', '.join(sorted(options - set(_REFUSED) | set(SWEEP_KEYS)))}")
    if "name" not in head:
        raise ConfigError(f"{where}[sweep] needs a name (the sweep's directory under logdir)")
    name = _check_name(head.pop("name"), f"{where}[sweep] ")
    if "seeds" not in head:
        raise ConfigError(f"{where}[sweep] needs seeds, e.g. seeds = \"0-9\"")
    seeds = parse_seeds(head.pop("seeds"), f"{where}[sweep] seeds")
    root = logdir if logdir is not None else head.pop("logdir", "runs")
    head.pop("logdir", None)
    if not isinstance(root, str):
        raise ConfigError(f"{where}[sweep] logdir must be a string, got {root!r}")

    # One axis per key of every table; a name given in two tables is qualified by its table.
    axes: dict[tuple[str, str], list] = {}
    for table in TABLES:
        for key, grid in _axes(tables[table], f"{where}[{table}] ").items():
            axes[(table, key)] = grid
    names = [key for _, key in axes]
    label = {(t, k): (k if names.count(k) == 1 else f"{t}.{k}") for t, k in axes}
    varying = sorted(label[a] for a, grid in axes.items() if len(grid) > 1)

    configurations: dict[str, RunConfig] = {}
    order = list(axes)
    for combination in itertools.product(*(axes[a] for a in order)):
        chosen = dict(zip(order, combination))
        run_values: dict[str, Any] = {"hyperparameters": {}, "env_kwargs": {}}
        for (table, key), value in chosen.items():
            if table == "sweep":
                run_values[key] = value
            else:
                run_values[table][key] = value
        agent = run_values.get("agent", RunConfig.agent)
        key = configuration_key({label[a]: v for a, v in chosen.items() if len(axes[a]) > 1},
                                agent if isinstance(agent, str) else str(agent))
        try:
            cfg = config_from_values({**run_values, "logdir": root})
            check_run_options(cfg)
            _check_finishes(cfg)
        except ConfigError as e:
            at = f"configuration {key}: " if varying else ""
            raise ConfigError(f"{where}{at}{e}") from None
        configurations[key] = cfg
    dirnames = {}
    for key in configurations:
        other = dirnames.setdefault(configuration_dirname(key), key)
        if other != key:
            raise ConfigError(f"{where}configurations {other!r} and {key!r} would share the directory "
                              f"{configuration_dirname(key)!r}; give values that differ in letters or digits")
    return SweepConfig(name, root, seeds, configurations, varying)


def load_sweep(path: str | Path, logdir: str | None = None) -> SweepConfig:
    """The sweep of a TOML file; errors name the file, the key and the value."""
    return sweep_from_values(load_toml(path), str(path), logdir)


def seed_sweep(cfg: RunConfig, seeds: Any, name: str | None = None) -> SweepConfig:
    """One configuration over ``seeds`` (``mimicgym train ... --seeds 0-9``): the sweep is named
    after the run name (default ``AGENT_ENV``) and lives in the run's ``logdir``."""
    seeds = parse_seeds(seeds, "--seeds")
    check_run_options(cfg)
    _check_finishes(cfg)
    name = _check_name(name or cfg.run_name or cfg.default_run_name().rsplit("_s", 1)[0], "sweep ")
    base = dataclasses.replace(cfg, seed=0, run_name=None)
    return SweepConfig(name, cfg.logdir, seeds, {configuration_key({}, cfg.agent): base}, [])
