"""stable-baselines3 algorithms as run agents (``--agent sb3:PPO``): lookup, hyperparameters
checked against the constructor before anything is built, models built and loaded."""

from __future__ import annotations

import inspect
import io
import json
import math
import re
import zipfile
from pathlib import Path
from typing import Any

from mimicgym.errors import CheckpointError, ConfigError
from mimicgym.runs.config import SB3_PREFIX
from mimicgym.runs.options import check_range, coerce
from mimicgym.utils.io import atomic_write, payload_checksum

ALGORITHMS = ("A2C", "DDPG", "DQN", "PPO", "SAC", "TD3")
# Set by the run layer itself, never by --set.
_RUN_OWNED = {"self", "policy", "env", "seed", "device", "verbose", "tensorboard_log",
              "_init_setup_model", "stats_window_size"}
# Simple bounds SB3 does not check itself (a gamma of 1.5 ends in NaN logits, not an error).
_RANGES: dict[str, tuple[float, float, bool]] = {  # name -> (low, high, low excluded)
    "gamma": (0.0, 1.0, False), "gae_lambda": (0.0, 1.0, False), "tau": (0.0, 1.0, True),
    "learning_rate": (0.0, math.inf, True), "clip_range": (0.0, math.inf, True),
    "ent_coef": (0.0, math.inf, False), "vf_coef": (0.0, math.inf, False),
    "max_grad_norm": (0.0, math.inf, True), "n_steps": (1, math.inf, False),
    "batch_size": (1, math.inf, False), "n_epochs": (1, math.inf, False),
    "buffer_size": (1, math.inf, False), "learning_starts": (0, math.inf, False),
    "target_update_interval": (1, math.inf, False), "exploration_fraction": (0.0, 1.0, False),
    "exploration_initial_eps": (0.0, 1.0, False), "exploration_final_eps": (0.0, 1.0, False),
}


def sb3_algorithm(name: str):
    import stable_baselines3

    algo = name[len(SB3_PREFIX):] if name.startswith(SB3_PREFIX) else name
    cls = getattr(stable_baselines3, algo, None)
    if algo not in ALGORITHMS or not isinstance(cls, type):
        raise ConfigError(f"unknown stable-baselines3 algorithm {algo!r}; choose one of "
                          f"{', '.join(SB3_PREFIX + a for a in ALGORITHMS)}")
    return cls


def _parameters(algo) -> dict[str, inspect.Parameter]:
    return {n: p for n, p in inspect.signature(algo.__init__).parameters.items()
            if n not in _RUN_OWNED and p.kind is not p.VAR_KEYWORD}


