"""Rest-pose geometry of a body model: world axes, skeleton, part volumes, capsule sizing.

Shared by the MuJoCo humanoid builder (:mod:`mimicgym.motion.humanoid`) and the fitter
(:mod:`mimicgym.motion.fitting`). Arrays are numpy float64, in metres.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from mimicgym.motion.body_model import SMPL_JOINT_NAMES
from mimicgym.motion.rotations import matrix_to_quat

__all__ = ["model_to_world_rotation", "rest_shape", "parents_of", "body_skeleton", "part_volumes", "geom_specs",
           "BOX_BODIES"]

_J = {name: i for i, name in enumerate(SMPL_JOINT_NAMES)}
BOX_BODIES = ("left_ankle", "right_ankle", "left_foot", "right_foot")  # feet: boxes, for flat contact


def parents_of(bm) -> np.ndarray:
    parents = getattr(bm, "parents", None)
    if parents is None:
        parents = bm.kintree_table[0]
    parents = np.asarray(torch.as_tensor(parents).cpu(), dtype=np.int64).copy()
    parents[0] = -1
    if len(parents) != 24:
        raise ValueError(f"humanoid builder needs the 24-joint SMPL skeleton, got {len(parents)} joints")
    return parents


def rest_shape(bm, betas: Tensor | None) -> tuple[np.ndarray, np.ndarray]:
    """Rest-pose (zero pose, zero translation) vertices (V, 3) and joints (24, 3), model frame."""
    dtype = bm.v_template.dtype
    betas = (torch.zeros(1, bm.shapedirs.shape[-1], dtype=dtype) if betas is None
             else torch.as_tensor(betas, dtype=dtype))
    betas = betas.reshape(1, -1)
    if not torch.isfinite(betas).all():
        raise ValueError(f"betas contain NaN or inf: {betas.tolist()}")
    zeros = torch.zeros(1, 3, dtype=dtype)
    with torch.no_grad():
        out = bm(betas=betas, body_pose=torch.zeros(1, 69, dtype=dtype), global_orient=zeros, transl=zeros)
    return out.vertices[0].double().numpy(), out.joints[0].double().numpy()


def model_to_world_rotation(joints: np.ndarray) -> np.ndarray:
    """C (3, 3) taking the model's rest frame to MuJoCo's (x forward, y left, z up).

    Up is pelvis -> head, left is right_hip -> left_hip; each is snapped to the nearest
    signed coordinate axis of the model (SMPL files are y-up facing +z: C maps (x, y, z) to (z, x, y)).
    """

    def snap(v: np.ndarray) -> np.ndarray:
        out = np.zeros(3)
        i = int(np.argmax(np.abs(v)))
        out[i] = np.sign(v[i])
        return out

    up = snap(joints[_J["head"]] - joints[_J["pelvis"]])
    left = snap(joints[_J["left_hip"]] - joints[_J["right_hip"]])
    if abs(up @ left) > 0.5:
        raise ValueError("cannot tell the model's up and left axes apart from its rest joints")
    forward = np.cross(left, up)
    return np.stack([forward, left, up])


def body_skeleton(bm, betas: Tensor | None = None, name: str = "smpl"):
    """The :class:`~mimicgym.motion.skeleton.Skeleton` of the shaped body: rest offsets from the
    body model's joints, upright rotation C, root height of the rest pelvis above the soles.
    """
    from mimicgym.motion.skeleton import Skeleton

    parents = parents_of(bm)
    verts, joints = rest_shape(bm, betas)
    C = model_to_world_rotation(joints)
    offsets = joints.copy()
    offsets[1:] -= joints[parents[1:]]
    up = C[2]  # the model-frame direction that points up in the world
    return Skeleton(
        name=name, joint_names=SMPL_JOINT_NAMES, parents=tuple(int(p) for p in parents), offsets=offsets,
        joint_types=("free",) + ("spherical",) * 23, upright=matrix_to_quat(torch.as_tensor(C)).numpy(),
        root_height=float(joints[0] @ up - (verts @ up).min()),
    )  # fmt: skip


def _cross_section_radius(offsets: np.ndarray) -> float:
    """Radius of the circle with the area of the ellipse bounding perpendicular offsets (N, 3)
    from a bone axis: sqrt(a b), a and b the 95th-percentile extents along their principal axes.
    """
    _, _, vt = np.linalg.svd(offsets - offsets.mean(0), full_matrices=False)
    a, b = (np.percentile(np.abs(offsets @ vt[k]), 95) for k in (0, 1))
    return float(np.sqrt(a * b))


def _segment_capsule(verts: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Capsule on the bone a -> b, radius from the cross-section of the vertices beside it."""
    axis = (b - a) / np.linalg.norm(b - a)
    t = (verts - a) @ axis
    beside = (t > 0.0) & (t < np.linalg.norm(b - a))
    if beside.sum() < 8:
        beside[:] = True
    perp = (verts - a)[beside] - t[beside, None] * axis
    return a, b, _cross_section_radius(perp)


