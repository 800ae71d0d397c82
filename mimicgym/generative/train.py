"""The plain training loop of the generative models: model, data, optimiser, epochs, seed; no files.

``fit(model, train, valid)`` is all most users need. ``Trainer`` is the same loop, one epoch
per call, with a ``state_dict`` (model, optimiser, shuffling generator, history) so that the
run layer's harness can checkpoint and resume it bit-exactly.

Binary models trained on probabilities (the digits with ``binarize=False``) see a fresh
Bernoulli draw of the training set every epoch (dynamic binarisation).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from typing import Any, Callable

import torch

from mimicgym.errors import ConfigError
from mimicgym.generative.base import GenerativeModel
from mimicgym.generative.data import binarize_images
from mimicgym.utils.checks import check_choice, check_positive, check_positive_int
from mimicgym.utils.progress import ProgressBar


@dataclasses.dataclass
class TrainConfig:
    epochs: int = 50
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    max_grad_norm: float | None = None  # clip the global gradient norm; None: no clipping
    patience: int | None = None  # early stop after this many epochs without a better validation NLL
    lr_schedule: str = "constant"  # constant | cosine (annealed to 0 over `epochs`, set per epoch)
    seed: int = 0
    # Dynamic binarisation: give the model the grey probabilities too (``binarized_loss``).
    rao_blackwell: bool = True

    def __post_init__(self):
        check_positive_int("epochs", self.epochs)
        check_positive_int("batch_size", self.batch_size)
        check_positive("lr", self.lr)
        check_positive("weight_decay", self.weight_decay, allow_zero=True)
        check_choice("lr_schedule", self.lr_schedule, ("constant", "cosine"))
        if not isinstance(self.rao_blackwell, bool):
            raise ConfigError(f"rao_blackwell must be a bool, got {self.rao_blackwell!r}")
        if self.max_grad_norm is not None:
            check_positive("max_grad_norm", self.max_grad_norm)
        if self.patience is not None:
            check_positive_int("patience", self.patience)


@dataclasses.dataclass
class EpochResult:
    epoch: int
    train_loss: float
    valid_nll: float | None  # what model.validation_loss measures (its validation_metric)
    seconds: float
    terms: dict[str, float] = dataclasses.field(default_factory=dict)  # other logged training terms


class Trainer:
    """``model.training_step`` (Adam on ``model.loss`` unless the model says otherwise) over
    shuffled minibatches; validation by ``model.validation_loss`` (the NLL, or its bound, for
    likelihood models) each epoch.

    Keeps the parameters of the best validation epoch (``best_state``); ``stop`` turns true
    after ``patience`` epochs without improvement. A non-finite loss or gradient norm raises
    ``FloatingPointError`` naming the epoch and step.
    """

    def __init__(self, model: GenerativeModel, train: torch.Tensor, valid: torch.Tensor | None = None,
                 config: TrainConfig | None = None, *, condition: torch.Tensor | None = None,
                 valid_condition: torch.Tensor | None = None, **options: Any):
        self.config = config if config is not None else TrainConfig(**options)
        self.model = model
        # Binary models also train on probabilities in [0, 1], binarised anew every epoch.
        self.train_data = model.check_input(train, "train", "unit" if model.support == "binary" else None)
        self.valid_data = None if valid is None else model.check_input(valid, "valid")
        # Class labels of a conditional model, aligned with the examples.
        self.condition = _labels(model, condition, len(self.train_data), "condition")
        self.valid_condition = None if valid is None else _labels(model, valid_condition, len(valid),
                                                                  "valid_condition")
        self.dynamic_binarization = model.support == "binary" and not bool(
            ((self.train_data == 0) | (self.train_data == 1)).all())
        self.optimizers = model.make_optimizers(self.config.lr, self.config.weight_decay)
        self.generator = torch.Generator(device=model.device).manual_seed(self.config.seed)
        self.epoch = 0
        self.step = 0
        self.history: list[EpochResult] = []
        self.best_nll = math.inf
        self.best_state: dict[str, torch.Tensor] | None = None
        self.epochs_without_improvement = 0

    @property
    def stop(self) -> bool:
        patience = self.config.patience
        return self.epoch >= self.config.epochs or (
            patience is not None and self.epochs_without_improvement >= patience)

    def learning_rate(self) -> float:
        """The step size of the coming epoch: a function of the epoch alone, so resume is exact."""
        if self.config.lr_schedule == "cosine":
            return self.config.lr * 0.5 * (1 + math.cos(math.pi * self.epoch / self.config.epochs))
        return self.config.lr

    def run_epoch(self) -> EpochResult:
        start = time.perf_counter()
        # Each optimiser keeps its own base rate (a GAN's critic may run at a multiple of lr).
        scale = self.learning_rate() / self.config.lr
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = group.setdefault("base_lr", group["lr"]) * scale
        self.model.train()
        data = probabilities = self.train_data
        if self.dynamic_binarization:
            data = binarize_images(probabilities, self.generator)
        rao_blackwell = self.dynamic_binarization and self.config.rao_blackwell
        order = torch.randperm(len(data), generator=self.generator, device=self.generator.device)
        count = 0
        sums: dict[str, torch.Tensor] = {}
        for batch_index in order.split(self.config.batch_size):
            batch = data[batch_index]
            condition = None if self.condition is None else self.condition[batch_index]
            grey = {"probabilities": probabilities[batch_index]} if rao_blackwell else {}
            terms = self.model.training_step(batch, self.optimizers, f"epoch {self.epoch + 1}, step {self.step}",
                                             self.config.max_grad_norm, condition, **grey)
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + value * len(batch)
            count += len(batch)
            self.step += 1
        self.epoch += 1
        valid_nll = self.validate()
        means = {name: float(total) / count for name, total in sums.items()}
        result = EpochResult(self.epoch, means.pop("loss"), valid_nll, time.perf_counter() - start, means)
        self.history.append(result)
        return result

    @torch.no_grad()
    def validate(self) -> float | None:
        if self.valid_data is None or self.model.validation_metric is None:
            return None
        self.model.eval()
        nll = validation_losses(self.model, self.valid_data, self.valid_condition).mean().item()
        if nll < self.best_nll:
            self.best_nll = nll
            self.best_state = copy.deepcopy(self.model.state_dict())
            self.epochs_without_improvement = 0
        else:
            self.epochs_without_improvement += 1
        return nll

    def restore_best(self) -> None:
        """Load the parameters of the best validation epoch (no-op without validation data)."""
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizers": {name: optimizer.state_dict() for name, optimizer in self.optimizers.items()},
            "generator": self.generator.get_state(), "model_generator": self.model.generator.get_state(),
            "epoch": self.epoch, "step": self.step, "best_nll": self.best_nll, "best_state": self.best_state,
            "epochs_without_improvement": self.epochs_without_improvement,
            "history": [dataclasses.asdict(r) for r in self.history],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        self.generator.set_state(state["generator"])
        self.model.generator.set_state(state["model_generator"])
        self.epoch, self.step = state["epoch"], state["step"]
        self.best_nll, self.best_state = state["best_nll"], state["best_state"]
        self.epochs_without_improvement = state["epochs_without_improvement"]
        self.history = [EpochResult(**r) for r in state["history"]]


def validation_losses(model: GenerativeModel, x: torch.Tensor, condition: torch.Tensor | None = None,
                      batch_size: int = 256) -> torch.Tensor:
    """``model.validation_loss`` of every example of ``x`` (N,), in batches, with the class
    labels ``condition`` (N,) of a conditional model."""
    batches = x.split(batch_size)
    if condition is None:
        return torch.cat([model.validation_loss(batch) for batch in batches])
    return torch.cat([model.validation_loss(batch, condition=labels)
                      for batch, labels in zip(batches, condition.split(batch_size))])


def _labels(model: GenerativeModel, labels: torch.Tensor | None, n: int, name: str) -> torch.Tensor | None:
    if labels is not None and len(labels) != n:
        raise ValueError(f"{name} holds {len(labels)} labels for {n} examples")
    return model.check_condition(labels, n)


def fit(model: GenerativeModel, train: torch.Tensor, valid: torch.Tensor | None = None, *,
        condition: torch.Tensor | None = None, valid_condition: torch.Tensor | None = None,
        on_epoch: Callable[[EpochResult], bool | None] | None = None, progress_bar: bool = False,
        restore_best: bool = True, **options: Any) -> list[EpochResult]:
    """Train ``model`` on ``train`` (with class labels ``condition`` for a conditional model;
    options: the fields of :class:`TrainConfig`); returns the
    per-epoch history. ``on_epoch`` may return ``False`` to stop; with validation data the
    best epoch's parameters are restored at the end."""
    trainer = Trainer(model, train, valid, condition=condition, valid_condition=valid_condition, **options)
    bar = ProgressBar(trainer.config.epochs, unit="epoch", enabled=progress_bar, label="valid nll")
    try:
        while not trainer.stop:
            result = trainer.run_epoch()
            bar.update(trainer.epoch, result.valid_nll)
            if on_epoch is not None and on_epoch(result) is False:
                break
    finally:
        bar.close()
    if restore_best:
        trainer.restore_best()
    return trainer.history
