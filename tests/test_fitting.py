"""SMPLify-style fitting on synthetic ground truth: 3D joints, noisy 2D keypoints, sequences.

Ground truth: shapes betas ~ N(0, 1), poses from the generated clip library perturbed by
N(0, 0.05^2) rad per component (2D), or sampled from the shipped Gaussian-mixture prior (3D),
random orientation and translation. Camera: f = 1000 px, 1000 x 1000 image, 3 m away,
keypoint noise sigma = 2 px. Errors are root-aligned MPJPE (pelvis subtracted), in mm.
"""

import numpy as np
import pytest
import torch

from mimicgym.motion import clip_library as lib
from mimicgym.motion.body_model import BodyModel
from mimicgym.motion.camera import PerspectiveCamera
from mimicgym.motion.datasets import clip_body_poses
from mimicgym.motion.fitting import (
    FitConfig,
    bending_energy,
    fit_sequence,
    fit_to_keypoints,
    geman_mcclure,
    model_joints,
)
from mimicgym.motion.fitting_energy import row_lbfgs
from mimicgym.motion.pose_prior import GaussianMixturePrior, default_pose_prior

F64 = torch.float64


@pytest.fixture(scope="module")
def bm():
    return BodyModel.default(dtype=F64)


@pytest.fixture(scope="module")
def library_poses():
    clips = [lib.walk(), lib.run(), lib.squat(), lib.jumping_jacks(), lib.turn()]
    return torch.as_tensor(clip_body_poses(clips + [c.mirror() for c in clips]))


@pytest.fixture(scope="module")
def library_prior(library_poses):
    return GaussianMixturePrior.fit(library_poses, 8, seed=0, reg_covar=1e-2)


def camera():
    # 3 m in front of the body (SMPL faces +z, y up): OpenCV axes x right, y down, z forward.
    R = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=F64))
    return PerspectiveCamera.create(1000.0, (1000, 1000), rotation=R,
                                    translation=torch.tensor([0.0, 0.0, 3.0], dtype=F64))


def mpjpe(a, b):
    """Root-aligned mean per-joint position error per frame, mm."""
    return ((a - a[:, :1]) - (b - b[:, :1])).norm(dim=-1).mean(-1) * 1000.0


def pa_mpjpe(a, b):
    """Error after the best similarity transform (Procrustes), mm."""
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    U, S, Vt = torch.linalg.svd(b.transpose(1, 2) @ a)
    d = torch.sign(torch.linalg.det(U @ Vt))
    D = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    R = U @ D @ Vt
    s = (S * torch.diagonal(D, dim1=1, dim2=2)).sum(-1) / a.pow(2).sum((1, 2))
    return (s[:, None, None] * a @ R.transpose(1, 2) - b).norm(dim=-1).mean(-1) * 1000.0


def synthetic_2d(bm, library_poses, seed, n):
    g = torch.Generator().manual_seed(seed)
    betas = torch.randn(n, 10, generator=g, dtype=F64)
    pose = library_poses[torch.randint(len(library_poses), (n,), generator=g)]
    pose = pose + 0.05 * torch.randn(n, 69, generator=g, dtype=F64)
    yaw = (torch.rand(n, generator=g, dtype=F64) - 0.5) * (np.pi / 2)  # facing the camera +-45 deg
    orient = torch.stack([torch.zeros(n, dtype=F64), yaw, torch.zeros(n, dtype=F64)], 1)
    transl = 0.3 * torch.randn(n, 3, generator=g, dtype=F64)
    joints = model_joints(bm, betas, pose, orient, transl)
    keypoints = camera().project(joints) + 2.0 * torch.randn(n, 24, 2, generator=g, dtype=F64)
    return betas, joints, keypoints


def test_robust_and_bending_terms():
    r2 = torch.tensor([0.0, 1e-4, 100.0**2, 1e12], dtype=F64)
    out = geman_mcclure(r2, rho=100.0)
    assert out[0] == 0 and out[1] == pytest.approx(1e-4, rel=1e-8)  # quadratic near zero
    assert out[2] == pytest.approx(100.0**2 / 2)  # half the cap at r = rho
    assert out[3] == pytest.approx(100.0**2, rel=1e-6)  # saturates at rho^2
    pose = torch.zeros(3, 69, dtype=F64)
    pose[1, 3 * 17 + 1] = 0.5  # left elbow (joint 18) +y: hyperextension
    pose[2, 3 * 17 + 1] = -0.5  # left elbow flexion
    e = bending_energy(pose)
    assert e[0] == pytest.approx(4.0)  # four joints at exp(0)^2
    assert e[1] == pytest.approx(3 + np.exp(1.0)) and e[2] == pytest.approx(3 + np.exp(-1.0))


