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
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mimicgym.motion.clip import MotionClip
from mimicgym.motion.rotations import (
    axis_angle_to_matrix,
    euler_to_matrix,
    matrix_to_euler,
    matrix_to_quat,
    quat_to_matrix,
)
from mimicgym.motion.skeleton import Skeleton
from mimicgym.utils.io import atomic_write

__all__ = ["load_bvh", "save_bvh"]

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


def _parse_hierarchy(lines: list[str], path: Path) -> tuple[list[_Joint], int]:
    """Joints in file order and the index of the line after the hierarchy."""
    joints: list[_Joint] = []
    stack: list[int] = []  # open blocks: joint index, or -2 for an End Site
    pending: _Joint | None = None
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line or line == "HIERARCHY":
            continue
        opens = line.endswith("{") and line != "{"  # "JOINT name {" on one line
        if opens:
            line = line[:-1].strip()
        if line == "MOTION":
            if stack:
                raise ValueError(f"{path}: line {i}: MOTION inside an open block")
            return joints, i
        word, _, rest = line.partition(" ")
        rest = rest.strip()
        if word in ("ROOT", "JOINT"):
            if (word == "ROOT") != (not joints):
                raise ValueError(f"{path}: line {i}: one ROOT must come first, got {line!r}")
            pending = _Joint(rest, stack[-1] if stack else -1, np.zeros(3))
        elif word == "End" and rest == "Site":
            if not stack or stack[-1] < 0:
                raise ValueError(f"{path}: line {i}: End Site outside a joint")
            pending = _Joint(f"{joints[stack[-1]].name}_end", stack[-1], np.zeros(3), end_site=True)
        elif word == "{":
            if pending is None:
                raise ValueError(f"{path}: line {i}: '{{' without a joint")
            joints.append(pending)
            stack.append(len(joints) - 1)
            pending = None
        elif word == "}":
            if not stack:
                raise ValueError(f"{path}: line {i}: unbalanced '}}'")
            stack.pop()
        elif word == "OFFSET":
            try:
                joints[stack[-1]].offset = np.array([float(v) for v in rest.split()], dtype=np.float64)
            except (ValueError, IndexError):
                raise ValueError(f"{path}: line {i}: bad OFFSET {line!r}") from None
            if joints[stack[-1]].offset.shape != (3,):
                raise ValueError(f"{path}: line {i}: OFFSET needs 3 numbers, got {line!r}")
        elif word == "CHANNELS":
            parts = rest.split()
            try:
                n = int(parts[0])
            except (ValueError, IndexError):
                raise ValueError(f"{path}: line {i}: bad CHANNELS {line!r}") from None
            channels = parts[1:]
            unknown = [c for c in channels if c not in _ROT_CHANNELS + _POS_CHANNELS]
            if len(channels) != n or unknown:
                raise ValueError(f"{path}: line {i}: CHANNELS declares {n}, lists {channels}")
            joints[stack[-1]].channels = channels
        else:
            raise ValueError(f"{path}: line {i}: unexpected {line!r}")
        if opens:
            if pending is None:
                raise ValueError(f"{path}: line {i}: '{{' without a joint")
            joints.append(pending)
            stack.append(len(joints) - 1)
            pending = None
    raise ValueError(f"{path}: truncated: no MOTION section after the hierarchy")


