"""Reading and writing SMPL-format body model files (.pkl as distributed, or .npz).

The SMPL layout is a dict of arrays: ``v_template`` (V, 3), ``shapedirs`` (V, 3, K),
``posedirs`` (V, 3, 9 (J - 1)), ``J_regressor`` (J, V), ``weights`` (V, J),
``kintree_table`` (2, J) and ``f`` (F, 3). The official pickles were written by Python 2
and hold some arrays as chumpy objects and ``J_regressor`` as a scipy sparse matrix. This
module reads them with neither chumpy nor scipy installed, and without running code from
the file: a restricted unpickler resolves only an allow-list of numpy reconstructors and
small stand-in classes that keep the array data of chumpy and scipy.sparse objects.

Every problem with a file raises :class:`~mimicgym.errors.ModelFileError` naming the file and the
key: a truncated or corrupt archive or pickle, a missing key or wrong shape, an array that is not
real (complex, text, objects), non-finite or beyond ``MAX_ABS_MODEL_VALUE``, skinning weights that
are not a convex blend per vertex (``WEIGHTS_SUM_TOL``). Arrays are read in memory bounded by the
file's size: ``.npz`` headers are checked against their entries, and a pickle can only fill the
arrays it holds the bytes of.
"""

from __future__ import annotations

import io
import os
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np

from mimicgym.errors import ModelFileError
from mimicgym.motion.npz_reader import read_npz, real_array
from mimicgym.utils.io import atomic_save_npz

__all__ = ["ModelFileError", "load_model_file", "validate_model_arrays", "save_model_npz", "gender_from_filename"]

REQUIRED_KEYS = ("v_template", "shapedirs", "J_regressor", "weights", "kintree_table", "f")
OPTIONAL_KEYS = ("posedirs",)
GENDERS = ("neutral", "female", "male")
# Bounds no real body model exceeds (documented defaults, overridable by keyword):
MAX_ABS_MODEL_VALUE = 1e4  # any float in the model: template in metres, blend shapes, weights
WEIGHTS_SUM_TOL = 1e-3  # each vertex's skinning weights are >= 0 and sum to 1 (float32 rounding aside)
MAX_DENSE_BYTES = 2**30  # a pickled sparse matrix densified (SMPL-X's J_regressor: 5 MB)


# --------------------------------------------------------------------------- stand-ins
class _ChumpyStandIn:
    """Holds the pickled state of a chumpy ``Ch`` object; a leaf ``Ch`` keeps its value in ``x``."""

    def __setstate__(self, state: Any) -> None:
        self.state = state if isinstance(state, dict) else {}

    def to_array(self) -> np.ndarray:
        if "x" in self.state:
            return np.asarray(self.state["x"])
        raise ModelFileError(
            f"a chumpy expression ({self._source}) is not a stored array; only leaf chumpy.Ch "
            "values can be read without chumpy")


class _SparseStandIn:
    """Holds the pickled state of a scipy.sparse csc/csr/coo matrix and densifies it with numpy."""

    def __setstate__(self, state: Any) -> None:
        self.state = state if isinstance(state, dict) else {}

    def to_array(self) -> np.ndarray:
        s = self.state
        shape = tuple(int(n) for n in s.get("_shape", s.get("shape", ())))
        if len(shape) != 2 or min(shape) < 0 or shape[0] * shape[1] * 8 > MAX_DENSE_BYTES:
            raise ModelFileError(f"sparse matrix ({self._source}) with shape {shape}: not a 2-D shape "
                                 f"of at most MAX_DENSE_BYTES={MAX_DENSE_BYTES} bytes dense")
        data = np.asarray(s["data"]).reshape(-1)
        if self._format == "coo":
            rows, cols = np.asarray(s["row"]).reshape(-1), np.asarray(s["col"]).reshape(-1)
        else:
            indptr, indices = np.asarray(s["indptr"]).reshape(-1), np.asarray(s["indices"]).reshape(-1)
            n_major = shape[0] if self._format == "csr" else shape[1]
            if len(indptr) != n_major + 1 or indptr[0] != 0 or (np.diff(indptr) < 0).any() \
                    or indptr[-1] != len(indices):
                raise ModelFileError(f"sparse matrix ({self._source}): 'indptr' does not index 'indices'")
            major = np.repeat(np.arange(n_major), np.diff(indptr))
            rows, cols = (major, indices) if self._format == "csr" else (indices, major)
        if not (len(rows) == len(cols) == len(data)) or (len(rows) and (
                rows.min() < 0 or cols.min() < 0 or rows.max() >= shape[0] or cols.max() >= shape[1])):
            raise ModelFileError(f"sparse matrix ({self._source}): indices outside its {shape} shape")
        dense = np.zeros(shape, dtype=data.dtype)
        np.add.at(dense, (rows, cols), data)  # duplicates sum, as in scipy
        return dense


