"""Torch checkpoints: atomic writes, ``weights_only`` loads, checksums, and errors that name the file.

A checkpoint is one dict of tensors, state_dicts and plain Python values (numbers,
strings, lists, dicts, None). Numpy arrays are stored as tensors (numpy scalars as Python
numbers) so that ``torch.load(weights_only=True)`` can read the file back without
unpickling arbitrary objects.

Torch's zip format has no checksum on tensor data (a flipped bit loads silently, one weight
changed), so the payload carries its own: ``"checksum"`` is ``"sha256:<hex>"`` of the canonical
encoding of every other entry (:func:`~mimicgym.utils.io.payload_checksum`: dtypes, shapes and
raw bytes of tensors, plain values), recomputed and compared on load. Files of the first
format (``FORMAT_V1``, before checksums) still load, unverified.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from mimicgym.errors import CheckpointError
from mimicgym.utils.io import atomic_write, payload_checksum, verify_checksum

FORMAT = "mimicgym-torch-checkpoint/2"
FORMAT_V1 = "mimicgym-torch-checkpoint/1"  # no checksum


def _to_storable(value: Any, where: str) -> Any:
    """Numpy -> torch/Python, recursively; reject anything ``weights_only`` cannot read."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _to_storable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_to_storable(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    raise TypeError(f"checkpoint entry {where} has type {type(value).__name__}; store tensors, "
                    f"numpy arrays, state_dicts or plain numbers/strings/lists/dicts")


def as_numpy(value: Any) -> Any:
    """A loaded entry with its tensors back as numpy arrays (the inverse of the conversion on
    save, for state that lives as numpy: observations, env actions, rollouts)."""
    if isinstance(value, torch.Tensor):
        return value.numpy()
    if isinstance(value, dict):
        return {k: as_numpy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(as_numpy(v) for v in value)
    return value


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus ``"format"`` and ``"checksum"``) to ``path`` atomically with
    ``torch.save``."""
    path = Path(path)
    storable = _to_storable(dict(payload), "payload")
    storable.pop("checksum", None)
    storable["format"] = FORMAT
    storable["checksum"] = payload_checksum(storable)
    with atomic_write(path) as f:
        torch.save(storable, f)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device | None = None,
                    expected_class: str | None = None) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises ``FileNotFoundError`` for a missing file and ``CheckpointError`` naming ``path`` for a
    truncated or corrupt file (a checksum that does not match), a file of another format, or
    (with ``expected_class``) a checkpoint of another agent class.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # on a corrupt file torch's readers raise all kinds
        # (RuntimeError, UnpicklingError, AssertionError, ...): each means the same to a caller.
        raise CheckpointError(f"{path}: not a readable torch checkpoint (truncated or corrupt?): "
                         f"{type(e).__name__}: {e}") from e
    if not isinstance(payload, dict) or payload.get("format") not in (FORMAT, FORMAT_V1):
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path}: checkpoint format {found!r}, expected {FORMAT!r}")
    if payload["format"] == FORMAT:
        recorded = payload.pop("checksum", None)
        verify_checksum(path, recorded, payload)
        payload["checksum"] = recorded
    if expected_class is not None and payload.get("class") != expected_class:
        raise CheckpointError(f"{path} holds a {payload.get('class')!r} checkpoint, "
                         f"not {expected_class!r}")
    return payload
