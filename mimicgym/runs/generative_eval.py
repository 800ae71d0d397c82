"""What a generative run reports and draws: its test metric, sample quality, pictures.

``evaluate(model, data)`` is what ``eval.json`` holds: the test NLL in nats (per example and
per unit, bits per dimension for dequantised images, an upper bound where the model gives one),
or the model's own validation metric (a plain autoencoder's reconstruction error, a diffusion
model's denoising loss); for 2-D data also the energy distance of 5,000 samples to the test
points and, on eight Gaussians, the modes they cover; for grey digits the Frechet distance of
500 samples to the test digits on a small classifier's features. Pictures: a grid of image samples, a
scatter plot of 2-D samples beside the test points, traversals and interpolations of a VAE.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from mimicgym.generative.base import GenerativeModel
from mimicgym.generative.images import save_image_grid
from mimicgym.generative.train import validation_losses
from mimicgym.plots import pyplot, save_figure
from mimicgym.runs.generative_data import DataSplits, as_pictures
from mimicgym.utils.io import atomic_write

POINT_SAMPLES = 5_000  # 2-D samples drawn for the sample-quality numbers and the scatter plot
FRECHET_SAMPLES = 500  # digit samples drawn for the Frechet distance


@torch.no_grad()
def evaluate_model(model: GenerativeModel, data: DataSplits, batch_size: int = 256) -> float | None:
    """Mean of ``model.validation_loss`` over the test split (the NLL in nats per example, an
    upper bound where ``model.nll_is_bound``); None for a model without one (a GAN)."""
    if model.validation_metric is None:
        return None
    model.eval()
    return validation_losses(model, data.test, data.condition("test", model), batch_size).double().mean().item()


def evaluate(model: GenerativeModel, data: DataSplits) -> dict[str, Any]:
    """The evaluation record of a trained model on its data's test split (``eval.json``)."""
    value = evaluate_model(model, data)
    record: dict[str, Any] = {}
    if model.validation_metric == "nll":
        record = {"test_nll_nats": value, "per": data.unit, f"test_nll_nats_per_{data.unit}": value / data.per_example,
                  "is_bound": model.nll_is_bound}
        if data.view == "signed":  # dequantised grey levels: bits per dimension, as flows report
            record["test_bits_per_dim"] = value / (data.test[0].numel() * math.log(2))
    elif model.validation_metric is not None:
        record = {f"test_{model.validation_metric}": value}
    if data.view == "points":
        record.update(point_sample_quality(model, data))
    if data.view == "signed" and data.name == "digits":
        record["test_frechet_distance"] = digit_frechet_distance(model, data)
    if hasattr(model, "make_hint"):
        record.update(hint_agreement(model, data))
    return {**record, "test_examples": len(data.test)}


