"""Atomic file writes and payload checksums: a crash mid-write never leaves a truncated file
behind, the temporary files a ``kill -9`` leaves are recognised and removed later, and a
flipped bit in a saved payload is caught on load."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np

from mimicgym.errors import CheckpointError

# Temporary files are ``.<target>.mimicgym-tmp.<random>.tmp``: named so that a later process can
# tell them from anyone else's files. Older ones (``.<target>.<8 random>.tmp``) are recognised too.
TEMP_TAG = "mimicgym-tmp"
_TEMP_NAME = re.compile(rf"^\.(?P<target>.+?)\.(?:{TEMP_TAG}\.[a-z0-9_]+|[a-z0-9_]{{8}})\.tmp$")
# Files older than this were not written by this process (it creates its temporary files later).
_PROCESS_START = time.time()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success fsync it and rename it over ``path``.

    The rename is atomic on POSIX and Windows, so readers see either the old file or the
    complete new one. On error the temporary file is removed and ``path`` is untouched; after
    a success, temporary files of ``path`` left by an earlier, killed process are removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{TEMP_TAG}.", suffix=".tmp")
    try:
        # mkstemp creates 0600 files; give the result the permissions open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    remove_stale_temp_files(path.parent, path.name)


def write_results(path: str | os.PathLike, payload: Any, table: str | None = None) -> list[Path]:
    """A benchmark's results: ``payload`` as indented JSON at ``path`` and, if given, its
    Markdown ``table`` beside it (same name, ``.md``), each written atomically, folders made."""
    import json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "w") as f:
        json.dump(payload, f, indent=2)
    if table is None:
        return [path]
    with atomic_write(path.with_suffix(".md"), "w") as f:
        f.write(table + "\n")
    return [path, path.with_suffix(".md")]


def remove_stale_temp_files(directory: str | os.PathLike, target: str | None = None) -> list[Path]:
    """Remove the temporary files that interrupted atomic writes left in ``directory`` (those of
    ``target`` only, if given): files named as :func:`atomic_write` names them and last written
    before this process started, so never one that a running writer still fills. Returns them."""
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(directory):
            match = _TEMP_NAME.match(entry.name)
            if not match or (target is not None and match.group("target") != target):
                continue
            with contextlib.suppress(FileNotFoundError):
                if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < _PROCESS_START:
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """``np.savez_compressed`` through :func:`atomic_write` (the name is used as given)."""
    with atomic_write(path) as f:
        np.savez_compressed(f, **arrays)


# ----------------------------------------------------------------- checksums
CHECKSUM_PREFIX = "sha256:"


def payload_checksum(value: Any) -> str:
    """``"sha256:<hex>"`` of a canonical encoding of ``value``: nested dicts (in their order),
    lists, tuples, strings, bytes, numbers, None, numpy arrays and torch tensors (dtype, shape
    and raw bytes). Equal payloads give equal checksums however they were serialised, so a file's
    checksum can be stored inside it and checked after it is read back."""
    digest = hashlib.sha256()
    _feed(digest, value)
    return CHECKSUM_PREFIX + digest.hexdigest()


def verify_checksum(path: str | os.PathLike, recorded: str | None, value: Any) -> None:
    """A :class:`CheckpointError` naming ``path`` unless ``value`` hashes to ``recorded``."""
    try:
        actual = payload_checksum(value)
    except TypeError as e:  # a type the writer never stores: the file was altered
        actual = f"unreadable ({e})"
    if recorded != actual:
        raise CheckpointError(f"{path}: checksum mismatch: the file records {recorded!r}, its "
                              f"contents hash to {actual!r}; the file is corrupt (a flipped bit?)")


def _feed(digest, value: Any) -> None:
    torch = sys.modules.get("torch")  # tensors only exist if torch was imported
    if torch is not None and isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"T{tensor.dtype}{tuple(value.shape)}".encode())
        if tensor.numel():  # (an empty tensor may have stride 0, which view() refuses)
            digest.update(tensor.view(torch.uint8).numpy())
    elif isinstance(value, np.ndarray):
        digest.update(f"A{value.dtype.str}{value.shape}".encode())
        digest.update(np.ascontiguousarray(value).view(np.uint8).reshape(-1))
    elif isinstance(value, dict):
        digest.update(b"D%d" % len(value))
        for key, item in value.items():
            _feed(digest, key)
            _feed(digest, item)
    elif isinstance(value, (list, tuple)):
        digest.update(b"%s%d" % (b"L" if isinstance(value, list) else b"U", len(value)))
        for item in value:
            _feed(digest, item)
    elif isinstance(value, str):
        data = value.encode()
        digest.update(b"S%d:" % len(data) + data)
    elif isinstance(value, bytes):
        digest.update(b"Y%d:" % len(value) + value)
    elif isinstance(value, (bool, np.bool_)):
        digest.update(b"B1" if value else b"B0")
    elif isinstance(value, (int, np.integer)):
        digest.update(b"I%d;" % int(value))
    elif isinstance(value, (float, np.floating)):
        digest.update(b"F" + struct.pack("<d", float(value)))
    elif value is None:
        digest.update(b"N")
    else:
        raise TypeError(f"cannot checksum a {type(value).__name__}")
