"""Sample-quality metrics: two-sample distances, modes covered, known entropies, a digit classifier.

Two-sample distances between samples x (n, D) of a model and y (m, D) of held-out data, both
in float64, the pairwise distances taken a block of rows at a time (10,000 x 10,000 needs
tens of MB, not 800):

- :func:`energy_distance`, the squared energy distance (Szekely & Rizzo 2013)
  2 E||X - Y|| - E||X - X'|| - E||Y - Y'||; zero iff the two distributions are equal.
- :func:`mmd`, the squared maximum mean discrepancy (Gretton et al. 2012) with a sum of
  Gaussian kernels, its unbiased estimator.

On the 2-D toy sets: :func:`modes_covered` counts the eight Gaussians a sampler reaches (a plain
GAN often collapses onto a few), and :func:`toy2d_entropy` is the floor under any model's NLL.

On the digits: :class:`DigitClassifier`, a small CNN trained on the real training split
(:func:`fit_digit_classifier`), gives features for :func:`frechet_distance` (the FID of
Heusel et al. 2017 with this classifier in place of Inception) and labels for
:func:`class_accuracy` of class-conditional samples.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from mimicgym.errors import ConfigError
from mimicgym.generative.data import digit_labels, grey_digits
from mimicgym.utils.checks import check_positive, check_positive_int
from mimicgym.utils.torch_utils import resolve_device, torch_seed_scope

_BLOCK_ELEMENTS = 2**22  # pairwise distances held at once: 32 MiB of float64
DEFAULT_BANDWIDTHS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)  # spans the toy sets' scales, from one mode's width to the whole


# -- two-sample distances ------------------------------------------------------------------------
def _as_points(name: str, x: torch.Tensor) -> torch.Tensor:
    """(n,) scalars or (n, ...) examples as float64 points (n, D); a ValueError for bad data."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 0 or x.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one example, got shape {tuple(x.shape)}")
    points = x.detach().reshape(x.shape[0], -1).double()
    if not bool(torch.isfinite(points).all()):
        where = tuple(int(i) for i in torch.nonzero(~torch.isfinite(points))[0])
        raise ValueError(f"{name}{list(where)} is {points[where].item()}: a non-finite value")
    return points


