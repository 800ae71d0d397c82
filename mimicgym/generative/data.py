"""Offline data sets for the generative models: binarised digits, 2-D toy densities, a Markov source.

Nothing is downloaded: the digits are scikit-learn's 8x8 images (1,797, shipped with the
package); the rest is generated from a seed.

Binarised digits follow the convention of binarised MNIST: a grey level g in 0..16 becomes a
Bernoulli probability g / 16. The valid and test splits are binarised once (with ``seed``);
training code should binarise the training split anew every epoch (``binarize``), since one
fixed binarisation of 1,257 images is small enough to overfit.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from mimicgym.errors import ConfigError

SPLITS = {"train": slice(0, 1257), "valid": slice(1257, 1437), "test": slice(1437, 1797)}
TOY2D = ("eight_gaussians", "two_moons", "checkerboard", "rings")


@lru_cache(maxsize=1)
def _shuffled_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.images))
    return digits.images.astype(np.float32)[order] / 16.0, digits.target[order]  # (1797, 8, 8) in [0, 1], (1797,)


def _digit_probabilities() -> np.ndarray:
    return _shuffled_digits()[0]


def digits(split: str = "train", binarize: bool = True, seed: int = 0) -> torch.Tensor:
    """scikit-learn's 8x8 digits as a float tensor (N, 1, 8, 8).

    Splits (fixed by ``np.random.default_rng(0).permutation``): 1,257 train, 180 valid, 360
    test. With ``binarize=False`` the values are the probabilities g / 16 in [0, 1]; with
    ``binarize=True`` each pixel is a Bernoulli draw of its probability, seeded by ``seed``.
    """
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    probabilities = torch.from_numpy(_digit_probabilities()[SPLITS[split]].copy()).unsqueeze(1)
    if not binarize:
        return probabilities
    return binarize_images(probabilities, torch.Generator().manual_seed(seed))


def digit_labels(split: str = "train") -> torch.Tensor:
    """The class (0-9) of each image of :func:`digits`' ``split``, a long tensor (N,)."""
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    return torch.from_numpy(_shuffled_digits()[1][SPLITS[split]].astype(np.int64))


def grey_digits(split: str = "train") -> torch.Tensor:
    """The digits' 17 grey levels g = 0..16 scaled to [-1, 1] (g / 8 - 1), (N, 1, 8, 8): the
    continuous models' view (GANs, diffusion; flows dequantise the 17 levels)."""
    return digits(split, binarize=False) * 2 - 1