def check_sb3_hyperparameters(algo, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` checked against ``algo``'s constructor: known names, the default's type
    (ints widened to floats), and the simple ranges above."""
    params = _parameters(algo)
    unknown = sorted(set(values) - set(params))
    if unknown:
        raise ConfigError(f"{algo.__name__} has no hyperparameter {', '.join(map(repr, unknown))}; "
                          f"see: mimicgym list --agent sb3:{algo.__name__}")
    checked = {}
    for name, value in values.items():
        default = params[name].default
        # The default's type stands for the annotation (SB3's admit schedules, which --set cannot give).
        annotation = ("bool" if isinstance(default, bool) else "float" if isinstance(default, float)
                      else "int" if isinstance(default, int)
                      else "str | float" if isinstance(default, str)  # e.g. SAC's ent_coef="auto"
                      else "int | list" if isinstance(default, tuple)  # e.g. train_freq=(1, "step")
                      else "Any")  # None or a dict default: the constructor decides
        value = coerce(name, value, annotation, f"{algo.__name__} hyperparameter ")
        if name in _RANGES:
            low, high, low_open = _RANGES[name]
            check_range(name, value, low, high, low_open=low_open,
                        what=f"{algo.__name__} hyperparameter ")
        checked[name] = value
    return checked


def describe_sb3(algo) -> list[tuple[str, str, str]]:
    """(name, default, first line of SB3's ``:param name:`` doc) per constructor argument."""
    docs = {}
    for match in re.finditer(r":param (\w+):\s*(.+?)(?=\n\s*:param|\n\s*\n|\Z)", algo.__doc__ or "",
                             re.S):
        text = " ".join(match.group(2).split())
        first = re.split(r"\.\s+(?=[A-Z])|, it can be", text)[0].rstrip(".")
        docs[match.group(1)] = first if len(first) <= 100 else first[:99] + "…"
    return [(name, repr(p.default), docs.get(name, ""))
            for name, p in _parameters(algo).items() if p.default is not p.empty]


def policy_name(observation_space) -> str:
    from gymnasium import spaces
    from stable_baselines3.common.preprocessing import is_image_space

    if isinstance(observation_space, spaces.Dict):
        return "MultiInputPolicy"
    return "CnnPolicy" if is_image_space(observation_space) else "MlpPolicy"


def build_model(algo, venv, hyperparameters: dict[str, Any], seed: int, device: str):
    return algo(policy_name(venv.observation_space), venv, seed=seed, device=device, verbose=0,
                **hyperparameters)


# Cloudpickled entries of a saved model that are run state SB3 rebuilds when they are None.
_REBUILT = {"_last_obs", "_last_episode_starts", "_last_original_obs", "ep_info_buffer",
            "ep_success_buffer", "lr_schedule", "exploration_schedule", "rollout_buffer_class",
            "replay_buffer_class", "action_noise"}


def safe_custom_objects(algo, path: Path, venv, hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """Replacements for every cloudpickled (``":serialized:"``) entry of a SB3 zip, so that
    loading it unpickles nothing (a pickle can run any code): the policy class and spaces from
    the env, hyperparameters from the run's config (else the constructor's defaults), ``None``
    for run state SB3 rebuilds. An entry none of these can replace is refused."""
    try:
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data"))
    except (zipfile.BadZipFile, KeyError, OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not a stable-baselines3 model file ({e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: not a stable-baselines3 model file (no data table)")
    params = _parameters(algo)
    replacements: dict[str, Any] = {}
    for key, value in data.items():
        if not (isinstance(value, dict) and ":serialized:" in value):
            continue
        if key == "policy_class":
            replacements[key] = algo.policy_aliases[policy_name(venv.observation_space)]
        elif key in ("observation_space", "action_space"):
            replacements[key] = getattr(venv, key)
        elif key in _REBUILT:
            replacements[key] = None
        elif key in params:
            replacements[key] = hyperparameters.get(key, params[key].default)
        else:
            raise CheckpointError(f"{path}: refusing to unpickle its serialized entry {key!r}, which "
                                  f"the run's config cannot replace (a pickle can run any code)")
    return replacements


# SB3's zips have no checksum of their own that we could check before loading: the run directory
# records one per model file, {"model.zip": ["sha256:<newest>", "sha256:<the one before>"]}.
CHECKSUMS_FILE = "checksums.json"


def model_checksum(source: Path | bytes) -> str:
    """Checksum of what loading a SB3 zip reads: every archive member but ``data`` byte for
    byte (the tensors), and ``data``'s entries but the cloudpickled ones, which loading replaces
    (:func:`safe_custom_objects`) and never reads."""
    with zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source) as archive:
        members = {name: archive.read(name) for name in sorted(archive.namelist())}
    data = json.loads(members.pop("data", b"{}"))
    if not isinstance(data, dict):
        raise ValueError("its data entry is not a table")
    kept = {k: v for k, v in data.items() if not (isinstance(v, dict) and ":serialized:" in v)}
    return payload_checksum({"data": json.dumps(kept, sort_keys=True), "members": members})


def save_model_file(path: Path, data: bytes) -> None:
    """Write a SB3 zip atomically, its checksum recorded first in ``checksums.json`` beside it.

    The record keeps the previous file's checksum too: a run killed between the two atomic
    writes leaves either file in place, and both verify."""
    path = Path(path)
    record_path = path.with_name(CHECKSUMS_FILE)
    record = _checksum_record(record_path) if record_path.is_file() else {}
    digest = model_checksum(data)
    record[path.name] = [digest, *[d for d in record.get(path.name, [])[:1] if d != digest]]
    with atomic_write(record_path, "w") as f:
        json.dump(record, f, indent=2)
    with atomic_write(path) as f:
        f.write(data)


def _checksum_record(record_path: Path) -> dict[str, list[str]]:
    try:
        record = json.loads(record_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{record_path}: corrupt checksum record ({e})") from None
    if not isinstance(record, dict) or not all(isinstance(v, list) for v in record.values()):
        raise CheckpointError(f"{record_path}: corrupt checksum record (not a table of lists)")
    return record


def verify_model_file(path: Path) -> None:
    """Check a SB3 zip against the checksum its run directory recorded, before anything reads
    it; a zip without one (saved elsewhere, or before checksums) is not checked."""
    path = Path(path)
    record_path = path.with_name(CHECKSUMS_FILE)
    accepted = _checksum_record(record_path).get(path.name) if record_path.is_file() else None
    if accepted is None:
        return
    try:
        actual = model_checksum(path)
    except Exception as e:  # a corrupt zip raises all kinds (BadZipFile, zlib.error, ...)
        raise CheckpointError(f"{path}: corrupt, its contents cannot be read to verify the checksum "
                              f"({type(e).__name__}: {e})") from None
    if actual not in accepted:
        raise CheckpointError(f"{path}: checksum mismatch with {record_path.name} (recorded "
                              f"{accepted[0]!r}); the file is corrupt (a flipped bit?)")


def load_model(algo, path: Path, venv, device: str = "auto", hyperparameters: dict | None = None):
    """A saved SB3 model on ``venv``, checked against its recorded checksum and unpickling
    nothing, or a ``CheckpointError`` naming the file."""
    if not Path(path).is_file():
        raise CheckpointError(f"{path}: no such model file")
    verify_model_file(Path(path))
    custom_objects = safe_custom_objects(algo, Path(path), venv, hyperparameters or {})
    try:
        return algo.load(str(path), env=venv, device=device, custom_objects=custom_objects)
    except (zipfile.BadZipFile, ValueError, KeyError, OSError, EOFError, RuntimeError,
            TypeError) as e:
        if isinstance(e, zipfile.BadZipFile) or not zipfile.is_zipfile(path):
            raise CheckpointError(f"{path}: not a stable-baselines3 model file") from None
        raise CheckpointError(f"{path}: cannot be loaded as {algo.__name__} ({e})") from None
