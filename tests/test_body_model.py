"""Body model: the LBS steps on hand-computed cases, fast path vs reference, inputs, default body."""

import math

import numpy as np
import pytest
import torch
from _body_fixtures import random_smpl_arrays

from mimicgym.motion.body_model import (
    SMPL_JOINT_NAMES,
    SMPL_PARENTS,
    BodyModel,
    batch_rigid_transform,
    blend_shapes,
    kinematic_levels,
    lbs,
    linear_blend_skinning,
    pose_features,
    vertices_to_joints,
)
from mimicgym.motion.rotations import axis_angle_to_matrix

F64 = torch.float64
J = {name: i for i, name in enumerate(SMPL_JOINT_NAMES)}


@pytest.fixture(scope="module")
def small():
    arrays = random_smpl_arrays(seed=3, num_vertices=200)
    return arrays, BodyModel(arrays=arrays, dtype=F64)


@pytest.fixture(scope="module")
def default():
    return BodyModel.default()


def _random_params(B, seed, K=10):
    g = torch.Generator().manual_seed(seed)
    return dict(betas=torch.randn(B, K, generator=g, dtype=F64),
                body_pose=0.4 * torch.randn(B, 69, generator=g, dtype=F64),
                global_orient=torch.randn(B, 3, generator=g, dtype=F64),
                transl=torch.randn(B, 3, generator=g, dtype=F64))


def test_two_bone_chain_by_hand():
    # Root at the origin, child joint at (1, 0, 0); a vertex at (2, 0, 0) fully on the child.
    joints = torch.tensor([[[0.0, 0, 0], [1.0, 0, 0]]], dtype=F64)
    quarter_z = axis_angle_to_matrix(torch.tensor([0, 0, math.pi / 2], dtype=F64))
    rot = torch.stack([torch.eye(3, dtype=F64), quarter_z])[None]
    posed, A = batch_rigid_transform(rot, joints, torch.tensor([-1, 0]))
    torch.testing.assert_close(posed, joints)  # rotating the child leaves both joints in place
    verts = torch.tensor([[[2.0, 0, 0], [0.5, 0, 0], [1.5, 0, 0]]], dtype=F64)
    w = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]], dtype=F64)
    def skin(verts, A, w):  # vertex-major (B, V, 3) through the coordinate-major skinning
        return linear_blend_skinning(verts.transpose(1, 2), A, w.T.contiguous()).transpose(1, 2)

    out = skin(verts, A, w)
    # (2,0,0) swings about (1,0,0) to (1,1,0); the root-bound vertex stays; the 50/50 one averages.
    torch.testing.assert_close(out[0], torch.tensor([[1.0, 1, 0], [0.5, 0, 0], [1.25, 0.25, 0]], dtype=F64))
    # Now rotate the root instead: everything turns about the origin, the child joint included.
    rot = torch.stack([quarter_z, torch.eye(3, dtype=F64)])[None]
    posed, A = batch_rigid_transform(rot, joints, torch.tensor([-1, 0]))
    torch.testing.assert_close(posed[0, 1], torch.tensor([0.0, 1, 0], dtype=F64))
    torch.testing.assert_close(skin(verts, A, w)[0, 0], torch.tensor([0.0, 2, 0], dtype=F64))


def test_smpl_tree_has_nine_depth_levels():
    levels = [ids.tolist() for ids in kinematic_levels(SMPL_PARENTS)]
    assert levels[:2] == [[0], [1, 2, 3]] and levels[-1] == [22, 23]
    assert [len(ids) for ids in levels] == [1, 3, 3, 3, 5, 3, 2, 2, 2]


def test_blend_shapes_regression_and_pose_features():
    shapedirs = torch.zeros(2, 3, 2, dtype=F64)
    shapedirs[0, 1, 0] = 1.0  # beta0 moves vertex 0 up
    shapedirs[1, 0, 1] = 2.0  # beta1 moves vertex 1 along x, twice as fast
    # (V, 3, K) flattened vertex-major, around a zero template: the offsets
    flat = blend_shapes(torch.tensor([[0.5, -1.0]], dtype=F64), torch.zeros(6, dtype=F64),
                        shapedirs.reshape(6, 2).T)
    offsets = flat.view(1, 2, 3)
    torch.testing.assert_close(offsets[0], torch.tensor([[0, 0.5, 0], [-2.0, 0, 0]], dtype=F64))
    reg = torch.tensor([[0.5, 0.5]], dtype=F64)
    torch.testing.assert_close(vertices_to_joints(reg, offsets), torch.tensor([[[-1.0, 0.25, 0]]], dtype=F64))
    rot = torch.eye(3, dtype=F64).expand(1, 24, 3, 3).clone()
    assert pose_features(rot).shape == (1, 207) and pose_features(rot).abs().max() == 0
    rot[0, 1] = 2 * torch.eye(3, dtype=F64)
    assert pose_features(rot)[0, :9].tolist() == [1, 0, 0, 0, 1, 0, 0, 0, 1]


