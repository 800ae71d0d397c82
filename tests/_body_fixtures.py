"""Random SMPL-format models of SMPL's sizes, for the body model tests (no SMPL data involved)."""

from __future__ import annotations

import numpy as np

from mimicgym.motion.body_model import SMPL_PARENTS


def random_smpl_arrays(seed: int, num_vertices: int = 6890, num_betas: int = 10) -> dict[str, np.ndarray]:
    """A random model in SMPL's layout: each vertex skinned to a few joints, a sparse regressor."""
    rng = np.random.default_rng(seed)
    V, J = num_vertices, 24
    v_template = rng.normal(scale=0.3, size=(V, 3))
    # Sparse, positive skinning weights summing to one, like SMPL's (up to 8 joints a vertex).
    # Multiples of 1/8 (and 1/32 below) sum to exactly one in float32 too.
    weights = np.zeros((V, J))
    for _ in range(8):
        np.add.at(weights, (np.arange(V), rng.integers(0, J, size=V)), 1 / 8)
    # Each joint a convex combination of up to 20 vertices.
    J_regressor = np.zeros((J, V))
    for j in range(J):
        ids = rng.choice(V, size=20, replace=False)
        np.add.at(J_regressor[j], ids[rng.integers(0, 20, size=32)], 1 / 32)
    kintree = np.array([[2**32 - 1] + list(SMPL_PARENTS[1:]), list(range(J))], dtype=np.int64)
    arrays = {
        "v_template": v_template,
        "shapedirs": rng.normal(scale=0.02, size=(V, 3, num_betas)),
        "posedirs": rng.normal(scale=0.01, size=(V, 3, 207)),
        "J_regressor": J_regressor,
        "weights": weights,
        "kintree_table": kintree,
        "f": rng.integers(0, V, size=(2 * V, 3)),
    }
    # smplx reads model arrays through float32: keep the values exactly representable there.
    for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights"):
        arrays[key] = arrays[key].astype(np.float32).astype(np.float64)
    return arrays