def binarize_images(probabilities: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One Bernoulli draw per pixel (dynamic binarisation when called every epoch)."""
    uniform = torch.rand(probabilities.shape, generator=generator, device=generator.device)
    return (uniform < probabilities.to(uniform.device)).to(probabilities.dtype)


def binarization_entropy(probabilities: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of the binarisation of each grey image, shape (N,).

    The floor of the binarised-digits likelihood: a model that knew each image's grey levels
    exactly would still pay this much on average, so no model's test NLL can be lower.
    """
    p = probabilities.double().flatten(1)
    q = 1 - p
    terms = -(torch.special.xlogy(p, p) + torch.special.xlogy(q, q))
    return terms.sum(1)


def toy2d(name: str, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` points (n, 2) of a named 2-D density: ``eight_gaussians`` (as in FFJORD's toy
    data), ``two_moons``, ``checkerboard`` or ``rings``; roughly within [-4, 4]^2."""
    if name not in TOY2D:
        raise ConfigError(f"toy data set must be one of {', '.join(TOY2D)}, got {name!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"n must be a positive int, got {n!r}")
    rng = np.random.default_rng(seed)
    points = globals()[f"_{name}"](rng, n)
    return torch.from_numpy(points.astype(np.float32))


def _eight_gaussians(rng: np.random.Generator, n: int) -> np.ndarray:
    angles = 2 * np.pi * rng.integers(0, 8, n) / 8
    centres = 4 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return (centres + 0.5 * rng.standard_normal((n, 2))) / math.sqrt(2)


def _two_moons(rng: np.random.Generator, n: int) -> np.ndarray:
    upper = rng.random(n) < 0.5
    angle = np.pi * rng.random(n)
    x = np.where(upper, np.cos(angle), 1 - np.cos(angle))
    y = np.where(upper, np.sin(angle), 0.5 - np.sin(angle))
    points = np.stack([x, y], axis=1) + 0.1 * rng.standard_normal((n, 2))
    return 2 * (points - [0.5, 0.25])


def _checkerboard(rng: np.random.Generator, n: int) -> np.ndarray:
    # Four columns of unit squares; alternate rows are shifted so that occupied cells form a board.
    x = 4 * rng.random(n) - 2
    y = rng.random(n) - 2 * rng.integers(0, 2, n) + np.floor(x) % 2
    return 2 * np.stack([x, y], axis=1)


def _rings(rng: np.random.Generator, n: int) -> np.ndarray:
    radius = rng.integers(1, 5, n).astype(np.float64)
    angle = 2 * np.pi * rng.random(n)
    points = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return points + 0.08 * rng.standard_normal((n, 2))


class MarkovSource:
    """A seeded order-``order`` Markov source over ``vocab_size`` symbols, with its exact entropy.

    Transition probabilities p(x_t | x_{t-order..t-1}) are drawn once from a symmetric
    Dirichlet(``concentration``); the first ``order`` symbols are uniform. ``entropy_rate(T)``
    is H(X_1..X_T) / T in nats, computed exactly by propagating the distribution of the
    context through time: the floor for any model's NLL per symbol on sequences of length T.
    """

    def __init__(self, vocab_size: int = 4, order: int = 3, concentration: float = 0.5, seed: int = 0):
        if vocab_size < 2 or order < 1:
            raise ConfigError(f"need vocab_size >= 2 and order >= 1, got {vocab_size!r}, {order!r}")
        self.vocab_size, self.order = vocab_size, order
        rng = np.random.default_rng(seed)
        # transitions[c] is the next-symbol distribution after context c (base-V digits, oldest first).
        self.transitions = rng.dirichlet(np.full(vocab_size, concentration), size=vocab_size**order)

    def sample(self, n: int, length: int, seed: int = 0) -> torch.Tensor:
        """``n`` sequences of ``length`` symbols, a long tensor (n, length)."""
        if length <= self.order:
            raise ConfigError(f"length must exceed the order {self.order}, got {length!r}")
        rng = np.random.default_rng(seed)
        V = self.vocab_size
        sequences = np.empty((n, length), dtype=np.int64)
        sequences[:, : self.order] = rng.integers(0, V, (n, self.order))
        cumulative = np.cumsum(self.transitions, axis=1)
        context = (sequences[:, : self.order] * V ** np.arange(self.order - 1, -1, -1)).sum(1)
        for t in range(self.order, length):  # a loop over time, vectorised over sequences
            u = rng.random(n)[:, None]
            symbol = np.minimum((u > cumulative[context]).sum(1), V - 1)
            sequences[:, t] = symbol
            context = (context * V + symbol) % V**self.order
        return torch.from_numpy(sequences)

    def entropy_rate(self, length: int) -> float:
        """H(X_1..X_T) / T in nats for T = ``length``."""
        V, order = self.vocab_size, self.order
        row_entropy = -(self.transitions * np.log(self.transitions)).sum(1)
        context = np.full(V**order, 1.0 / V**order)  # uniform first `order` symbols
        total = order * math.log(V)
        for _ in range(order, length):
            total += float(context @ row_entropy)
            # Next context: drop the oldest symbol, append the new one.
            joint = context[:, None] * self.transitions  # (contexts, symbol)
            context = np.zeros_like(context)
            np.add.at(context, (np.arange(V**order)[:, None] * V + np.arange(V)) % V**order, joint)
        return total / length