def _principal_capsule(verts: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Capsule along the principal axis of a vertex cloud, spanning its 2nd-98th percentiles."""
    centre = verts.mean(0)
    _, _, vt = np.linalg.svd(verts - centre, full_matrices=False)
    axis = vt[0]
    t = (verts - centre) @ axis
    radius = _cross_section_radius((verts - centre) - t[:, None] * axis)
    lo, hi = np.percentile(t, 2), np.percentile(t, 98)
    half = max(0.5 * (hi - lo) - radius, 1e-3)
    mid = centre + 0.5 * (lo + hi) * axis
    return mid - half * axis, mid + half * axis, radius


def part_volumes(verts: np.ndarray, faces: np.ndarray, owner: np.ndarray, num_parts: int = 24) -> np.ndarray:
    """Volume (num_parts,) enclosed by each part of a closed mesh (faces split by vertex owner).

    Each part is closed by fan caps over its cuts to every neighbouring part, the fan's apex
    the mean midpoint of that cut's edges; neighbours share the caps with opposite
    orientation, so the part volumes sum exactly to the mesh volume (divergence theorem:
    signed tetrahedra to the origin).
    """
    o = owner[faces]
    face_owner = np.where(o[:, 1] == o[:, 2], o[:, 1], o[:, 0])  # majority of the three vertices
    tet = np.einsum("ij,ij->i", verts[faces[:, 0]], np.cross(verts[faces[:, 1]], verts[faces[:, 2]])) / 6.0
    volume = np.bincount(face_owner, tet, minlength=num_parts)
    # Half-edges (a, b) of every face; a closed, consistently oriented mesh holds each edge twice.
    a = faces.reshape(-1)
    b = np.roll(faces, -1, axis=1).reshape(-1)
    part = np.repeat(face_owner, 3)
    key = np.minimum(a, b) * len(verts) + np.maximum(a, b)
    if (np.unique(key, return_counts=True)[1] != 2).any():
        raise ValueError("the body mesh is not closed (every edge must join exactly two faces); "
                         "cannot compute part masses")
    order = np.argsort(key, kind="stable")
    h0, h1 = order[0::2], order[1::2]  # the two half-edges of each edge
    cut = part[h0] != part[h1]
    h = np.concatenate([h0[cut], h1[cut]])  # half-edges on a cut, both sides
    other = np.concatenate([part[h1[cut]], part[h0[cut]]])
    pair = np.minimum(part[h], other) * num_parts + np.maximum(part[h], other)
    mids = 0.5 * (verts[a[h]] + verts[b[h]])
    count = np.bincount(pair, minlength=num_parts**2)
    apex = (np.stack([np.bincount(pair, mids[:, k], minlength=num_parts**2) for k in range(3)], 1)
            / np.maximum(count, 1)[:, None])
    # Cap triangle (b, a, apex) continues the part's outward orientation across the cut.
    cap = np.einsum("ij,ij->i", verts[b[h]], np.cross(verts[a[h]], apex[pair])) / 6.0
    return volume + np.bincount(part[h], cap, minlength=num_parts)


def geom_specs(verts: np.ndarray, joints: np.ndarray, weights: np.ndarray, parents: np.ndarray) -> list[dict]:
    """One geom description per body, in world coordinates at rest."""
    owner = weights.argmax(1)
    children = {i: [c for c in range(24) if parents[c] == i] for i in range(24)}
    out = []
    for i, name in enumerate(SMPL_JOINT_NAMES):
        v = verts[owner == i]
        if len(v) < 8:
            raise ValueError(f"joint {name!r} dominates only {len(v)} vertices; cannot size its geom")
        if name in BOX_BODIES:
            lo, hi = np.percentile(v, 2, axis=0), np.percentile(v, 98, axis=0)
            lo[2] = v[:, 2].min()  # the sole: exact, so the feet rest on the ground
            out.append({"type": "box", "pos": 0.5 * (lo + hi), "size": 0.5 * (hi - lo)})
            continue
        if len(children[i]) == 1:
            a, b, r = _segment_capsule(v, joints[i], joints[children[i][0]])
        else:
            a, b, r = _principal_capsule(v)
        out.append({"type": "capsule", "fromto": np.concatenate([a, b]), "size": np.array([r])})
    return out
