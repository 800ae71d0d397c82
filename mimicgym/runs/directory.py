"""Run directories: created once, never overwritten, read back whole for ``eval`` and resume.

``config.json`` holds the run's :class:`RunConfig`, the agent class and the hyperparameters
it resolved, package versions, the git commit and, appended, each resume. A default run name
that is taken gets the next free suffix (``_2``, ``_3``); an explicit one that is taken is
refused; only ``--resume`` writes into an existing run.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from mimicgym.errors import CheckpointError, ConfigError
from mimicgym.runs.config import RunConfig, config_from_values
from mimicgym.utils.io import atomic_write

CONFIG_FILE = "config.json"
MODEL_FILES = ("model.npz", "model.pt", "model.zip")  # tabular, torch, stable-baselines3


def create_run_dir(cfg: RunConfig) -> Path:
    """A new, empty run directory under ``cfg.logdir``.

    Any config with ``logdir``, ``run_name`` and ``default_run_name()`` will do (runs without
    an env or an agent, such as a generative model on a data set, included); so will any
    dataclass for :func:`write_run_record`.
    """
    root = Path(cfg.logdir)
    root.mkdir(parents=True, exist_ok=True)
    if cfg.run_name is not None:
        run_dir = root / cfg.run_name
        try:
            run_dir.mkdir()
        except FileExistsError:
            raise ConfigError(f"run directory {run_dir} exists; choose another --run-name, or "
                              f"continue it with: mimicgym train --resume {run_dir}") from None
        return run_dir
    name, n = cfg.default_run_name(), 1
    while True:
        run_dir = root / (name if n == 1 else f"{name}_{n}")
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            n += 1


def package_versions() -> dict[str, str | None]:
    names = ("mimicgym", "gymnasium", "stable-baselines3", "torch", "numpy", "mujoco", "tensorboard")
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit() -> str | None:
    """The commit of the checkout the package runs from (with '-dirty'), if any."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("-dirty" if dirty else "")


def write_json(path: Path, payload: Any) -> None:
    with atomic_write(path, "w") as f:
        json.dump(payload, f, indent=2, default=str)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def write_run_record(run_dir: Path, cfg: RunConfig, agent_class: str, hyperparameters: dict) -> None:
    """``config.json``: what was asked, what the agent resolved it to, and what ran it."""
    import dataclasses

    write_json(run_dir / CONFIG_FILE, {
        "config": dataclasses.asdict(cfg),
        "agent_class": agent_class,
        "hyperparameters": hyperparameters,
        "versions": package_versions(),
        "git_commit": git_commit(),
        "started": _now(),
        "resumes": [],
    })


def record_resume(run_dir: Path, cfg: RunConfig, at_step: int) -> None:
    """Append a resume (when, from which step, to which budget, with what code) to config.json."""
    record = read_run_record(run_dir)
    record["config"]["timesteps"], record["config"]["episodes"] = cfg.timesteps, cfg.episodes
    record.setdefault("resumes", []).append({"at_step": at_step, "time": _now(),
                                             "timesteps": cfg.timesteps, "episodes": cfg.episodes,
                                             "git_commit": git_commit()})
    write_json(run_dir / CONFIG_FILE, record)


def read_run_record(run_dir: Path) -> dict[str, Any]:
    """The run's ``config.json``, or a ``CheckpointError`` saying what is wrong with it."""
    path = Path(run_dir) / CONFIG_FILE
    if not Path(run_dir).is_dir():
        raise CheckpointError(f"{run_dir}: no such run directory")
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{run_dir}: not a run directory (no {CONFIG_FILE})") from None
    except (ValueError, RecursionError) as e:  # bad JSON or UTF-8, a 5,000-digit number, deep nesting
        raise CheckpointError(f"{path}: corrupt ({type(e).__name__}: {e})") from None
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise CheckpointError(f"{path}: no 'config' table; not written by mimicgym train")
    return record


def run_config(run_dir: Path) -> RunConfig:
    """The :class:`RunConfig` a run directory was started with (its last budget on resume)."""
    return config_from_values(read_run_record(run_dir)["config"], str(Path(run_dir) / CONFIG_FILE))


def find_model(run_dir: Path) -> Path:
    """The run's saved agent or model."""
    for name in MODEL_FILES:
        if (Path(run_dir) / name).is_file():
            return Path(run_dir) / name
    raise CheckpointError(f"{run_dir}: no saved model ({', '.join(MODEL_FILES)})")


def locate_run(path: str | Path) -> Path:
    """A run directory from itself or from a file inside it (``--resume RUN/model.pt``)."""
    path = Path(path)
    if path.is_file() and (path.parent / CONFIG_FILE).is_file():
        return path.parent
    if path.is_dir():
        return path
    if path.is_file():
        raise CheckpointError(f"{path}: not inside a run directory (no {CONFIG_FILE} beside it)")
    raise CheckpointError(f"{path}: no such run directory or checkpoint")
