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

import numpy as np
import torch

from mimicgym.agents.checkpoint import load_checkpoint, save_checkpoint
from mimicgym.agents.logging import Logger
from mimicgym.errors import CheckpointError, ConfigError
from mimicgym.generative import MODELS
from mimicgym.generative.base import GenerativeModel
from mimicgym.generative.data import MarkovSource, digits
from mimicgym.generative.images import save_image_grid
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
from mimicgym.runs.options import check_range, coerce_fields
from mimicgym.utils.progress import ProgressBar
from mimicgym.utils.signals import interrupt_requests

DATA_SETS = ("digits", "markov", "motion")
CHECKPOINT, MODEL, EVAL = "checkpoint.pt", "model.pt", "eval.json"
MARKOV_LENGTH = 64  # symbols per sequence; 1,000 test sequences hold 64,000 symbols
MOTION_LEVELS = 64  # mu-law levels of the joint-angle windows


@dataclass
class GenConfig:
    model: str = "MADE"  # a class name of mimicgym.generative (see `mimicgym list`)
    data: str = "digits"  # digits (binarised 8x8) | markov (order-3 source, 4 symbols) | motion (joint angles)
    epochs: int = 50  # passes over the training set
    batch_size: int = 64
    lr: float = 1e-3  # Adam step size
    lr_schedule: str = "constant"  # constant | cosine (annealed to 0 over the epochs)
    patience: int | None = None  # stop after this many epochs without a better validation NLL
    max_grad_norm: float | None = None  # clip the global gradient norm
    seed: int = 0  # model initialisation, shuffling, binarisation, sampling
    hyperparameters: dict[str, Any] = field(default_factory=dict)  # the model's (checked)
    logdir: str = "runs"  # parent of the run directory
    run_name: str | None = None  # default: gen_MODEL_DATA_sSEED
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 1  # torch threads
    sample_every: int = 10  # epochs between sample grids (0: only at the end)
    prior_epochs: int = 100  # VQ-VAE: epochs of its autoregressive prior over codes, after training
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
        self.train_config()  # epochs, batch size, lr... checked now, not after the directory exists

    def train_config(self) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, lr_schedule=self.lr_schedule,
                           patience=self.patience,
                           max_grad_norm=self.max_grad_norm, seed=self.seed)

    def default_run_name(self) -> str:
        return f"gen_{self.model}_{self.data}_s{self.seed}"


@dataclass
class DataSplits:
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    model_kwargs: dict[str, Any]  # what the model needs to know of the data (vocab_size)
    unit: str  # what the NLL is per: "image" or "symbol"
    per_example: int  # units per example (1 image, T symbols)


def load_data(name: str, seed: int) -> DataSplits:
    """The named data set's splits; binary data sets train on probabilities (binarised per epoch)."""
    if name == "digits":
        return DataSplits(digits("train", binarize=False), digits("valid", seed=seed), digits("test", seed=seed),
                          {}, "image", 1)
    if name == "motion":
        return _motion_splits()
    source = MarkovSource(seed=0)  # one fixed source; the seed draws the sequences
    return DataSplits(source.sample(20_000, MARKOV_LENGTH, seed=3 * seed + 1),
                      source.sample(500, MARKOV_LENGTH, seed=3 * seed + 2),
                      source.sample(1_000, MARKOV_LENGTH, seed=3 * seed + 3),
                      {"vocab_size": source.vocab_size}, "symbol", MARKOV_LENGTH)


def _motion_splits() -> DataSplits:
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

    def tokens(split: str) -> torch.Tensor:
        chosen = [c for c in clips if split_of.get(c.name.removesuffix("_mirrored"), "train") == split]
        return mu_law_encode(joint_angle_windows(window=MARKOV_LENGTH, clips=chosen), levels=MOTION_LEVELS)

    return DataSplits(tokens("train"), tokens("valid"), tokens("test"), {"vocab_size": MOTION_LEVELS}, "symbol",
                      MARKOV_LENGTH)


