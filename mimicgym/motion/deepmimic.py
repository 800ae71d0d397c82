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

Any problem with a file raises :class:`~mimicgym.errors.MotionFileError` naming the file and the
frame and value (or the JSON line): frames of more than ``MAX_FRAME_DURATION`` (1 s), more than
``MAX_FRAMES`` (10**6) frames, numbers beyond ``MAX_ABS_VALUE`` (1e4 m or rad), non-finite
numbers or non-numbers are refused before anything is allocated for them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from mimicgym.errors import MotionFileError
from mimicgym.motion.clip import MAX_ABS_VALUE, MAX_FRAME_DURATION, MAX_FRAMES, MotionClip, read_motion_file
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


def _read_json(path: Path):
    """The file's JSON; integers read as floats (no 4,300-digit int parsing, no overflow on
    conversion) and NaN/Infinity as floats, which the frame checks then name."""
    text = read_motion_file(path, "DeepMimic motion")
    try:
        return json.loads(text, parse_int=float, parse_constant=float)
    except RecursionError:
        raise MotionFileError(f"{path}: not valid JSON (nested too deeply)") from None
    except ValueError as e:  # JSONDecodeError (it names the line), UnicodeDecodeError
        raise MotionFileError(f"{path}: not valid JSON ({e})") from e


def _read_frames(path: Path, max_frames: int, max_frame_duration: float, max_abs: float
                 ) -> tuple[np.ndarray, bool]:
    data = _read_json(path)
    if not isinstance(data, dict) or "Frames" not in data:
        raise MotionFileError(f"{path}: expected a JSON object with a 'Frames' list")
    loop = data.get("Loop", "none")
    if loop not in ("wrap", "none"):
        raise MotionFileError(f"{path}: 'Loop' must be 'wrap' or 'none', got {str(loop)[:40]!r}")
    frames = data["Frames"]
    if not isinstance(frames, list) or not 2 <= len(frames) <= max_frames:
        count = len(frames) if isinstance(frames, list) else type(frames).__name__
        raise MotionFileError(f"{path}: 'Frames' must be a list of 2 to max_frames={max_frames} frames, "
                              f"got {count}")
    for i, frame in enumerate(frames):
        if not isinstance(frame, list) or len(frame) != DEEPMIMIC_FRAME_SIZE:
            count = len(frame) if isinstance(frame, list) else type(frame).__name__
            raise MotionFileError(f"{path}: frame {i} has {count} values, expected {DEEPMIMIC_FRAME_SIZE}")
        if not all(type(v) is float for v in frame):  # numbers parse as floats; bools, text, null do not
            k = next(k for k, v in enumerate(frame) if type(v) is not float)
            raise MotionFileError(f"{path}: frame {i} value {k} is {str(frame[k])[:40]!r}, not a number")
    arr = np.array(frames, dtype=np.float64)  # (T, 44)
    _check_values(arr, path, max_frame_duration, max_abs)
    return arr, loop == "wrap"


def _check_values(arr: np.ndarray, path: Path, max_frame_duration: float, max_abs: float) -> None:
    """Finite numbers; durations in (0, max_frame_duration] (the last, which DeepMimic ignores,
    may be 0); every other number within max_abs. Names the first bad frame and value."""
    durations = arr[:, 0]
    non_positive = durations <= 0
    non_positive[-1] = durations[-1] < 0
    beyond = np.abs(arr) > max_abs
    beyond[:, 0] = False  # durations have their own bound
    for bad, problem in ((~np.isfinite(arr), "is not finite"),
                         (_column0(non_positive, arr.shape), "is a non-positive duration"),
                         (_column0(durations > max_frame_duration, arr.shape),
                          f"is a duration beyond max_frame_duration={max_frame_duration:g} s"),
                         (beyond, f"is beyond |x| <= max_abs={max_abs:g}")):
        if bad.any():
            i, k = np.argwhere(bad)[0].tolist()
            raise MotionFileError(f"{path}: frame {i} value {k} ({float(arr[i, k])!r}) {problem}")


def _column0(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A per-frame mask placed on the frames' first value (the duration)."""
    out = np.zeros(shape, dtype=bool)
    out[:, 0] = mask
    return out


def _unit(q: np.ndarray, path: Path, joint: str, tol: float) -> np.ndarray:
    norm = np.linalg.norm(q, axis=-1)
    bad = np.abs(norm - 1.0) > tol
    if bad.any():
        i = int(np.argmax(bad))
        raise MotionFileError(f"{path}: frame {i}, joint {joint!r}: quaternion norm {norm[i]:.4g} is off "
                              f"unit length by more than {tol}")
    return q / norm[:, None]


def load_deepmimic(path: str | os.PathLike, quat_norm_tol: float = DEEPMIMIC_QUAT_NORM_TOL,
                   max_frames: int = MAX_FRAMES, max_frame_duration: float = MAX_FRAME_DURATION,
                   max_abs: float = MAX_ABS_VALUE) -> MotionClip:
    """Read a DeepMimic humanoid3d motion file as a z-up humanoid3d clip.

    Non-uniform frame durations (the roll clip has one doubled frame) are resampled with
    slerp at the median frame rate (to at most ``max_frames`` frames); the last frame's
    duration is ignored, as DeepMimic does. Bad files raise :class:`~mimicgym.errors.MotionFileError`.
    """
    path = Path(path)
    arr, loop = _read_frames(path, max_frames, max_frame_duration, max_abs)
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

    fps, root, rot = _uniform_rate(arr[:-1, 0], root, rot, path, max_frames)
    try:
        return MotionClip(sk, fps, root, rot, loop, name=path.stem.removeprefix("humanoid3d_"))
    except ValueError as e:  # e.g. durations so small that the frame rate overflows
        raise MotionFileError(f"{path}: {e}") from e


def _uniform_rate(durations: np.ndarray, root: np.ndarray, rot: np.ndarray, path: Path, max_frames: int
                  ) -> tuple[float, np.ndarray, np.ndarray]:
    """(fps, root, rotations) at one frame rate: as they are if the durations are even, else
    resampled with slerp at the median frame time (at most ``max_frames`` frames)."""
    if np.ptp(durations) <= _DURATION_TOL:
        with np.errstate(over="ignore"):  # an infinite rate is refused by MotionClip, named
            return 1.0 / durations.mean(), root, rot
    times = np.concatenate([[0.0], np.cumsum(durations)])
    n = int(round(times[-1] / np.median(durations))) + 1
    if n > max_frames:  # checked before the slerp allocates (n, J, 4)
        raise MotionFileError(f"{path}: resampling {len(times)} uneven frames at the median frame time "
                              f"{np.median(durations):.4g} s gives {n} frames, more than max_frames={max_frames}")
    grid = np.linspace(0.0, times[-1], n)
    i0 = np.clip(np.searchsorted(times, grid, side="right") - 1, 0, len(times) - 2)
    span = times[i0 + 1] - times[i0]  # 0 where a duration is below the float spacing of the time
    a = np.clip(np.divide(grid - times[i0], span, out=np.zeros_like(grid), where=span > 0), 0.0, 1.0)
    q = quat_slerp(torch.from_numpy(rot[i0]), torch.from_numpy(rot[i0 + 1]),
                   torch.from_numpy(np.repeat(a[:, None], rot.shape[1], 1))).numpy()
    r = (1 - a)[:, None] * root[i0] + a[:, None] * root[i0 + 1]
    with np.errstate(over="ignore"):
        return (n - 1) / times[-1], r, q


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