def _cycle(x: torch.Tensor, n: int) -> torch.Tensor:
    """The first n rows of x repeated as often as needed."""
    return x.repeat((n + len(x) - 1) // len(x), *([1] * (x.dim() - 1)))[:n]


@lru_cache(maxsize=1)
def _digit_classifier():
    from mimicgym.generative.metrics import fit_digit_classifier

    with torch.enable_grad():  # callers may hold no_grad
        return fit_digit_classifier(seed=0)


@torch.no_grad()
def digit_frechet_distance(model: GenerativeModel, data: DataSplits, n: int = FRECHET_SAMPLES) -> float:
    """Frechet distance of ``n`` seeded samples (every class in turn for a conditional model) to
    the test digits, on the features of a small classifier trained on the training split."""
    from mimicgym.generative.metrics import digit_frechet_distance as frechet

    samples = sample(model, n, torch.Generator(model.device).manual_seed(model.seed), data)
    return float(frechet(samples.cpu(), data.test, _digit_classifier()))


@torch.no_grad()
def hint_agreement(model: GenerativeModel, data: DataSplits) -> dict[str, float]:
    """A ControlNet's agreement with its condition: the mean absolute error between the sketch of
    a sample and the sketch of the test image it was asked to follow, for the ControlNet and
    for its frozen DDPM (the same draws without the branch); DDIM, 50 steps."""
    from mimicgym.generative.controlnet import sketch_error

    hints = model.make_hint(data.test.to(model.device))
    errors = {}
    for name, condition in (("test_sketch_error", hints), ("frozen_sketch_error", None)):
        samples = sample(model, len(hints), torch.Generator(model.device).manual_seed(model.seed), data,
                         condition=condition, sampler="ddim", steps=min(50, model.ddpm.config.timesteps))
        errors[name] = sketch_error(samples, hints).mean().item()
    return errors


def sample(model: GenerativeModel, n: int, generator: torch.Generator, data: DataSplits | None = None,
           **options: Any) -> torch.Tensor:
    """``n`` samples in eval mode. A conditional model draws every class in turn unless told one;
    a ControlNet follows the hints of the test images in turn (the classes of the same images)."""
    steered = hasattr(model, "make_hint")
    if steered and data is not None and "condition" not in options:
        options["condition"] = model.make_hint(_cycle(data.test, n).to(model.device))
    classes, label_option = model.num_classes, "labels" if steered else "condition"
    if classes is not None and options.get(label_option) is None:
        labels = _cycle(data.labels["test"], n) if steered and data is not None else torch.arange(n) % classes
        options[label_option] = labels.to(model.device)
    was_training = model.training
    model.eval()
    try:
        return model.sample(n, generator=generator, **options)
    finally:
        model.train(was_training)


@torch.no_grad()
def point_sample_quality(model: GenerativeModel, data: DataSplits, n: int = POINT_SAMPLES) -> dict[str, Any]:
    """Energy distance of ``n`` seeded samples to the test points; modes covered on eight Gaussians."""
    from mimicgym.generative.metrics import eight_gaussians_modes, energy_distance, modes_covered

    samples = sample(model, n, torch.Generator(model.device).manual_seed(model.seed)).cpu()
    quality: dict[str, Any] = {"test_energy_distance": float(energy_distance(samples, data.test))}
    if data.name == "eight_gaussians":
        centres, sigma = eight_gaussians_modes()
        quality["modes_covered"] = int(modes_covered(samples, centres, sigma))
    return quality


def describe_evaluation(record: dict[str, Any]) -> str:
    """One line for an eval record: the test NLL (per example and per unit), or the model's
    own test metric, and the sample quality of 2-D models."""
    if "test_nll_nats" in record:
        line = f"test NLL {record['test_nll_nats']:.3f} nats per example"
        if record["per"] not in ("image", "point"):
            line += f", {record['test_nll_nats_per_' + record['per']]:.4f} per {record['per']}"
        if "test_bits_per_dim" in record:
            line += f" ({record['test_bits_per_dim']:.3f} bits/dim)"
        line += " (an upper bound)" if record["is_bound"] else ""
    else:
        metrics = [(k, v) for k, v in record.items() if k.startswith("test_")
                   and k not in ("test_examples", "test_energy_distance", "test_frechet_distance", "test_sketch_error")]
        line = ", ".join(f"{k.removeprefix('test_').replace('_', ' ')} {v:.4f} on test" for k, v in metrics)
    if "test_sketch_error" in record:
        line += (f"; sketch error {record['test_sketch_error']:.3f} (frozen model "
                 f"{record['frozen_sketch_error']:.3f})")
    if "test_frechet_distance" in record:
        line += ("; " if line else "") + f"Frechet distance of samples to test {record['test_frechet_distance']:.2f}"
    if "test_energy_distance" in record:
        line += ("; " if line else "") + f"energy distance of samples to test {record['test_energy_distance']:.4f}"
        if "modes_covered" in record:
            line += f", {record['modes_covered']} of 8 modes covered"
    return line


def write_samples(model: GenerativeModel, data: DataSplits, path: Path, n: int = 64, seed: int | None = None,
                  **options: Any) -> Path | None:
    """``n`` seeded samples (seed: the model's own) as a PNG grid (images), a scatter plot beside
    the test points (2-D) or token rows in a text file (sequences)."""
    generator = torch.Generator(model.device).manual_seed(model.seed if seed is None else seed)
    if data.view == "points":
        n = max(n, 1_000)
    try:
        samples = sample(model, n, generator, data, **options)
    except NotImplementedError:  # not yet: an autoencoder samples once its codes' Gaussian is fitted
        return None
    if data.view == "tokens":
        rows = "\n".join(" ".join(map(str, row)) for row in samples.long().flatten(1).tolist()) + "\n"
        with atomic_write(path, "w") as f:
            f.write(rows)
        return path
    if data.view == "points":
        return scatter_plot(path, samples.cpu(), data.test, title=type(model).__name__)
    if data.view == "series":
        return series_plot(path, samples.cpu(), data.test, title=type(model).__name__)
    return save_image_grid(path, as_pictures(samples, data, getattr(model.config, "vocab_size", None)))


def scatter_plot(path: Path, samples: torch.Tensor, reference: torch.Tensor, title: str = "") -> Path:
    """Samples (left) beside the reference points (right), same axes, as a PNG."""
    plt = pyplot()
    lim = float(reference.abs().max()) * 1.15
    fig, axes = plt.subplots(1, 2, figsize=(8, 4), sharex=True, sharey=True)
    for ax, points, name in zip(axes, (samples, reference), (f"{title} samples", "test data")):
        ax.scatter(points[:, 0], points[:, 1], s=1, alpha=0.4)
        ax.set(title=name, xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal")
    return save_figure(fig, path, dpi=80)


def series_plot(path: Path, samples: torch.Tensor, reference: torch.Tensor, title: str = "", rows: int = 8) -> Path:
    """Sampled series (left) beside test series (right), channel 0, ``rows`` of each, as a PNG."""
    plt = pyplot()
    fig, axes = plt.subplots(rows, 2, figsize=(8, 1.1 * rows), sharex=True, sharey=True)
    bound = float(reference.abs().max()) * 1.1
    axes[0, 0].set_ylim(-bound, bound)
    for column, (series, name) in enumerate(((samples, f"{title} samples"), (reference, "test data"))):
        axes[0, column].set_title(name)
        for row in range(rows):
            axes[row, column].plot(series[row % len(series), 0].numpy(), lw=1)
    return save_figure(fig, path, dpi=80)


@torch.no_grad()
def write_latent_pictures(model: GenerativeModel, data: DataSplits, run_dir: Path) -> None:
    """For image VAEs: ``traversals.png`` (row d: latent d of the first test image swept over
    [-3, 3], the others at its mean code) and ``interpolations.png`` (rows: the decoded line
    between the codes of test images 2k and 2k + 1)."""
    if not (hasattr(model, "traverse") and len(model.data_shape) == 3):
        return
    model.eval()
    values = torch.linspace(-3, 3, 9)
    x = data.test[:1].float()
    rows = [model.traverse(x, d, values) for d in range(min(model.config.latent_dim, 16))]
    save_image_grid(run_dir / "traversals.png", as_pictures(torch.cat(rows), data), nrow=len(values))
    pairs = data.test[:16].float()
    pictures = as_pictures(model.interpolate(pairs[0::2], pairs[1::2], steps=9), data)
    save_image_grid(run_dir / "interpolations.png", pictures, nrow=9)
