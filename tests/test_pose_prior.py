"""Gaussian mixture pose prior: density against torch's MultivariateNormal, EM recovery, I/O."""

import math

import numpy as np
import pytest
import torch

from mimicgym.motion.pose_prior import GaussianMixturePrior


def _true_mixture(d=4):
    weights = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    means = torch.tensor([[0.0] * d, [3.0] * d, [-3.0, 3.0] * (d // 2)], dtype=torch.float64)
    a = torch.randn(3, d, d, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    cov = 0.2 * a @ a.transpose(1, 2) / d + 0.1 * torch.eye(d, dtype=torch.float64)
    return GaussianMixturePrior(weights, means, cov)


def test_log_prob_matches_multivariate_normal_mixture():
    gmm = _true_mixture()
    x = torch.randn(7, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    comps = [torch.distributions.MultivariateNormal(m, c) for m, c in zip(gmm.means, gmm.covariances)]
    ref = torch.logsumexp(torch.stack([c.log_prob(x) + math.log(w) for c, w in zip(comps, gmm.weights.tolist())]), 0)
    torch.testing.assert_close(gmm.log_prob(x), ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gmm(x), -ref)
    # Max-mixture energy upper-bounds the exact one by at most log K.
    gmm.max_mixture = True
    gap = gmm(x) + ref
    assert (gap >= -1e-12).all() and (gap <= math.log(3) + 1e-12).all()


def test_em_recovers_known_mixture_and_is_deterministic():
    true = _true_mixture()
    x = true.sample(6000, generator=torch.Generator().manual_seed(3))
    fit = GaussianMixturePrior.fit(x, 3, seed=0, reg_covar=1e-6)
    order = torch.argsort(fit.means[:, 0] + 0.1 * fit.means[:, 1])
    true_order = torch.argsort(true.means[:, 0] + 0.1 * true.means[:, 1])
    torch.testing.assert_close(fit.weights[order], true.weights[true_order], atol=0.02, rtol=0)
    torch.testing.assert_close(fit.means[order], true.means[true_order], atol=0.05, rtol=0)
    torch.testing.assert_close(fit.covariances[order], true.covariances[true_order], atol=0.05, rtol=0)
    # Mean log-likelihood of the fit is at least that of the generating model (it is the MLE).
    assert fit.log_prob(x).mean() >= true.log_prob(x).mean() - 1e-9
    again = GaussianMixturePrior.fit(x, 3, seed=0, reg_covar=1e-6)
    assert torch.equal(again.means, fit.means) and torch.equal(again.covariances, fit.covariances)


def test_save_load_roundtrip_and_bad_files(tmp_path):
    gmm = _true_mixture()
    gmm.save(tmp_path / "prior.npz")
    back = GaussianMixturePrior.load(tmp_path / "prior.npz")
    x = torch.randn(5, 4, dtype=torch.float64)
    assert torch.equal(back(x), gmm(x))
    np.savez(tmp_path / "partial.npz", weights=np.ones(1), means=np.zeros((1, 4)))
    with pytest.raises(ValueError, match="covariances"):
        GaussianMixturePrior.load(tmp_path / "partial.npz")
    (tmp_path / "trunc.npz").write_bytes((tmp_path / "prior.npz").read_bytes()[:50])
    with pytest.raises(ValueError, match="trunc.npz"):
        GaussianMixturePrior.load(tmp_path / "trunc.npz")


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="num_components"):
        GaussianMixturePrior.fit(np.zeros((3, 2)), 5)
    with pytest.raises(ValueError, match="NaN"):
        GaussianMixturePrior.fit(np.full((3, 2), np.nan), 1)
    with pytest.raises(ValueError, match="last dimension 4"):
        _true_mixture()(torch.zeros(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="positive definite"):
        GaussianMixturePrior(torch.ones(1), torch.zeros(1, 2), torch.zeros(1, 2, 2))


def test_shipped_prior_prefers_clip_poses():
    from mimicgym.motion import clip_library as lib
    from mimicgym.motion.pose_prior import clip_body_poses, default_pose_prior

    prior = default_pose_prior()
    assert prior.num_components == 8 and prior.dim == 69
    walk = torch.as_tensor(clip_body_poses([lib.walk()]))
    noise = 0.5 * torch.randn(len(walk), 69, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    # A walking pose is far more likely than the same pose with 0.5 rad noise per component.
    assert (prior.log_prob(walk) > prior.log_prob(walk + noise) + 50).all()


def test_clip_body_poses_inverts_axis_angle():
    from mimicgym.motion.clip import MotionClip
    from mimicgym.motion.pose_prior import clip_body_poses
    from mimicgym.motion.rotations import axis_angle_to_quat
    from mimicgym.motion.skeleton import SMPL_SKELETON

    aa = 0.3 * torch.randn(3, 24, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    clip = MotionClip(SMPL_SKELETON, 30.0, np.zeros((3, 3)), axis_angle_to_quat(aa).numpy())
    assert aa.norm(dim=-1).max() < np.pi  # unique axis-angle below pi
    np.testing.assert_allclose(clip_body_poses([clip]), aa[:, 1:].reshape(3, 69).numpy(), atol=1e-9)
