"""Reading ``.npz`` archives we did not write: bounded, pickle-free, one documented error type.

``np.load`` trusts an archive: an entry whose header claims a 10**12-element array is allocated
before a byte is read, a corrupt deflate stream raises a raw ``zlib.error``, a truncated one
``EOFError`` or ``BadZipFile``. :func:`read_npz` checks each entry's header against the
entry's recorded size before reading its data, reads no more than that size (deflate cannot
expand more than about 1032:1, so the work is bounded by the file's size), verifies the
CRC, and turns every failure into the caller's error class naming the file and the key.
:func:`real_array` then checks one array's values the way every motion and body-model loader
needs: real (not complex, not bool, not text), finite, and within a bound.
"""

from __future__ import annotations

import os
import struct
import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

from mimicgym.errors import MimicgymError

__all__ = ["read_npz", "real_array", "MAX_NPZ_BYTES"]

# Decompressed bytes in one archive: the largest body models (SMPL-X with pose correctives,
# float64) are about 0.3 GB, motion files far less.
MAX_NPZ_BYTES = 2**32
# Deflate expands at most ~1032:1; an entry recording more than this is lying about its size.
_MAX_RATIO = 1100
_DTYPE_KINDS = "biufUS"  # bool, ints, floats, text: no objects (pickles), complex or records
_Error = type[MimicgymError]


def read_npz(path: str | os.PathLike, error: _Error, what: str, max_bytes: int = MAX_NPZ_BYTES
             ) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path``, by key; any problem raises ``error`` naming
    ``what`` (e.g. "motion clip"), the file and, where one is at fault, the key."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            entries = _entries(archive, max_bytes)
            return {key: _read_entry(archive, info, key) for key, info in entries.items()}
    except MimicgymError as err:
        raise error(f"cannot read {what} {path}: {err}") from None
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except (OSError, EOFError, ValueError, TypeError, SyntaxError, RecursionError, tokenize.TokenError,
            zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, NotImplementedError, RuntimeError,
            struct.error, OverflowError) as err:
        # Each is a truncated or corrupt archive to the caller (RuntimeError: encrypted entry,
        # NotImplementedError: unknown compression method; numpy parses a .npy header with
        # ast and, for old headers, tokenize, which raise their own errors on garbage).
        raise error(f"cannot read {what} {path}: truncated or corrupt .npz "
                    f"({type(err).__name__}: {err})") from err


def _entries(archive: zipfile.ZipFile, max_bytes: int) -> dict[str, zipfile.ZipInfo]:
    """Key -> entry, after checking names and recorded sizes (nothing decompressed yet)."""
    entries: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in archive.infolist():
        if not info.filename.endswith(".npy"):
            raise MimicgymError(f"entry {info.filename!r} is not a .npy array")
        key = info.filename[:-4]
        if key in entries:
            raise MimicgymError(f"key {key!r} appears twice")
        if info.file_size > _MAX_RATIO * info.compress_size + 2**16:
            raise MimicgymError(f"key {key!r} records {info.file_size} bytes from {info.compress_size} "
                                f"compressed: more than deflate can expand")
        total += info.file_size
        if total > max_bytes:
            raise MimicgymError(f"more than max_bytes={max_bytes} bytes of arrays")
        entries[key] = info
    return entries


def _read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, key: str) -> np.ndarray:
    with archive.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise MimicgymError(f"key {key!r}: unsupported .npy format version {version}")
        if dtype.kind not in _DTYPE_KINDS or dtype.fields is not None or dtype.itemsize == 0:
            what = "complex numbers" if dtype.kind == "c" else f"dtype {dtype}"
            raise MimicgymError(f"key {key!r} holds {what}; expected real numbers, bools or text")
        count = int(np.prod(shape, dtype=object))  # Python ints: a huge shape cannot overflow
        nbytes = count * dtype.itemsize
        if nbytes != info.file_size - f.tell():
            raise MimicgymError(f"key {key!r}: header shape {shape} of {dtype} needs {nbytes} bytes, "
                                f"the entry holds {info.file_size - f.tell()}")
        data = f.read(nbytes + 1)  # reaching the end checks the CRC
    if len(data) != nbytes:
        raise MimicgymError(f"key {key!r}: truncated: {len(data)} of {nbytes} bytes")
    flat = np.frombuffer(data, dtype=dtype, count=count).copy()
    if dtype.kind == "U":  # numpy keeps any 32-bit value as a "character"; Python text cannot hold them
        codes = flat.view(np.uint32)
        if ((codes > 0x10FFFF) | ((codes >= 0xD800) & (codes <= 0xDFFF))).any():
            raise MimicgymError(f"key {key!r} holds text with invalid characters")
    return flat.reshape(shape[::-1]).T if fortran else flat.reshape(shape)


def real_array(value: np.ndarray, key: str, source: str, error: _Error, max_abs: float) -> np.ndarray:
    """``value`` as float64 after checking it holds finite real numbers with ``|x| <= max_abs``;
    otherwise ``error`` naming ``source``, ``key`` and the first bad index and value."""
    value = np.asarray(value)
    if value.dtype.kind not in "iuf":
        kind = {"c": "complex numbers", "b": "bools", "U": "text", "S": "bytes", "O": "Python objects"}
        raise error(f"{source}: key {key!r} holds {kind.get(value.dtype.kind, value.dtype)}, "
                    f"expected real numbers")
    floats = value.astype(np.float64)
    for bad, problem in ((~np.isfinite(floats), "has non-finite values"),
                         (~(np.abs(floats) <= max_abs), f"has values beyond |x| <= {max_abs:g}")):
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise error(f"{source}: key {key!r} {problem}, the first {float(floats[where])!r} at index {where}")
    return floats
