"""Flows, GANs and diffusion measured against data and against the libraries people use, in one run.

Sections (each row of the JSON is ``{data_set: {model: {metric: value}}}``):

- 2-D densities (``eight_gaussians``, ``two_moons``, ``checkerboard``; 20,000 train, 5,000 test
  points): test NLL in nats of our RealNVP and Glow-style flow (ActNorm + LU-linear + coupling)
  next to ``ref:zuko.RealNVP`` of the same size (same couplings, hidden widths, Adam, cosine
  schedule, steps, batch and minibatch order), mean over 3 seeds, with training seconds; a
  scikit-learn Gaussian mixture as a baseline; the entropy floor where it is known exactly
  (eight Gaussians 2.8316 nats: the 2.838 often quoted treats the modes as disjoint; checkerboard
  log 32 = 3.466).
- Sample quality on 2-D sets: energy distance of 5,000 samples to the test points for the flow,
  GAN, unrolled GAN, WGAN-GP and DDPM; on eight Gaussians the modes covered (a mode counts when
  it holds >= 2% of samples within 3 sigma).
- Digits (17 grey levels in [-1, 1]): bits/dim of the flows (uniform dequantisation); Frechet
  distance on a small digit classifier's features (trained here on the real training split) for
  DCGAN, WGAN-GP, DDPM and latent diffusion; class accuracy of classifier-free-guided samples at
  guidance weights 0, 1 and 3; the ControlNet condition's agreement.
- Sampling seconds per 1,000 samples for every model; our DDPM sampling loop next to
  ``diffusers``' scheduler loop around the same network.

Jobs run in parallel worker processes with one torch thread each (``--workers``, default 2).
The full run (about an hour on two cores) checks the issue's targets; ``--quick`` (under ten
minutes) checks that everything runs and checks none. Needs the ``bench`` extra (zuko, diffusers).

    python benchmarks/generative_samples.py [--quick] [--only SECTION ...] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mimicgym.generative.data import toy2d  # noqa: E402
from mimicgym.generative.metrics import (  # noqa: E402
    eight_gaussians_modes,
    energy_distance,
    modes_covered,
    toy2d_entropy,
)
from mimicgym.utils.io import write_results  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "generative_samples.json"
FLOW_SETS = ("eight_gaussians", "two_moons", "checkerboard")
N_TRAIN, N_TEST, N_SAMPLES = 20_000, 5_000, 5_000
# The flows' comparison: every flow gets these, ours and the library's alike.
FLOW = {"layers": 8, "hidden": 128, "steps": 6_000, "batch": 256, "lr": 1e-3, "seeds": (0, 1, 2)}
QUICK_FLOW = {**FLOW, "steps": 300, "seeds": (0,)}
QUICK_EPOCHS = 2
PICTURE = "_samples"  # a row's samples to draw (popped before the JSON is written)


# -- shared ---------------------------------------------------------------------------------
def toy_splits(name: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    return toy2d(name, N_TRAIN, seed=3 * seed + 1), toy2d(name, N_TEST, seed=3 * seed + 3)


def train_by_steps(params, loss_of: Callable[[torch.Tensor], torch.Tensor], data: torch.Tensor, steps: int,
                   batch: int, lr: float, seed: int) -> float:
    """Adam with cosine annealing over ``steps`` minibatches drawn by a seeded generator: the
    loop every flow of the comparison trains with. Returns the seconds it took."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(params, lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    start = time.perf_counter()
    for _ in range(steps):
        loss = loss_of(data[torch.randint(len(data), (batch,), generator=generator)])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return time.perf_counter() - start


def sample_quality(samples: torch.Tensor, test: torch.Tensor, data_set: str) -> dict[str, Any]:
    row: dict[str, Any] = {"energy_distance": energy_distance(samples, test)}
    if data_set == "eight_gaussians":
        centres, sigma = eight_gaussians_modes()
        row["modes_covered"] = int(modes_covered(samples, centres, sigma))
    return row


def seconds_per_1000(sample: Callable[[int], torch.Tensor], n: int = 1_000) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        sample(n)
    return (time.perf_counter() - start) * 1_000 / n