def _make_stand_in(base: type, module: str, name: str) -> type:
    fmt = name[:3] if base is _SparseStandIn else ""
    return type(name, (base,), {"_source": f"{module}.{name}", "_format": fmt})


_SPARSE_NAMES = {f"{fmt}_{kind}" for fmt in ("csc", "csr", "coo") for kind in ("matrix", "array")}

# (module, name) pairs that may be resolved; numpy moved numpy.core to numpy._core in 2.0.
_ALLOWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("copyreg", "_reconstructor"), ("copy_reg", "_reconstructor"),
    # Plain containers that chumpy objects keep in their state.
    *((mod, name) for mod in ("builtins", "__builtin__") for name in ("object", "set", "frozenset")),
    # Python 3 writes bytes at protocol <= 2 as _codecs.encode(str, "latin1"); a pure
    # text transform, no code execution.
    ("_codecs", "encode"),
}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED |= {(_mod, "_reconstruct"), (_mod, "scalar")}


def _empty_array(subtype: type, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's ``_reconstruct``, which numpy's own pickles call with shape (0,) before
    ``__setstate__`` fills the array from the file; any other shape would allocate memory the
    file does not hold (and leave it uninitialised)."""
    if subtype is not np.ndarray or np.prod(shape) != 0:
        raise ModelFileError(f"array reconstruction with {getattr(subtype, '__name__', subtype)} of shape "
                             f"{shape!r}: numpy's own pickles start from an empty ndarray")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as Python 3 pickles bytes (latin1 text), no other codec."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise ModelFileError(f"_codecs.encode with encoding {encoding!r}: only latin1 bytes are expected")
    return text.encode("latin1")


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only numpy array reconstruction and the chumpy / scipy.sparse stand-ins."""

    def find_class(self, module: str, name: str) -> Any:
        if module.split(".")[0] == "chumpy":
            return _make_stand_in(_ChumpyStandIn, module, name)
        if module.startswith("scipy.sparse") and name in _SPARSE_NAMES:
            return _make_stand_in(_SparseStandIn, module, name)
        if (module, name) in _ALLOWED:
            if name == "_reconstruct":
                return _empty_array
            if (module, name) == ("_codecs", "encode"):
                return _latin1_encode
            if module in ("copy_reg", "__builtin__"):
                module = {"copy_reg": "copyreg", "__builtin__": "builtins"}[module]
            return super().find_class(module, name)
        raise ModelFileError(
            f"refusing to unpickle class {module}.{name}: a body model file may only contain numpy "
            "arrays, chumpy arrays and scipy sparse matrices")


def _to_plain(value: Any) -> Any:
    if isinstance(value, (_ChumpyStandIn, _SparseStandIn)):
        return value.to_array()
    return value


def _load_pickle(path: Path) -> dict[str, Any]:
    try:
        # From memory: a length field claiming gigabytes then reads what the file holds, no more.
        stream = io.BytesIO(path.read_bytes())
        # latin1 maps Python 2 byte strings (numpy array buffers) one-to-one onto str.
        data = RestrictedUnpickler(stream, encoding="latin1").load()
    except ModelFileError as err:
        raise ModelFileError(f"{path}: {err}") from None
    except OSError as err:
        raise ModelFileError(f"{path}: cannot read ({err})") from err
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, KeyError,
            IndexError, RecursionError, OverflowError) as err:
        raise ModelFileError(f"{path}: truncated or corrupt pickle ({type(err).__name__}: {err})") from err
    if not isinstance(data, dict):
        raise ModelFileError(f"{path}: expected a pickled dict of arrays, got {type(data).__name__}")
    return data


