"""Torch plumbing shared by the deep agents and the generative models: device choice, seeding, NaN guards."""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import numpy as np
import torch

_DEVICE_WORDS = ("auto", "cpu", "cuda", "mps")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when present, else CPU (or what the environment variable
    ``MIMICGYM_DEVICE`` names: the test suite sets it to ``cpu``, since its reference numbers
    are CPU results); otherwise the named device, checked."""
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise TypeError(f"device must be a str or torch.device, got {device!r}")
    if device == "auto":
        chosen = os.environ.get("MIMICGYM_DEVICE", "auto")
        if chosen != "auto":
            try:
                return resolve_device(chosen)
            except ValueError as e:
                raise ValueError(f"MIMICGYM_DEVICE={chosen!r}: {e}") from None
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"unknown device {device!r}; use one of {', '.join(_DEVICE_WORDS)} "
                         f"(optionally with an index, e.g. 'cuda:0')") from e
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return resolved


def derive_seed(rng: np.random.Generator) -> int:
    """A 63-bit seed drawn from ``rng`` (advances it), for torch generators and env resets."""
    return int(rng.integers(0, 2**63 - 1))


def seed_everything(rng: np.random.Generator, device: torch.device, deterministic: bool = False
                    ) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded from the agent's numpy ``rng``.

    Every torch draw of an agent (minibatch indices, action sampling) goes through this
    generator, so the numpy seed fixes the whole run. With ``deterministic=True`` on CUDA,
    torch's deterministic kernels are switched on (a process-wide setting: cuBLAS needs
    its workspace config before the first call, which is set here if absent).
    """
    generator = torch.Generator(device=device)
    generator.manual_seed(derive_seed(rng))
    if deterministic and device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    return generator


@contextlib.contextmanager
def torch_seed_scope(seed: int) -> Iterator[None]:
    """Run a block (network construction) under a fixed global CPU torch seed, then restore.

    ``nn.Linear``/``nn.Conv2d`` initialise from torch's global generator; scoping it makes
    an agent's initial weights depend on its seed only, without touching the caller's RNG.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` inside the block. One thread for a rollout's small
    policy batches: more only spin beside the env's own threads (on a 2-core machine a batched
    imitation env steps 1.7x slower next to a second torch thread)."""
    before = torch.get_num_threads()
    if before == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def denormals_flushed() -> bool:
    """Whether this thread's CPU float math flushes subnormal numbers to zero (FTZ/DAZ)."""
    return bool(torch.tensor(1e-40, dtype=torch.float32) * 2.0 == 0.0)


@contextlib.contextmanager
def flush_denormals() -> Iterator[None]:
    """Flush subnormal floats to zero inside the block (CPU), then restore the old setting.

    Adam's second-moment estimates of rarely active units decay geometrically into the
    subnormal range, where every CPU operation on them is many times slower: on DQN's
    CartPole run this took the optimizer step from ~0.08 to ~0.5 ms. Values below
    1.2e-38 are far beneath float32 training noise, so flushing them changes nothing that
    matters. Scoped, because the setting is global state (the CPU's FTZ/DAZ flags) that
    other code in the process may rely on.
    """
    previous = denormals_flushed()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(previous)


def check_finite(name: str, tensor: torch.Tensor | float, step: int) -> None:
    """Raise ``FloatingPointError`` naming ``name`` and ``step`` if ``tensor`` holds NaN/inf.

    Called on losses and gradient norms: one scalar sync per update, not per element.
    """
    value = tensor if isinstance(tensor, torch.Tensor) else torch.as_tensor(tensor)
    if not bool(torch.isfinite(value).all()):
        shown = value.item() if value.numel() == 1 else "non-finite entries"
        raise FloatingPointError(f"non-finite {name} ({shown}) at step {step}; stopping training")


def check_finite_tensor(name: str, tensor: torch.Tensor, switch: str = "") -> None:
    """A ``ValueError`` naming ``name`` and its first NaN or inf entry, if there is one.

    On the CPU the check is eager and names the index. On an accelerator it is queued with
    ``torch._assert_async`` so that it adds no host synchronisation to a training loop: the
    error then surfaces at the next sync, without the index. ``switch`` tells how to turn it off.
    """
    if not tensor.dtype.is_floating_point:
        return
    finite = torch.isfinite(tensor)
    if tensor.device.type != "cpu":
        torch._assert_async(finite.all(), f"{name} contains NaN or inf{switch}")
    elif not bool(finite.all()):
        where = tuple(int(i) for i in torch.nonzero(~finite)[0])
        raise ValueError(f"{name}{list(where)} is {tensor[where].item()}: a non-finite input{switch}")


def check_finite_tensors(tensors: dict[str, torch.Tensor | None], switch: str = "") -> None:
    """:func:`check_finite_tensor` for several floating tensors of one dtype and device at
    once: one pass over all of them (about 11 us for a body model's four arguments), names
    only when one is bad."""
    present = {name: t for name, t in tensors.items() if t is not None}
    if not present:
        return
    joined = torch.cat([t.reshape(-1) for t in present.values()])
    if joined.device.type != "cpu":
        torch._assert_async(joined.isfinite().all(), f"{', '.join(present)}: NaN or inf{switch}")
    elif not bool(joined.isfinite().all()):
        for name, t in present.items():
            check_finite_tensor(name, t, switch)


def clip_grad_norm(params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """``nn.utils.clip_grad_norm_`` for one device and dtype, without its per-call grouping.

    Scales the gradients in place by ``min(1, max_norm / (norm + 1e-6))`` exactly as torch
    does and returns the pre-clipping global L2 norm; three kernels, no Python loop.
    """
    grads = [p.grad for p in params]
    norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    torch._foreach_mul_(grads, torch.clamp(max_norm / (norm + 1e-6), max=1.0))
    return norm


def obs_as_tensor(observation: np.ndarray, device: torch.device) -> torch.Tensor:
    """A raw env observation batch as a tensor (no copy on CPU); encoders do the casting."""
    return torch.as_tensor(np.asarray(observation), device=device)