# -- 2-D flows against zuko -----------------------------------------------------------------
def flow_job(data_set: str, model: str, seed: int, quick: bool) -> tuple[str, str, int, dict[str, Any]]:
    """One flow trained on one 2-D set with one seed: test NLL, seconds, sample quality (seed 0)."""
    torch.set_num_threads(1)
    spec = QUICK_FLOW if quick else FLOW
    train, test = toy_splits(data_set)
    if model == "ref:zuko.RealNVP":
        import zuko

        with torch.random.fork_rng():
            torch.manual_seed(seed)
            flow = zuko.flows.RealNVP(2, transforms=spec["layers"], hidden_features=(spec["hidden"],) * 2)
        seconds = train_by_steps(flow.parameters(), lambda b: -flow().log_prob(b).mean(), train, spec["steps"],
                                 spec["batch"], spec["lr"], seed)
        with torch.no_grad():
            nll = -flow().log_prob(test).double().mean().item()
            torch.manual_seed(seed)
            samples = flow().sample((N_SAMPLES,))
        sample_seconds = seconds_per_1000(lambda n: flow().sample((n,)))
    else:
        from mimicgym.generative import Glow, RealNVP

        size = {"layers": spec["layers"]} if model == "RealNVP" else {"steps": spec["layers"]}
        flow = {"RealNVP": RealNVP, "Glow": Glow}[model]((2,), seed=seed, device="cpu", hidden=spec["hidden"], **size)
        seconds = train_by_steps(flow.parameters(), flow.loss, train, spec["steps"], spec["batch"], spec["lr"], seed)
        flow.eval()
        with torch.no_grad():
            nll = flow.nll(test).double().mean().item()
            samples = flow.sample(N_SAMPLES, generator=torch.Generator().manual_seed(seed))
        sample_seconds = seconds_per_1000(flow.sample)
    row = {"nll": nll, "train_seconds": seconds, "sample_seconds_per_1000": sample_seconds,
           **sample_quality(samples, test, data_set)}
    if seed == 0:
        row[PICTURE] = samples
    return data_set, model, seed, row


def flow_speed_job(data_set: str, quick: bool) -> tuple[str, str, int, dict[str, Any]]:
    """Training speed of our RealNVP and zuko's, same size, batches and optimiser, timed in the
    same process in alternating rounds (process CPU time, one thread), so that both see the
    same machine load: milliseconds per training step."""
    import zuko

    from mimicgym.generative import RealNVP

    torch.set_num_threads(1)
    spec = QUICK_FLOW if quick else FLOW
    train, _ = toy_splits(data_set)
    ours = RealNVP((2,), seed=0, device="cpu", hidden=spec["hidden"], layers=spec["layers"])
    theirs = zuko.flows.RealNVP(2, transforms=spec["layers"], hidden_features=(spec["hidden"],) * 2)
    losses = {"ours": ours.loss, "theirs": lambda b: -theirs().log_prob(b).mean()}
    optimizers = {"ours": torch.optim.Adam(ours.parameters(), lr=spec["lr"]),
                  "theirs": torch.optim.Adam(theirs.parameters(), lr=spec["lr"])}
    cpu = {"ours": 0.0, "theirs": 0.0}
    rounds, steps = (2, 50) if quick else (10, 200)
    generator = torch.Generator().manual_seed(0)
    for _ in range(rounds):
        batches = [train[torch.randint(len(train), (spec["batch"],), generator=generator)] for _ in range(steps)]
        for name in ("ours", "theirs"):
            start = time.process_time()
            for batch in batches:
                loss = losses[name](batch)
                optimizers[name].zero_grad(set_to_none=True)
                loss.backward()
                optimizers[name].step()
            cpu[name] += time.process_time() - start
    per_step = {name: 1_000 * seconds / (rounds * steps) for name, seconds in cpu.items()}
    return data_set, "training speed", 0, {"ours_ms_per_step": per_step["ours"],
                                            "zuko_ms_per_step": per_step["theirs"],
                                            "speedup": per_step["theirs"] / per_step["ours"]}


def flow_speed_jobs(quick: bool) -> list[tuple[Callable, tuple]]:
    return [(flow_speed_job, (d, quick)) for d in FLOW_SETS]


def gaussian_mixture_row(data_set: str, seed: int = 0) -> dict[str, Any]:
    from sklearn.mixture import GaussianMixture

    train, test = toy_splits(data_set)
    start = time.perf_counter()
    mixture = GaussianMixture(n_components=16, covariance_type="full", random_state=seed).fit(train.numpy())
    return {"nll": -float(mixture.score(test.numpy())), "train_seconds": time.perf_counter() - start,
            "components": 16}


