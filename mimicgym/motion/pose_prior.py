"""Gaussian mixture pose prior (SMPLify's ``MaxMixturePrior``), fitted with EM in torch.

SMPLify (Bogo et al., ECCV 2016) regularises the 69-d axis-angle body pose with a mixture
of Gaussians fitted to mocap poses. Here the mixture is fitted to poses sampled from the
generated clip library (:func:`fit_pose_prior_to_clips`); any (N, D) pose array works with
:meth:`GaussianMixturePrior.fit`. The fit is seeded (k-means++ start, then EM), so the same
data and seed give bit-identical parameters, and it saves/loads as npz.

Energy used by the fitter: the exact negative log-likelihood ``-log sum_k w_k N(x; mu_k,
Sigma_k)`` (a logsumexp, smooth everywhere), or SMPLify's max-mixture approximation
``min_k [0.5 mahalanobis_k(x) - log w_k + 0.5 log det Sigma_k]`` with ``max_mixture=True``.
"""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mimicgym.motion.datasets import clip_body_poses, training_clips
from mimicgym.utils.io import atomic_save_npz
from mimicgym.utils.seeding import make_rng

__all__ = [
    "GaussianMixturePrior", "fit_pose_prior_to_clips",
    "build_default_pose_prior", "default_pose_prior", "DEFAULT_PRIOR_PATH",
]

_NPZ_KEYS = ("weights", "means", "covariances")