def build_model(cfg: GenConfig, data: DataSplits) -> GenerativeModel:
    cls = MODELS[cfg.model]
    unknown = sorted(set(cfg.hyperparameters) - {f.name for f in dataclasses.fields(cls.Config)})
    if unknown:
        known = ", ".join(f.name for f in dataclasses.fields(cls.Config)) or "none"
        raise ConfigError(f"{cfg.model} has no hyperparameter {unknown[0]!r}; its hyperparameters: {known}")
    hyperparameters = {**data.model_kwargs, **coerce_fields(cls.Config, cfg.hyperparameters, "hyperparameter")}
    return cls(tuple(data.train.shape[1:]), seed=cfg.seed, device=cfg.device, **hyperparameters)


def config_from_record(run_dir: Path) -> GenConfig:
    record = read_run_record(run_dir)
    if record.get("kind") != "generative":
        raise CheckpointError(f"{run_dir}: not a generative run (train it with `mimicgym gen train`)")
    try:
        return GenConfig(**coerce_fields(GenConfig, record["config"], "option"))
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
    data = load_data(cfg.data, cfg.seed)
    model = build_model(cfg, data)  # hyperparameters checked before any directory exists
    trainer = Trainer(model, data.train, data.valid, cfg.train_config())
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
                   "valid/nll": [(r.epoch, r.valid_nll) for r in trainer.history if r.valid_nll is not None]}
    logger = Logger(run_dir, {"model": cfg.model, "data": cfg.data, **model.hyperparameters()},
                    history=history, purge_step=trainer.epoch + 1 if resume is not None else None)
    bar = ProgressBar(cfg.epochs, unit="epoch", enabled=cfg.progress_bar, label="valid nll")
    bar.update(trainer.epoch)
    try:
        with interrupt_requests() as interrupted:
            while not trainer.stop:
                result = trainer.run_epoch()
                logger.record("train/loss", result.train_loss)
                logger.record("valid/nll", result.valid_nll)
                logger.record("time/epoch_seconds", result.seconds)
                logger.dump(result.epoch)
                _save(run_dir, trainer, cfg)
                logger.flush()
                if cfg.sample_every and result.epoch % cfg.sample_every == 0:
                    _write_samples(model, run_dir / "samples" / f"epoch_{result.epoch:04d}.png")
                bar.update(result.epoch, result.valid_nll)
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
    test_value = evaluation.get("test_nll_nats", evaluation.get("test_reconstruction_error"))
    logger.close(final_metrics={"test/nll" if model.has_likelihood else "test/reconstruction_error": test_value})
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
    evaluation = _eval_record(model, data, evaluate_model(model, data.test))
    write_json(run_dir / EVAL, evaluation)
    _write_samples(model, run_dir / "samples.png")
    _write_latent_pictures(model, data.test, run_dir)
    return evaluation


@torch.no_grad()
def _write_latent_pictures(model: GenerativeModel, test: torch.Tensor, run_dir: Path) -> None:
    """For image VAEs: ``traversals.png`` (row d: latent d of the first test image swept over
    [-3, 3], the others at its mean code) and ``interpolations.png`` (rows: the decoded line
    between the codes of test images 2k and 2k + 1)."""
    if not (hasattr(model, "traverse") and len(model.data_shape) == 3):
        return
    model.eval()
    values = torch.linspace(-3, 3, 9)
    x = test[:1].float()
    rows = [model.traverse(x, d, values) for d in range(min(model.config.latent_dim, 16))]
    save_image_grid(run_dir / "traversals.png", torch.cat(rows), nrow=len(values))
    pairs = test[:16].float()
    save_image_grid(run_dir / "interpolations.png", model.interpolate(pairs[0::2], pairs[1::2], steps=9), nrow=9)