def test_fast_path_matches_reference_lbs(small):
    arrays, model = small
    p = _random_params(5, seed=0)
    out = model(**p)
    full_pose = torch.cat([p["global_orient"], p["body_pose"]], dim=1)
    t = {k: torch.as_tensor(v, dtype=F64) for k, v in arrays.items() if k != "f"}
    posedirs = t["posedirs"].reshape(-1, 207).T
    v, joints, A, v_shaped = lbs(p["betas"], full_pose, t["v_template"], t["shapedirs"], posedirs,
                                 t["J_regressor"], model.parents, t["weights"])
    torch.testing.assert_close(out.vertices, v + p["transl"][:, None], atol=1e-12, rtol=0)
    torch.testing.assert_close(out.joints, joints + p["transl"][:, None], atol=1e-12, rtol=0)
    torch.testing.assert_close(out.A, A, atol=1e-12, rtol=0)
    torch.testing.assert_close(out.v_shaped, v_shaped, atol=1e-12, rtol=0)
    # World frames: rotation = product of local rotations down the chain; origin = joint.
    R = out.rot_mats
    chain = R[:, 0] @ R[:, 3] @ R[:, 6] @ R[:, 9] @ R[:, 13] @ R[:, 16]  # pelvis .. left_shoulder
    torch.testing.assert_close(out.transforms[:, 16, :3, :3], chain)
    torch.testing.assert_close(out.transforms[:, :, :3, 3], out.joints)
    # Mesh-free rest joints and the vertex-major shape layout agree with the full model.
    rest_joints = vertices_to_joints(model.J_regressor, v_shaped)  # (5, 24, 3)
    torch.testing.assert_close(model.rest_joints(p["betas"]), rest_joints, atol=1e-12, rtol=0)
    flat = model.v_template.reshape(1, -1) + p["betas"] @ model.shapedirs_flat_T
    torch.testing.assert_close(flat.reshape(5, -1, 3), v_shaped, atol=1e-12, rtol=0)


def test_rest_pose_is_template_and_identity(small):
    arrays, model = small
    out = model()
    assert out.vertices.shape == (1, 200, 3) and out.joints.shape == (1, 24, 3) and out.A.shape == (1, 24, 4, 4)
    torch.testing.assert_close(out.vertices[0], torch.as_tensor(arrays["v_template"]), atol=1e-12, rtol=0)
    torch.testing.assert_close(out.joints[0], torch.as_tensor(arrays["J_regressor"] @ arrays["v_template"]))
    torch.testing.assert_close(out.A, torch.eye(4, dtype=F64).expand(1, 24, 4, 4))


def test_pose_input_forms_agree(small):
    _, model = small
    p = _random_params(3, seed=1)
    ref = model(**p)
    body_R = axis_angle_to_matrix(p["body_pose"].reshape(3, 23, 3))
    root_R = axis_angle_to_matrix(p["global_orient"])
    for body, root in [(body_R, root_R), (p["body_pose"].reshape(3, 23, 3), root_R[:, None]),
                       (body_R, p["global_orient"][:, None])]:
        out = model(betas=p["betas"], body_pose=body, global_orient=root, transl=p["transl"])
        torch.testing.assert_close(out.vertices, ref.vertices, atol=1e-12, rtol=0)
    # Batch size comes from whichever argument is given; fewer betas are zero-padded.
    assert model(body_pose=p["body_pose"]).vertices.shape[0] == 3
    short = model(betas=p["betas"][:, :4])
    padded = model(betas=torch.nn.functional.pad(p["betas"][:, :4], (0, 6)))
    torch.testing.assert_close(short.vertices, padded.vertices)


def test_global_orient_and_transl_are_rigid(small):
    _, model = small
    p = _random_params(2, seed=2)
    base = model(betas=p["betas"], body_pose=p["body_pose"])
    moved = model(**p)
    R = axis_angle_to_matrix(p["global_orient"])  # rotation about the root joint, then transl
    root = base.joints[:, :1]
    expected = ((base.vertices - root) @ R.transpose(1, 2)) + root + p["transl"][:, None]
    torch.testing.assert_close(moved.vertices, expected, atol=1e-12, rtol=0)


def test_bad_inputs_name_argument_and_shape(small):
    _, model = small
    with pytest.raises(ValueError, match=r"body_pose must have shape \(B, 69\) or \(B, 23, 3\).*got \(2, 72\)"):
        model(body_pose=torch.zeros(2, 72))
    with pytest.raises(ValueError, match=r"global_orient must have shape \(B, 3\).*got \(2, 4\)"):
        model(global_orient=torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"betas must have shape \(B, k\) with k <= 10, got \(2, 11\)"):
        model(betas=torch.zeros(2, 11))
    with pytest.raises(ValueError, match=r"transl must have shape \(B, 3\), got \(3,\)"):
        model(transl=torch.zeros(3))
    with pytest.raises(ValueError, match="inconsistent batch sizes"):
        model(betas=torch.zeros(2, 10), body_pose=torch.zeros(3, 69))


