"""Biovision Hierarchy (BVH) import and export.

A BVH file has a HIERARCHY (nested ``ROOT``/``JOINT`` blocks with ``OFFSET``, ``CHANNELS``
and ``End Site``s) and a MOTION section (``Frames:``, ``Frame Time:``, one line of channel
values per frame). Rotation channels are intrinsic Euler angles in degrees, composed in the
order the channels are declared (``Zrotation Xrotation Yrotation`` is ``Rz Rx Ry``).

Conventions here: only the root may carry position channels (a clip's joints have fixed
offsets); the root's OFFSET is kept as skeleton metadata and its position channels place
it (exporters write OFFSET 0 for the root, or the body model's rest position as we do).
End Sites become ``fixed`` joints named ``<parent>_end``, except zero-length ones, which
carry no information and which the exporter writes after every leaf joint. Files are
usually y-up; importing converts to the z-up world like the DeepMimic importer does.

Any problem with a file raises :class:`~mimicgym.errors.MotionFileError` naming the file and
the line: text that is not UTF-8, a misplaced or malformed keyword, an empty or repeated joint
name, an offset or position beyond ``max_offset`` (``BVH_MAX_OFFSET`` = 1e4 file units), more
than ``MAX_FRAMES`` frames or ``MAX_JOINTS`` joints, a frame time above ``MAX_FRAME_DURATION``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mimicgym.errors import MotionFileError
from mimicgym.motion.clip import MAX_FRAME_DURATION, MAX_FRAMES, MAX_JOINTS, MotionClip, read_motion_file
from mimicgym.motion.rotations import (
    axis_angle_to_matrix,
    euler_to_matrix,
    matrix_to_euler,
    matrix_to_quat,
    quat_to_matrix,
)
from mimicgym.motion.skeleton import Skeleton
from mimicgym.utils.io import atomic_write

__all__ = ["load_bvh", "save_bvh", "BVH_MAX_OFFSET"]

# |OFFSET| and |position channel| in file units: 100 m in centimetres (no body is larger).
BVH_MAX_OFFSET = 1e4

_AXES = "XYZ"
_ROT_CHANNELS = tuple(f"{a}rotation" for a in _AXES)
_POS_CHANNELS = tuple(f"{a}position" for a in _AXES)
# File frame -> z-up world for a y-up file: +90 degrees about x, (x, y, z) -> (x, -z, y).
_Y_TO_Z = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])


@dataclass
class _Joint:
    name: str
    parent: int
    offset: np.ndarray
    channels: list[str] = field(default_factory=list)
    end_site: bool = False


def _read_lines(path: Path) -> list[str]:
    data = read_motion_file(path, "BVH")
    try:
        return data.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise MotionFileError(f"{path}: line {line}: not UTF-8 text (byte {data[e.start]:#04x})") from None


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


class _Hierarchy:
    """The HIERARCHY section read line by line: joints in file order, open blocks on a stack."""

    def __init__(self, path: Path, max_offset: float):
        self.path, self.max_offset = path, max_offset
        self.joints: list[_Joint] = []
        self.stack: list[int] = []  # indices of the joints (End Sites too) whose block is open
        self.pending: _Joint | None = None  # declared, its "{" not yet read
        self.line = 0

    def error(self, message: str) -> MotionFileError:
        return MotionFileError(f"{self.path}: line {self.line}: {message}")

    def current(self, word: str, end_site_ok: bool = True) -> _Joint:
        """The joint whose block is open, for a keyword that belongs inside one."""
        if not self.stack or self.pending is not None:
            raise self.error(f"{word} outside a joint block")
        joint = self.joints[self.stack[-1]]
        if joint.end_site and not end_site_ok:
            raise self.error(f"{word} inside an End Site")
        return joint

    def declare(self, word: str, name: str) -> None:
        if self.pending is not None:
            raise self.error(f"{word} before the '{{' of {self.pending.name!r}")
        if word == "ROOT":
            if self.joints:
                raise self.error(f"one ROOT must come first, got a second: {name!r}")
            parent = -1
        else:
            parent = self.stack[-1] if self.stack else -1
            if not self.joints:
                raise self.error(f"one ROOT must come first, got {word} {name!r}")
            self.current(word, end_site_ok=False)
        if word == "End":
            name = f"{self.joints[parent].name}_end"
        elif not name:
            raise self.error(f"{word} without a name")
        if len(self.joints) >= MAX_JOINTS:
            raise self.error(f"more than MAX_JOINTS={MAX_JOINTS} joints")
        self.pending = _Joint(name, parent, np.zeros(3), end_site=word == "End")

    def open(self) -> None:
        if self.pending is None:
            raise self.error("'{' without a joint")
        if not self.pending.end_site and any(j.name == self.pending.name for j in self.joints):
            raise self.error(f"joint name {self.pending.name!r} is used twice")
        self.joints.append(self.pending)
        self.stack.append(len(self.joints) - 1)
        self.pending = None

    def close(self) -> None:
        if not self.stack or self.pending is not None:
            raise self.error("unbalanced '}'")
        self.stack.pop()

    def offset(self, rest: str) -> None:
        joint = self.current("OFFSET")
        values = [_number(v) for v in rest.split()]
        if len(values) != 3 or None in values:
            raise self.error(f"OFFSET needs 3 numbers, got {rest[:80]!r}")
        if not all(abs(v) <= self.max_offset for v in values):  # also refuses inf and NaN
            raise self.error(f"OFFSET {rest[:80]!r} is not finite or beyond |x| <= max_offset={self.max_offset:g}")
        joint.offset = np.array(values)

    def channels(self, rest: str) -> None:
        joint = self.current("CHANNELS", end_site_ok=False)
        parts = rest.split()
        n = int(parts[0]) if parts and parts[0].isdecimal() and len(parts[0]) < 4 else None
        if n is None:
            raise self.error(f"bad CHANNELS {rest[:80]!r}")
        names = parts[1:]
        unknown = [c for c in names if c not in _ROT_CHANNELS + _POS_CHANNELS]
        if len(names) != n or unknown or len(set(names)) != n:
            raise self.error(f"CHANNELS declares {n}, lists {names[:8]} (each of X/Y/Z rotation/position at most once)")
        joint.channels = names


def _parse_hierarchy(lines: list[str], path: Path, max_offset: float) -> tuple[list[_Joint], int]:
    """Joints in file order and the index of the line after the hierarchy."""
    h = _Hierarchy(path, max_offset)
    for h.line, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line == "HIERARCHY":
            continue
        opens = line.endswith("{") and line != "{"  # "JOINT name {" on one line
        if opens:
            line = line[:-1].strip()
        word, _, rest = line.partition(" ")
        rest = rest.strip()
        if line == "MOTION":
            if h.stack or h.pending is not None:
                raise h.error("MOTION inside an open block")
            if not h.joints:
                raise h.error("MOTION before any ROOT")
            return h.joints, h.line
        if word in ("ROOT", "JOINT") or (word == "End" and rest == "Site"):
            h.declare(word, rest)
        elif word == "{" and not rest:
            h.open()
        elif word == "}" and not rest:
            h.close()
        elif word == "OFFSET":
            h.offset(rest)
        elif word == "CHANNELS":
            h.channels(rest)
        else:
            raise h.error(f"unexpected {line[:80]!r}")
        if opens:
            h.open()
    raise MotionFileError(f"{path}: truncated: no MOTION section after the hierarchy")


def _motion_header(body: list[tuple[int, str]], path: Path, max_frames: int) -> tuple[int, float]:
    """(frames, frame time) from the 'Frames: N' and 'Frame Time: dt' lines."""
    if len(body) < 2 or not body[0][1].startswith("Frames:") or not body[1][1].startswith("Frame Time:"):
        raise MotionFileError(f"{path}: MOTION must start with 'Frames: N' and 'Frame Time: dt'")
    count, dt = body[0][1][7:].strip(), _number(body[1][1][11:])
    n_frames = int(count) if count.isdecimal() and len(count) < 20 else None
    if n_frames is None or dt is None:
        raise MotionFileError(f"{path}: line {body[0][0]}: bad frame count or frame time: "
                              f"{[b[1][:40] for b in body[:2]]}")
    if not 2 <= n_frames <= max_frames or not 0 < dt <= MAX_FRAME_DURATION:
        raise MotionFileError(f"{path}: line {body[0][0]}: need 2 to max_frames={max_frames} frames and a frame "
                              f"time in (0, {MAX_FRAME_DURATION}] s, got {n_frames} frames of {dt} s")
    return n_frames, dt


def _parse_motion(lines: list[str], start: int, n_channels: int, path: Path, max_frames: int
                  ) -> tuple[np.ndarray, float]:
    body = [(i, ln.strip()) for i, ln in enumerate(lines[start:], start=start + 1) if ln.strip()]
    n_frames, dt = _motion_header(body, path, max_frames)
    rows = body[2:]
    if len(rows) < n_frames:
        raise MotionFileError(f"{path}: truncated: header says {n_frames} frames, file has {len(rows)}")
    if len(rows) > n_frames:
        raise MotionFileError(f"{path}: header says {n_frames} frames, file has {len(rows)}")
    values = []  # parsed row by row: memory follows the file, not the declared sizes
    for f, (line, row) in enumerate(rows):
        numbers = [_number(v) for v in row.split()]
        if len(numbers) != n_channels:
            raise MotionFileError(f"{path}: line {line}: frame {f} has {len(numbers)} values, expected {n_channels}")
        if None in numbers:
            raise MotionFileError(f"{path}: line {line}: frame {f} holds a non-number: {row[:80]!r}")
        values.append(numbers)
    values = np.array(values, dtype=np.float64).reshape(n_frames, n_channels)
    if not np.isfinite(values).all():
        f = int(np.argwhere(~np.isfinite(values))[0][0])
        raise MotionFileError(f"{path}: line {rows[f][0]}: frame {f} is not finite")
    return values, dt


def _frame_matrix(up_axis: str, forward_axis: str) -> np.ndarray:
    """Rows: the body's forward, left and up axes, i.e. the rotation standing it upright."""
    if up_axis not in _AXES.lower() or forward_axis not in _AXES.lower() or up_axis == forward_axis:
        raise ValueError(f"up_axis and forward_axis must be two different axes of 'xyz', "
                         f"got {up_axis!r}, {forward_axis!r}")
    up, fwd = np.eye(3)[_AXES.lower().index(up_axis)], np.eye(3)[_AXES.lower().index(forward_axis)]
    return np.stack([fwd, np.cross(up, fwd), up])


