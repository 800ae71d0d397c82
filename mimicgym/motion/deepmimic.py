"""DeepMimic's motion text format (``humanoid3d_*.txt``) as humanoid3d ``MotionClip``s.

A file is JSON: ``"Loop"`` (``"wrap"`` or ``"none"``) and ``"Frames"``, one list of 44
numbers per frame: duration (s), root position (3, y up), root rotation (w, x, y, z), then
per joint in the order chest, neck, right hip, right knee, right ankle, right shoulder, right
elbow, left hip, left knee, left ankle, left shoulder, left elbow: a (w, x, y, z) local
quaternion for spherical joints, one angle (rad) about the local z axis for revolute ones.

To the project's z-up world: root position (x, y, z) -> (x, -z, y) and +90 degrees about x
before the root rotation; joint-local quaternions carry over (the skeleton keeps DeepMimic's
y-up body frame). The shipped clips' quaternions are normalised, as DeepMimic does: several
are stored with norms from 0.58 to 1.12.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from mimicgym.motion.clip import MotionClip
from mimicgym.motion.rotations import quat_multiply, quat_slerp
from mimicgym.motion.skeleton import HUMANOID3D_SKELETON

__all__ = ["load_deepmimic", "deepmimic_clip_path", "load_deepmimic_clip", "DEEPMIMIC_FRAME_SIZE",
           "DEEPMIMIC_QUAT_NORM_TOL"]

# Joints stored per frame, in file order, with their number of values.
_FILE_JOINTS = (("chest", 4), ("neck", 4), ("right_hip", 4), ("right_knee", 1), ("right_ankle", 4),
                ("right_shoulder", 4), ("right_elbow", 1), ("left_hip", 4), ("left_knee", 1),
                ("left_ankle", 4), ("left_shoulder", 4), ("left_elbow", 1))
DEEPMIMIC_FRAME_SIZE = 1 + 3 + 4 + sum(n for _, n in _FILE_JOINTS)  # 44
# Accept quaternions this far off unit norm (the published kick clip reaches 0.58), reject
# zero or wild ones.
DEEPMIMIC_QUAT_NORM_TOL = 0.5
# Frame durations equal within this are a uniform frame rate.
_DURATION_TOL = 1e-6

_Y_UP_TO_Z_UP = np.array([np.sqrt(0.5), np.sqrt(0.5), 0.0, 0.0])  # +90 degrees about x


def _read_frames(path: Path) -> tuple[np.ndarray, bool]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"DeepMimic motion file not found: {path}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(data, dict) or "Frames" not in data:
        raise ValueError(f"{path}: expected a JSON object with a 'Frames' list")
    loop = data.get("Loop", "none")
    if loop not in ("wrap", "none"):
        raise ValueError(f"{path}: 'Loop' must be 'wrap' or 'none', got {loop!r}")
    frames = data["Frames"]
    if not isinstance(frames, list) or len(frames) < 2:
        raise ValueError(f"{path}: 'Frames' must be a list of at least 2 frames")
    for i, frame in enumerate(frames):
        if not isinstance(frame, list) or len(frame) != DEEPMIMIC_FRAME_SIZE:
            count = len(frame) if isinstance(frame, list) else type(frame).__name__
            raise ValueError(f"{path}: frame {i} has {count} values, expected "
                             f"{DEEPMIMIC_FRAME_SIZE}")
    try:
        arr = np.array(frames, dtype=np.float64)  # (T, 44)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: frames must hold only numbers ({e})") from e
    if not np.isfinite(arr).all():
        i, k = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{path}: frame {i} value {k} is not finite")
    return arr, loop == "wrap"


def _unit(q: np.ndarray, path: Path, joint: str, tol: float) -> np.ndarray:
    norm = np.linalg.norm(q, axis=-1)
    bad = np.abs(norm - 1.0) > tol
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{path}: frame {i}, joint {joint!r}: quaternion norm {norm[i]:.4g} is off "
                         f"unit length by more than {tol}")
    return q / norm[:, None]


def load_deepmimic(path: str | os.PathLike, quat_norm_tol: float = DEEPMIMIC_QUAT_NORM_TOL
                   ) -> MotionClip:
    """Read a DeepMimic humanoid3d motion file as a z-up humanoid3d clip.

    Non-uniform frame durations (the roll clip has one doubled frame) are resampled with
    slerp at the median frame rate; the last frame's duration is ignored, as DeepMimic does.
    """
    path = Path(path)
    arr, loop = _read_frames(path)
    sk = HUMANOID3D_SKELETON
    T = arr.shape[0]
    rot = np.zeros((T, sk.num_joints, 4))
    rot[..., 0] = 1.0  # fixed joints (wrists) stay at identity
    root_q = _unit(arr[:, 4:8], path, "root", quat_norm_tol)
    rot[:, 0] = quat_multiply(torch.from_numpy(_Y_UP_TO_Z_UP), torch.from_numpy(root_q)).numpy()
    col = 8
    for name, n in _FILE_JOINTS:
        j = sk.index(name)
        if n == 4:
            rot[:, j] = _unit(arr[:, col:col + 4], path, name, quat_norm_tol)
        else:  # revolute: angle about the local z axis
            half = arr[:, col] / 2
            rot[:, j, 0], rot[:, j, 3] = np.cos(half), np.sin(half)
        col += n
    x, y, z = arr[:, 1], arr[:, 2], arr[:, 3]
    root = np.stack([x, -z, y], axis=-1)

    durations = arr[:-1, 0]
    if (durations <= 0).any():
        i = int(np.argmax(durations <= 0))
        raise ValueError(f"{path}: frame {i} has non-positive duration {durations[i]}")
    name = path.stem.removeprefix("humanoid3d_")
    if np.ptp(durations) <= _DURATION_TOL:
        return MotionClip(sk, 1.0 / durations.mean(), root, rot, loop, name=name)
    # Uneven frame times: build the clip on its own time stamps, then resample uniformly.
    times = np.concatenate([[0.0], np.cumsum(durations)])
    n = int(round(times[-1] / np.median(durations))) + 1
    grid = np.linspace(0.0, times[-1], n)
    i0 = np.clip(np.searchsorted(times, grid, side="right") - 1, 0, T - 2)
    a = np.clip((grid - times[i0]) / (times[i0 + 1] - times[i0]), 0.0, 1.0)
    q = quat_slerp(torch.from_numpy(rot[i0]), torch.from_numpy(rot[i0 + 1]),
                   torch.from_numpy(np.repeat(a[:, None], sk.num_joints, 1))).numpy()
    r = (1 - a)[:, None] * root[i0] + a[:, None] * root[i0 + 1]
    return MotionClip(sk, (n - 1) / times[-1], r, q, loop, name=name)


def deepmimic_clip_path(name: str) -> Path:
    """Path of a clip shipped with ``pybullet`` (``pybullet_data/data/motions``), e.g. ``"walk"``."""
    try:
        import pybullet_data
    except ImportError:
        raise ImportError("the DeepMimic clips ship with pybullet; install it with "
                          "`pip install mimicgym[mocap]` (or `pip install pybullet`)") from None
    folder = Path(pybullet_data.getDataPath()) / "data" / "motions"
    stem = name if name.startswith("humanoid3d_") else f"humanoid3d_{name}"
    path = folder / f"{stem.removesuffix('.txt')}.txt"
    if not path.is_file():
        available = sorted(p.stem.removeprefix("humanoid3d_") for p in folder.glob("humanoid3d_*.txt"))
        raise FileNotFoundError(f"no DeepMimic clip {name!r} in {folder}; available: {available}")
    return path


def load_deepmimic_clip(name: str, **kwargs) -> MotionClip:
    """:func:`load_deepmimic` on the pybullet-shipped clip ``name`` (``"walk"``, ``"run"``, ...)."""
    return load_deepmimic(deepmimic_clip_path(name), **kwargs)
