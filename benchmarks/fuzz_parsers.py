"""Fuzz every loader of untrusted input: documented errors only, no hangs, no silent nonsense.

Each target starts from valid inputs the project writes (``MotionClip.save``, ``save_bvh``,
``save_model_npz``, ``save_checkpoint``, a run's ``config.json``), ships (the DeepMimic clips in
``../shared/data`` or pybullet_data), or takes (gridworld maps and options), mutates them (byte
flips, truncation, numbers replaced by huge/inf/nan/negative/complex values, structure changes)
and loads the result under a per-case time limit. Each case is one of:

- accepted: loaded, and the result passes the target's bounds (finite, in range);
- documented: raised the target's :mod:`mimicgym.errors` class;
- undocumented: raised anything else;
- hang: ran past ``--timeout`` seconds;
- silent: loaded, but the result breaks a bound (a non-finite value, a value out of range).

Prints a table and writes ``benchmarks/results/fuzz_parsers.json``; exits 1 if any case is
undocumented, a hang or silent. ``tests/test_fuzz_parsers.py`` runs the same cases, fewer.
Usage: ``python benchmarks/fuzz_parsers.py [--cases N | --quick] [--targets NAME ...]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import signal
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _body_fixtures import random_smpl_arrays  # noqa: E402

from mimicgym.errors import CheckpointError, ConfigError, MapError, ModelFileError, MotionFileError  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "fuzz_parsers.json"
DEEPMIMIC_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "deepmimic"
# Small clips; roll has uneven frame times, kick a quaternion of norm 0.58.
SEED_CLIPS = ("walk", "run", "backflip", "roll", "kick")

# Replacement values: text for text formats, Python values for JSON and keywords.
WEIRD_TOKENS = ("1e308", "-1e308", "1e400", "inf", "-inf", "nan", "0", "-0", "-1", "1e-320", "9" * 400,
                "1e4", "1e6", "1e9", "1.5", "2", "1j", "", "abc", "{", "}", "ROOT", "JOINT", "End Site",
                "CHANNELS", "OFFSET", "MOTION", "Xposition", "Zrotation", "Frames:", "\xff")
WEIRD_NUMBERS = (float("inf"), float("-inf"), float("nan"), 1e308, -1e308, 10**400, 1e4, 1e6, -1.0, 0.0,
                 1e-320, 2.0, True, None, "1.0", [], {})
WEIRD_VALUES = (10**9, -10**9, 10**400, 2**63, -2**63, float("inf"), float("-inf"), float("nan"), 1e308, -1,
                0, 1, 0.5, 1.5, 7, True, False, None, "x", "", [], {}, [1], 1j, np.float64("nan"),
                np.int64(3), np.array([1, 2]), b"S", (1, 2), [[1]], {"x": 1}, object())


@dataclass
class Target:
    """A loader under test: its documented error, its valid inputs, how a case is made and checked."""

    name: str
    error: type[Exception] | tuple[type[Exception], ...]
    seeds: Callable[[Path], list]  # valid inputs, built once per run
    case: Callable[[random.Random, Any, Path], Callable[[], Any]]  # mutate a seed; return the load call
    check: Callable[[Any], str | None]  # what is wrong with an accepted result, or None


# ------------------------------------------------------------------------------ mutations
def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    """One to three of: bit flip, byte set, truncation, deletion, duplication, insertion."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        if not data:
            break
        i, op = rng.randrange(len(data)), rng.randrange(6)
        j = min(len(data), i + rng.randint(1, 64))
        if op == 0:
            data[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            data[i] = rng.randrange(256)
        elif op == 2:
            del data[i:]
        elif op == 3:
            del data[i:j]
        elif op == 4:
            data[i:i] = data[i:j]
        else:
            data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return bytes(data)


def mutate_lines(rng: random.Random, text: str) -> str:
    """A token replaced, or a line deleted, duplicated, swapped or inserted (as keyword text)."""
    lines = text.split("\n")
    i, k = rng.randrange(len(lines)), rng.randrange(len(lines))
    op = rng.randrange(5)
    if op == 0:
        tokens = lines[i].split() or [""]
        tokens[rng.randrange(len(tokens))] = rng.choice(WEIRD_TOKENS)
        lines[i] = " ".join(tokens)
    elif op == 1:
        del lines[i]
    elif op == 2:
        lines.insert(i, lines[k])
    elif op == 3:
        lines[i], lines[k] = lines[k], lines[i]
    else:
        lines.insert(i, " ".join(rng.choice(WEIRD_TOKENS) for _ in range(rng.randint(1, 4))))
    return "\n".join(lines)


def mutate_array(rng: random.Random, a: np.ndarray) -> Any:
    """A value, dtype or shape change of one array."""
    a = np.array(a)
    op = rng.randrange(9)
    if op == 0 and a.size and a.dtype.kind in "iuf":
        a = a.astype(np.float64)
        a.flat[rng.randrange(a.size)] = rng.choice([np.inf, -np.inf, np.nan, 1e308, -1e308, 1e5, -1.0, 0.0])
        return a
    if op == 1 and a.dtype.kind in "iuf":
        return a * rng.choice([2.0, 0.0, -1.0, 1e9, 1e-9])
    if op == 2:
        with contextlib.suppress(ValueError, TypeError, OverflowError), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # casts that overflow or drop an imaginary part: intended;
            # values that do not convert (text, None) stay as they are
            a = a.astype(rng.choice([np.complex128, np.bool_, np.str_, np.float16, np.int8, np.uint64, object]))
        return a
    if op == 3:
        return a + 1j if a.dtype.kind in "iuf" else a
    if op == 4:
        flat = a.reshape(-1)
        return rng.choice([flat, a[None], flat[:0], flat[:1], a.T, np.float64(1.0), np.str_("x")])
    if op == 5 and a.ndim:
        return np.concatenate([a] * rng.choice([2, 3]))
    if op == 6:
        return np.asfortranarray(a.T if a.ndim > 1 else a)
    if op == 7:
        return np.zeros(rng.choice([(10**5,), (0, 3), (2, 2, 2, 2)]))
    return rng.choice([np.array([1j]), np.array(["x", "y"]), np.array(None, dtype=object), np.array(True)])


def mutated_npz(rng: random.Random, arrays: dict[str, np.ndarray], path: Path) -> Path:
    """Arrays mutated (a key changed, dropped or added) and saved, and/or the archive's bytes mutated."""
    arrays = dict(arrays)
    if rng.random() < 0.75:
        for _ in range(rng.randint(1, 2)):
            key = rng.choice(sorted(arrays))
            op = rng.randrange(10)
            if op == 0:
                del arrays[key]
            elif op == 1:
                arrays["extra"] = mutate_array(rng, arrays[key])
            else:
                arrays[key] = mutate_array(rng, arrays[key])
    with open(path, "wb") as f:
        (np.savez_compressed if rng.random() < 0.5 else np.savez)(f, **arrays)
    if rng.random() < 0.4:
        path.write_bytes(mutate_bytes(rng, path.read_bytes()))
    return path


def mutate_json(rng: random.Random, doc: dict) -> Any:
    """A DeepMimic document with a number, a frame, a key or the nesting changed."""
    doc = json.loads(json.dumps(doc))
    frames = doc["Frames"]
    i, op = rng.randrange(len(frames)), rng.randrange(8)
    if op <= 1:
        frames[i][rng.randrange(len(frames[i]))] = rng.choice(WEIRD_NUMBERS)
    elif op == 2:
        frames[i][0] = rng.choice([1e4, 1e6, 1e-9, 0.0, -0.1, 2.0, 1e-300, 0.9])
    elif op == 3:
        doc["Frames"] = frames[:rng.randint(0, 3)] if rng.random() < 0.5 else frames * rng.choice([2, 50])
    elif op == 4:
        frames[i] = frames[i][:-1] if rng.random() < 0.5 else frames[i] + [0.5]
    elif op == 5:
        doc[rng.choice(["Frames", "Loop"])] = rng.choice(WEIRD_NUMBERS + ("wrap", "forever", [[]], [1, 2]))
    elif op == 6:
        frames[i][4:8] = rng.choice([[0, 0, 0, 0], [1e6, 0, 0, 0], [1, 1, 1, 1]])
    else:
        return rng.choice([frames, 3, "x", None, {"Loop": "wrap"}])
    return doc


# ------------------------------------------------------------------------------ checks
def _bad_values(name: str, a: Any, bound: float) -> str | None:
    a = np.asarray(a)
    if a.dtype.kind not in "iuf":
        return f"{name} has dtype {a.dtype}"
    if a.size and not (np.abs(a.astype(np.float64)) <= bound).all():
        return f"{name} has a non-finite value or one beyond {bound:g}"
    return None


def check_clip(clip) -> str | None:
    from mimicgym.motion.clip import MAX_ABS_VALUE, MAX_FRAME_DURATION, MAX_FRAMES

    if clip.num_frames > MAX_FRAMES:
        return f"{clip.num_frames} frames"
    if not 1 / MAX_FRAME_DURATION <= clip.fps < np.inf:
        return f"fps {clip.fps}"
    if any(not name for name in clip.skeleton.joint_names):
        return "an empty joint name"
    for name, a, bound in (("root_trans", clip.root_trans, MAX_ABS_VALUE), ("rotations", clip.rotations, 1.0 + 1e-6),
                           ("offsets", clip.skeleton.offsets, MAX_ABS_VALUE),
                           ("betas", clip.betas if clip.betas is not None else [], MAX_ABS_VALUE)):
        problem = _bad_values(name, a, bound)
        if problem:
            return problem
    return None


def check_model(result) -> str | None:
    from mimicgym.motion.model_io import GENDERS, MAX_ABS_MODEL_VALUE, WEIGHTS_SUM_TOL

    arrays, gender = result
    if gender not in GENDERS:
        return f"gender {gender!r}"
    for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights"):
        problem = key in arrays and _bad_values(key, arrays[key], MAX_ABS_MODEL_VALUE)
        if problem:
            return problem
    w = arrays["weights"].astype(np.float64)
    if (np.abs(w.sum(1) - 1) > WEIGHTS_SUM_TOL).any() or (w < -WEIGHTS_SUM_TOL).any():
        return "skinning weights not convex"
    V, J = len(arrays["v_template"]), arrays["kintree_table"].shape[1]
    if arrays["f"].dtype.kind not in "iu" or arrays["f"].min() < 0 or arrays["f"].max() >= V:
        return "faces out of range"
    parents = arrays["kintree_table"][0]
    if parents[0] != -1 or (parents[1:] < 0).any() or (parents[1:] >= np.arange(1, J)).any():
        return "kintree_table parents out of order"
    return None


def check_grid(env) -> str | None:
    from mimicgym.envs.maps import MAX_MAP_CELLS

    c = env.config
    rows, cols = c.shape
    if rows * cols > MAX_MAP_CELLS or (c.chars == "S").sum() != 1:
        return f"map {c.shape} with {(c.chars == 'S').sum()} starts"
    if c.wind.dtype != np.int64 or c.wind.shape != (cols,) or (np.abs(c.wind) > rows).any():
        return f"wind {c.wind.tolist()[:10]}"
    if not 0.0 <= c.slip <= 1.0:
        return f"slip {c.slip}"
    rewards = [c.step_reward, 0.0 if c.bump_reward is None else c.bump_reward, *c.rewards.values(),
               *(r for _, r in c.jumps.values())]
    if not all(isinstance(r, float) and np.isfinite(r) for r in rewards):
        return f"a reward {rewards}"
    return None


# ------------------------------------------------------------------------------ targets
def _short_clip(name: str, frames: int):
    from mimicgym.motion.clip import MotionClip
    from mimicgym.motion.deepmimic import load_deepmimic

    clip = load_deepmimic(deepmimic_path(name))
    return MotionClip(clip.skeleton, clip.fps, clip.root_trans[:frames], clip.rotations[:frames], clip.loop,
                      name=name)


def _random_smpl_clip(frames: int):
    from mimicgym.motion.clip import MotionClip
    from mimicgym.motion.rotations import axis_angle_to_quat
    from mimicgym.motion.skeleton import SMPL_SKELETON

    rng = np.random.default_rng(0)
    import torch

    quats = axis_angle_to_quat(torch.from_numpy(rng.normal(0, 0.3, (frames, 24, 3)))).numpy()
    return MotionClip(SMPL_SKELETON, 30.0, rng.normal(0, 1, (frames, 3)), quats, betas=rng.normal(0, 1, 10),
                      name="rand")


def deepmimic_path(name: str) -> Path:
    """A DeepMimic clip from ../shared/data, else the copy pybullet ships."""
    local = DEEPMIMIC_DATA / f"humanoid3d_{name}.txt"
    if local.is_file():
        return local
    from mimicgym.motion.deepmimic import deepmimic_clip_path

    return deepmimic_clip_path(name)


def _file_case(suffix: str, make: Callable[[random.Random, Any, Path], None], load: Callable[[Path], Any]):
    """A case that writes a mutated file at ``workdir / case<suffix>`` and loads it."""
    def case(rng: random.Random, seed: Any, workdir: Path) -> Callable[[], Any]:
        path = workdir / f"case{suffix}"
        make(rng, seed, path)
        return lambda: load(path)
    return case


def _deepmimic_seeds(_: Path) -> list:
    return [json.loads(deepmimic_path(name).read_text()) for name in SEED_CLIPS]


def _write_deepmimic(rng: random.Random, doc: dict, path: Path) -> None:
    text = json.dumps(mutate_json(rng, doc) if rng.random() < 0.85 else doc).encode()
    op = rng.randrange(4)
    if op == 0:
        text = mutate_bytes(rng, text)
    elif op == 1 and b"[[" in text:  # a value nested deeply (json recursion)
        depth = rng.choice([50, 5000, 200000])
        at = text.index(b"[[") + 2
        text = text[:at] + b"[" * depth + b"]" * depth + b"," + text[at:]
    path.write_bytes(text)


def _bvh_seeds(workdir: Path) -> list:
    from mimicgym.motion.bvh import save_bvh

    seeds = []
    for i, clip in enumerate((_short_clip("walk", 4), _random_smpl_clip(3))):
        save_bvh(clip, workdir / f"seed{i}.bvh", scale=100.0)
        seeds.append((workdir / f"seed{i}.bvh").read_text())
    return seeds


WEIRD_NUMBER_TEXT = ("1e308", "-1e308", "1e400", "inf", "-inf", "nan", "0", "-0", "-1", "1e-320", "9" * 400,
                     "1e4", "1e5", "-1e5", "1e9", "99999999999", "1.5", "2", "1j", "", "abc", "1_0", "٣")


def replace_number(rng: random.Random, text: str) -> str:
    """One number of the text (an offset, a channel value, a count) replaced by a weird one."""
    lines = text.split("\n")
    numeric = [i for i, line in enumerate(lines) if any(t[-1:].isdigit() for t in line.split())]
    i = rng.choice(numeric)
    tokens = lines[i].split()
    k = rng.choice([k for k, t in enumerate(tokens) if t[-1:].isdigit()])
    tokens[k] = rng.choice(WEIRD_NUMBER_TEXT)
    lines[i] = " ".join(tokens)
    return "\n".join(lines)


def _write_bvh(rng: random.Random, text: str, path: Path) -> None:
    for _ in range(rng.randint(1, 2)):
        text = replace_number(rng, text) if rng.random() < 0.5 else mutate_lines(rng, text)
    data = text.encode("utf-8", "surrogateescape")
    path.write_bytes(mutate_bytes(rng, data) if rng.random() < 0.15 else data)


def _clip_seeds(workdir: Path) -> list:
    seeds = []
    for i, clip in enumerate((_short_clip("walk", 6), _random_smpl_clip(4))):
        clip.save(workdir / f"seed{i}.npz")
        with np.load(workdir / f"seed{i}.npz") as data:
            seeds.append({k: data[k] for k in data.files})
    return seeds


def _amass_seeds(_: Path) -> list:
    rng = np.random.default_rng(0)
    return [dict(poses=rng.normal(0, 0.3, (6, width)), trans=rng.normal(0, 1, (6, 3)), betas=rng.normal(0, 1, 16),
                 mocap_framerate=np.float64(120.0), gender=np.str_("neutral")) for width in (72, 156)]


def _model_seeds(_: Path) -> list:
    arrays = random_smpl_arrays(seed=0, num_vertices=60)
    return [arrays, dict(arrays, gender=np.str_("female"), weights=arrays["weights"].astype(np.float32))]


def _write_model_pkl(rng: random.Random, arrays: dict, path: Path) -> None:
    import pickle

    arrays = dict(arrays)
    if rng.random() < 0.6:
        key = rng.choice(sorted(arrays))
        arrays[key] = mutate_array(rng, arrays[key])
    data = pickle.dumps(arrays, protocol=2)
    path.write_bytes(mutate_bytes(rng, data) if rng.random() < 0.5 else data)


def _checkpoint_seeds(workdir: Path) -> list:
    import torch

    from mimicgym.agents.checkpoint import save_checkpoint

    payload = {"class": "DQN", "step": 1234, "net": {"weight": torch.randn(8, 4), "bias": torch.zeros(8)},
               "rng": [1, 2, 3], "name": "run", "lr": 1e-3}
    path = save_checkpoint(workdir / "seed.pt", payload)
    return [path.read_bytes()]


def _load_checkpoint_checked(path: Path) -> Any:
    from mimicgym.agents.checkpoint import load_checkpoint

    return load_checkpoint(path, expected_class="DQN")


def _check_checkpoint(payload: dict) -> str | None:
    from mimicgym.utils.io import payload_checksum

    body = {k: v for k, v in payload.items() if k != "checksum"}
    return None if payload.get("checksum") == payload_checksum(body) else "payload differs from its checksum"


def _run_seeds(_: Path) -> list:
    import dataclasses

    from mimicgym.runs.config import RunConfig

    cfg = RunConfig(env="mimicgym/CliffWalking-v0", agent="q_learning", episodes=50, seed=3, run_name="r")
    return [json.dumps({"config": dataclasses.asdict(cfg), "agent_class": "QLearning", "hyperparameters": {},
                        "versions": {}, "git_commit": None, "started": "2024-01-01T00:00:00", "resumes": []},
                       indent=2)]


def _write_run(rng: random.Random, text: str, path: Path) -> None:
    path.mkdir(exist_ok=True)
    op = rng.randrange(10)
    if op == 0:  # a value nested deeply, or a number of 5,000 digits
        at = text.index('"seed": ') + 8
        text = text[:at] + rng.choice(["[" * 100000 + "]" * 100000, "9" * 5000]) + text[text.index(",", at):]
    data = mutate_lines(rng, text).encode() if op < 5 else mutate_bytes(rng, text.encode())
    (path / "config.json").write_bytes(data)


def _load_run(path: Path) -> Any:
    from mimicgym.runs.directory import run_config

    return run_config(path)


GRID_MAPS = [["S..", ".#G"], ["S.T", "..G"], "S....\n.###.\n....G", ["SCCG"], ["S.A", "..a"]]
GRID_OPTIONS = [dict(layout="windy", wind=[0, 0, 0, 1, 1, 1, 2, 2, 1, 0]), dict(layout="cliff_walking", slip=0.1),
                dict(layout="gridworld_5x5", jumps={"A": ("a", 10.0), "B": ("b", 5.0)}),
                dict(layout="default", rewards={"T": -5.0, (1, 1): 2.0}), dict(layout="random_walk", n_states=7),
                dict(layout="windy", stochastic_wind=True, king_moves=True, stay_action=True),
                dict(map=["S..", ".#G"], step_reward=-0.5, bump_reward=-2.0)]
OPTION_KEYS = ("layout", "slip", "wind", "stochastic_wind", "king_moves", "stay_action", "step_reward",
               "bump_reward", "rewards", "jumps", "n_states")


def _grid_env(**kwargs) -> Any:
    from mimicgym.envs.gridworld import GridWorldEnv

    return GridWorldEnv(**kwargs)


WEIRD_MAPS = (5, None, 3.5, b"S.G", {"S": 1}, ["S.G", 5], [["S", "G"]], np.array(["S.", ".G"]), np.array([[1, 2]]),
              "", [], {"S.G"}, ["S" + "." * 5000] * 3000, "S" + "." * 10**7)


def _map_case(rng: random.Random, grid_map: Any, _: Path) -> Callable[[], Any]:
    """One to three cell, row or whole-map changes of a valid map (a string or a list of rows)."""
    rows = grid_map.split("\n") if isinstance(grid_map, str) else list(grid_map)
    for _ in range(rng.randint(1, 3)):
        r, op = rng.randrange(len(rows)), rng.randrange(4)
        if op == 0:
            c = rng.randrange(len(rows[r]) + 1)
            rows[r] = rows[r][:c] + rng.choice("#.SGTC09xA \t\n\x00é") + rows[r][c + 1:]
        elif op == 1:
            rows.insert(r, rows[r])
        elif op == 2 and len(rows) > 1:
            rows.pop(r)
        else:
            rows[r] = rows[r][:rng.randrange(len(rows[r]) + 1)]
    grid = "\n".join(rows) if isinstance(grid_map, str) else rows
    if rng.random() < 0.2:
        grid = rng.choice(WEIRD_MAPS)
    return lambda: _grid_env(map=grid)


def _options_case(rng: random.Random, options: dict, _: Path) -> Callable[[], Any]:
    kwargs = dict(options)  # the list or dict changed below is copied first
    given = [k for k in kwargs if k not in ("layout", "map")]
    key = rng.choice(given if rng.random() < 0.5 else [k for k in OPTION_KEYS if k != "layout" or "map" not in kwargs])
    op = rng.randrange(3)
    if op == 0 or key not in ("wind", "rewards", "jumps") or not isinstance(kwargs.get(key), (list, dict)):
        kwargs[key] = rng.choice(WEIRD_VALUES)
    elif key == "wind":
        wind = list(kwargs["wind"])
        wind[rng.randrange(len(wind))] = rng.choice(WEIRD_VALUES)
        kwargs["wind"] = wind
    else:
        entries = dict(kwargs[key])
        entries[rng.choice([*entries, "Z", (0, 0), (99, 0), (1.5, 0), 5, None])] = rng.choice(
            [*WEIRD_VALUES, ("a", float("nan")), ("S", 1.0), ("Q", 1.0), (["a"], 1.0)])
        kwargs[key] = entries
    return lambda: _grid_env(**kwargs)


def targets() -> dict[str, Target]:
    from mimicgym.motion.amass import load_amass
    from mimicgym.motion.bvh import load_bvh
    from mimicgym.motion.clip import MotionClip
    from mimicgym.motion.deepmimic import load_deepmimic
    from mimicgym.motion.model_io import load_model_file

    def npz(suffix: str, load: Callable[[Path], Any]):
        return _file_case(suffix, lambda rng, seed, path: mutated_npz(rng, seed, path), load)

    return {t.name: t for t in (
        Target("gridworld_map", MapError, lambda _: GRID_MAPS, _map_case, check_grid),
        Target("gridworld_options", MapError, lambda _: GRID_OPTIONS, _options_case, check_grid),
        Target("deepmimic", MotionFileError, _deepmimic_seeds, _file_case(".txt", _write_deepmimic, load_deepmimic),
               check_clip),
        Target("bvh", MotionFileError, _bvh_seeds, _file_case(".bvh", _write_bvh, load_bvh), check_clip),
        Target("npz_clip", MotionFileError, _clip_seeds, npz(".npz", MotionClip.load), check_clip),
        Target("amass", MotionFileError, _amass_seeds, npz(".npz", load_amass), check_clip),
        Target("body_model_npz", ModelFileError, _model_seeds, npz(".npz", load_model_file), check_model),
        Target("body_model_pkl", ModelFileError, _model_seeds, _file_case(".pkl", _write_model_pkl, load_model_file),
               check_model),
        Target("checkpoint", CheckpointError, _checkpoint_seeds,
               _file_case(".pt", lambda rng, data, path: path.write_bytes(mutate_bytes(rng, data)),
                          _load_checkpoint_checked), _check_checkpoint),
        Target("run_config", (CheckpointError, ConfigError), _run_seeds, _file_case("_run", _write_run, _load_run),
               lambda _: None),
    )}


# ------------------------------------------------------------------------------ running
class _Hang(BaseException):
    """Raised by the alarm; a BaseException so that no loader's ``except Exception`` eats it."""


@contextlib.contextmanager
def time_limit(seconds: float):
    def alarm(*_):
        raise _Hang
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_case(target: Target, seeds: list, rng: random.Random, workdir: Path, timeout: float
             ) -> tuple[str, str, float]:
    """(outcome, detail, seconds) of one case: accepted, documented, undocumented, hang or silent."""
    load = target.case(rng, rng.choice(seeds), workdir)
    start = time.perf_counter()
    try:
        with time_limit(timeout):
            result = load()
    except _Hang:
        return "hang", f"over {timeout} s", time.perf_counter() - start
    except target.error as e:
        return "documented", str(e)[:200], time.perf_counter() - start
    except Exception as e:  # what the fuzz is looking for
        return "undocumented", f"{type(e).__name__}: {str(e)[:200]}", time.perf_counter() - start
    elapsed = time.perf_counter() - start
    if elapsed > timeout:
        return "hang", f"{elapsed:.1f} s", elapsed
    problem = target.check(result)
    return ("silent", problem, elapsed) if problem else ("accepted", "", elapsed)


def fuzz_target(target: Target, cases: int, seed: int, timeout: float) -> dict[str, Any]:
    counts = dict.fromkeys(("accepted", "documented", "undocumented", "hang", "silent"), 0)
    examples: dict[str, list[str]] = {}
    slowest, start = 0.0, time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        seeds = target.seeds(Path(tmp))
        for i in range(cases):
            outcome, detail, seconds = run_case(target, seeds, random.Random(f"{seed}/{target.name}/{i}"),
                                                Path(tmp), timeout)
            counts[outcome] += 1
            slowest = max(slowest, seconds)
            if outcome not in ("accepted", "documented") and len(examples.setdefault(outcome, [])) < 5:
                examples[outcome].append(f"case {i}: {detail}")
    return {"target": target.name, "cases": cases, **counts, "slowest_case_s": round(slowest, 3),
            "seconds": round(time.perf_counter() - start, 1), "examples": examples}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=2000, help="cases per target (default 2000)")
    parser.add_argument("--quick", action="store_true", help="200 cases per target (a smoke run)")
    parser.add_argument("--targets", nargs="*", help="run only these targets")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds before a case counts as a hang")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-gb", type=float, default=8.0,
                        help="address-space limit, so a runaway allocation is a MemoryError, not the OOM killer")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    cases = 200 if args.quick else args.cases
    import resource

    limit = int(args.memory_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import torch

    torch.set_num_threads(1)
    chosen = targets()
    unknown = set(args.targets or ()) - set(chosen)
    if unknown:
        parser.error(f"unknown targets {sorted(unknown)}; targets: {', '.join(chosen)}")
    rows = []
    print(f"{'target':<18} {'cases':>6} {'accepted':>8} {'documented':>10} {'undocumented':>12} {'hangs':>5} "
          f"{'silent':>6} {'slowest s':>9} {'total s':>7}")
    for name in args.targets or chosen:
        row = fuzz_target(chosen[name], cases, args.seed, args.timeout)
        rows.append(row)
        print(f"{name:<18} {row['cases']:>6} {row['accepted']:>8} {row['documented']:>10} {row['undocumented']:>12} "
              f"{row['hang']:>5} {row['silent']:>6} {row['slowest_case_s']:>9.3f} {row['seconds']:>7.1f}", flush=True)
        for outcome, lines in row["examples"].items():
            for line in lines:
                print(f"    {outcome}: {line}")
    result = {"benchmark": "fuzz_parsers", "cases_per_target": cases, "timeout_s": args.timeout, "seed": args.seed,
              "python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__, "rows": rows}
    from mimicgym.utils.io import write_results

    write_results(args.out, result)
    print(f"wrote {args.out}")
    return int(any(row[k] for row in rows for k in ("undocumented", "hang", "silent")))


if __name__ == "__main__":
    sys.exit(main())
