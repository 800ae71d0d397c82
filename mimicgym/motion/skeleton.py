"""Kinematic skeletons (joint names, parents, rest offsets) and forward kinematics.

World convention for the whole project: **z-up**, as MuJoCo, with +x forward and +y to the
character's left. A skeleton's rest offsets stay in the frame the skeleton was published in
(SMPL and DeepMimic's humanoid3d are both y-up); the root rotation of a pose maps that body
frame into the world, so SMPL pose parameters and DeepMimic joint quaternions are used as
they are. ``Skeleton.upright`` is the root rotation that stands the rest pose upright facing
+x; retargeting and mirroring use it to relate skeletons and find the sagittal plane.

Poses are local joint rotations as unit quaternions ``(w, x, y, z)`` (the root's is its
world orientation) plus the root's world position.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from mimicgym.motion.body_model import SMPL_JOINT_NAMES, SMPL_PARENTS
from mimicgym.motion.rotations import quat_to_matrix

__all__ = [
    "Skeleton",
    "JOINT_TYPES",
    "forward_kinematics",
    "SMPL_SKELETON",
    "HUMANOID3D_SKELETON",
]

# "free": the root (6 DoF); "revolute": one angle about the joint's local z axis (DeepMimic's
# knees and elbows); "fixed": no DoF (DeepMimic's wrists, BVH End Sites).
JOINT_TYPES = ("free", "spherical", "revolute", "fixed")

_SQRT_HALF = float(np.sqrt(0.5))


@dataclass(frozen=True, eq=False)
class Skeleton:
    """A tree of joints in topological order (every parent comes before its children).

    ``offsets[j]`` is joint ``j``'s position in its parent's frame in the rest pose, in metres;
    ``offsets[0]`` is the root's position in the body model's own frame (SMPL's template
    pelvis), kept as metadata: a clip's root translation places the root.
    """

    name: str
    joint_names: tuple[str, ...]
    parents: tuple[int, ...]
    offsets: np.ndarray  # (J, 3)
    joint_types: tuple[str, ...]
    upright: np.ndarray = field(default_factory=lambda: np.array([1.0, 0.0, 0.0, 0.0]))  # (4,)
    root_height: float = 1.0  # root height above the floor, rest pose standing upright

    def __post_init__(self) -> None:
        names, parents = tuple(self.joint_names), tuple(int(p) for p in self.parents)
        offsets = np.array(self.offsets, dtype=np.float64)
        types = tuple(self.joint_types)
        upright = np.array(self.upright, dtype=np.float64)
        J = len(names)
        if J == 0:
            raise ValueError("a skeleton needs at least one joint")
        if len(set(names)) != J:
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"joint names must be unique, repeated: {dup}")
        if len(parents) != J or len(types) != J:
            raise ValueError(f"parents ({len(parents)}) and joint_types ({len(types)}) must have one "
                             f"entry per joint ({J})")
        if parents[0] != -1:
            raise ValueError(f"joint 0 ({names[0]!r}) must be the root with parent -1, got {parents[0]}")
        for j in range(1, J):
            if not 0 <= parents[j] < j:
                raise ValueError(f"joint {j} ({names[j]!r}) has parent {parents[j]}; parents must come "
                                 f"before their children (0 <= parent < {j})")
        if offsets.shape != (J, 3) or not np.isfinite(offsets).all():
            raise ValueError(f"offsets must be finite with shape ({J}, 3), got {offsets.shape}")
        bad = [t for t in types if t not in JOINT_TYPES]
        if bad:
            raise ValueError(f"joint types must be in {JOINT_TYPES}, got {bad}")
        if upright.shape != (4,) or abs(np.linalg.norm(upright) - 1.0) > 1e-6:
            raise ValueError(f"upright must be a unit quaternion (w, x, y, z), got {upright}")
        if not np.isfinite(self.root_height) or self.root_height <= 0:
            raise ValueError(f"root_height must be a positive number of metres, got {self.root_height}")
        offsets.setflags(write=False)
        upright.setflags(write=False)
        for attr, value in (("joint_names", names), ("parents", parents), ("offsets", offsets),
                             ("joint_types", types), ("upright", upright),
                             ("root_height", float(self.root_height))):
            object.__setattr__(self, attr, value)

    # ----------------------------------------------------------------- structure
    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def index(self, name: str) -> int:
        """Index of the joint called ``name`` (a clear error lists the joints otherwise)."""
        try:
            return self.joint_names.index(name)
        except ValueError:
            raise KeyError(f"skeleton {self.name!r} has no joint {name!r}; joints: "
                           f"{list(self.joint_names)}") from None

    def children(self, j: int) -> list[int]:
        return [c for c, p in enumerate(self.parents) if p == j]

    def mirror_indices(self) -> np.ndarray:
        """Joint index after swapping ``left*`` and ``right*`` names (others map to themselves)."""
        swap = {"left": "right", "right": "left"}
        out = np.arange(self.num_joints)
        for j, name in enumerate(self.joint_names):
            for a, b in swap.items():
                if name.startswith(a):
                    other = b + name[len(a):]
                    if other in self.joint_names:
                        out[j] = self.joint_names.index(other)
        return out

    def upright_matrix(self) -> np.ndarray:
        """(3, 3) rotation of :attr:`upright`."""
        return quat_to_matrix(torch.from_numpy(np.array(self.upright))).numpy()

    def lateral_axis(self) -> np.ndarray:
        """Unit vector, in the body frame, pointing to the character's left (world +y upright)."""
        return self.upright_matrix().T @ np.array([0.0, 1.0, 0.0])

    def is_symmetric(self, atol: float = 1e-9) -> bool:
        """Whether reflecting every offset across the sagittal plane gives the mirrored joint's."""
        n = self.lateral_axis()
        reflect = np.eye(3) - 2.0 * np.outer(n, n)
        mirrored = self.offsets[self.mirror_indices()] @ reflect.T
        return bool(np.allclose(mirrored[1:], self.offsets[1:], atol=atol))

    # ------------------------------------------------------------------ kinematics
    def rest_positions(self) -> np.ndarray:
        """(J, 3) world joint positions standing upright in the rest pose, feet on z = 0."""
        q = np.tile(np.array([1.0, 0.0, 0.0, 0.0]), (self.num_joints, 1))
        q[0] = self.upright
        pos, _ = forward_kinematics(self, torch.from_numpy(q),
                                    torch.tensor([0.0, 0.0, self.root_height], dtype=torch.float64))
        return pos.numpy()

    def __repr__(self) -> str:
        return f"Skeleton(name={self.name!r}, joints={self.num_joints})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Skeleton):
            return NotImplemented
        return (self.name == other.name and self.joint_names == other.joint_names
                and self.parents == other.parents and self.joint_types == other.joint_types
                and np.array_equal(self.offsets, other.offsets)
                and np.array_equal(self.upright, other.upright)
                and self.root_height == other.root_height)

    __hash__ = None  # type: ignore[assignment]


