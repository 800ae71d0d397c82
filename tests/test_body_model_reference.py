"""BodyModel's outputs pinned to values stored before the SMPL pipeline was unified (float32,
the shipped default body and a random SMPL-sized model with pose correctives);
``python tests/test_body_model_reference.py`` re-records them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from _body_fixtures import random_smpl_arrays

from mimicgym.motion.body_model import BodyModel

REFERENCE = Path(__file__).parent / "data" / "body_model_reference.npz"
OUTPUTS = ("vertices", "joints", "A", "transforms", "v_shaped")


def _inputs(seed: int, K: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return dict(betas=torch.randn(2, K, generator=g), body_pose=0.5 * torch.randn(2, 69, generator=g),
                global_orient=torch.randn(2, 3, generator=g), transl=torch.randn(2, 3, generator=g))


def _outputs() -> dict[str, np.ndarray]:
    models = {"default": BodyModel.default(),
              "random": BodyModel(arrays=random_smpl_arrays(seed=7, num_vertices=2000))}
    out = {}
    with torch.no_grad():
        for name, model in models.items():
            result = model(**_inputs(0, model.num_betas))
            for key in OUTPUTS:
                value = getattr(result, key).numpy()
                # every 5th vertex: 700 kB of reference data would say no more than 140 kB
                out[f"{name}/{key}"] = value[:, ::5] if key in ("vertices", "v_shaped") else value
    return out


def test_outputs_equal_the_stored_reference():
    got = _outputs()
    with np.load(REFERENCE) as expected:
        assert set(expected.files) == set(got)
        for key in expected.files:
            np.testing.assert_allclose(got[key], expected[key], atol=1e-6, rtol=0, err_msg=key)


if __name__ == "__main__":
    np.savez_compressed(REFERENCE, **_outputs())