def _kmeans_plus_plus(x: Tensor, k: int, rng: np.random.Generator) -> Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): (N, D) -> (k, D) initial means."""
    n = x.shape[0]
    centres = [x[int(rng.integers(n))]]
    d2 = ((x - centres[0]) ** 2).sum(-1)
    for _ in range(1, k):
        total = float(d2.sum())
        if total <= 0.0:  # fewer distinct points than components: reuse a random point
            idx = int(rng.integers(n))
        else:
            idx = int(rng.choice(n, p=(d2 / total).cpu().numpy()))
        centres.append(x[idx])
        d2 = torch.minimum(d2, ((x - x[idx]) ** 2).sum(-1))
    return torch.stack(centres)


def _component_log_prob(x: Tensor, means: Tensor, chol: Tensor) -> Tensor:
    """log N(x; mu_k, L_k L_k^T) for every point and component: (N, D) -> (N, K)."""
    d = x.shape[-1]
    diff = (x[:, None, :] - means[None]).transpose(0, 1)  # (K, N, D)
    # Solve L z = diff^T per component; ||z||^2 is the squared Mahalanobis distance.
    z = torch.linalg.solve_triangular(chol, diff.transpose(1, 2), upper=False)  # (K, D, N)
    maha = (z**2).sum(1).T  # (N, K)
    log_det = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)  # (K,)
    return -0.5 * (maha + log_det + d * math.log(2.0 * math.pi))


class GaussianMixturePrior(torch.nn.Module):
    """Full-covariance Gaussian mixture over D-dimensional poses.

    Buffers: ``weights`` (K,), ``means`` (K, D), ``covariances`` (K, D, D) and their
    Cholesky factors ``chol`` (K, D, D). Call it on (..., D) poses to get the energy (...,).
    """

    def __init__(self, weights: Tensor, means: Tensor, covariances: Tensor, max_mixture: bool = False):
        super().__init__()
        weights, means, covariances = (torch.as_tensor(a, dtype=torch.float64) for a in (weights, means, covariances))
        k, d = means.shape
        if weights.shape != (k,) or covariances.shape != (k, d, d):
            raise ValueError(
                f"inconsistent mixture shapes: weights {tuple(weights.shape)}, means {tuple(means.shape)}, "
                f"covariances {tuple(covariances.shape)}"
            )
        if not torch.isfinite(means).all() or not torch.isfinite(covariances).all():
            raise ValueError("mixture means/covariances contain NaN or inf")
        if (weights <= 0).any() or abs(float(weights.sum()) - 1.0) > 1e-6:
            raise ValueError(f"mixture weights must be positive and sum to 1, got {weights.tolist()}")
        chol, info = torch.linalg.cholesky_ex(covariances)
        if (info != 0).any():
            bad = torch.nonzero(info).flatten().tolist()
            raise ValueError(f"covariances of components {bad} are not positive definite")
        self.max_mixture = max_mixture
        self.register_buffer("weights", weights)
        self.register_buffer("means", means)
        self.register_buffer("covariances", covariances)
        self.register_buffer("chol", chol)

    @property
    def num_components(self) -> int:
        return self.means.shape[0]

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    # ---------------------------------------------------------------- density
    def component_log_prob(self, x: Tensor) -> Tensor:
        """log w_k + log N(x; mu_k, Sigma_k): (..., D) -> (..., K)."""
        if x.shape[-1] != self.dim:
            raise ValueError(f"poses must have last dimension {self.dim}, got shape {tuple(x.shape)}")
        flat = x.reshape(-1, self.dim)
        means, chol, w = (t.to(flat.dtype) for t in (self.means, self.chol, self.weights))
        out = _component_log_prob(flat, means, chol) + torch.log(w)
        return out.reshape(*x.shape[:-1], self.num_components)

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) under the mixture: (..., D) -> (...)."""
        return torch.logsumexp(self.component_log_prob(x), dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        """Pose energy: -log p(x), or SMPLify's max-mixture ``-max_k log(w_k N_k(x))``."""
        comp = self.component_log_prob(x)
        return -(comp.max(-1).values if self.max_mixture else torch.logsumexp(comp, dim=-1))

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n poses drawn from the mixture (seed it with a ``torch.Generator``): (n, D) float64."""
        comp = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return self.means[comp] + (self.chol[comp] @ eps[..., None])[..., 0]

    # ---------------------------------------------------------------- fitting
    @classmethod
    def fit(
        cls,
        poses: np.ndarray | Tensor,
        num_components: int = 8,
        *,
        seed: int = 0,
        max_iters: int = 200,
        tol: float = 1e-6,
        reg_covar: float = 1e-3,
        max_mixture: bool = False,
    ) -> "GaussianMixturePrior":
        """EM (Dempster et al. 1977) for a full-covariance mixture on (N, D) poses.

        ``reg_covar`` is added to every covariance diagonal: generated clips leave some
        joints still, and without a floor their variance would collapse to zero.
        Stops when the mean log-likelihood improves by less than ``tol``.
        """
        x = torch.as_tensor(np.asarray(poses), dtype=torch.float64)
        if x.ndim != 2:
            raise ValueError(f"poses must be (N, D), got shape {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise ValueError("poses contain NaN or inf")
        n, d = x.shape
        if not 1 <= num_components <= n:
            raise ValueError(f"num_components must be in [1, {n}] (number of poses), got {num_components}")
        if reg_covar <= 0:
            raise ValueError(f"reg_covar must be > 0, got {reg_covar}")
        rng = make_rng(seed)
        eye = torch.eye(d, dtype=torch.float64)
        means = _kmeans_plus_plus(x, num_components, rng)
        # Start from hard assignments to the nearest seed, then alternate E and M steps.
        resp = torch.nn.functional.one_hot(torch.cdist(x, means).argmin(1), num_components).double()
        prev = -math.inf
        for _ in range(max_iters):
            # M step: responsibility-weighted moments.
            nk = resp.sum(0) + 10 * torch.finfo(torch.float64).eps  # (K,)
            weights = nk / n
            means = (resp.T @ x) / nk[:, None]
            diff = x[None] - means[:, None]  # (K, N, D)
            cov = torch.einsum("kn,kni,knj->kij", resp.T, diff, diff) / nk[:, None, None] + reg_covar * eye
            chol = torch.linalg.cholesky(cov)
            # E step: posterior of each component given each pose.
            log_r = _component_log_prob(x, means, chol) + torch.log(weights)
            log_lik = torch.logsumexp(log_r, dim=1, keepdim=True)
            resp = torch.exp(log_r - log_lik)
            mean_ll = float(log_lik.mean())
            if mean_ll - prev < tol:
                break
            prev = mean_ll
        return cls(weights, means, cov, max_mixture=max_mixture)

    # ---------------------------------------------------------------- I/O
    def save(self, path: str | os.PathLike) -> None:
        atomic_save_npz(path, **{key: getattr(self, key).cpu().numpy() for key in _NPZ_KEYS})

    @classmethod
    def load(cls, path: str | os.PathLike, max_mixture: bool = False) -> "GaussianMixturePrior":
        path = Path(path)
        try:
            with np.load(path) as data:
                files = set(data.files)
                arrays = {k: data[k] for k in _NPZ_KEYS if k in files}
        except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
            raise ValueError(f"{path}: cannot read pose prior npz ({err})") from err
        missing = [k for k in _NPZ_KEYS if k not in arrays]
        if missing:
            raise ValueError(f"{path}: pose prior file lacks arrays {missing}")
        return cls(**arrays, max_mixture=max_mixture)


DEFAULT_PRIOR_PATH = Path(__file__).with_name("assets") / "pose_prior_gmm.npz"


def build_default_pose_prior(path: str | os.PathLike = DEFAULT_PRIOR_PATH, seed: int = 0) -> GaussianMixturePrior:
    """Fit the shipped prior: 8 components (as SMPLify), variance floor 0.01 rad^2 (0.1 rad std)."""
    prior = GaussianMixturePrior.fit(clip_body_poses(training_clips()), 8, seed=seed, reg_covar=1e-2)
    prior.save(path)
    return prior


def default_pose_prior(max_mixture: bool = False) -> GaussianMixturePrior:
    """The shipped prior (``python -m mimicgym.motion.pose_prior`` rebuilds it)."""
    return GaussianMixturePrior.load(DEFAULT_PRIOR_PATH, max_mixture=max_mixture)


def fit_pose_prior_to_clips(clips, num_components: int = 8, *, seed: int = 0, **fit_kwargs) -> GaussianMixturePrior:
    """Fit a prior to the body poses of every frame of ``clips`` (see :func:`clip_body_poses`)."""
    return GaussianMixturePrior.fit(clip_body_poses(clips), num_components, seed=seed, **fit_kwargs)


if __name__ == "__main__":
    built = build_default_pose_prior()
    print(f"wrote {DEFAULT_PRIOR_PATH}: {built.num_components} components over {built.dim} dims")