def forward_kinematics(skeleton: Skeleton, local_quats: Tensor, root_trans: Tensor
                       ) -> tuple[Tensor, Tensor]:
    """Joint world positions and rotations from local rotations and the root position.

    local_quats: (..., J, 4) local joint rotations (the root's is its world orientation);
    root_trans: (..., 3) root world position. Returns positions (..., J, 3) and world
    rotation matrices (..., J, 3, 3). Loops over joints in topological order only.
    """
    J = skeleton.num_joints
    if local_quats.shape[-2:] != (J, 4):
        raise ValueError(f"local_quats must have shape (..., {J}, 4) for skeleton "
                         f"{skeleton.name!r}, got {tuple(local_quats.shape)}")
    if root_trans.shape[-1] != 3 or root_trans.shape[:-1] != local_quats.shape[:-2]:
        raise ValueError(f"root_trans must have shape {tuple(local_quats.shape[:-2]) + (3,)}, "
                         f"got {tuple(root_trans.shape)}")
    local = quat_to_matrix(local_quats)  # (..., J, 3, 3)
    offsets = torch.as_tensor(skeleton.offsets.copy(), dtype=local.dtype, device=local.device)  # (J, 3)
    rots, pos = [local[..., 0, :, :]], [root_trans]
    for j in range(1, J):
        p = skeleton.parents[j]
        # x_j = x_p + R_p o_j ;  R_j = R_p L_j
        pos.append(pos[p] + (rots[p] @ offsets[j, :, None])[..., 0])
        rots.append(rots[p] @ local[..., j, :, :])
    return torch.stack(pos, dim=-2), torch.stack(rots, dim=-3)


