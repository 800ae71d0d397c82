"""The contract every generative model shares.

A model is built from the shape of one example alone, ``Model(data_shape, **hyperparameters)``,
with its hyperparameters in one dataclass (``Model.Config``) validated in ``__post_init__``
(a :class:`~mimicgym.errors.ConfigError` names the field and the value). Every model has

- ``loss(x)``: the training objective, a scalar, mean per example (for likelihood models the
  negative log-likelihood in nats, or a bound on it);
- ``log_prob(x)``: the exact log-likelihood per example, shape (B,), where the model has one
  (the VAEs give ``elbo(x)`` and ``iwae(x, k)`` instead);
- ``sample(n, generator=None)``: n new examples shaped ``(n, *data_shape)``.

Training: the plain loop (:mod:`mimicgym.generative.train`) asks the model for its optimisers
(``make_optimizers``; one Adam over all parameters by default) and runs ``training_step`` on
each minibatch (by default one gradient step on ``loss``). Models trained as a game (the GANs:
k critic steps per generator step) override both; every step goes through
:func:`gradient_step`, which refuses a non-finite loss or gradient before it touches a weight.
``validation_metric`` names what ``validation_loss`` measures (``"nll"``, or e.g.
``"reconstruction_error"``, ``"denoising_loss"``; ``None``: the model has no validation loss
and the last epoch is kept).

Randomness: parameters are initialised under the model's ``seed`` (the caller's global torch
RNG is left alone), and every random draw takes a ``torch.Generator``; without one, the
model's own generator (seeded from ``seed``) is used, so a fixed seed fixes every sample.
Models take tensors and know nothing of RL or bodies.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import nn

from mimicgym.errors import ConfigError
from mimicgym.utils.torch_utils import resolve_device, torch_seed_scope


@dataclasses.dataclass
class NoHyperparameters:
    """The Config of a model without hyperparameters."""


class GenerativeModel(nn.Module):
    """Base class: validated construction, seeded initialisation, device, input checks.

    Subclasses set ``Config`` (a dataclass) and implement ``build()`` (create the submodules
    from ``self.data_shape`` and ``self.config``), ``loss``, ``sample`` and, where exact,
    ``log_prob``. ``support`` names the values an example may hold: ``"binary"`` (0/1),
    ``"tokens"`` (integers in ``[0, vocab_size)``), ``"real"`` (finite floats) or
    ``"unit"`` (floats in [0, 1]).
    """

    Config: ClassVar[type] = NoHyperparameters
    support: ClassVar[str] = "real"
    nll_is_bound: ClassVar[bool] = False
    has_likelihood: ClassVar[bool] = True  # False: validation_loss is not an NLL (a plain autoencoder)
    validation_metric: ClassVar[str | None] = "nll"  # what validation_loss measures; None: no validation

    def __init__(self, data_shape: tuple[int, ...] | int, *, seed: int = 0, device: str | torch.device = "auto",
                 **hyperparameters: Any):
        super().__init__()
        self.data_shape = _check_shape(data_shape)
        self.config = _make_config(type(self), hyperparameters)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"seed must be a non-negative int, got {seed!r}")
        self.seed = seed
        self.device = resolve_device(device)
        with torch_seed_scope(seed):
            self.build()
        self.to(self.device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)

    # -- to implement ----------------------------------------------------------------------
    def build(self) -> None:
        """Create the model's submodules (called once, under the model's seed)."""

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """The training objective for a batch ``x`` (B, *data_shape): a scalar, mean per example.
        By default maximum likelihood, the mean of -``log_prob``; models trained otherwise
        (contrastive divergence, ELBO, reconstruction) override it."""
        return -self.log_prob(x).mean()

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log-likelihood in nats per example, shape (B,)."""
        raise NotImplementedError(f"{type(self).__name__} has no exact log-likelihood")

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` examples shaped ``(n, *data_shape)``."""
        raise NotImplementedError

    def nll(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """Negative log-likelihood per example (B,) in nats, or an upper bound on it where
        ``nll_is_bound``; what validation, early stopping and the benchmark report."""
        return -(self.log_prob(x) if condition is None else self.log_prob(x, condition=condition))

    def validation_loss(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """Per example (B,): what validation and early stopping minimise (``validation_metric``);
        the NLL (or its bound) for every likelihood model."""
        return self.nll(x) if condition is None else self.nll(x, condition=condition)

    def binarized_loss(self, x: torch.Tensor, probabilities: torch.Tensor,
                       condition: torch.Tensor | None = None) -> torch.Tensor:
        """The training loss of ``x``, a draw of independent Bernoulli pixels with
        ``probabilities`` (dynamic binarisation). By default ``loss(x)``; the autoregressive
        models override it with its expectation over each pixel's own draw."""
        return self.loss(x) if condition is None else self.loss(x, condition=condition)

    def check_probabilities(self, probabilities: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The grey probabilities that ``x`` was drawn from: x's shape, values in [0, 1]."""
        if probabilities.shape != x.shape:
            raise ValueError(f"probabilities have shape {tuple(probabilities.shape)}, x {tuple(x.shape)}")
        return self.check_input(probabilities, "probabilities", "unit").to(x.dtype)

    def make_optimizers(self, lr: float, weight_decay: float = 0.0) -> dict[str, torch.optim.Optimizer]:
        """The optimisers ``training_step`` uses, by name (saved and restored with a checkpoint)."""
        return {"model": torch.optim.Adam(self.parameters(), lr=lr, weight_decay=weight_decay)}

    def training_step(self, x: torch.Tensor, optimizers: dict[str, torch.optim.Optimizer], where: str = "",
                      max_grad_norm: float | None = None, condition: torch.Tensor | None = None,
                      probabilities: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One optimisation step on the minibatch ``x`` (with its class labels ``condition``
        for a conditional model, and the ``probabilities`` it was binarised from, if it was);
        returns the detached terms to log (``"loss"`` first, the mean per example). ``where``
        (e.g. "epoch 3, step 120") goes into the error a non-finite loss or gradient raises."""
        if probabilities is not None:
            loss = self.binarized_loss(x, probabilities, condition)
        else:
            loss = self.loss(x) if condition is None else self.loss(x, condition=condition)
        gradient_step(optimizers["model"], loss, f"loss ({where})" if where else "loss", max_grad_norm)
        return {"loss": loss.detach()}

    # -- shared ----------------------------------------------------------------------------
    def hyperparameters(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    def rng(self, generator: torch.Generator | None) -> torch.Generator:
        """The generator a random draw uses: the caller's, or the model's own."""
        return self.generator if generator is None else generator

    def check_input(self, x: torch.Tensor, name: str = "x", support: str | None = None) -> torch.Tensor:
        """``x`` on the model's device, or an error naming the wrong shape or value.

        Checks the shape against ``data_shape`` (with a leading batch axis), finiteness, and
        the model's ``support`` (or the one given); one reduction per check, a few passes over x.
        """
        support = self.support if support is None else support
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if tuple(x.shape[1:]) != self.data_shape:
            raise ValueError(f"{name} has shape {tuple(x.shape)}; {type(self).__name__} expects "
                             f"(batch, {', '.join(map(str, self.data_shape))})")
        x = x.to(self.device)
        if support == "tokens":
            if x.dtype.is_floating_point or x.dtype.is_complex:
                if not bool(torch.equal(x, x.round())):
                    _refuse(x, x != x.round(), name, "an integer token")
            vocab = self.config.vocab_size
            _refuse_where(x, (x < 0) | (x >= vocab), name, f"a token in [0, {vocab})")
            return x.long()
        x = x.to(torch.get_default_dtype()) if not x.dtype.is_floating_point else x
        _refuse_where(x, ~torch.isfinite(x), name, "a finite value")
        if support == "binary":
            _refuse_where(x, (x != 0) & (x != 1), name, "0 or 1 (binary data)")
        elif support == "unit":
            _refuse_where(x, (x < 0) | (x > 1), name, "a value in [0, 1]")
        return x

    @property
    def num_classes(self) -> int | None:
        """The number of classes a class-conditional model takes (None: unconditional)."""
        return getattr(self.config, "num_classes", None)

    def check_condition(self, condition: torch.Tensor | int | None, batch: int) -> torch.Tensor | None:
        """The class labels of a batch (B,) long on the model's device, or None for an
        unconditional model (``config.num_classes`` None or absent); an int means that class
        for all ``batch`` examples. A missing, misshapen or out-of-range label is an error
        naming it."""
        classes = self.num_classes
        name = type(self).__name__
        if classes is None:
            if condition is not None:
                raise ValueError(f"this {name} is unconditional (num_classes=None); pass no condition")
            return None
        if condition is None:
            raise ValueError(f"this {name} is class-conditional (num_classes={classes}); pass condition (B,)")
        if isinstance(condition, int):
            condition = torch.full((batch,), condition)
        if condition.shape != (batch,) or condition.dtype.is_floating_point:
            raise ValueError(f"condition must be an integer tensor of shape ({batch},), "
                             f"got {condition.dtype} {tuple(condition.shape)}")
        bad = (condition < 0) | (condition >= classes)
        if bool(bad.any()):
            index = int(torch.nonzero(bad)[0])
            raise ValueError(f"condition[{index}] is {int(condition[index])}; expected a class in [0, {classes})")
        return condition.to(self.device).long()

    def extra_repr(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"data_shape={self.data_shape}" + (f", {fields}" if fields else "")


class FrozenBaseModel(GenerativeModel):
    """A model built on another trained model (``base_name``: the attribute that holds it), which
    it keeps frozen in place: gradients off, in eval mode whatever ``train()`` is asked, left out
    of the optimiser, yet part of ``state_dict`` so that a checkpoint restores both. The data
    shape and device are the base model's. Subclasses call :meth:`take_base` first in ``build``.
    """

    base_name: ClassVar[str] = "base"

    def __init__(self, base: GenerativeModel, *, seed: int = 0, **hyperparameters: Any):
        # build() runs inside the base constructor, before a submodule can be assigned: hand it over here.
        self.__dict__["_frozen_base"] = base
        super().__init__(base.data_shape, seed=seed, device=base.device, **hyperparameters)

    def take_base(self) -> GenerativeModel:
        """Freeze the handed-over model and register it as ``self.<base_name>``; returns it."""
        base = self.__dict__.pop("_frozen_base")
        base.requires_grad_(False)
        base.eval()
        setattr(self, self.base_name, base)
        return base

    def train(self, mode: bool = True):
        super().train(mode)
        getattr(self, self.base_name).eval()  # frozen: a trainer's model.train() must not switch it
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Everything but the frozen base model's parameters."""
        frozen = {id(p) for p in getattr(self, self.base_name).parameters()}
        return [p for p in self.parameters() if id(p) not in frozen]

    def make_optimizers(self, lr: float, weight_decay: float = 0.0) -> dict[str, torch.optim.Optimizer]:
        return {"model": torch.optim.Adam(self.trainable_parameters(), lr=lr, weight_decay=weight_decay)}


def gradient_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, what: str = "loss",
                  max_grad_norm: float | None = None) -> torch.Tensor | None:
    """Zero the gradients, back-propagate ``loss``, clip the global gradient norm (if
    ``max_grad_norm``) and step ``optimizer``; a non-finite loss or gradient norm raises
    ``FloatingPointError`` naming ``what`` before any parameter changes. Returns the
    pre-clipping gradient norm when clipping."""
    if not bool(torch.isfinite(loss.detach())):
        raise FloatingPointError(f"non-finite {what} ({loss.item()}); stopping training")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = None
    if max_grad_norm is not None:
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        if not bool(torch.isfinite(norm)):
            raise FloatingPointError(f"non-finite gradient norm of {what} ({norm.item()}); stopping training")
    optimizer.step()
    return norm


def categorical_log_prob(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """sum_d log softmax(logits[b, d])[tokens[b, d]] per example (B,): logits (B, ..., V), tokens (B, ...)."""
    return logits.log_softmax(-1).gather(-1, tokens.unsqueeze(-1)).flatten(1).sum(1)


def _check_shape(data_shape) -> tuple[int, ...]:
    shape = (data_shape,) if isinstance(data_shape, int) else data_shape
    try:
        shape = tuple(shape)
    except TypeError:
        raise ConfigError(f"data_shape must be an int or a tuple of ints, got {data_shape!r}") from None
    if not shape or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
        raise ConfigError(f"data_shape must be a non-empty tuple of positive ints, got {data_shape!r}")
    return shape


def _make_config(cls: type, hyperparameters: dict[str, Any]):
    names = {f.name for f in dataclasses.fields(cls.Config)}
    unknown = sorted(set(hyperparameters) - names)
    if unknown:
        known = ", ".join(sorted(names)) or "none"
        raise ConfigError(f"{cls.__name__} has no hyperparameter {unknown[0]!r}; its hyperparameters: {known}")
    return cls.Config(**hyperparameters)


def _refuse_where(x: torch.Tensor, bad: torch.Tensor, name: str, expected: str) -> None:
    if bool(bad.any()):
        _refuse(x, bad, name, expected)


def _refuse(x: torch.Tensor, bad: torch.Tensor, name: str, expected: str) -> None:
    index = tuple(int(i) for i in torch.nonzero(bad)[0])
    raise ValueError(f"{name}{list(index)} is {x[index].item()!r}; expected {expected}")