def _check_pair(x: torch.Tensor, y: torch.Tensor, minimum: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = _as_points("x", x), _as_points("y", y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same example size, got {x.shape[1]} and {y.shape[1]} entries")
    for name, points in (("x", x), ("y", y)):
        if points.shape[0] < minimum:
            raise ValueError(f"{name} needs at least {minimum} examples here, got {points.shape[0]}")
    return x, y.to(x.device)


def _pairwise_sum(a: torch.Tensor, b: torch.Tensor, kernel=None) -> torch.Tensor:
    """sum_ij kernel(||a_i - b_j||) (kernel None: the distance itself) in float64, a block of rows of a at a time."""
    rows = max(1, _BLOCK_ELEMENTS // b.shape[0])
    total = a.new_zeros(())
    for start in range(0, a.shape[0], rows):
        # Differences, not the |a|^2 + |b|^2 - 2ab expansion: exact zeros on the diagonal, no cancellation.
        distance = torch.cdist(a[start:start + rows], b, compute_mode="donot_use_mm_for_euclid_dist")
        total = total + (distance if kernel is None else kernel(distance)).sum()
    return total


def energy_distance(x: torch.Tensor, y: torch.Tensor, unbiased: bool = False) -> float:
    """Squared energy distance 2 E||X - Y|| - E||X - X'|| - E||Y - Y'|| between samples x (n, ...) and y (m, ...).

    The V-statistic by default: every expectation is the plain mean over all pairs, the i = j
    pairs (distance 0) included. It is the energy distance of the two empirical distributions,
    so it is >= 0, and in 1-D it is the square of ``scipy.stats.energy_distance(x, y)``
    (scipy returns the square root, the metric). ``unbiased=True``: the U-statistic, which
    leaves the i = j pairs out of E||X - X'|| and E||Y - Y'|| (divides by n(n-1), not n^2);
    unbiased for the population value, it may be slightly negative when the two agree.
    Examples of any shape are flattened; (n,) is n scalars.
    """
    x, y = _check_pair(x, y, 2 if unbiased else 1)
    n, m = x.shape[0], y.shape[0]
    within_x, within_y = (n * (n - 1), m * (m - 1)) if unbiased else (n * n, m * m)
    value = 2 * _pairwise_sum(x, y) / (n * m) - _pairwise_sum(x, x) / within_x - _pairwise_sum(y, y) / within_y
    return float(value)


def mmd(x: torch.Tensor, y: torch.Tensor, bandwidths: float | Sequence[float] = DEFAULT_BANDWIDTHS) -> float:
    """Squared MMD between samples x (n, ...) and y (m, ...), unbiased, with the kernel
    k(a, b) = sum_h exp(-||a - b||^2 / (2 h^2)) over the ``bandwidths`` h.

    The U-statistic of Gretton et al. (2012, eq. 3): the mean of k over pairs i != j within x and
    within y, minus twice the mean over all pairs across. Unbiased, so near zero (either sign)
    for two samples of one distribution; a sum of kernels keeps it sensitive both to a shifted
    mode (small h) and to a misplaced mass (large h) without tuning one h per data set.
    Cost: one float64 exp per pair and bandwidth, ~15 s for 10,000 x 10,000 and 6 bandwidths
    on one core; :func:`energy_distance` (no exp) takes ~1 s for the same samples.
    """
    widths = (bandwidths,) if isinstance(bandwidths, (int, float)) else tuple(bandwidths)
    if not widths:
        raise ConfigError(f"bandwidths must name at least one bandwidth, got {bandwidths!r}")
    for h in widths:
        check_positive("bandwidths", h)
    x, y = _check_pair(x, y, 2)
    n, m = x.shape[0], y.shape[0]

    def kernel(distance):  # (rows, m) -> its kernel sum, one bandwidth at a time, in place: exp is the cost
        squared = distance.pow_(2)
        total, scratch = torch.zeros_like(squared), torch.empty_like(squared)
        for h in widths:
            total += torch.mul(squared, -0.5 / h**2, out=scratch).exp_()
        return total

    # k(a, a) = len(widths) on each diagonal: subtract it rather than mask it.
    k_xx = (_pairwise_sum(x, x, kernel) - n * len(widths)) / (n * (n - 1))
    k_yy = (_pairwise_sum(y, y, kernel) - m * len(widths)) / (m * (m - 1))
    return float(k_xx + k_yy - 2 * _pairwise_sum(x, y, kernel) / (n * m))


# -- the 2-D toy sets ----------------------------------------------------------------------------
def eight_gaussians_modes() -> tuple[torch.Tensor, float]:
    """Centres (8, 2) float64 and the common std of ``toy2d("eight_gaussians")``: centres
    4 (cos, sin)(2 pi k / 8) / sqrt(2), isotropic std 0.5 / sqrt(2), each mode weight 1/8."""
    angles = 2 * math.pi * torch.arange(8, dtype=torch.float64) / 8
    centres = 4 * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1) / math.sqrt(2)
    return centres, 0.5 / math.sqrt(2)


def mode_fractions(samples: torch.Tensor, centres: torch.Tensor, sigma: float, radius: float = 3.0) -> torch.Tensor:
    """Fraction of ``samples`` (n, D) within ``radius`` * ``sigma`` of each centre (K, D): (K,) float64.

    A sample counts for its nearest centre only, so no sample is counted twice.
    """
    check_positive("sigma", sigma)
    check_positive("radius", radius)
    points = _as_points("samples", samples)
    centres = _as_points("centres", centres).to(points.device)
    if points.shape[1] != centres.shape[1]:
        raise ValueError(f"samples have {points.shape[1]} coordinates but centres have {centres.shape[1]}")
    distance, nearest = torch.cdist(points, centres, compute_mode="donot_use_mm_for_euclid_dist").min(1)
    near = distance <= radius * sigma
    counts = torch.bincount(nearest[near], minlength=centres.shape[0])
    return counts.double() / points.shape[0]


def modes_covered(samples: torch.Tensor, centres: torch.Tensor, sigma: float, min_fraction: float = 0.02,
                  radius: float = 3.0) -> int:
    """How many modes hold at least ``min_fraction`` of the samples within ``radius`` * ``sigma``
    of their centre (the convention of the unrolled-GAN and VEEGAN papers: >= 2% within 3 sigma)."""
    if not 0.0 < min_fraction <= 1.0:
        raise ConfigError(f"min_fraction must lie in (0, 1], got {min_fraction!r}")
    return int((mode_fractions(samples, centres, sigma, radius) >= min_fraction).sum())


def eight_gaussians_log_prob(x: torch.Tensor) -> torch.Tensor:
    """The exact log-density of ``toy2d("eight_gaussians")`` at points x (n, 2): (n,) float64."""
    centres, sigma = eight_gaussians_modes()
    points = _as_points("x", x)
    if points.shape[1] != 2:
        raise ValueError(f"x must be 2-D points (n, 2), got shape {tuple(x.shape)}")
    squared = torch.cdist(points, centres.to(points.device), compute_mode="donot_use_mm_for_euclid_dist").pow(2)
    log_component = -squared / (2 * sigma**2) - math.log(2 * math.pi * sigma**2)
    return torch.logsumexp(log_component, dim=1) - math.log(8)


def eight_gaussians_entropy(step: float = 0.02) -> float:
    """Differential entropy in nats of ``toy2d("eight_gaussians")``, -int p log p, by the
    midpoint rule on a grid of ``step`` over a square holding all but e^-50 of the mass.

    2.8316 nats. The 2.838 often quoted (FFJORD's toy data) is log 8 + 1 + log(2 pi sigma^2),
    the entropy of eight *disjoint* Gaussians; but neighbouring centres lie only 6.1 sigma apart,
    so a point does not always tell its mode, and the mixture's entropy is lower by
    H(mode | X) = 0.0063 nats. The value is the same to 1e-12 at steps 0.04, 0.02 and 0.01 (the
    midpoint rule converges faster than any power of the step on this smooth, decaying
    integrand) and agrees with a Monte Carlo estimate, -mean log p over 2e6 samples of ``toy2d``.
    """
    check_positive("step", step)
    centres, sigma = eight_gaussians_modes()
    half = float(centres.abs().max()) + 10 * sigma
    axis = torch.arange(-half + step / 2, half, step, dtype=torch.float64)
    entropy = 0.0
    for row in axis.split(256):  # bounded memory for a fine step
        grid = torch.stack(torch.meshgrid(row, axis, indexing="ij"), dim=-1).reshape(-1, 2)
        log_p = eight_gaussians_log_prob(grid)
        entropy -= float((log_p.exp() * log_p).sum()) * step**2
    return entropy


def toy2d_entropy(name: str) -> float:
    """The differential entropy in nats of a ``toy2d`` set where it is known exactly: the floor
    under any model's test NLL.

    ``eight_gaussians``: :func:`eight_gaussians_entropy` (2.8316, not the 2.838 of eight disjoint
    Gaussians). ``checkerboard``: log 32 =
    3.466: ``_checkerboard`` draws x uniform on [-2, 2] and y uniform on one of the two unit
    cells of x's column that the board occupies (each column has 2 of its 4 cells), so the
    density is uniform on 8 unit cells; scaled by 2, on 8 squares of area 4, area 32.
    ``two_moons`` and ``rings`` have noise added to curves and no closed form: a ConfigError.
    """
    if name == "eight_gaussians":
        return eight_gaussians_entropy()
    if name == "checkerboard":
        return math.log(32)
    raise ConfigError(f"the entropy is known exactly for eight_gaussians and checkerboard only, got {name!r}")


# -- a digit classifier, its features and the Frechet distance ------------------------------------
class DigitClassifier(nn.Module):
    """A small CNN on grey digits (B, 1, 8, 8) in [-1, 1] (the view of :func:`grey_digits`).

    conv3x3(1 -> ``width``) -> conv3x3(-> 2 ``width``) -> max-pool to 4x4 -> conv3x3(-> 2 ``width``)
    -> max-pool to 2x2 -> linear(-> ``feature_dim``) = :meth:`features` -> linear(-> 10) logits;
    ReLU after every hidden layer. No batch norm or dropout: the features of a sample do not
    depend on the batch it comes in, nor on train/eval mode.
    """

    def __init__(self, width: int = 32, feature_dim: int = 128, seed: int = 0, device: str | torch.device = "cpu"):
        super().__init__()
        check_positive_int("width", width)
        check_positive_int("feature_dim", feature_dim)
        with torch_seed_scope(seed):
            self.body = nn.Sequential(
                nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
                nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 8x8 -> 4x4
                nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 4x4 -> 2x2
                nn.Flatten(), nn.Linear(8 * width, feature_dim), nn.ReLU(),
            )
            self.head = nn.Linear(feature_dim, 10)
        self.device = resolve_device(device)
        self.to(self.device)

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"digits must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 8, 8):
            raise ValueError(f"digits must have shape (batch, 1, 8, 8), got {tuple(x.shape)}")
        x = x.to(self.device, torch.float32)
        if not bool(torch.isfinite(x).all()):
            raise ValueError("digits hold a non-finite value")
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations (B, feature_dim): what the Frechet distance compares."""
        return self.body(self._check(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, 10)."""
        return self.head(self.features(x))

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        """The most likely class of each digit (B,), long."""
        return torch.cat([self(chunk).argmax(1) for chunk in self._check(x).split(batch_size)])

    @torch.no_grad()
    def embed(self, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        """:meth:`features` of many digits without gradients, a batch at a time (B, feature_dim)."""
        return torch.cat([self.features(chunk) for chunk in self._check(x).split(batch_size)])


def fit_digit_classifier(seed: int = 0, epochs: int = 20, lr: float = 2e-3, batch_size: int = 64,
                         weight_decay: float = 1e-4, shift: int = 1, device: str | torch.device = "cpu"
                         ) -> DigitClassifier:
    """A :class:`DigitClassifier` trained by Adam on ``grey_digits("train")`` and its labels; eval mode.

    Each minibatch is shifted by up to ``shift`` pixels (zero padding at the border is -1,
    the background): generated digits are rarely centred like the real ones, and a
    classifier that only knows centred digits would misread them. Bit-identical for a seed
    on a given device and thread count; test accuracy 0.989 with the defaults (seed 0).
    """
    check_positive_int("epochs", epochs)
    check_positive_int("batch_size", batch_size)
    check_positive("lr", lr)
    check_positive("weight_decay", weight_decay, allow_zero=True)
    if isinstance(shift, bool) or not isinstance(shift, int) or not 0 <= shift <= 3:
        raise ConfigError(f"shift must be an int in [0, 3], got {shift!r}")
    model = DigitClassifier(seed=seed, device=device)
    images, labels = grey_digits("train").to(model.device), digit_labels("train").to(model.device)
    generator = torch.Generator(device=model.device).manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator, device=model.device)
        for batch in order.split(batch_size):
            x = random_shift(images[batch], shift, generator)
            loss = F.cross_entropy(model(x), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.eval()


def random_shift(x: torch.Tensor, shift: int, generator: torch.Generator) -> torch.Tensor:
    """Each image (B, C, H, W) translated by its own integer offset in [-shift, shift]^2, the
    uncovered border filled with -1 (background)."""
    if shift == 0:
        return x
    b, _, h, w = x.shape
    padded = F.pad(x, (shift,) * 4, value=-1.0)
    offsets = torch.randint(0, 2 * shift + 1, (b, 2), generator=generator, device=x.device)
    rows = (offsets[:, 0, None] + torch.arange(h, device=x.device)).view(b, 1, h, 1)  # (B, 1, H, 1)
    cols = (offsets[:, 1, None] + torch.arange(w, device=x.device)).view(b, 1, 1, w)  # (B, 1, 1, W)
    batch = torch.arange(b, device=x.device).view(b, 1, 1, 1)
    channel = torch.arange(x.shape[1], device=x.device).view(1, -1, 1, 1)
    return padded[batch, channel, rows, cols]


def gaussian_frechet_distance(mu_a: torch.Tensor, cov_a: torch.Tensor, mu_b: torch.Tensor,
                              cov_b: torch.Tensor) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2}): the squared 2-Wasserstein distance
    between N(mu_a, S_a) and N(mu_b, S_b), in float64.

    Tr (S_a S_b)^{1/2} = Tr (S_a^{1/2} S_b S_a^{1/2})^{1/2} (the two matrices are similar), and
    the right side is symmetric positive semi-definite: its square root is the sum of the square
    roots of its eigenvalues, real by construction, where ``sqrtm(S_a S_b)`` of a non-symmetric
    product can come back complex from rounding.
    """
    mu_a, mu_b = mu_a.double().cpu(), mu_b.double().cpu()
    cov_a, cov_b = cov_a.double().cpu(), cov_b.double().cpu()
    if mu_a.shape != mu_b.shape or cov_a.shape != cov_b.shape or cov_a.shape != (mu_a.numel(),) * 2:
        raise ValueError(f"means {tuple(mu_a.shape)}, {tuple(mu_b.shape)} and covariances {tuple(cov_a.shape)}, "
                         f"{tuple(cov_b.shape)} do not describe two Gaussians of one dimension")
    values, vectors = torch.linalg.eigh(cov_a)
    root_a = (vectors * values.clamp(min=0).sqrt()) @ vectors.T
    middle = root_a @ cov_b @ root_a
    trace_root = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    return float((mu_a - mu_b).pow(2).sum() + torch.trace(cov_a) + torch.trace(cov_b) - 2 * trace_root)


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """The Frechet distance between two sets of features (n, D) and (m, D): that of the
    Gaussians with their means and (unbiased, n - 1) covariances, in float64."""
    a, b = _check_pair(features_a, features_b, 2)
    return gaussian_frechet_distance(a.mean(0), torch.cov(a.T).reshape(a.shape[1], -1),
                                     b.mean(0), torch.cov(b.T).reshape(b.shape[1], -1))


def digit_frechet_distance(samples: torch.Tensor, reference: torch.Tensor, classifier: DigitClassifier) -> float:
    """Frechet distance between ``classifier``'s features of digit ``samples`` and of ``reference``
    digits (both (N, 1, 8, 8) in [-1, 1]); the FID with a digit classifier for Inception."""
    return frechet_distance(classifier.embed(samples), classifier.embed(reference))


def class_accuracy(samples: torch.Tensor, labels: torch.Tensor, classifier: DigitClassifier) -> float:
    """Fraction of digit ``samples`` (N, 1, 8, 8) that ``classifier`` reads as their intended ``labels`` (N,)."""
    labels = torch.as_tensor(labels)
    if labels.shape != (samples.shape[0],):
        raise ValueError(f"labels must have shape ({samples.shape[0]},), one per sample, got {tuple(labels.shape)}")
    return float((classifier.predict(samples).cpu() == labels.cpu().long()).double().mean())