@torch.no_grad()
def evaluate_model(model: GenerativeModel, test: torch.Tensor, batch_size: int = 256) -> float:
    """Mean test NLL in nats per example (an upper bound where ``model.nll_is_bound``; the
    reconstruction error of a model without a likelihood)."""
    model.eval()
    return torch.cat([model.validation_loss(batch) for batch in test.split(batch_size)]).double().mean().item()


def describe_evaluation(record: dict[str, Any]) -> str:
    """One line for an eval record: the test NLL (per example and per symbol), or the
    reconstruction error of a model without a likelihood."""
    if "test_nll_nats" not in record:
        return f"test reconstruction error {record['test_reconstruction_error']:.4f} per example"
    line = f"test NLL {record['test_nll_nats']:.3f} nats per example"
    if record["per"] != "image":
        line += f", {record['test_nll_nats_per_' + record['per']]:.4f} per {record['per']}"
    return line + (" (an upper bound)" if record["is_bound"] else "")


def _eval_record(model: GenerativeModel, data: DataSplits, value: float) -> dict[str, Any]:
    if not model.has_likelihood:
        return {"test_reconstruction_error": value, "test_examples": len(data.test)}
    return {"test_nll_nats": value, "per": data.unit, "test_nll_nats_per_" + data.unit: value / data.per_example,
            "is_bound": model.nll_is_bound, "test_examples": len(data.test)}


def _write_samples(model: GenerativeModel, path: Path, n: int = 64) -> Path | None:
    """A PNG grid of ``n`` samples for image models (sequences have no picture here)."""
    if len(model.data_shape) != 3:
        return None
    model.eval()
    try:
        samples = model.sample(n, generator=torch.Generator(model.device).manual_seed(model.seed))
    except NotImplementedError:  # not yet: an autoencoder samples once its codes' Gaussian is fitted
        return None
    finally:
        model.train()
    return save_image_grid(path, samples.float() / max(1, getattr(model.config, "vocab_size", 2) - 1))


def load_run_model(run: str | Path) -> tuple[GenerativeModel, GenConfig, Path]:
    """The trained model of a generative run directory (its best validation epoch)."""
    run_dir = locate_run(run)
    cfg = config_from_record(run_dir)
    model = build_model(cfg, load_data(cfg.data, cfg.seed))
    payload = load_checkpoint(run_dir / MODEL, map_location=model.device, expected_class=type(model).__name__)
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError) as e:
        raise CheckpointError(f"{run_dir / MODEL}: does not fit {type(model).__name__} as configured ({e})") from None
    return model, cfg, run_dir


def evaluate_run(run: str | Path) -> dict[str, Any]:
    """Test NLL of a run's model, recomputed: the same number as its ``eval.json``."""
    model, cfg, run_dir = load_run_model(run)
    data = load_data(cfg.data, cfg.seed)
    value = evaluate_model(model, data.test)
    return {"run": str(run_dir), "model": cfg.model, "data": cfg.data, **_eval_record(model, data, value)}


def sample_run(run: str | Path, n: int = 64, out: str | Path | None = None, seed: int = 0) -> Path:
    """``n`` samples of a run's model: a PNG grid for images, a text file of token rows for sequences."""
    model, _, run_dir = load_run_model(run)
    model.eval()
    samples = model.sample(n, generator=torch.Generator(model.device).manual_seed(seed))
    if len(model.data_shape) == 3:
        path = Path(out) if out is not None else run_dir / f"samples_n{n}_s{seed}.png"
        return save_image_grid(path, samples.float() / max(1, getattr(model.config, "vocab_size", 2) - 1))
    path = Path(out) if out is not None else run_dir / f"samples_n{n}_s{seed}.txt"
    write_text = "\n".join(" ".join(map(str, row)) for row in samples.long().flatten(1).tolist()) + "\n"
    from mimicgym.utils.io import atomic_write

    with atomic_write(path, "w") as f:
        f.write(write_text)
    return path
