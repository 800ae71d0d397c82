"""The generative models' harness on the run layer: ``mimicgym gen train | eval | sample``.

A run is a model (by class name, see ``mimicgym list``) trained on a named data set with the
plain loop of :mod:`mimicgym.generative.train`, in a run directory of its own: ``config.json``
(what was asked, the model's resolved hyperparameters, versions), TensorBoard scalars
(``train/loss``, ``valid/nll``, ``time/epoch_seconds``) and sample grids, ``checkpoint.pt``
after every epoch (model, optimiser, RNG states, history: ``--resume`` continues bit-exactly),
``model.pt`` (the best validation epoch) and ``eval.json`` (test NLL in nats). Ctrl-C stops at
the end of the epoch, saves, and prints the command that continues the run.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mimicgym.agents.checkpoint import load_checkpoint, save_checkpoint
from mimicgym.agents.logging import Logger
from mimicgym.errors import CheckpointError, ConfigError
from mimicgym.generative import MODELS
from mimicgym.generative.base import GenerativeModel
from mimicgym.generative.train import TrainConfig, Trainer
from mimicgym.runs.directory import (
    CONFIG_FILE,
    create_run_dir,
    git_commit,
    locate_run,
    package_versions,
    read_run_record,
    write_json,
)
from mimicgym.runs.generative_data import CONTINUOUS, DATA_SETS, DataSplits, check_view, load_data, model_kwargs_for
from mimicgym.runs.generative_eval import evaluate, write_latent_pictures, write_samples
from mimicgym.runs.options import check_range, coerce_fields
from mimicgym.utils.progress import ProgressBar
from mimicgym.utils.signals import interrupt_requests

CHECKPOINT, MODEL, EVAL = "checkpoint.pt", "model.pt", "eval.json"
# Models built on another trained model: what their base run must hold.
BUILT_ON = {"LatentDiffusion": ("VAE", "BetaVAE"), "ControlNet": ("DDPM",)}


@dataclass
class GenConfig:
    model: str = "MADE"  # a class name of mimicgym.generative (see `mimicgym list`)
    data: str = "digits"  # digits | markov | motion | eight_gaussians | two_moons | checkerboard | rings
    epochs: int = 50  # passes over the training set
    batch_size: int = 64
    lr: float = 1e-3  # Adam step size
    lr_schedule: str = "constant"  # constant | cosine (annealed to 0 over the epochs)
    patience: int | None = None  # stop after this many epochs without a better validation NLL
    max_grad_norm: float | None = None  # clip the global gradient norm
    seed: int = 0  # model initialisation, shuffling, binarisation, sampling
    rao_blackwell: bool = True  # autoregressive models on grey data: grey-probability targets
    hyperparameters: dict[str, Any] = field(default_factory=dict)  # the model's (checked)
    logdir: str = "runs"  # parent of the run directory
    run_name: str | None = None  # default: gen_MODEL_DATA_sSEED
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 1  # torch threads
    sample_every: int = 10  # epochs between sample grids (0: only at the end)
    prior_epochs: int = 100  # VQ-VAE: epochs of its autoregressive prior over codes, after training
    base_run: str | None = None  # LatentDiffusion / ControlNet: the trained VAE / DDPM run they build on
    progress_bar: bool = True

    def __post_init__(self) -> None:
        for name, value in coerce_fields(GenConfig, dataclasses.asdict(self)).items():
            setattr(self, name, value)
        if self.model not in MODELS:
            raise ConfigError(f"unknown model {self.model!r}; models: {', '.join(MODELS)}")
        if self.data not in DATA_SETS:
            raise ConfigError(f"unknown data set {self.data!r}; data sets: {', '.join(DATA_SETS)}")
        check_range("threads", self.threads, 1, math.inf)
        check_range("sample_every", self.sample_every, 0, math.inf)
        check_range("prior_epochs", self.prior_epochs, 1, math.inf)
        if (self.model in BUILT_ON) != (self.base_run is not None):
            raise ConfigError(f"{self.model} builds on a trained {' or '.join(BUILT_ON[self.model])} run: pass "
                              f"--base-run RUN" if self.model in BUILT_ON else
                              f"--base-run is for {' and '.join(BUILT_ON)}; {self.model} is trained from scratch")
        self.train_config()  # epochs, batch size, lr... checked now, not after the directory exists

    def train_config(self) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, lr_schedule=self.lr_schedule,
                           patience=self.patience, max_grad_norm=self.max_grad_norm, seed=self.seed,
                           rao_blackwell=self.rao_blackwell)

    def default_run_name(self) -> str:
        return f"gen_{self.model}_{self.data}_s{self.seed}"


def build_model(cfg: GenConfig) -> tuple[GenerativeModel, DataSplits]:
    """The configured model and the data set in the view it models (a flow, GAN or diffusion
    model sees the digits' grey levels; a binary model their binarisations)."""
    cls = MODELS[cfg.model]
    unknown = sorted(set(cfg.hyperparameters) - {f.name for f in dataclasses.fields(cls.Config)})
    if unknown:
        known = ", ".join(f.name for f in dataclasses.fields(cls.Config)) or "none"
        raise ConfigError(f"{cfg.model} has no hyperparameter {unknown[0]!r}; its hyperparameters: {known}")
    hyperparameters = coerce_fields(cls.Config, cfg.hyperparameters, "hyperparameter")
    if cfg.model in BUILT_ON:
        base, base_cfg, base_dir, data = load_run_model(cfg.base_run)
        if base_cfg.model not in BUILT_ON[cfg.model]:
            raise ConfigError(f"{cfg.model} builds on a {' or '.join(BUILT_ON[cfg.model])} run; {base_dir} is a "
                              f"{base_cfg.model} run")
        if base_cfg.data != cfg.data:
            raise ConfigError(f"the base run {base_dir} was trained on {base_cfg.data!r}, not {cfg.data!r}: "
                              f"pass --data {base_cfg.data}")
        return cls(base, seed=cfg.seed, **hyperparameters), data

    def build(data: DataSplits) -> GenerativeModel:
        return cls(tuple(data.train.shape[1:]), seed=cfg.seed, device=cfg.device,
                   **{**model_kwargs_for(cls, data), **hyperparameters})

    data = load_data(cfg.data, cfg.seed)
    model = build(data)
    if model.support in CONTINUOUS and data.view in ("binary", "tokens"):
        data = load_data(cfg.data, cfg.seed, model.support)
        model = build(data)
    check_view(cfg.model, model.support, cfg.data)
    return model, data


def config_from_record(run_dir: Path) -> GenConfig:
    record = read_run_record(run_dir)
    if record.get("kind") != "generative":
        raise CheckpointError(f"{run_dir}: not a generative run (train it with `mimicgym gen train`)")
    # Runs recorded before the option existed trained on the sampled pixels: resume them so.
    options = {"rao_blackwell": False, **record["config"]}
    try:
        return GenConfig(**coerce_fields(GenConfig, options, "option"))
    except ConfigError as e:
        raise CheckpointError(f"{run_dir / CONFIG_FILE}: {e}") from None


@dataclass
class GenResult:
    run_dir: Path
    model: GenerativeModel
    test_nll: float  # nats per example (the reconstruction error for a model without a likelihood)
    evaluation: dict[str, Any]  # what eval.json holds
    history: list


def train_generative(cfg: GenConfig | None = None, resume: str | Path | None = None, **changes: Any) -> GenResult:
    """Train a new run (``cfg``), or continue the run at ``resume`` (``changes`` may raise
    ``epochs`` or set ``progress_bar``/``threads``/``device``)."""
    if resume is not None:
        run_dir = locate_run(resume)
        cfg = config_from_record(run_dir)
        unknown = set(changes) - {"epochs", "progress_bar", "threads", "device", "patience"}
        if unknown:
            raise ConfigError(f"a resumed run keeps its options; cannot change {', '.join(sorted(unknown))}")
        cfg = dataclasses.replace(cfg, **changes)
    cfg = cfg if cfg is not None else GenConfig(**changes)
    torch.set_num_threads(cfg.threads)
    model, data = build_model(cfg)  # hyperparameters checked before any directory exists
    if hasattr(model, "fit_latent_scale") and resume is None:  # latent diffusion: standardise the codes first
        model.fit_latent_scale(data.train)
    trainer = Trainer(model, data.train, data.valid, cfg.train_config(), condition=data.condition("train", model),
                      valid_condition=data.condition("valid", model))
    if resume is None:
        run_dir = create_run_dir(cfg)
        write_json(run_dir / CONFIG_FILE, {
            "kind": "generative", "config": dataclasses.asdict(cfg), "model_class": type(model).__name__,
            "hyperparameters": model.hyperparameters(), "versions": package_versions(),
            "git_commit": git_commit(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "resumes": []})
        history = None
    else:
        trainer.load_state_dict(load_checkpoint(run_dir / CHECKPOINT, expected_class=type(model).__name__)["trainer"])
        record = read_run_record(run_dir)
        record["config"]["epochs"] = cfg.epochs
        record["resumes"].append({"at_epoch": trainer.epoch, "epochs": cfg.epochs,
                                  "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "git_commit": git_commit()})
        write_json(run_dir / CONFIG_FILE, record)
        history = {"train/loss": [(r.epoch, r.train_loss) for r in trainer.history],
                   f"valid/{model.validation_metric}": [(r.epoch, r.valid_nll) for r in trainer.history
                                                        if r.valid_nll is not None]}
        for name in trainer.history[-1].terms if trainer.history else ():
            history[f"train/{name}"] = [(r.epoch, r.terms[name]) for r in trainer.history]
    logger = Logger(run_dir, {"model": cfg.model, "data": cfg.data, **model.hyperparameters()},
                    history=history, purge_step=trainer.epoch + 1 if resume is not None else None)
    label = "train loss" if model.validation_metric is None else "valid " + model.validation_metric.replace("_", " ")
    bar = ProgressBar(cfg.epochs, unit="epoch", enabled=cfg.progress_bar, label=label)
    bar.update(trainer.epoch)
    try:
        with interrupt_requests() as interrupted:
            while not trainer.stop:
                result = trainer.run_epoch()
                logger.record("train/loss", result.train_loss)
                for name, value in result.terms.items():
                    logger.record(f"train/{name}", value)
                if model.validation_metric is not None:
                    logger.record(f"valid/{model.validation_metric}", result.valid_nll)
                logger.record("time/epoch_seconds", result.seconds)
                logger.dump(result.epoch)
                _save(run_dir, trainer, cfg)
                logger.flush()
                if cfg.sample_every and result.epoch % cfg.sample_every == 0:
                    write_samples(model, data, run_dir / "samples" / f"epoch_{result.epoch:04d}.png")
                bar.update(result.epoch, result.train_loss if result.valid_nll is None else result.valid_nll)
                if interrupted:
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        bar.close()
        logger.close()
        print(f"\ninterrupted after epoch {trainer.epoch}: saved to {run_dir}\n"
              f"continue with: mimicgym gen train --resume {run_dir}", flush=True)
        raise
    bar.close()
    trainer.restore_best()
    _fit_second_stage(model, data, cfg)
    evaluation = _finish(run_dir, model, data)
    test_value = evaluation.get("test_nll_nats", evaluation.get(f"test_{model.validation_metric}"))
    logger.close(final_metrics={f"test/{k.removeprefix('test_')}": v for k, v in evaluation.items()
                                if k.startswith("test_") and isinstance(v, float)})
    return GenResult(run_dir, model, test_value, evaluation, trainer.history)


def _fit_second_stage(model: GenerativeModel, data: DataSplits, cfg: GenConfig) -> None:
    """What some models fit after their networks: the VQ-VAE's prior over its codes, the
    autoencoder's Gaussian over its codes (what ``sample`` draws from)."""
    if hasattr(model, "fit_prior"):
        model.fit_prior(data.train, epochs=cfg.prior_epochs, lr=cfg.lr, batch_size=cfg.batch_size, seed=cfg.seed)
    if hasattr(model, "fit_code_distribution"):
        model.eval()
        with torch.no_grad():
            model.fit_code_distribution(data.train)


def _save(run_dir: Path, trainer: Trainer, cfg: GenConfig) -> None:
    save_checkpoint(run_dir / CHECKPOINT, {"class": type(trainer.model).__name__, "trainer": trainer.state_dict()})


def _finish(run_dir: Path, model: GenerativeModel, data: DataSplits) -> dict[str, Any]:
    save_checkpoint(run_dir / MODEL, {"class": type(model).__name__, "state_dict": model.state_dict()})
    evaluation = evaluate(model, data)
    write_json(run_dir / EVAL, evaluation)
    write_samples(model, data, run_dir / "samples.png")
    write_latent_pictures(model, data, run_dir)
    return evaluation


def load_run_model(run: str | Path) -> tuple[GenerativeModel, GenConfig, Path, DataSplits]:
    """The trained model of a generative run directory (its best validation epoch) and its data."""
    run_dir = locate_run(run)
    cfg = config_from_record(run_dir)
    model, data = build_model(cfg)
    payload = load_checkpoint(run_dir / MODEL, map_location=model.device, expected_class=type(model).__name__)
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError) as e:
        raise CheckpointError(f"{run_dir / MODEL}: does not fit {type(model).__name__} as configured ({e})") from None
    return model, cfg, run_dir, data


def evaluate_run(run: str | Path) -> dict[str, Any]:
    """A run's evaluation recomputed on its test split: the same numbers as its ``eval.json``."""
    model, cfg, run_dir, data = load_run_model(run)
    return {"run": str(run_dir), "model": cfg.model, "data": cfg.data, **evaluate(model, data)}


def sample_run(run: str | Path, n: int = 64, out: str | Path | None = None, seed: int = 0,
               **options: Any) -> Path:
    """``n`` samples of a run's model: a PNG grid for images, a scatter plot for 2-D points, a
    text file of token rows for sequences. ``options`` go to the model's ``sample`` (a
    diffusion model's ``sampler``, ``steps``, ``guidance``; ``condition``, a class)."""
    model, _, run_dir, data = load_run_model(run)
    if "condition" in options:  # a class (a ControlNet's class labels go to its frozen DDPM)
        labels = model.check_condition(options.pop("condition"), n)
        options["labels" if hasattr(model, "make_hint") else "condition"] = labels
    suffix = {"tokens": "txt", "points": "png"}.get(data.view, "png")
    path = Path(out) if out is not None else run_dir / f"samples_n{n}_s{seed}.{suffix}"
    return write_samples(model, data, path, n, seed, **options)
