"""Parity with the reference implementation (the ``smplx`` package) on a random SMPL-sized model."""

import pickle

import pytest
import smplx  # test-only dependency, in the [test] extra
import torch
from _body_fixtures import random_smpl_arrays

from mimicgym.motion.body_model import BodyModel

F64 = torch.float64


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    arrays = random_smpl_arrays(seed=7)  # 6890 vertices, 24 joints, 10 betas, 207 posedirs
    path = tmp_path_factory.mktemp("smpl") / "SMPL_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps(arrays, protocol=2))
    reference = smplx.SMPL(model_path=str(path), dtype=F64)
    return BodyModel.load(path, dtype=F64), reference


def _params(B, seed):
    g = torch.Generator().manual_seed(seed)
    return dict(betas=torch.randn(B, 10, generator=g, dtype=F64),
                body_pose=0.6 * torch.randn(B, 69, generator=g, dtype=F64),
                global_orient=torch.randn(B, 3, generator=g, dtype=F64),
                transl=torch.randn(B, 3, generator=g, dtype=F64))


def test_vertices_and_joints_match_smplx(models):
    ours, reference = models
    p = _params(6, seed=0)
    ref = reference(**p)
    out = ours(**p)
    # smplx adds 1e-8 inside its Rodrigues norm, so axis-angle inputs agree to ~1e-8.
    torch.testing.assert_close(out.vertices, ref.vertices, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.joints, ref.joints[:, :24], atol=1e-6, rtol=0)


def test_rotation_matrix_inputs_match_smplx_exactly(models):
    from mimicgym.motion.rotations import axis_angle_to_matrix

    ours, reference = models
    p = _params(4, seed=1)
    body_R = axis_angle_to_matrix(p["body_pose"].reshape(4, 23, 3))
    root_R = axis_angle_to_matrix(p["global_orient"])[:, None]
    ref = reference(betas=p["betas"], body_pose=body_R, global_orient=root_R, transl=p["transl"], pose2rot=False)
    out = ours(betas=p["betas"], body_pose=body_R, global_orient=root_R, transl=p["transl"])
    torch.testing.assert_close(out.vertices, ref.vertices, atol=1e-10, rtol=0)
    torch.testing.assert_close(out.joints, ref.joints[:, :24], atol=1e-10, rtol=0)
    v_shaped = reference.v_template + smplx.lbs.blend_shapes(p["betas"], reference.shapedirs)
    torch.testing.assert_close(out.v_shaped, v_shaped, atol=1e-10, rtol=0)


def test_float32_matches_smplx_float32(tmp_path):
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps(random_smpl_arrays(seed=8), protocol=2))
    p = {k: v.float() for k, v in _params(3, seed=2).items()}
    ref = smplx.SMPL(model_path=str(path))(**p)
    out = BodyModel.load(path)(**p)
    assert out.vertices.dtype == torch.float32
    torch.testing.assert_close(out.vertices, ref.vertices, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.joints, ref.joints[:, :24], atol=1e-5, rtol=0)
