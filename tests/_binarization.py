"""Exact expectations over the dynamic binarisation of a grey image (shared by the
autoregressive models' tests)."""

from __future__ import annotations

import torch


def expected_over_binarizations(loss, every: torch.Tensor, probabilities: torch.Tensor) -> float:
    """E_x[loss(x)] over x ~ Bernoulli(probabilities) pixel by pixel, exactly: every binary
    input ``every`` (2^D, ...) weighted by its probability; ``loss`` takes a batch of one."""
    p, x = probabilities.flatten().double(), every.flatten(1).double()
    weights = (x * p + (1 - x) * (1 - p)).prod(1)  # (2^D,)
    return sum(w * loss(xi[None]).item() for w, xi in zip(weights.tolist(), every))
