"""Sample-quality metrics against scipy, hand-written double loops, closed forms and the data's own structure."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

import mimicgym.generative.metrics as metrics
from mimicgym.errors import ConfigError
from mimicgym.generative.data import digit_labels, grey_digits, toy2d
from mimicgym.generative.metrics import (
    class_accuracy,
    digit_frechet_distance,
    eight_gaussians_entropy,
    eight_gaussians_log_prob,
    eight_gaussians_modes,
    energy_distance,
    fit_digit_classifier,
    frechet_distance,
    gaussian_frechet_distance,
    mmd,
    mode_fractions,
    modes_covered,
    random_shift,
    toy2d_entropy,
)


def _randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.fixture(scope="module")
def classifier():
    return fit_digit_classifier(seed=0)


# -- energy distance and MMD ---------------------------------------------------------------------
def test_energy_distance_is_the_square_of_scipys_in_1d():
    x, y = _randn(300, seed=1), _randn(200, seed=2) * 1.5 + 0.3
    ours = energy_distance(x, y)
    assert ours == pytest.approx(scipy.stats.energy_distance(x.numpy(), y.numpy()) ** 2, rel=1e-12)
    assert energy_distance(x[:, None], y[:, None]) == ours  # (n,) is n scalars, the same as (n, 1)


def test_energy_distance_equals_a_hand_computation_in_2d():
    x, y = _randn(7, 2, seed=3), _randn(5, 2, seed=4) + 1.0

    def mean_distance(a, b, skip_diagonal):
        terms = [float(np.linalg.norm(a[i] - b[j])) for i in range(len(a)) for j in range(len(b))
                 if not (skip_diagonal and i == j)]
        return sum(terms) / len(terms)

    a, b = x.numpy(), y.numpy()
    v = 2 * mean_distance(a, b, False) - mean_distance(a, a, False) - mean_distance(b, b, False)
    u = 2 * mean_distance(a, b, False) - mean_distance(a, a, True) - mean_distance(b, b, True)
    assert energy_distance(x, y) == pytest.approx(v, rel=1e-12)
    assert energy_distance(x, y, unbiased=True) == pytest.approx(u, rel=1e-12)
    assert energy_distance(y, x) == pytest.approx(v, rel=1e-12)
    assert abs(energy_distance(x, x)) < 1e-14


def test_energy_distance_and_mmd_separate_a_shift_from_a_resample():
    x, y = toy2d("eight_gaussians", 2000, seed=1), toy2d("eight_gaussians", 2000, seed=2)
    shifted = y + torch.tensor([0.5, 0.0])  # 1.4 sigma of one mode
    assert energy_distance(x, shifted) > 20 * abs(energy_distance(x, y, unbiased=True))
    assert energy_distance(x, shifted) > 0.02
    assert mmd(x, shifted) > 20 * abs(mmd(x, y))
    assert abs(mmd(x, y)) < 2e-3


def test_mmd_equals_a_double_loop_with_one_and_several_bandwidths():
    x, y = _randn(6, 3, seed=5), _randn(4, 3, seed=6) + 0.5

    def reference(widths):
        def k(a, b):
            return sum(math.exp(-float(((a - b) ** 2).sum()) / (2 * h * h)) for h in widths)

        n, m = len(x), len(y)
        xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
        yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
        xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
        return xx + yy - 2 * xy

    assert mmd(x, y, bandwidths=0.7) == pytest.approx(reference([0.7]), rel=1e-12)
    assert mmd(x, y, bandwidths=(0.3, 1.0, 4.0)) == pytest.approx(reference([0.3, 1.0, 4.0]), rel=1e-12)
    assert mmd(x, y) == pytest.approx(reference(metrics.DEFAULT_BANDWIDTHS), rel=1e-12)


def test_blocked_pairwise_sums_equal_one_block(monkeypatch):
    x, y = _randn(53, 2, seed=7), _randn(41, 2, seed=8) * 2
    whole = energy_distance(x, y), energy_distance(x, y, unbiased=True), mmd(x, y)
    monkeypatch.setattr(metrics, "_BLOCK_ELEMENTS", 100)  # two rows of 41 or 53 per block
    blocked = energy_distance(x, y), energy_distance(x, y, unbiased=True), mmd(x, y)
    assert blocked == pytest.approx(whole, rel=1e-12, abs=1e-15)


def test_two_sample_errors_name_the_problem():
    x = torch.zeros(5, 2)
    with pytest.raises(ValueError, match="same example size, got 2 and 3"):
        energy_distance(x, torch.zeros(5, 3))
    bad = x.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match=r"y\[3, 1\] is nan"):
        mmd(x, bad)
    with pytest.raises(ValueError, match="x needs at least 2 examples here, got 1"):
        mmd(x[:1], x)
    with pytest.raises(ConfigError, match="bandwidths must be > 0, got -1.0"):
        mmd(x, x, bandwidths=(1.0, -1.0))
    with pytest.raises(ConfigError, match=r"bandwidths must name at least one bandwidth, got \(\)"):
        mmd(x, x, bandwidths=())


# -- modes and entropies of the toy sets -------------------------------------------------------------
def test_eight_gaussians_modes_describe_toy2d():
    centres, sigma = eight_gaussians_modes()
    data = toy2d("eight_gaussians", 40_000, seed=3).double()
    nearest = torch.cdist(data, centres).argmin(1)
    for k in range(8):
        mine = data[nearest == k]
        assert len(mine) / len(data) == pytest.approx(1 / 8, abs=0.01)
        assert torch.allclose(mine.mean(0), centres[k], atol=0.02)
        assert torch.allclose(mine.std(0), torch.full((2,), sigma, dtype=torch.float64), rtol=0.03)
    assert modes_covered(data, centres, sigma) == 8
    assert mode_fractions(data, centres, sigma).sum() == pytest.approx(0.989, abs=0.005)  # 3 sigma of a 2-D normal


def test_modes_covered_counts_the_threshold_and_radius_exactly():
    centres, sigma = eight_gaussians_modes()
    direction = torch.tensor([0.6, 0.8], dtype=torch.float64)
    samples = torch.cat([
        centres[0].expand(97, 2),  # mode 0: 97%
        (centres[1] + 2.9 * sigma * direction).expand(2, 2),  # mode 1: 2% within 3 sigma: counts
        (centres[2] + 3.1 * sigma * direction).expand(1, 2),  # mode 2: outside 3 sigma: does not
    ])
    assert mode_fractions(samples, centres, sigma).tolist() == [0.97, 0.02] + [0.0] * 6
    assert modes_covered(samples, centres, sigma) == 2
    assert modes_covered(samples, centres, sigma, min_fraction=0.03) == 1
    assert modes_covered(samples, centres, sigma, radius=3.2) == 2  # 1% at mode 2 is under 2%
    assert modes_covered(samples, centres, sigma, radius=3.2, min_fraction=0.01) == 3
    with pytest.raises(ConfigError, match="min_fraction must lie in \\(0, 1\\], got 0"):
        modes_covered(samples, centres, sigma, min_fraction=0)
    with pytest.raises(ConfigError, match="sigma must be > 0, got -0.5"):
        modes_covered(samples, centres, -0.5)


def test_eight_gaussians_log_prob_equals_torch_mixture():
    centres, sigma = eight_gaussians_modes()
    mixture = MixtureSameFamily(Categorical(torch.full((8,), 1 / 8, dtype=torch.float64)),
                                Independent(Normal(centres, torch.full_like(centres, sigma)), 1))
    x = _randn(50, 2, seed=9) * 2.5
    assert torch.allclose(eight_gaussians_log_prob(x), mixture.log_prob(x), rtol=1e-12, atol=1e-12)


def test_eight_gaussians_entropy_by_quadrature_and_monte_carlo():
    _, sigma = eight_gaussians_modes()
    disjoint = math.log(8) + 1 + math.log(2 * math.pi * sigma**2)  # the 2.838 quoted for FFJORD's toy data
    assert disjoint == pytest.approx(2.83788, abs=1e-5)
    quadrature = eight_gaussians_entropy()
    assert quadrature == pytest.approx(eight_gaussians_entropy(step=0.04), abs=1e-10)
    assert quadrature == pytest.approx(2.83158, abs=1e-5)
    # Overlapping modes: the mixture's entropy is the disjoint one less H(mode | X).
    x = toy2d("eight_gaussians", 200_000, seed=4).double()
    centres, _ = eight_gaussians_modes()
    posterior = torch.softmax(-torch.cdist(x, centres).pow(2) / (2 * sigma**2), dim=1)
    mode_entropy = float(-torch.special.xlogy(posterior, posterior).sum(1).mean())
    assert quadrature == pytest.approx(disjoint - mode_entropy, abs=3e-4)
    monte_carlo = -eight_gaussians_log_prob(x)
    assert quadrature == pytest.approx(float(monte_carlo.mean()), abs=4 * float(monte_carlo.std()) / math.sqrt(len(x)))
    assert toy2d_entropy("eight_gaussians") == quadrature


def test_checkerboard_is_uniform_on_area_32():
    x = toy2d("checkerboard", 64_000, seed=5).double()
    assert bool((x.abs() <= 4).all())
    cells = torch.floor((x + 4) / 2).long()  # 4 x 4 cells of side 2
    counts = torch.bincount(cells[:, 0] * 4 + cells[:, 1], minlength=16).view(4, 4)
    occupied = counts > 0
    assert int(occupied.sum()) == 8  # 8 cells of area 4: area 32
    assert bool((occupied.sum(0) == 2).all() and (occupied.sum(1) == 2).all())
    expected = len(x) / 8
    assert bool(((counts[occupied] - expected).abs() < 4 * math.sqrt(expected)).all())
    # Uniform inside each cell: a 4 x 4 histogram of the position within the cell is flat.
    within = torch.floor((x + 4) % 2 * 2).long()
    sub = torch.bincount(within[:, 0] * 4 + within[:, 1], minlength=16).double()
    chi2 = float(((sub - len(x) / 16) ** 2 / (len(x) / 16)).sum())
    assert chi2 < scipy.stats.chi2.ppf(0.999, 15)
    assert toy2d_entropy("checkerboard") == math.log(32) == pytest.approx(3.4657, abs=1e-4)
    with pytest.raises(ConfigError, match="got 'two_moons'"):
        toy2d_entropy("two_moons")


# -- Frechet distance --------------------------------------------------------------------------------
def test_frechet_distance_equals_the_scipy_sqrtm_formula():
    a = _randn(60, 5, seed=10) @ _randn(5, 5, seed=11)
    b = _randn(80, 5, seed=12) @ _randn(5, 5, seed=13) + 0.5
    an, bn = a.numpy(), b.numpy()
    sa, sb = np.cov(an, rowvar=False), np.cov(bn, rowvar=False)
    root = scipy.linalg.sqrtm(sa @ sb).real
    reference = ((an.mean(0) - bn.mean(0)) ** 2).sum() + np.trace(sa + sb - 2 * root)
    assert frechet_distance(a, b) == pytest.approx(reference, rel=1e-9)
    assert frechet_distance(b, a) == pytest.approx(reference, rel=1e-9)
    assert abs(frechet_distance(a, a)) < 1e-9
    assert frechet_distance(a.float(), b.float()) == pytest.approx(reference, rel=1e-5)


def test_frechet_distance_of_known_gaussians():
    # Diagonal covariances commute: Tr(S_a + S_b - 2 (S_a S_b)^{1/2}) = sum (sqrt a_i - sqrt b_i)^2.
    mu_a, mu_b = torch.tensor([1.0, 0.0, -2.0]), torch.tensor([0.0, 0.5, -2.0])
    var_a, var_b = torch.tensor([1.0, 4.0, 0.25]), torch.tensor([9.0, 1.0, 0.25])
    closed = float((mu_a - mu_b).pow(2).sum() + (var_a.sqrt() - var_b.sqrt()).pow(2).sum())
    assert gaussian_frechet_distance(mu_a, torch.diag(var_a), mu_b, torch.diag(var_b)) == pytest.approx(closed,
                                                                                                       rel=1e-12)
    # A rotation of both leaves the distance unchanged, with full, non-commuting... then commuting covariances.
    q, _ = torch.linalg.qr(_randn(3, 3, seed=14))
    rotated = gaussian_frechet_distance(q @ mu_a.double(), q @ torch.diag(var_a).double() @ q.T,
                                        q @ mu_b.double(), q @ torch.diag(var_b).double() @ q.T)
    assert rotated == pytest.approx(closed, rel=1e-10)
    # From samples of those Gaussians: the estimate approaches the closed form.
    a = mu_a.double() + _randn(200_000, 3, seed=15) * var_a.sqrt().double()
    b = mu_b.double() + _randn(200_000, 3, seed=16) * var_b.sqrt().double()
    assert frechet_distance(a, b) == pytest.approx(closed, rel=0.01)


def test_frechet_errors():
    with pytest.raises(ValueError, match="same example size, got 4 and 3"):
        frechet_distance(torch.zeros(5, 4), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="do not describe two Gaussians"):
        gaussian_frechet_distance(torch.zeros(2), torch.eye(3), torch.zeros(2), torch.eye(3))


# -- the digit classifier ----------------------------------------------------------------------------
def test_classifier_reads_the_test_split(classifier):
    accuracy = class_accuracy(grey_digits("test"), digit_labels("test"), classifier)
    assert accuracy > 0.95
    shuffled = digit_labels("test")[torch.randperm(360, generator=torch.Generator().manual_seed(0))]
    assert class_accuracy(grey_digits("test"), shuffled, classifier) < 0.2
    with pytest.raises(ValueError, match=r"labels must have shape \(360,\), one per sample, got \(359,\)"):
        class_accuracy(grey_digits("test"), digit_labels("test")[:-1], classifier)


def test_features_do_not_depend_on_the_batch(classifier):
    x = grey_digits("valid")
    features = classifier.embed(x)
    assert features.shape == (180, 128)
    # Equal up to float32 rounding (convolution kernels block a batch differently by its size).
    assert torch.allclose(classifier.embed(x[:7]), features[:7], rtol=1e-5, atol=1e-5)
    assert torch.allclose(classifier.embed(x, batch_size=50), features, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"shape \(batch, 1, 8, 8\), got \(4, 8, 8\)"):
        classifier.features(torch.zeros(4, 8, 8))


def test_frechet_distance_ranks_real_digits_far_above_noise(classifier):
    train, test = grey_digits("train"), grey_digits("test")
    noise = torch.rand(test.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    real = digit_frechet_distance(test, train, classifier)
    assert 0 < real < digit_frechet_distance(noise, train, classifier) / 10
    # Zero up to the square roots of rounding errors in the near-zero eigenvalues of a rank-deficient covariance.
    assert abs(digit_frechet_distance(train, train, classifier)) < 1e-5 * real


def test_classifier_training_is_seeded():
    a, b, c = (fit_digit_classifier(seed=s, epochs=1) for s in (3, 3, 4))
    for (name, pa), pb, pc in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.head.weight, c.head.weight)
    with pytest.raises(ConfigError, match="epochs must be a positive int, got 0"):
        fit_digit_classifier(epochs=0)


def test_random_shift_translates_each_image_with_background_fill():
    x = grey_digits("valid")[:20]
    assert torch.equal(random_shift(x, 0, torch.Generator()), x)
    shifted = random_shift(x, 1, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), value=-1.0)
    translations = torch.stack([padded[:, :, i:i + 8, j:j + 8] for i in range(3) for j in range(3)])  # (9, B, 1, 8, 8)
    matches = (translations == shifted).flatten(2).all(2)  # (9, B)
    assert bool(matches.any(0).all())
    assert len({int(m.nonzero()[0]) for m in matches.T}) > 3  # images get different offsets