def _load_npz(path: Path) -> dict[str, Any]:
    return read_npz(path, ModelFileError, "body model file")


def gender_from_filename(path: str | os.PathLike) -> str:
    """'female' / 'male' / 'neutral' from names like SMPL_FEMALE.pkl or basicModel_f_lbs_...pkl."""
    stem = Path(path).name.lower()
    if "female" in stem or re.search(r"(^|[_\-.])f([_\-.]|$)", stem):
        return "female"
    if "male" in stem or re.search(r"(^|[_\-.])m([_\-.]|$)", stem):
        return "male"
    return "neutral"


def _plain_arrays(raw: dict[str, Any], source: str) -> dict[str, np.ndarray]:
    """The SMPL keys of ``raw`` as numpy arrays (stand-ins densified); non-numeric ones refused."""
    arrays: dict[str, np.ndarray] = {}
    for key in REQUIRED_KEYS + OPTIONAL_KEYS:
        if key in raw and raw[key] is not None:
            try:
                arrays[key] = np.asarray(_to_plain(raw[key]))
            except ModelFileError as err:
                raise ModelFileError(f"{source}: key '{key}': {err}") from None
            except (ValueError, TypeError, KeyError, IndexError, RecursionError, OverflowError) as err:
                raise ModelFileError(f"{source}: key '{key}' is not an array ({type(err).__name__}: {err})") from err
            if arrays[key].dtype.kind not in "iuf":
                raise ModelFileError(f"{source}: key '{key}' has dtype {arrays[key].dtype}, expected real numbers")
    return arrays


def _integer_array(value: np.ndarray, key: str, source: str) -> np.ndarray:
    """int64 copy of an integer array (or of floats holding integers, as some converters write)."""
    if value.dtype.kind == "f":
        if not (np.isfinite(value).all() and (value == np.round(value)).all() and np.abs(value).max(initial=0) < 2**53):
            raise ModelFileError(f"{source}: key '{key}' must hold integers")
    elif value.dtype.kind == "u" and value.size and value.max() >= 2**63:
        raise ModelFileError(f"{source}: key '{key}' holds integers beyond int64")
    return value.astype(np.int64)


def _check_weights(weights: np.ndarray, source: str, tol: float) -> None:
    """Skinning weights: each vertex's row non-negative and summing to 1 (a convex blend)."""
    sums = weights.sum(axis=1, dtype=np.float64)
    bad = np.flatnonzero((np.abs(sums - 1.0) > tol) | (weights.min(axis=1) < -tol))
    if len(bad):
        v = int(bad[0])
        raise ModelFileError(f"{source}: key 'weights' row {v} (a vertex's skinning weights) sums to "
                             f"{sums[v]:.6g} with minimum {weights[v].min():.6g}; each row must be >= 0 and "
                             f"sum to 1 within {tol:g}")