# ----------------------------------------------------------------------------- SMPL
# SMPL's 24 joints. Offsets: adult values close to SMPL's neutral template, made exactly
# left/right symmetric, in SMPL's frame (y up, +z forward, +x the body's left).
_SMPL_HALF = {  # left side and midline; right joints mirror x
    "pelvis": (0.0, -0.223, 0.028),
    "left_hip": (0.070, -0.091, -0.004),
    "spine1": (0.0, 0.115, -0.016),
    "left_knee": (0.034, -0.375, 0.0),
    "spine2": (0.0, 0.138, 0.026),
    "left_ankle": (-0.015, -0.395, -0.043),
    "spine3": (0.0, 0.056, -0.003),
    "left_foot": (0.032, -0.058, 0.118),
    "neck": (0.0, 0.213, -0.034),
    "left_collar": (0.078, 0.122, -0.019),
    "head": (0.0, 0.089, 0.050),
    "left_shoulder": (0.091, 0.030, -0.009),
    "left_elbow": (0.260, -0.013, -0.027),
    "left_wrist": (0.249, 0.009, -0.001),
    "left_hand": (0.084, -0.008, -0.016),
}


def _smpl_offsets() -> np.ndarray:
    rows = []
    for name in SMPL_JOINT_NAMES:
        if name.startswith("right_"):
            x, y, z = _SMPL_HALF["left_" + name[len("right_"):]]
            rows.append((-x, y, z))
        else:
            rows.append(_SMPL_HALF[name])
    return np.array(rows, dtype=np.float64)


# Ankle joint 7.8 cm above the floor: the ball-of-foot joint sits 2 cm above it standing.
_SMPL_ANKLE_HEIGHT = 0.078

SMPL_SKELETON = Skeleton(
    name="smpl",
    joint_names=SMPL_JOINT_NAMES,
    parents=SMPL_PARENTS,
    offsets=_smpl_offsets(),
    joint_types=("free",) + ("spherical",) * 23,
    # body (x left, y up, z forward) -> world (x forward, y left, z up): a cyclic permutation
    upright=np.array([0.5, 0.5, 0.5, 0.5]),
    root_height=0.091 + 0.375 + 0.395 + _SMPL_ANKLE_HEIGHT,
)

# ----------------------------------------------------------------------- humanoid3d
# DeepMimic's humanoid3d character (data/characters/humanoid3d.txt, X. B. Peng, MIT licence):
# joint order, parents, types and the "AttachX/Y/Z" offsets as published. y up, +x forward,
# +z the body's right.
_H3D_JOINTS: Sequence[tuple[str, int, str, tuple[float, float, float]]] = (
    ("root", -1, "free", (0.0, 0.0, 0.0)),
    ("chest", 0, "spherical", (0.0, 0.236151, 0.0)),
    ("neck", 1, "spherical", (0.0, 0.223894, 0.0)),
    ("right_hip", 0, "spherical", (0.0, 0.0, 0.084887)),
    ("right_knee", 3, "revolute", (0.0, -0.421546, 0.0)),
    ("right_ankle", 4, "spherical", (0.0, -0.409870, 0.0)),
    ("right_shoulder", 1, "spherical", (-0.02405, 0.24350, 0.18311)),
    ("right_elbow", 6, "revolute", (0.0, -0.274788, 0.0)),
    ("right_wrist", 7, "fixed", (0.0, -0.258947, 0.0)),
    ("left_hip", 0, "spherical", (0.0, 0.0, -0.084887)),
    ("left_knee", 9, "revolute", (0.0, -0.421546, 0.0)),
    ("left_ankle", 10, "spherical", (0.0, -0.409870, 0.0)),
    ("left_shoulder", 1, "spherical", (-0.02405, 0.24350, -0.18311)),
    ("left_elbow", 12, "revolute", (0.0, -0.274788, 0.0)),
    ("left_wrist", 13, "fixed", (0.0, -0.258947, 0.0)),
)
# The foot box's sole lies 0.05 m below the ankle (box centre 0.0225 below, half height 0.0275).
HUMANOID3D_ANKLE_HEIGHT = 0.05

HUMANOID3D_SKELETON = Skeleton(
    name="humanoid3d",
    joint_names=tuple(j[0] for j in _H3D_JOINTS),
    parents=tuple(j[1] for j in _H3D_JOINTS),
    offsets=np.array([j[3] for j in _H3D_JOINTS], dtype=np.float64),
    joint_types=tuple(j[2] for j in _H3D_JOINTS),
    upright=np.array([_SQRT_HALF, _SQRT_HALF, 0.0, 0.0]),  # +90 degrees about x: y up -> z up
    root_height=0.421546 + 0.409870 + HUMANOID3D_ANKLE_HEIGHT,
)