def test_gradients_and_dtypes(small):
    arrays, model64 = small
    p = _random_params(2, seed=4)
    pose = p["body_pose"][:1].clone().requires_grad_(True)
    betas = p["betas"][:1].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda b, q: model64(betas=b, body_pose=q).vertices[:, ::25], (betas, pose),
                                    fast_mode=True)
    # Zero pose: gradient is finite (Taylor branch of Rodrigues).
    zero = torch.zeros(1, 69, dtype=F64, requires_grad=True)
    model64(body_pose=zero).joints.sum().backward()
    assert torch.isfinite(zero.grad).all() and zero.grad.abs().sum() > 0
    model32 = BodyModel(arrays=arrays)
    assert model32.v_template.dtype == torch.float32
    out32 = model32(**{k: v.float() for k, v in p.items()})
    torch.testing.assert_close(out32.vertices.double(), model64(**p).vertices, atol=1e-4, rtol=0)
    torch.testing.assert_close(model32.double()(**p).vertices, model64(**p).vertices, atol=1e-6, rtol=0)


def test_default_body_is_a_plausible_human(default):
    m = default
    assert m.num_joints == 24 and m.num_vertices == 13718 and m.gender == "neutral"
    assert m.v_template.dtype == torch.float32
    torch.testing.assert_close(m.weights.sum(1), torch.ones(m.num_vertices), atol=1e-5, rtol=0)
    torch.testing.assert_close(m.J_regressor.sum(1), torch.ones(24), atol=1e-4, rtol=0)
    out = m()
    v, j = out.vertices[0], out.joints[0]
    height = float(v[:, 1].max() - v[:, 1].min())
    assert 1.6 < height < 1.8  # mean adult
    assert j[J["pelvis"]].abs().max() < 0.01  # the mean pelvis is the origin
    # SMPL's frame: y up, x to the body's left, facing +z; joints in anatomical order.
    heights = [float(j[J[name], 1]) for name in ("head", "neck", "spine3", "pelvis", "left_knee", "left_ankle")]
    assert heights == sorted(heights, reverse=True)
    for name in ("hip", "knee", "ankle", "shoulder", "elbow", "wrist", "hand"):
        assert j[J[f"left_{name}"], 0] > 0.05 > -0.05 > j[J[f"right_{name}"], 0]
        torch.testing.assert_close(j[J[f"left_{name}"]] * torch.tensor([-1.0, 1, 1]), j[J[f"right_{name}"]],
                                   atol=2e-3, rtol=0)  # left/right mirror images
    assert j[J["left_foot"], 2] > j[J["left_ankle"], 2] + 0.05  # toes point forward
    # T-pose: wrists level with the shoulders, arm span close to the height.
    assert abs(float(j[J["left_wrist"], 1] - j[J["left_shoulder"], 1])) < 0.02
    span = float(v[:, 0].max() - v[:, 0].min())
    assert 0.9 * height < span < 1.1 * height


def test_default_shape_space_changes_height_and_build(default):
    m = default
    betas = torch.zeros(4, m.num_betas)
    betas[0, 0], betas[1, 0], betas[2, 1], betas[3, 1] = -2, 2, -2, 2
    v = m(betas=betas).v_shaped
    height = v[:, :, 1].max(1).values - v[:, :, 1].min(1).values
    assert 0.2 < float(height[1] - height[0]) < 0.6  # +-2 std of beta0: roughly +-15-25 cm
    # Every component moves the mesh by a comparable, non-trivial amount (unit-variance betas).
    per_beta = m.shapedirs.norm(dim=(0, 1))
    assert (per_beta > 0.01).all() and per_beta[0] >= per_beta[-1]
    # Posing works on shaped bodies: bending the left knee 90 degrees moves the left ankle.
    pose = torch.zeros(1, 69)
    pose[0, 3 * (J["left_knee"] - 1)] = math.pi / 2
    j = m(betas=betas[1:2], body_pose=pose).joints[0]
    shin = m(betas=betas[1:2]).joints[0]
    knee_to_ankle = shin[J["left_ankle"]] - shin[J["left_knee"]]
    torch.testing.assert_close(j[J["left_ankle"]] - j[J["left_knee"]],
                               torch.stack([knee_to_ankle[0], -knee_to_ankle[2], knee_to_ankle[1]]), atol=1e-5, rtol=0)
    assert np.isclose(float((j[J["left_ankle"]] - j[J["left_knee"]]).norm()), float(knee_to_ankle.norm()), atol=1e-5)