def validate_model_arrays(raw: dict[str, Any], source: str = "model", max_abs: float = MAX_ABS_MODEL_VALUE,
                          weights_tol: float = WEIGHTS_SUM_TOL) -> dict[str, np.ndarray]:
    """Check keys, shapes, dtypes and values; return plain numpy arrays in SMPL layout.

    ``posedirs`` may be absent (no pose correctives). Float arrays must be real, finite and
    within ``max_abs``; skinning weights rows convex within ``weights_tol``. Errors
    (:class:`~mimicgym.errors.ModelFileError`) name the key and the expected shape or value.
    """
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise ModelFileError(f"{source}: missing key(s) {missing}; an SMPL-format model needs {list(REQUIRED_KEYS)}")
    arrays = _plain_arrays(raw, source)

    def expect(key: str, shape: tuple, expected: str) -> None:
        got = arrays[key].shape
        if len(got) != len(shape) or any(s is not None and s != g for s, g in zip(shape, got)) or 0 in got:
            raise ModelFileError(f"{source}: key '{key}' has shape {got}, expected {expected} (none of them 0)")

    V = arrays["v_template"].shape[0] if arrays["v_template"].ndim == 2 else -1
    expect("v_template", (None, 3), "(V, 3)")
    expect("kintree_table", (2, None), "(2, J)")
    J = arrays["kintree_table"].shape[1]
    expect("shapedirs", (V, 3, None), f"(V, 3, K) = ({V}, 3, K)")
    expect("J_regressor", (J, V), f"(J, V) = ({J}, {V})")
    expect("weights", (V, J), f"(V, J) = ({V}, {J})")
    expect("f", (None, 3), "(F, 3)")
    if "posedirs" in arrays:
        expect("posedirs", (V, 3, 9 * (J - 1)), f"(V, 3, 9 (J - 1)) = ({V}, 3, {9 * (J - 1)})")
    for key, value in arrays.items():
        if key not in ("kintree_table", "f"):
            real_array(value, key, source, ModelFileError, max_abs)  # checks; the stored dtype is kept
    _check_weights(arrays["weights"], source, weights_tol)
    faces = arrays["f"]
    if faces.dtype.kind not in "iu" or faces.min() < 0 or faces.max() >= V:
        raise ModelFileError(f"{source}: key 'f' must hold integer vertex ids in [0, {V})")
    # SMPL stores the root's parent as 2**32 - 1 (uint32 of -1).
    parents = _integer_array(arrays["kintree_table"], "kintree_table", source)[0]
    parents[parents >= J] = -1
    parents[0] = -1
    if (parents[1:] < 0).any() or (parents[1:] >= np.arange(1, J)).any():
        raise ModelFileError(
            f"{source}: key 'kintree_table' row 0 must give each joint j > 0 a parent in [0, j), "
            f"got {parents.tolist()[:60]}")
    arrays["kintree_table"] = np.stack([parents, np.arange(J)])
    return arrays


def _stored_gender(raw: dict[str, Any], path: Path) -> str | None:
    """The file's ``gender`` entry (text or bytes), checked; None without one."""
    if "gender" not in raw:
        return None
    value = np.asarray(raw["gender"])
    if value.size != 1 or value.dtype.kind not in "US":
        raise ModelFileError(f"{path}: key 'gender' must be one of {GENDERS}, got an array of shape "
                             f"{value.shape} and dtype {value.dtype}")
    item = value.reshape(()).item()
    stored = (item.decode("latin1") if isinstance(item, bytes) else item).lower()
    if stored not in GENDERS:
        raise ModelFileError(f"{path}: key 'gender' must be one of {GENDERS}, got {stored[:40]!r}")
    return stored


def load_model_file(path: str | os.PathLike, max_abs: float = MAX_ABS_MODEL_VALUE,
                    weights_tol: float = WEIGHTS_SUM_TOL) -> tuple[dict[str, np.ndarray], str]:
    """Load and validate an SMPL-format ``.pkl`` or ``.npz``; returns (arrays, gender).

    Every problem with the file raises :class:`~mimicgym.errors.ModelFileError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"body model file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".pkl":
        raw = _load_pickle(path)
    elif suffix == ".npz":
        raw = _load_npz(path)
    else:
        raise ModelFileError(f"{path}: unknown body model format '{suffix}', expected .pkl or .npz")
    gender = _stored_gender(raw, path) or gender_from_filename(path)
    return validate_model_arrays(raw, str(path), max_abs, weights_tol), gender


def save_model_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray], gender: str = "neutral",
                   **extra: np.ndarray) -> None:
    """Validate and write an SMPL-format ``.npz`` atomically (plus metadata arrays in ``extra``)."""
    if gender not in GENDERS:
        raise ValueError(f"gender must be one of {GENDERS}, got {gender!r}")
    checked = validate_model_arrays(arrays, source=str(path))
    atomic_save_npz(path, **checked, gender=np.array(gender), **extra)