def test_3d_joints_fit_within_10mm(bm):
    g = torch.Generator().manual_seed(0)
    n = 4
    betas = torch.randn(n, 10, generator=g, dtype=F64)
    prior = default_pose_prior()
    pose = prior.sample(n, generator=g)
    orient = torch.randn(n, 3, generator=g, dtype=F64)
    transl = torch.randn(n, 3, generator=g, dtype=F64)
    joints = model_joints(bm, betas, pose, orient, transl)
    res = fit_to_keypoints(bm, joints3d=joints, pose_prior=prior)
    err = mpjpe(res.joints, joints)
    assert (err < 10.0).all(), err
    # Global placement too: the absolute joint error is as small.
    assert ((res.joints - joints).norm(dim=-1).mean(-1) * 1000 < 10.0).all()
    assert res.stage_losses[-1] == pytest.approx(res.loss) and len(res.stage_losses) == 5


SEEDS_2D = (1, 2, 3)


@pytest.fixture(scope="module")
def data_2d(bm, library_poses):
    """3 frames from each of SEEDS_2D, concatenated: betas, joints, keypoints (9 frames)."""
    return tuple(torch.cat(x) for x in zip(*(synthetic_2d(bm, library_poses, s, 3) for s in SEEDS_2D)))


@pytest.mark.slow
def test_2d_keypoints_known_shape_within_40mm(bm, data_2d, library_prior):
    """Shape known (betas given), default config, 9 frames: mean root-aligned MPJPE under
    40 mm (measured 23.0 mm), every frame under 60 mm (worst 47.8 mm: limbs near the image
    plane keep a depth ambiguity that the prior resolves towards clean library poses, not
    the perturbed truth).
    """
    betas, joints, keypoints = data_2d
    res = fit_to_keypoints(bm, keypoints2d=keypoints, camera=camera(), pose_prior=library_prior, betas=betas)
    errors = mpjpe(res.joints, joints)
    assert (camera().project(res.joints) - keypoints).norm(dim=-1).mean() < 4.0  # noise alone: 2.5 px
    assert torch.equal(res.betas, betas)
    assert errors.mean() < 40.0 and errors.max() < 60.0, errors


@pytest.mark.slow
def test_2d_keypoints_unknown_shape_within_40mm(bm, data_2d, library_prior):
    """Shape fitted too (the issue's case), default config, 9 frames: mean root-aligned
    MPJPE under 40 mm (measured 37.0 mm; 34.7 mm on 18 frames of seeds 4-9). One view
    cannot tell a small near person from a large far one: aligning the scale alone leaves
    29.7 mm, the best similarity transform (Procrustes) 26.0 mm, asserted < 30 mm.
    """
    _, joints, keypoints = data_2d
    res = fit_to_keypoints(bm, keypoints2d=keypoints, camera=camera(), pose_prior=library_prior)
    errors, pa_errors = mpjpe(res.joints, joints), pa_mpjpe(res.joints, joints)
    assert (camera().project(res.joints) - keypoints).norm(dim=-1).mean() < 4.0
    assert errors.mean() < 40.0 and pa_errors.mean() < 30.0, (errors, pa_errors)


def test_row_lbfgs_matches_each_row_alone():
    """Per-row L-BFGS: a batch of independent quadratics of very different conditioning
    reaches each row's minimiser, exactly as that row optimised alone."""
    g = torch.Generator().manual_seed(0)
    A = torch.randn(3, 6, 6, generator=g, dtype=F64)
    H = A @ A.transpose(1, 2) + torch.diag_embed(torch.tensor([[1e-2] * 6, [1.0] * 6, [1e2] * 6], dtype=F64))
    c = torch.randn(3, 6, generator=g, dtype=F64)

    def energy(x):  # 0.5 x^T H x - c^T x per row
        return 0.5 * (x[:, None] @ H @ x[..., None])[:, 0, 0] - (c * x).sum(-1)

    x = row_lbfgs(torch.zeros(3, 6, dtype=F64), energy, iters=100, history_size=10)
    assert torch.allclose(x, torch.linalg.solve(H, c), atol=1e-6)
    alone = row_lbfgs(torch.zeros(1, 6, dtype=F64), lambda z: energy(z.expand(3, -1))[1:2], iters=100, history_size=10)
    assert torch.allclose(alone[0], x[1], atol=1e-9)


