"""``MotionClip``: a sampled motion of any skeleton (root path + local joint quaternions).

Arrays are stored as float64 numpy and computed on through the torch rotation functions.
A looping clip follows DeepMimic's convention: its last frame is its first pose one cycle
later, and every further cycle advances the root by the horizontal displacement between
them (``cycle_displacement``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mimicgym.errors import MotionFileError
from mimicgym.motion.npz_reader import read_npz, real_array
from mimicgym.motion.rotations import (
    matrix_to_quat,
    quat_conjugate,
    quat_multiply,
    quat_slerp,
    quat_to_axis_angle,
    quat_to_matrix,
)
from mimicgym.motion.skeleton import Skeleton, forward_kinematics
from mimicgym.utils.io import atomic_save_npz

__all__ = ["MotionClip", "UNIT_QUAT_TOL", "MAX_FRAMES", "MAX_FRAME_DURATION", "MAX_ABS_VALUE", "MAX_JOINTS"]

# Stored quaternions may be off unit norm by rounding in a text file, not by more.
UNIT_QUAT_TOL = 1e-4

# Bounds every motion loader (npz clips, DeepMimic, BVH, AMASS) checks before it allocates;
# no real motion file exceeds them. Each loader takes them as keywords to override.
MAX_FRAMES = 10**6  # frames per file: 9 hours at 30 fps
MAX_FRAME_DURATION = 1.0  # seconds per frame: mocap runs at 24-250 fps, keyframed clips above 1 fps
MAX_ABS_VALUE = 1e4  # |position| in metres (or file units), |angle| in radians
MAX_JOINTS = 1000  # joints per skeleton: the largest rigs, fingers and face included, have a few hundred

# Keys of a clip file: (kind, shape); "J" is one entry per joint, None any length.
_NPZ_SPEC = {
    "fps": ("real", ()), "root_trans": ("real", (None, 3)), "rotations": ("real", (None, "J", 4)),
    "loop": ("bool", ()), "name": ("text", ()), "skeleton_name": ("text", ()),
    "joint_names": ("text", ("J",)), "parents": ("int", ("J",)), "offsets": ("real", ("J", 3)),
    "joint_types": ("text", ("J",)), "upright": ("real", (4,)), "root_height": ("real", ()),
}
_OPTIONAL_SPEC = {"betas": ("real", (None,))}
_KINDS = {"real": "iuf", "int": "iu", "bool": "b", "text": "U"}


def read_motion_file(path: Path, kind: str) -> bytes:
    """The bytes of a motion file, or a :class:`MotionFileError` naming it (``kind``: "BVH"...)."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise MotionFileError(f"{kind} file not found: {path}") from None
    except OSError as e:
        raise MotionFileError(f"{path}: cannot read ({e})") from e


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))


def check_unit_quats(q: np.ndarray, what: str, tol: float = UNIT_QUAT_TOL) -> None:
    """Raise naming the first (frame, joint) whose quaternion norm is off 1 by more than tol."""
    dev = np.abs(np.linalg.norm(q, axis=-1) - 1.0)
    if not (dev <= tol).all():  # also catches NaN
        where = tuple(int(i) for i in np.argwhere(~(dev <= tol))[0])
        raise ValueError(f"{what}: quaternion at index {where} has norm "
                         f"{np.linalg.norm(q[where]):.6g}, expected 1 within {tol}")