def mean_over_seeds(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean of each numeric metric over seeds, with the per-seed NLLs and their standard error."""
    out: dict[str, Any] = {}
    for key in rows[0]:
        values = [r[key] for r in rows]
        out[key] = sum(values) / len(values) if isinstance(values[0], float) else values[0]
    nlls = [r["nll"] for r in rows]
    out["nll_per_seed"] = nlls
    if len(nlls) > 1:
        mean = sum(nlls) / len(nlls)
        out["nll_sem"] = math.sqrt(sum((v - mean) ** 2 for v in nlls) / (len(nlls) - 1) / len(nlls))
    return out


# -- 2-D sample quality ---------------------------------------------------------------------
SAMPLERS_2D = {  # name -> (model class, hyperparameters, training options of the full run)
    "GAN": ("GAN", {}, {"epochs": 300, "lr": 1e-3}),
    "UnrolledGAN": ("GAN", {"unrolled_steps": 5}, {"epochs": 45, "lr": 1e-3}),
    "WGANGP": ("WGANGP", {}, {"epochs": 65, "lr": 3e-4}),
    "DDPM": ("DDPM", {}, {"epochs": 120, "lr": 1e-3, "lr_schedule": "cosine"}),
}


def sample_quality_job(data_set: str, name: str, quick: bool) -> tuple[str, str, int, dict[str, Any]]:
    """A GAN or diffusion model trained on one 2-D set: energy distance and modes of 5,000 samples."""
    from mimicgym.generative import MODELS
    from mimicgym.generative.train import fit

    torch.set_num_threads(1)
    model_name, hyperparameters, options = SAMPLERS_2D[name]
    options = {**options, "batch_size": 256, **({"epochs": QUICK_EPOCHS} if quick else {})}
    train, test = toy_splits(data_set)
    model = MODELS[model_name]((2,), seed=0, device="cpu", **hyperparameters)
    start = time.perf_counter()
    fit(model, train, **options)
    row: dict[str, Any] = {"train_seconds": time.perf_counter() - start}
    model.eval()
    with torch.no_grad():
        samples = model.sample(N_SAMPLES, generator=torch.Generator().manual_seed(0))
    row["sample_seconds_per_1000"] = seconds_per_1000(model.sample)
    return data_set, name, 0, {**row, **sample_quality(samples, test, data_set), PICTURE: samples}


def sample_quality_jobs(quick: bool) -> list[tuple[Callable, tuple]]:
    return [(sample_quality_job, (d, m, quick)) for d in FLOW_SETS for m in SAMPLERS_2D]


# -- digits ---------------------------------------------------------------------------------
DIGITS = {  # model -> hyperparameters and training options of the full run
    "RealNVP": {"hyperparameters": {"levels": 17}, "train": {"epochs": 120, "lr": 1e-3, "lr_schedule": "cosine"}},
    "Glow": {"hyperparameters": {"levels": 17}, "train": {"epochs": 120, "lr": 1e-3, "lr_schedule": "cosine"}},
    "DDPM": {"hyperparameters": {"num_classes": 10, "clip_sample": 1.0},
             "train": {"epochs": 100, "lr": 2e-3, "lr_schedule": "cosine"}},
    "DCGAN": {"hyperparameters": {}, "train": {"epochs": 400, "lr": 2e-4}},
    "WGANGP": {"hyperparameters": {}, "train": {"epochs": 150, "lr": 2e-4}},
}
FID_SAMPLES = 1_000
GUIDANCE_WEIGHTS = (0, 1, 3)


def digits_data():
    from mimicgym.generative.data import digit_labels, grey_digits

    return {split: (grey_digits(split), digit_labels(split)) for split in ("train", "valid", "test")}


def digit_classifier():
    from mimicgym.generative.metrics import fit_digit_classifier

    return fit_digit_classifier(seed=0)


def digits_reference_job(quick: bool) -> tuple[str, str, int, dict[str, Any]]:
    """The Frechet distance of real held-out digits to the test split: what a perfect model scores."""
    from mimicgym.generative.metrics import class_accuracy, digit_frechet_distance

    torch.set_num_threads(1)
    data, classifier = digits_data(), digit_classifier()
    (train, train_labels), (test, test_labels) = data["train"], data["test"]
    return "digits", "real train split", 0, {
        "frechet_distance": digit_frechet_distance(train, test, classifier),
        "classifier_test_accuracy": class_accuracy(test, test_labels, classifier),
        "classifier_train_accuracy": class_accuracy(train, train_labels, classifier)}


def digits_job(model_name: str, quick: bool) -> tuple[str, str, int, dict[str, Any]]:
    """One model trained on the grey digits: its own metric, Frechet distance of 1,000 samples to
    the test split, sampling time; for the conditional DDPM also guided class accuracy and the
    sampling loop of diffusers around the same network."""
    import math as _math

    from mimicgym.generative import MODELS
    from mimicgym.generative.metrics import digit_frechet_distance
    from mimicgym.generative.train import fit

    torch.set_num_threads(1)
    spec = DIGITS[model_name]
    options = {**spec["train"], **({"epochs": QUICK_EPOCHS} if quick else {})}
    data, classifier = digits_data(), digit_classifier()
    (train, train_labels), (valid, valid_labels), (test, _) = data["train"], data["valid"], data["test"]
    model = MODELS[model_name]((1, 8, 8), seed=0, device="cpu", **spec["hyperparameters"])
    conditional = getattr(model.config, "num_classes", None) is not None
    start = time.perf_counter()
    validate = model.validation_metric is not None
    fit(model, train, valid if validate else None, condition=train_labels if conditional else None,
        valid_condition=valid_labels if conditional and validate else None, **options)
    row: dict[str, Any] = {"train_seconds": time.perf_counter() - start}
    model.eval()
    if model.has_likelihood:
        with torch.no_grad():
            nll = torch.cat([model.nll(batch) for batch in test.split(256)]).double().mean().item()
        row["bits_per_dim"] = nll / (64 * _math.log(2))
    n = 100 if quick else FID_SAMPLES
    labels = torch.arange(n) % 10
    condition = {"condition": labels} if conditional else {}
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    samples = model.sample(n, generator=generator, **condition)
    row["sample_seconds_per_1000"] = (time.perf_counter() - start) * 1_000 / n
    row["frechet_distance"] = digit_frechet_distance(samples, test, classifier)
    row[PICTURE] = samples[:100]
    if model_name == "DDPM":
        row.update(guidance_and_samplers(model, classifier, n))
        row.update(controlnet_agreement(model, train, train_labels, test, data["test"][1], quick))
    return "digits", model_name, 0, row


def controlnet_agreement(ddpm, train, train_labels, test, test_labels, quick: bool) -> dict[str, Any]:
    """A ControlNet trained on the frozen DDPM with the 4x4 sketch of each image as its new
    condition: the mean absolute error between the sketch of a sample and the sketch asked for
    (the test images'), for the ControlNet's samples and for the frozen DDPM's."""
    from mimicgym.generative import ControlNet, sketch, sketch_error
    from mimicgym.generative.train import fit

    control = ControlNet(ddpm, seed=0)
    start = time.perf_counter()
    fit(control, train, condition=train_labels, epochs=QUICK_EPOCHS if quick else 60, lr=1e-3,
        lr_schedule="cosine")
    seconds = time.perf_counter() - start
    hints = sketch(test)
    options = {"labels": test_labels, "sampler": "ddim", "steps": 50}
    steered = control.sample(len(test), torch.Generator().manual_seed(0), condition=hints, **options)
    free = control.sample(len(test), torch.Generator().manual_seed(0), condition=None, **options)
    # Rows: ten test images, their sketches, the frozen DDPM's samples, the ControlNet's.
    shown = torch.cat([test[:10], torch.nn.functional.interpolate(hints[:10], size=test.shape[-2:]), free[:10],
                       steered[:10]])
    return {"controlnet_train_seconds": seconds, "controlnet_sketch_error": sketch_error(steered, hints).mean().item(),
            "frozen_sketch_error": sketch_error(free, hints).mean().item(), PICTURE + "controlnet": shown}


def latent_diffusion_job(quick: bool) -> tuple[str, str, int, dict[str, Any]]:
    """A DDPM in the 12-dimensional code space of a Gaussian-decoder VAE trained on the grey digits."""
    from mimicgym.generative import VAE, LatentDiffusion
    from mimicgym.generative.metrics import digit_frechet_distance
    from mimicgym.generative.train import fit

    torch.set_num_threads(1)
    data, classifier = digits_data(), digit_classifier()
    (train, _), (valid, _), (test, _) = data["train"], data["valid"], data["test"]
    start = time.perf_counter()
    vae = VAE((1, 8, 8), seed=0, device="cpu", decoder="gaussian", latent_dim=12)
    fit(vae, train, valid, epochs=QUICK_EPOCHS if quick else 100, lr=1e-3)
    model = LatentDiffusion(vae, seed=0).fit_latent_scale(train)
    fit(model, train, valid, epochs=QUICK_EPOCHS if quick else 150, lr=1e-3, lr_schedule="cosine")
    row: dict[str, Any] = {"train_seconds": time.perf_counter() - start}
    n = 100 if quick else FID_SAMPLES
    start = time.perf_counter()
    samples = model.sample(n, generator=torch.Generator().manual_seed(0))
    row["sample_seconds_per_1000"] = (time.perf_counter() - start) * 1_000 / n
    row["frechet_distance"] = digit_frechet_distance(samples, test, classifier)
    row[PICTURE] = samples[:100]
    with torch.no_grad():
        row["vae_frechet_distance"] = digit_frechet_distance(
            vae.sample(n, generator=torch.Generator().manual_seed(0), mean=True), test, classifier)
    return "digits", "LatentDiffusion", 0, row


def guidance_and_samplers(model, classifier, n: int) -> dict[str, Any]:
    """Class accuracy of DDIM-50 samples at guidance weights 0, 1, 3; DDIM sampling time; our
    ancestral loop next to diffusers' DDPMScheduler loop around the same network."""
    from diffusers import DDPMScheduler

    from mimicgym.generative.metrics import class_accuracy

    labels = torch.arange(n) % 10
    row: dict[str, Any] = {"cfg_class_accuracy": {}}
    for w in GUIDANCE_WEIGHTS:
        start = time.perf_counter()
        samples = model.sample(n, torch.Generator().manual_seed(1), condition=labels, sampler="ddim", steps=50,
                               guidance=float(w))
        if w == 0:
            row["ddim50_sample_seconds_per_1000"] = (time.perf_counter() - start) * 1_000 / n
        row["cfg_class_accuracy"][str(w)] = class_accuracy(samples, labels, classifier)
    T = model.config.timesteps
    scheduler = DDPMScheduler(num_train_timesteps=T, trained_betas=model.schedule.betas.numpy(),
                              variance_type="fixed_large", clip_sample=True, clip_sample_range=1.0,
                              prediction_type="epsilon")
    scheduler.set_timesteps(T)
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    with torch.no_grad():
        x = torch.randn((n, *model.data_shape), generator=generator)
        for t in scheduler.timesteps:
            eps = model.predict_noise(x, int(t), labels)
            x = scheduler.step(eps, t, x, generator=generator).prev_sample
    row["diffusers_loop_seconds_per_1000"] = (time.perf_counter() - start) * 1_000 / n
    return row


# -- driver ---------------------------------------------------------------------------------
def flow_jobs(quick: bool) -> list[tuple[Callable, tuple]]:
    spec = QUICK_FLOW if quick else FLOW
    return [(flow_job, (d, m, s, quick)) for d in FLOW_SETS for m in ("RealNVP", "Glow", "ref:zuko.RealNVP")
            for s in spec["seeds"]]


def digits_jobs(quick: bool) -> list[tuple[Callable, tuple]]:
    return ([(digits_job, ("DDPM", quick)), (digits_reference_job, (quick,)), (latent_diffusion_job, (quick,))]
            + [(digits_job, (m, quick)) for m in DIGITS if m != "DDPM"])


def write_pictures(folder: Path, data_set: str, model: str, row: dict[str, Any]) -> None:
    """Pop a row's samples and draw them: a scatter plot beside the test points (2-D) or a grid."""
    from mimicgym.generative.images import save_image_grid
    from mimicgym.runs.generative_eval import scatter_plot

    for key in [k for k in row if k.startswith(PICTURE)]:
        samples = row.pop(key)
        name = f"{data_set}_{model.replace(':', '_')}{key.removeprefix(PICTURE) and '_' + key.removeprefix(PICTURE)}"
        if samples.dim() == 2:
            scatter_plot(folder / f"{name}.png", samples[:2_000], toy_splits(data_set)[1], title=model)
        else:
            save_image_grid(folder / f"{name}.png", (samples.float() + 1) / 2, nrow=10)


def check_targets(results: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    missed = []
    for data_set in FLOW_SETS:
        rows = results.get(data_set, {})
        if {"RealNVP", "ref:zuko.RealNVP"} <= rows.keys():
            ours, theirs = rows["RealNVP"], rows["ref:zuko.RealNVP"]
            if ours["nll"] > theirs["nll"] + 0.05:
                missed.append(f"{data_set}: our RealNVP {ours['nll']:.3f} > zuko's {theirs['nll']:.3f} + 0.05")
        speed = rows.get("training speed")
        if speed is not None and speed["speedup"] < 1:
            missed.append(f"{data_set}: our RealNVP takes {speed['ours_ms_per_step']:.2f} ms per step, zuko's "
                          f"{speed['zuko_ms_per_step']:.2f} ms")
    eight = results.get("eight_gaussians", {})
    best = min((r["nll"] for k, r in eight.items() if not k.startswith("ref:") and "nll" in r and k != "floor"),
               default=math.inf)
    if best > toy2d_entropy("eight_gaussians") + 0.15:
        missed.append(f"eight_gaussians: best flow {best:.3f} not within 0.15 nats of the entropy")
    for model in ("WGANGP", "DDPM"):
        covered = eight.get(model, {}).get("modes_covered")
        if covered is not None and covered < 7:
            missed.append(f"eight_gaussians: {model} covers {covered} of 8 modes")
    return missed


def markdown(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    lines = []
    for data_set, rows in results.items():
        if data_set == "meta":
            continue
        metrics = sorted({k for r in rows.values() for k, v in r.items() if isinstance(v, (int, float))
                          and not isinstance(v, bool)})
        lines += [f"### {data_set}", "", "| model | " + " | ".join(metrics) + " |",
                  "|---|" + "---:|" * len(metrics)]
        for model, row in rows.items():
            lines.append(f"| {model} | " + " | ".join(_cell(row.get(m)) for m in metrics) + " |")
        for model, row in rows.items():
            if "cfg_class_accuracy" in row:
                shown = ", ".join(f"w={w}: {acc:.3f}" for w, acc in row["cfg_class_accuracy"].items())
                lines += ["", f"{model}: class accuracy of guided samples (classifier-free guidance) {shown}"]
        lines.append("")
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    return f"{value:.4f}" if abs(value) < 100 else f"{value:.1f}"


SECTIONS: dict[str, Callable[[bool], list[tuple[Callable, tuple]]]] = {
    "flows": flow_jobs, "speed": flow_speed_jobs, "samples": sample_quality_jobs, "digits": digits_jobs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short training: checks that everything runs")
    parser.add_argument("--only", nargs="*", choices=SECTIONS, help="sections to run (default all)")
    parser.add_argument("--workers", type=int, default=2, help="jobs in parallel, one torch thread each")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON path (a .md table is written beside it)")
    parser.add_argument("--merge", type=Path, help="an earlier result JSON whose rows this run adds to (or replaces)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    sections = args.only or list(SECTIONS)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    per_seed: dict[tuple[str, str], list[dict[str, Any]]] = {}
    jobs = [job for section in sections for job in SECTIONS[section](args.quick)]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = [pool.submit(fn, *fn_args) for fn, fn_args in jobs]
        if "flows" in sections:
            for data_set in FLOW_SETS:
                results.setdefault(data_set, {})["ref:sklearn.GaussianMixture"] = gaussian_mixture_row(data_set)
                if data_set in ("eight_gaussians", "checkerboard"):
                    results[data_set]["floor"] = {"nll": toy2d_entropy(data_set)}
        for future in futures:
            data_set, model, seed, row = future.result()
            per_seed.setdefault((data_set, model), []).append(row)
            shown = ", ".join(f"{k} {v:.4g}" for k, v in row.items() if isinstance(v, float))
            print(f"{data_set:>16} {model:<22} seed {seed}: {shown}", flush=True)
    if args.merge:
        earlier = json.loads(args.merge.read_text())
        for data_set, rows in earlier.items():
            if data_set != "meta":
                results[data_set] = {**rows, **results.get(data_set, {})}
    for (data_set, model), rows in per_seed.items():
        for row in rows:
            write_pictures(args.out.parent / "generative_samples", data_set, model, row)
        results.setdefault(data_set, {})[model] = mean_over_seeds(rows) if len(rows) > 1 else rows[0]
    table = markdown(results)
    failures = [] if args.quick else check_targets(results)
    print("\n" + table)
    if not args.quick:
        print("targets: " + ("all met" if not failures else "MISSED: " + "; ".join(failures)))
    payload = {**results, "meta": {"quick": args.quick, "seconds": round(time.perf_counter() - start, 1),
                                   "machine": platform.machine(), "torch": torch.__version__, "missed": failures}}
    write_results(args.out, payload, table)
    print(f"wrote {args.out} and {args.out.with_suffix('.md')} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