def test_2d_camera_translation_and_determinism(bm, library_poses, library_prior):
    betas, joints, keypoints = synthetic_2d(bm, library_poses, 3, 1)
    cfg = FitConfig(stage_iters=(10, 10, 10, 60), hypotheses=1)
    res = fit_to_keypoints(bm, keypoints2d=keypoints, camera=camera(), pose_prior=library_prior, config=cfg,
                           betas=betas, optimize_camera_translation=True)  # fmt: skip
    assert torch.equal(res.transl, torch.zeros_like(res.transl))  # the freedom went to the camera
    assert (res.camera.project(res.joints) - keypoints).norm(dim=-1).mean() < 4.0
    again = fit_to_keypoints(bm, keypoints2d=keypoints, camera=camera(), pose_prior=library_prior, config=cfg,
                             betas=betas, optimize_camera_translation=True)  # fmt: skip
    assert torch.equal(again.body_pose, res.body_pose) and torch.equal(again.camera.translation, res.camera.translation)


@pytest.mark.slow
def test_sequence_becomes_a_clip(bm, library_prior):
    walk = lib.walk()
    T = 6
    pose = torch.as_tensor(clip_body_poses([walk]))[:T]
    g = torch.Generator().manual_seed(4)
    betas = torch.randn(1, 10, generator=g, dtype=F64).expand(T, -1)
    orient = torch.zeros(T, 3, dtype=F64)
    transl = torch.stack([torch.zeros(T), torch.zeros(T), torch.linspace(0, 0.2, T)], 1).to(F64)
    joints = model_joints(bm, betas, pose, orient, transl)
    noisy = joints + 0.01 * torch.randn(joints.shape, generator=g, dtype=F64)  # 1 cm jitter
    clip, res = fit_sequence(bm, joints3d=noisy, pose_prior=library_prior, fps=30.0, name="walk_fit",
                             config=FitConfig(stage_iters=(20, 20, 20, 80)),
                             return_result=True)  # fmt: skip
    assert clip.num_frames == T and clip.fps == 30.0 and clip.name == "walk_fit"
    assert torch.allclose(res.betas, res.betas[:1].expand(T, -1))  # one shape for the sequence
    # The clip replays the fit: its FK equals the fitted joints mapped into the z-up world.
    C = clip.skeleton.upright_matrix()
    assert np.abs(clip.joint_positions() - res.joints.numpy() @ C.T).max() < 1e-6
    # The model, shared shape and smoothness filter the jitter: closer to the truth than the input.
    fit_err, noise_err = mpjpe(res.joints, joints).mean(), mpjpe(noisy, joints).mean()
    assert fit_err < 0.7 * noise_err, (fit_err, noise_err)  # measured 12.1 vs 18.8 mm


def test_bad_inputs_are_named(bm):
    with pytest.raises(ValueError, match="exactly one"):
        fit_to_keypoints(bm)
    with pytest.raises(ValueError, match=r"joints3d must be \(B, 24, 3\)"):
        fit_to_keypoints(bm, joints3d=torch.zeros(2, 17, 3))
    with pytest.raises(ValueError, match=r"joints3d\[0, 0, 0\] is nan"):
        fit_to_keypoints(bm, joints3d=torch.full((1, 24, 3), float("nan")))
    with pytest.raises(ValueError, match="camera"):
        fit_to_keypoints(bm, keypoints2d=torch.zeros(1, 24, 2))
    with pytest.raises(ValueError, match="confidence"):
        fit_to_keypoints(bm, joints3d=torch.zeros(1, 24, 3), confidence=-torch.ones(1, 24))
    with pytest.raises(ValueError, match="T >= 2"):
        fit_sequence(bm, joints3d=torch.zeros(1, 24, 3))
    with pytest.raises(ValueError, match="stage_iters"):
        FitConfig(stage_iters=(10,))
    with pytest.raises(ValueError, match="optimizer"):
        FitConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="focal_length"):
        PerspectiveCamera.create(-1.0)