@dataclass(eq=False)
class MotionClip:
    """fps, root translation (T, 3), local rotations (T, J, 4) as (w, x, y, z), loop flag."""

    skeleton: Skeleton
    fps: float
    root_trans: np.ndarray  # (T, 3) root world position, metres, z up
    rotations: np.ndarray  # (T, J, 4) local rotations; [:, 0] is the root's world orientation
    loop: bool = False
    betas: np.ndarray | None = None  # (B,) body shape, when the clip belongs to one
    name: str = ""

    def __post_init__(self) -> None:
        J = self.skeleton.num_joints
        self.fps = float(self.fps)
        if not np.isfinite(self.fps) or self.fps <= 0:
            raise ValueError(f"fps must be a positive number, got {self.fps}")
        trans = np.array(self.root_trans, dtype=np.float64)
        rots = np.array(self.rotations, dtype=np.float64)
        if rots.ndim != 3 or rots.shape[1:] != (J, 4):
            raise ValueError(f"rotations must have shape (T, {J}, 4) for skeleton "
                             f"{self.skeleton.name!r}, got {rots.shape}")
        T = rots.shape[0]
        if T < 2:
            raise ValueError(f"a clip needs at least 2 frames, got {T}")
        if trans.shape != (T, 3):
            raise ValueError(f"root_trans must have shape ({T}, 3), got {trans.shape}")
        for key, arr in (("root_trans", trans), ("rotations", rots)):
            if not np.isfinite(arr).all():
                frame = int(np.argwhere(~np.isfinite(arr))[0][0])
                raise ValueError(f"{key} has a non-finite value at frame {frame}")
        check_unit_quats(rots, "rotations")
        self.root_trans = trans
        self.rotations = rots / np.linalg.norm(rots, axis=-1, keepdims=True)
        self.loop = bool(self.loop)
        if self.betas is not None:
            self.betas = np.array(self.betas, dtype=np.float64).reshape(-1)
            if not np.isfinite(self.betas).all():
                raise ValueError("betas has a non-finite value")

    # ------------------------------------------------------------------- timing
    @property
    def num_frames(self) -> int:
        return self.rotations.shape[0]

    @property
    def duration(self) -> float:
        """Seconds from the first to the last frame (one cycle for a looping clip)."""
        return (self.num_frames - 1) / self.fps

    @property
    def cycle_displacement(self) -> np.ndarray:
        """(3,) root advance per cycle: last minus first root position, vertical set to 0."""
        if not self.loop:
            return np.zeros(3)
        d = self.root_trans[-1] - self.root_trans[0]
        return np.array([d[0], d[1], 0.0])

    # ------------------------------------------------------------------ sampling
    def _interp(self, tau: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Root (N, 3) and rotations (N, J, 4) at clip times ``tau`` in [0, duration]."""
        f = tau * self.fps
        i0 = np.clip(np.floor(f).astype(np.int64), 0, self.num_frames - 2)
        a = np.clip(f - i0, 0.0, 1.0)
        root = (1 - a)[:, None] * self.root_trans[i0] + a[:, None] * self.root_trans[i0 + 1]
        q = quat_slerp(_t(self.rotations[i0]), _t(self.rotations[i0 + 1]),
                       torch.from_numpy(np.repeat(a[:, None], self.skeleton.num_joints, 1)))
        return root, q.numpy()

    def sample(self, times: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Root position (..., 3) and local rotations (..., J, 4) at ``times`` (seconds).

        Looping clips wrap and add one ``cycle_displacement`` per completed cycle (negative
        times go back); other clips hold their first/last frame outside [0, duration].
        """
        t = np.asarray(times, dtype=np.float64)
        if not np.isfinite(t).all():
            raise ValueError(f"sample times must be finite, got {times}")
        flat = t.reshape(-1)
        if self.loop:
            cycles = np.floor(flat / self.duration)
            tau = flat - cycles * self.duration
        else:
            cycles, tau = np.zeros_like(flat), np.clip(flat, 0.0, self.duration)
        root, q = self._interp(tau)
        root = root + cycles[:, None] * self.cycle_displacement
        return root.reshape(t.shape + (3,)), q.reshape(t.shape + q.shape[1:])

    def sample_phase(self, phase: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`sample` at ``phase * duration`` (phase 1 is one cycle later)."""
        return self.sample(np.asarray(phase, dtype=np.float64) * self.duration)

    # ---------------------------------------------------------------- kinematics
    def forward_kinematics(self) -> tuple[np.ndarray, np.ndarray]:
        """Joint world positions (T, J, 3) and world rotation matrices (T, J, 3, 3)."""
        pos, rot = forward_kinematics(self.skeleton, _t(self.rotations), _t(self.root_trans))
        return pos.numpy(), rot.numpy()

    def joint_positions(self) -> np.ndarray:
        """(T, J, 3) joint world positions."""
        return self.forward_kinematics()[0]

    def global_rotations(self) -> np.ndarray:
        """(T, J, 4) joint world orientations as unit quaternions (w >= 0)."""
        return matrix_to_quat(torch.from_numpy(self.forward_kinematics()[1])).numpy()

    def _neighbours(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Previous/next frame index, their root shifts (T, 3) and time spans (T,) in seconds.

        Central differences inside; at the ends one-sided, or across the seam of a looping
        clip (frame T-2 one cycle back precedes frame 0, whose twin is frame T-1).
        """
        T, disp = self.num_frames, self.cycle_displacement
        prev, nxt = np.arange(T) - 1, np.arange(T) + 1
        shift_prev, shift_next = np.zeros((T, 3)), np.zeros((T, 3))
        if self.loop and T > 2:
            prev[0], nxt[-1] = T - 2, 1
            shift_prev[0], shift_next[-1] = -disp, disp
        else:
            prev[0], nxt[-1] = 0, T - 1
        span = (nxt - prev).astype(np.float64)
        if self.loop and T > 2:
            span[0] = span[-1] = 2.0
        return prev, nxt, shift_prev, shift_next, span / self.fps

    def linear_velocities(self) -> np.ndarray:
        """(T, J, 3) joint world linear velocities (m/s) by finite differences."""
        prev, nxt, s_prev, s_next, span = self._neighbours()
        pos = self.joint_positions()
        return ((pos[nxt] + s_next[:, None]) - (pos[prev] + s_prev[:, None])) / span[:, None, None]

    def angular_velocities(self, frame: str = "local") -> np.ndarray:
        """(T, J, 3) angular velocities (rad/s) by finite differences of quaternions.

        ``frame="local"``: each joint's rotation relative to its parent, expressed in the
        parent's frame (the root's is its world angular velocity); ``"world"``: every joint's
        world orientation. ``log(q_next q_prev^-1)`` takes the shortest arc, so the sign of
        a stored quaternion (``q`` and ``-q``) does not matter.
        """
        if frame == "local":
            q = self.rotations
        elif frame == "world":
            q = self.global_rotations()
        else:
            raise ValueError(f"frame must be 'local' or 'world', got {frame!r}")
        prev, nxt, _, _, span = self._neighbours()
        dq = quat_multiply(_t(q[nxt]), quat_conjugate(_t(q[prev])))  # (T, J, 4)
        return quat_to_axis_angle(dq).numpy() / span[:, None, None]

    # ----------------------------------------------------------------- editing
    def mirror(self) -> "MotionClip":
        """Swap ``left_*``/``right_*`` joints and reflect the motion across the world plane y = 0.

        With ``M_w`` the world reflection and ``M_b`` the reflection across the body's
        sagittal plane, joint rotations become ``M_b R M_b`` (taken from the mirrored joint)
        and the root's ``M_w R M_b``; positions mirror exactly when the skeleton is symmetric.
        """
        n = self.skeleton.lateral_axis()
        M_b = torch.from_numpy(np.eye(3) - 2.0 * np.outer(n, n))
        M_w = torch.from_numpy(np.diag([1.0, -1.0, 1.0]))
        idx = self.skeleton.mirror_indices()
        R = quat_to_matrix(_t(self.rotations[:, idx]))  # (T, J, 3, 3), joints swapped
        R_new = M_b @ R @ M_b
        R_new[:, 0] = M_w @ R[:, 0] @ M_b
        return MotionClip(self.skeleton, self.fps, self.root_trans * np.array([1.0, -1.0, 1.0]),
                          matrix_to_quat(R_new).numpy(), self.loop, self.betas,
                          f"{self.name}_mirrored" if self.name else "")

    def retime(self, fps: float | None = None, speed: float = 1.0) -> "MotionClip":
        """Resample at ``fps`` (default: unchanged) after playing ``speed`` times faster.

        The new clip spans the whole (sped-up) duration with ``N = round(duration * fps) + 1``
        frames, so its fps is the nearest rate that keeps the end frame (loops need it).
        """
        if not np.isfinite(speed) or speed <= 0:
            raise ValueError(f"speed must be a positive number, got {speed}")
        fps = self.fps if fps is None else float(fps)
        if not np.isfinite(fps) or fps <= 0:
            raise ValueError(f"fps must be a positive number, got {fps}")
        new_duration = self.duration / speed
        n = max(2, int(round(new_duration * fps)) + 1)
        tau = np.linspace(0.0, self.duration, n)
        root, q = self._interp(tau)
        return MotionClip(self.skeleton, (n - 1) / new_duration, root, q, self.loop, self.betas,
                          self.name)

    # ---------------------------------------------------------------------- I/O
    def save(self, path: str | os.PathLike) -> None:
        """Write an ``.npz`` atomically (skeleton included, no pickled objects)."""
        sk = self.skeleton
        arrays: dict[str, Any] = dict(
            fps=np.float64(self.fps), root_trans=self.root_trans, rotations=self.rotations,
            loop=np.bool_(self.loop), name=np.str_(self.name), skeleton_name=np.str_(sk.name),
            joint_names=np.array(sk.joint_names), parents=np.array(sk.parents, dtype=np.int64),
            offsets=sk.offsets, joint_types=np.array(sk.joint_types), upright=sk.upright,
            root_height=np.float64(sk.root_height))
        if self.betas is not None:
            arrays["betas"] = self.betas
        atomic_save_npz(path, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike, max_frames: int = MAX_FRAMES,
             max_abs: float = MAX_ABS_VALUE) -> "MotionClip":
        """Read a clip written by :meth:`save`. Any problem (truncated or corrupt archive, a
        missing key, a wrong shape or dtype, a value non-finite or beyond ``max_abs``, more than
        ``max_frames`` frames or ``MAX_JOINTS`` joints, a frame longer than ``MAX_FRAME_DURATION``)
        raises :class:`~mimicgym.errors.MotionFileError` naming the file and the key."""
        source = f"motion clip {os.fspath(path)!r}"
        arrays = read_npz(path, MotionFileError, "motion clip")
        missing = [k for k in _NPZ_SPEC if k not in arrays]
        if missing:
            raise MotionFileError(f"{source} lacks keys {missing}")
        joints = arrays["joint_names"].shape[0] if arrays["joint_names"].ndim == 1 else -1
        if not 0 < joints <= MAX_JOINTS:
            raise MotionFileError(f"{source}: 'joint_names' must list 1 to {MAX_JOINTS} joints, "
                                  f"got shape {arrays['joint_names'].shape}")
        v = {key: _clip_value(arrays[key], key, spec, joints, source, max_abs)
             for key, spec in {**_NPZ_SPEC, **_OPTIONAL_SPEC}.items() if key in arrays}
        if len(v["rotations"]) > max_frames:
            raise MotionFileError(f"{source}: {len(v['rotations'])} frames, more than max_frames={max_frames}")
        if not v["fps"] >= 1.0 / MAX_FRAME_DURATION:
            raise MotionFileError(f"{source}: fps must be a positive frame rate of at least "
                                  f"{1.0 / MAX_FRAME_DURATION:g} (frames of at most {MAX_FRAME_DURATION} s), "
                                  f"got {v['fps']}")
        try:
            check_unit_quats(v["rotations"], "'rotations'")
            skeleton = Skeleton(v["skeleton_name"], tuple(v["joint_names"]), tuple(v["parents"]), v["offsets"],
                                tuple(v["joint_types"]), v["upright"], v["root_height"])
            return cls(skeleton, v["fps"], v["root_trans"], v["rotations"], v["loop"], v.get("betas"), v["name"])
        except ValueError as e:
            raise MotionFileError(f"invalid {source}: {e}") from e

    def __repr__(self) -> str:
        return (f"MotionClip(name={self.name!r}, skeleton={self.skeleton.name!r}, "
                f"frames={self.num_frames}, fps={self.fps:g}, loop={self.loop})")


def _clip_value(a: np.ndarray, key: str, spec: tuple[str, tuple], joints: int, source: str,
                max_abs: float) -> Any:
    """One key of a clip file, checked against its spec: a Python scalar for shape (), else
    an array (real: float64 within ``max_abs``; int; text: a tuple of str)."""
    kind, shape = spec
    expected = tuple(joints if s == "J" else s for s in shape)
    if a.ndim != len(expected) or any(s is not None and s != d for s, d in zip(expected, a.shape)):
        raise MotionFileError(f"{source}: key {key!r} has shape {a.shape}, expected {shape} "
                              f"(None: any) for {joints} joints")
    if a.dtype.kind not in _KINDS[kind]:
        raise MotionFileError(f"{source}: key {key!r} has dtype {a.dtype}, expected {kind} values")
    if kind == "real":
        a = real_array(a, key, source, MotionFileError, max_abs)
    if kind == "int" and not ((a >= -1) & (a < joints)).all():
        raise MotionFileError(f"{source}: key {key!r} must hold -1 or joint indices below {joints}")
    if kind == "text":
        return str(a) if a.ndim == 0 else tuple(str(x) for x in a)
    return a.item() if a.ndim == 0 else a
