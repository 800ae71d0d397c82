"""The data sets of ``mimicgym gen``: named, split, and in the view each model needs.

- ``digits``: scikit-learn's 8x8 digits. Binary models (and models of values in [0, 1]) train
  on the grey levels as probabilities, binarised afresh every epoch, and are tested on one fixed
  binarisation; continuous models (flows, GANs, diffusion, Gaussian decoders) see the 17 grey
  levels scaled to [-1, 1], and flows are told so (``levels=17``: they dequantise). Class
  labels ride along for conditional models (``num_classes=10``).
- ``markov``: sequences of an order-3 Markov source over 4 symbols, with a known entropy rate.
- ``motion``: joint-angle windows of the motion clips (64 frames at 30 fps), split by motion:
  mu-law quantised for sequence models, as (1, 64) series in [-1, 1] (radians / pi) for
  continuous ones (a diffusion model's temporal convolutions).
- ``eight_gaussians``, ``two_moons``, ``checkerboard``, ``rings``: 2-D densities
  (20,000 train, 2,000 valid, 5,000 test points).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mimicgym.errors import ConfigError
from mimicgym.generative.data import TOY2D, MarkovSource, digit_labels, digits, grey_digits, toy2d

DATA_SETS = ("digits", "markov", "motion", *TOY2D)
MARKOV_LENGTH = 64  # symbols per sequence; 1,000 test sequences hold 64,000 symbols
MOTION_LEVELS = 64  # mu-law levels of the joint-angle windows
DIGIT_LEVELS = 17  # grey levels of scikit-learn's digits
CONTINUOUS = ("real",)  # model supports that take the continuous view of a data set


@dataclass
class DataSplits:
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    # What a model needs to know of the data (vocab_size, levels), or may use of it (a diffusion
    # model clips its x_0 estimates to the data's range [-1, 1]); a model takes those it has.
    model_kwargs: dict[str, Any]
    unit: str  # what the NLL is per: "image", "symbol" or "point"
    per_example: int  # units per example (1 image, T symbols)
    view: str  # "binary" (0/1 images), "tokens", "signed" (images in [-1, 1]), "series" (C, T) or "points" (2-D)
    labels: dict[str, torch.Tensor] | None = field(default=None)  # split -> class labels (N,)
    name: str = ""  # the data set's name

    def condition(self, split: str, model) -> torch.Tensor | None:
        """The split's labels if ``model`` is conditional, else None; an error if it is and
        this data set has none."""
        if model.num_classes is None:
            return None
        if self.labels is None:
            raise ConfigError(f"{type(model).__name__} is class-conditional (num_classes="
                              f"{model.num_classes}), but this data set has no labels; use --data digits")
        return self.labels[split]


def load_data(name: str, seed: int, support: str = "binary") -> DataSplits:
    """The named data set's splits in the view a model of ``support`` needs (see the module)."""
    if name not in DATA_SETS:
        raise ConfigError(f"unknown data set {name!r}; data sets: {', '.join(DATA_SETS)}")
    return dataclasses.replace(_load(name, seed, support), name=name)


def _load(name: str, seed: int, support: str) -> DataSplits:
    if name == "digits":
        labels = {split: digit_labels(split) for split in ("train", "valid", "test")}
        if support in CONTINUOUS:
            return DataSplits(grey_digits("train"), grey_digits("valid"), grey_digits("test"),
                              {"levels": DIGIT_LEVELS, "clip_sample": 1.0}, "image", 1, "signed", labels)
        return DataSplits(digits("train", binarize=False), digits("valid", seed=seed), digits("test", seed=seed),
                          {}, "image", 1, "binary", labels)
    if name in TOY2D:
        return DataSplits(toy2d(name, 20_000, seed=3 * seed + 1), toy2d(name, 2_000, seed=3 * seed + 2),
                          toy2d(name, 5_000, seed=3 * seed + 3), {}, "point", 1, "points")
    if name == "motion":
        return _motion_splits(continuous=support in CONTINUOUS)
    source = MarkovSource(seed=0)  # one fixed source; the seed draws the sequences
    return DataSplits(source.sample(20_000, MARKOV_LENGTH, seed=3 * seed + 1),
                      source.sample(500, MARKOV_LENGTH, seed=3 * seed + 2),
                      source.sample(1_000, MARKOV_LENGTH, seed=3 * seed + 3),
                      {"vocab_size": source.vocab_size}, "symbol", MARKOV_LENGTH, "tokens")


def check_view(model_name: str, support: str, data_name: str) -> None:
    """Refuse a model on data it cannot model (a binary model on 2-D points), naming both."""
    views = {"binary": ("digits",), "unit": ("digits",), "tokens": ("markov", "motion"),
             "real": ("digits", "motion", *TOY2D)}[support]
    if data_name not in views:
        raise ConfigError(f"{model_name} models {support} data; data set {data_name!r} does not fit it "
                          f"(its data sets: {', '.join(views)})")


def model_kwargs_for(cls: type, data: DataSplits) -> dict[str, Any]:
    """The data's facts that the model class takes as hyperparameters (a flow's ``levels``)."""
    names = {f.name for f in dataclasses.fields(cls.Config)}
    return {k: v for k, v in data.model_kwargs.items() if k in names}


def as_pictures(samples: torch.Tensor, data: DataSplits, vocab_size: int | None = None) -> torch.Tensor:
    """Image samples as values in [0, 1] for a PNG grid."""
    if data.view == "signed":
        return (samples.float() + 1) / 2
    return samples.float() / max(1, (vocab_size or 2) - 1)


def _motion_splits(continuous: bool = False) -> DataSplits:
    """Joint-angle windows of the motion clips, mu-law quantised. Windows of one clip overlap,
    so the split is by motion (a clip and its mirror image together): a fixed permutation of
    the motion names puts a sixth in validation and a sixth in test (at least one each)."""
    from mimicgym.generative.wavenet import mu_law_encode
    from mimicgym.motion.datasets import joint_angle_windows, training_clips

    clips = training_clips()
    names = sorted({c.name.removesuffix("_mirrored") for c in clips})
    order = [names[i] for i in np.random.default_rng(0).permutation(len(names))]
    k = max(1, len(names) // 6)
    split_of = {**{name: "valid" for name in order[:k]}, **{name: "test" for name in order[k:2 * k]}}

    def windows(split: str) -> torch.Tensor:
        chosen = [c for c in clips if split_of.get(c.name.removesuffix("_mirrored"), "train") == split]
        angles = joint_angle_windows(window=MARKOV_LENGTH, clips=chosen)  # (N, T) in [-1, 1]
        return angles.unsqueeze(1) if continuous else mu_law_encode(angles, levels=MOTION_LEVELS)

    if continuous:
        return DataSplits(windows("train"), windows("valid"), windows("test"), {"clip_sample": 1.0}, "window", 1,
                          "series")
    return DataSplits(windows("train"), windows("valid"), windows("test"), {"vocab_size": MOTION_LEVELS}, "symbol",
                      MARKOV_LENGTH, "tokens")
