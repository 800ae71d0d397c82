"""Shapes with known factors, the mutual information gap against a reference, and the beta-VAE study's contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import mutual_info_score

from mimicgym.errors import ConfigError
from mimicgym.generative.disentanglement import (
    SHAPE_FACTORS,
    beta_vae_study,
    mutual_information_gap,
    render_shapes,
    shapes,
)


def test_shapes_are_binary_seeded_and_cover_their_factor_grids():
    images, factors = shapes(20000, seed=0)
    assert images.shape == (20000, 1, 16, 16) and factors.shape == (20000, 5) and factors.dtype == torch.long
    assert set(images.unique().tolist()) == {0.0, 1.0}
    for k, values in enumerate(SHAPE_FACTORS.values()):
        counts = torch.bincount(factors[:, k], minlength=len(values))
        assert len(counts) == len(values)
        assert counts.min() > 0.85 * 20000 / len(values)  # uniform over the grid
    assert torch.equal(render_shapes(factors[:50]), images[:50])
    first, again, other = shapes(50, seed=0), shapes(50, seed=0), shapes(50, seed=1)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1]) and not torch.equal(first[1], other[1])


def _render_one(shape, scale, rotation, x, y, size=16):
    return render_shapes(torch.tensor([[shape, scale, rotation, x, y]]), size)[0, 0]


def test_an_upright_square_covers_the_pixels_it_should():
    # Half-width 2 at centre (4.5, 11.5): pixel centres 2.5..6.5 across, 9.5..13.5 down -> a 5 x 5 block.
    image = _render_one(0, 0, 0, 0, 7)
    expected = torch.zeros(16, 16)
    expected[9:14, 2:7] = 1
    assert torch.equal(image, expected)
    assert not torch.equal(_render_one(0, 3, 2, 4, 4), _render_one(0, 3, 0, 4, 4))  # rotation shows
    assert not torch.equal(_render_one(1, 3, 1, 4, 4), _render_one(1, 3, 3, 4, 4))  # also for ellipses
    assert _render_one(0, 3, 0, 3, 3).sum() > _render_one(1, 3, 0, 3, 3).sum() > 0  # ellipse inside the square
    big = _render_one(0, 0, 0, 0, 7, size=32)
    assert big.shape == (32, 32) and big.sum() == 64  # 4 x 4 -> 8 x 8 pixels, centres 5.5..12.5 across
    with pytest.raises(ValueError, match=r"factor 'rotation' indexes 4 values, got indices in \[4, 4\]"):
        render_shapes(torch.tensor([[0, 0, 4, 0, 0]]))


def _reference_mig(codes: np.ndarray, factors: np.ndarray, bins: int) -> float:
    """MIG with numpy's histogram edges and scikit-learn's plug-in mutual information, one pair at a time."""
    gaps = []
    for k in range(factors.shape[1]):
        mi = []
        for j in range(codes.shape[1]):
            edges = np.histogram_bin_edges(codes[:, j], bins)
            discrete = np.clip(np.digitize(codes[:, j], edges[1:-1]), 0, bins - 1)
            mi.append(mutual_info_score(factors[:, k], discrete))
        _, counts = np.unique(factors[:, k], return_counts=True)
        p = counts / counts.sum()
        top = sorted(mi, reverse=True)
        gaps.append((top[0] - top[1]) / -(p * np.log(p)).sum())
    return float(np.mean(gaps))


def test_mig_equals_a_reference_implementation():
    rng = np.random.default_rng(0)
    factors = rng.integers(0, [2, 4, 6], size=(3000, 3))
    codes = np.concatenate([factors @ rng.normal(size=(3, 4)), rng.normal(size=(3000, 4))], axis=1)
    codes += 0.5 * rng.normal(size=codes.shape)
    for bins in (5, 20):
        assert mutual_information_gap(codes, factors, bins=bins) == pytest.approx(
            _reference_mig(codes, factors, bins), abs=1e-9)


def test_mig_scores_aligned_mixed_duplicated_and_noise_codes():
    _, factors = shapes(10000, seed=1)
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(10000, 3, generator=g)
    aligned = torch.cat([factors.float(), noise], 1)  # one latent per factor, plus 3 noise latents
    assert mutual_information_gap(aligned, factors) > 0.98
    mixing = torch.linalg.qr(torch.randn(8, 8, generator=g))[0]
    assert mutual_information_gap(aligned @ mixing, factors) < 0.2  # every latent mixes the factors
    # Two latents equal to the shape factor: its gap vanishes, the others keep theirs.
    duplicated = torch.cat([factors.float(), factors[:, :1].float()], 1)
    assert mutual_information_gap(duplicated, factors) == pytest.approx(0.8, abs=0.01)
    assert mutual_information_gap(torch.randn(10000, 8, generator=g), factors) < 0.02


def test_mig_rejects_what_it_cannot_score():
    factors = torch.zeros(10, 2, dtype=torch.long)
    with pytest.raises(ValueError, match=r"L >= 2 latents, got shape \(10, 1\)"):
        mutual_information_gap(torch.randn(10, 1), factors)
    with pytest.raises(ValueError, match=r"N = 10 rows, got shape \(9, 2\)"):
        mutual_information_gap(torch.randn(10, 3), factors[:9])
    with pytest.raises(ValueError, match="must be discrete"):
        mutual_information_gap(torch.randn(10, 3), torch.rand(10, 2))
    with pytest.raises(ValueError, match="single value"):
        mutual_information_gap(torch.randn(10, 3), factors)
    with pytest.raises(ConfigError, match="bins must be a positive int, got 0"):
        mutual_information_gap(torch.randn(10, 3), factors + torch.arange(10)[:, None], bins=0)
    with pytest.raises(ConfigError, match="size must be at least 8 pixels, got 4"):
        shapes(3, size=4)


def test_quick_study_returns_the_contract_and_is_seeded():
    result = beta_vae_study(quick=True)
    assert list(result) == ["beta_1", "beta_4"]
    for record in result.values():
        assert set(record) == {"mig_mean", "mig", "reconstruction"}
        assert len(record["mig"]) == 3 and all(0.0 <= m <= 1.0 for m in record["mig"])
        assert record["mig_mean"] == pytest.approx(float(np.mean(record["mig"])))
        assert isinstance(record["reconstruction"], float) and record["reconstruction"] > 0
    # The KL term costs reconstruction: beta = 4 reconstructs worse.
    assert result["beta_4"]["reconstruction"] > result["beta_1"]["reconstruction"]
    alone = beta_vae_study(betas=(4.0,), seeds=(0,), quick=True)
    assert list(alone) == ["beta_4"] and alone["beta_4"]["mig"] == result["beta_4"]["mig"][:1]