def load_bvh(path: str | os.PathLike, scale: float = 1.0, up_axis: str = "y",
             forward_axis: str = "z", root_height: float | None = None, loop: bool = False,
             skeleton: Skeleton | None = None, max_offset: float = BVH_MAX_OFFSET,
             max_frames: int = MAX_FRAMES) -> MotionClip:
    """Read a BVH file as a clip on a skeleton built from its hierarchy.

    scale: file units to metres (0.01 for centimetres). up_axis/forward_axis: the file's
    body axes ("y"/"z" for most files, SMPL and CMU among them). root_height: the root's
    standing height; by default the rest pose's root height above its lowest joint.
    skeleton: play the motion on this skeleton instead (joints matched by name, in its
    order; the file's offsets must agree with its offsets within 1e-6 m). max_offset: bound on
    |OFFSET| and root positions in file units; max_frames: bound on the frame count. A bad
    file raises :class:`~mimicgym.errors.MotionFileError`; bad arguments ``ValueError``.
    """
    path = Path(path)
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a positive number, got {scale}")
    if up_axis not in ("y", "z"):
        raise ValueError(f"up_axis must be 'y' or 'z', got {up_axis!r}")
    upright = matrix_to_quat(torch.from_numpy(_frame_matrix(up_axis, forward_axis))).numpy()
    lines = _read_lines(path)
    joints, motion_start = _parse_hierarchy(lines, path, max_offset)
    for j in joints[1:]:
        if any(c in _POS_CHANNELS for c in j.channels):
            raise MotionFileError(f"{path}: joint {j.name!r} has position channels; only the root may translate")
    values, dt = _parse_motion(lines, motion_start, sum(len(j.channels) for j in joints), path, max_frames)
    positions = [k for k, c in enumerate(joints[0].channels) if c in _POS_CHANNELS]  # the root's come first
    if not (np.abs(values[:, positions]) <= max_offset).all():
        f = int(np.argwhere(np.abs(values[:, positions]) > max_offset)[0][0])
        raise MotionFileError(f"{path}: frame {f}: root position beyond |x| <= max_offset={max_offset:g}")
    # Zero-length End Sites add a duplicate point and nothing else.
    keep = [j for j in joints if not (j.end_site and not np.any(j.offset))]
    local, root_pos = _local_rotations(joints, keep, values, scale)
    to_world = _Y_TO_Z if up_axis == "y" else np.eye(3)
    local[:, 0] = to_world @ local[:, 0]
    root_pos = root_pos @ to_world.T
    index = {id(j): k for k, j in enumerate(keep)}
    parents = tuple(-1 if j.parent < 0 else index[id(joints[j.parent])] for j in keep)
    offsets = np.array([j.offset for j in keep]) * scale
    types = tuple("free" if j.parent < 0 else "spherical" if j.channels else "fixed" for j in keep)
    names = tuple(j.name for j in keep)
    quats = matrix_to_quat(torch.from_numpy(local)).numpy()
    try:
        if skeleton is not None:
            return MotionClip(skeleton, 1.0 / dt, root_pos, _match(skeleton, names, parents, offsets, quats, path),
                              loop, name=path.stem)
        if root_height is None:
            draft = Skeleton(path.stem, names, parents, offsets, types, upright)
            rest = draft.rest_positions()
            root_height = float(rest[0, 2] - rest[:, 2].min()) or 1.0
        skeleton = Skeleton(path.stem, names, parents, offsets, types, upright, root_height)
        return MotionClip(skeleton, 1.0 / dt, root_pos, quats, loop, name=path.stem)
    except MotionFileError:
        raise
    except ValueError as e:  # the skeleton or clip the file describes is invalid
        raise MotionFileError(f"{path}: {e}") from e