def _parse_motion(lines: list[str], start: int, n_channels: int, path: Path) -> tuple[np.ndarray, float]:
    body = [ln.strip() for ln in lines[start:]]
    body = [ln for ln in body if ln]
    if len(body) < 2 or not body[0].startswith("Frames:") or not body[1].startswith("Frame Time:"):
        raise ValueError(f"{path}: MOTION must start with 'Frames: N' and 'Frame Time: dt'")
    try:
        n_frames = int(body[0].split(":")[1])
        dt = float(body[1].split(":")[1])
    except ValueError:
        raise ValueError(f"{path}: bad frame count or frame time: {body[:2]}") from None
    if n_frames < 2 or not np.isfinite(dt) or dt <= 0:
        raise ValueError(f"{path}: need at least 2 frames and a positive frame time, got "
                         f"{n_frames} frames of {dt} s")
    rows = body[2:]
    if len(rows) < n_frames:
        raise ValueError(f"{path}: truncated: header says {n_frames} frames, file has {len(rows)}")
    if len(rows) > n_frames:
        raise ValueError(f"{path}: header says {n_frames} frames, file has {len(rows)}")
    values = np.empty((n_frames, n_channels))
    for f, row in enumerate(rows):
        parts = row.split()
        if len(parts) != n_channels:
            raise ValueError(f"{path}: frame {f} has {len(parts)} values, expected {n_channels}")
        try:
            values[f] = [float(v) for v in parts]
        except ValueError:
            raise ValueError(f"{path}: frame {f} holds a non-number: {row[:80]!r}") from None
    if not np.isfinite(values).all():
        raise ValueError(f"{path}: frame {int(np.argwhere(~np.isfinite(values))[0][0])} is not finite")
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
             skeleton: Skeleton | None = None) -> MotionClip:
    """Read a BVH file as a clip on a skeleton built from its hierarchy.

    scale: file units to metres (0.01 for centimetres). up_axis/forward_axis: the file's
    body axes ("y"/"z" for most files, SMPL and CMU among them). root_height: the root's
    standing height; by default the rest pose's root height above its lowest joint.
    skeleton: play the motion on this skeleton instead (joints matched by name, in its
    order; the file's offsets must agree with its offsets within 1e-6 m).
    """
    path = Path(path)
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a positive number, got {scale}")
    lines = path.read_text().splitlines()
    joints, motion_start = _parse_hierarchy(lines, path)
    if not joints:
        raise ValueError(f"{path}: no ROOT joint")
    for j in joints[1:]:
        if any(c in _POS_CHANNELS for c in j.channels):
            raise ValueError(f"{path}: joint {j.name!r} has position channels; only the root may translate")
    # Zero-length End Sites add a duplicate point and nothing else.
    keep = [j for j in joints if not (j.end_site and not np.any(j.offset))]
    index = {id(j): k for k, j in enumerate(keep)}
    parents = tuple(-1 if j.parent < 0 else index[id(joints[j.parent])] for j in keep)
    n_channels = sum(len(j.channels) for j in joints)
    values, dt = _parse_motion(lines, motion_start, n_channels, path)

    T, J = values.shape[0], len(keep)
    local = np.tile(np.eye(3), (T, J, 1, 1))
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

    to_world = _Y_TO_Z if up_axis == "y" else np.eye(3) if up_axis == "z" else None
    if to_world is None:
        raise ValueError(f"up_axis must be 'y' or 'z', got {up_axis!r}")
    local[:, 0] = to_world @ local[:, 0]
    root_pos = root_pos @ to_world.T
    upright = matrix_to_quat(torch.from_numpy(_frame_matrix(up_axis, forward_axis))).numpy()
    offsets = np.array([j.offset for j in keep]) * scale
    types = tuple("free" if j.parent < 0 else "spherical" if j.channels else "fixed" for j in keep)
    names = tuple(j.name for j in keep)
    quats = matrix_to_quat(torch.from_numpy(local)).numpy()
    if skeleton is not None:
        return MotionClip(skeleton, 1.0 / dt, root_pos, _match(skeleton, names, parents, offsets, quats, path),
                          loop, name=path.stem)
    if root_height is None:
        draft = Skeleton(path.stem, names, parents, offsets, types, upright)
        rest = draft.rest_positions()
        root_height = float(rest[0, 2] - rest[:, 2].min()) or 1.0
    skeleton = Skeleton(path.stem, names, parents, offsets, types, upright, root_height)
    return MotionClip(skeleton, 1.0 / dt, root_pos, quats, loop, name=path.stem)


def _match(skeleton: Skeleton, names: tuple[str, ...], parents: tuple[int, ...], offsets: np.ndarray,
           quats: np.ndarray, path: Path) -> np.ndarray:
    """The file's rotations (T, J_file, 4) reordered onto ``skeleton``'s joints."""
    extra = sorted(set(names) - set(skeleton.joint_names))
    missing = sorted(set(skeleton.joint_names) - set(names))
    if extra or missing:
        raise ValueError(f"{path}: joints do not match skeleton {skeleton.name!r}: "
                         f"not in the skeleton {extra}, not in the file {missing}")
    perm = [names.index(n) for n in skeleton.joint_names]
    for j, k in enumerate(perm[1:], start=1):
        if not np.allclose(offsets[k], skeleton.offsets[j], atol=1e-6):
            raise ValueError(f"{path}: joint {names[k]!r} has offset {offsets[k]} in the file, "
                             f"{skeleton.offsets[j]} in skeleton {skeleton.name!r}")
        file_parent = names[parents[k]] if parents[k] >= 0 else None
        if file_parent != skeleton.joint_names[skeleton.parents[j]]:
            raise ValueError(f"{path}: joint {names[k]!r} has parent {file_parent!r} in the file, "
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