def _local_rotations(joints: list[_Joint], keep: list[_Joint], values: np.ndarray, scale: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(T, J, 3, 3) local rotation matrices of the kept joints and (T, 3) root positions (file frame)."""
    T = values.shape[0]
    index = {id(j): k for k, j in enumerate(keep)}
    local = np.tile(np.eye(3), (T, len(keep), 1, 1))
    root_pos = np.zeros((T, 3))
    col = 0
    for j in joints:
        cols = {c: col + k for k, c in enumerate(j.channels)}
        col += len(j.channels)
        if id(j) not in index:
            continue
        rot = [c for c in j.channels if c in _ROT_CHANNELS]
        angles = torch.from_numpy(np.radians(values[:, [cols[c] for c in rot]]))
        order = "".join(c[0] for c in rot)
        if len(rot) == 3:
            R = euler_to_matrix(angles, order)
        else:  # one or two rotation channels: the same intrinsic product, shorter
            R = torch.eye(3, dtype=torch.float64).expand(T, 3, 3)
            for k, axis in enumerate(order):
                R = R @ axis_angle_to_matrix(angles[:, k, None] * torch.from_numpy(np.eye(3)[_AXES.index(axis)]))
        local[:, index[id(j)]] = R.numpy()
        if j.parent < 0:
            for k, c in enumerate(_POS_CHANNELS):
                if c in cols:
                    root_pos[:, k] = values[:, cols[c]] * scale
    return local, root_pos


def _match(skeleton: Skeleton, names: tuple[str, ...], parents: tuple[int, ...], offsets: np.ndarray,
           quats: np.ndarray, path: Path) -> np.ndarray:
    """The file's rotations (T, J_file, 4) reordered onto ``skeleton``'s joints."""
    extra = sorted(set(names) - set(skeleton.joint_names))
    missing = sorted(set(skeleton.joint_names) - set(names))
    if extra or missing:
        raise MotionFileError(f"{path}: joints do not match skeleton {skeleton.name!r}: "
                         f"not in the skeleton {extra}, not in the file {missing}")
    perm = [names.index(n) for n in skeleton.joint_names]
    for j, k in enumerate(perm[1:], start=1):
        if not np.allclose(offsets[k], skeleton.offsets[j], atol=1e-6):
            raise MotionFileError(f"{path}: joint {names[k]!r} has offset {offsets[k]} in the file, "
                             f"{skeleton.offsets[j]} in skeleton {skeleton.name!r}")
        file_parent = names[parents[k]] if parents[k] >= 0 else None
        if file_parent != skeleton.joint_names[skeleton.parents[j]]:
            raise MotionFileError(f"{path}: joint {names[k]!r} has parent {file_parent!r} in the file, "
                             f"{skeleton.joint_names[skeleton.parents[j]]!r} in skeleton {skeleton.name!r}")
    return quats[:, perm]


def save_bvh(clip: MotionClip, path: str | os.PathLike, scale: float = 1.0, up_axis: str = "y",
             order: str = "ZXY") -> None:
    """Write ``clip`` as BVH (atomically): metres times ``scale``, Euler ``order`` in degrees."""
    if up_axis not in ("y", "z"):
        raise ValueError(f"up_axis must be 'y' or 'z', got {up_axis!r}")
    if sorted(order) != ["X", "Y", "Z"]:
        raise ValueError(f"order must be a permutation of 'XYZ', got {order!r}")
    sk = clip.skeleton
    to_file = (_Y_TO_Z if up_axis == "y" else np.eye(3)).T
    mats = quat_to_matrix(torch.from_numpy(clip.rotations)).numpy()  # (T, J, 3, 3)
    mats[:, 0] = to_file @ mats[:, 0]
    euler = np.degrees(matrix_to_euler(torch.from_numpy(mats), order).numpy())  # (T, J, 3)
    root = clip.root_trans @ to_file.T * scale
    rot_channels = " ".join(f"{a}rotation" for a in order)

    out: list[str] = ["HIERARCHY"]

    def write(j: int, depth: int) -> None:
        pad = "\t" * depth
        kind = "ROOT" if j == 0 else "JOINT"
        out.append(f"{pad}{kind} {sk.joint_names[j]}")
        out.append(pad + "{")
        ox, oy, oz = sk.offsets[j] * scale
        out.append(f"{pad}\tOFFSET {ox:.12g} {oy:.12g} {oz:.12g}")
        if j == 0:
            out.append(f"{pad}\tCHANNELS 6 Xposition Yposition Zposition {rot_channels}")
        else:
            out.append(f"{pad}\tCHANNELS 3 {rot_channels}")
        children = sk.children(j)
        for c in children:
            write(c, depth + 1)
        if not children:
            out.extend([f"{pad}\tEnd Site", pad + "\t{", f"{pad}\t\tOFFSET 0 0 0", pad + "\t}"])
        out.append(pad + "}")

    write(0, 0)
    # Channel columns follow the depth-first order of the hierarchy above.
    dfs: list[int] = []
    stack = [0]
    while stack:
        j = stack.pop()
        dfs.append(j)
        stack.extend(reversed(sk.children(j)))
    out += ["MOTION", f"Frames: {clip.num_frames}", f"Frame Time: {1.0 / clip.fps:.12g}"]
    table = np.concatenate([root, euler[:, dfs].reshape(clip.num_frames, -1)], axis=1)
    out += [" ".join(f"{v:.12g}" for v in row) for row in table]
    with atomic_write(path, "w") as f:
        f.write("\n".join(out) + "\n")
