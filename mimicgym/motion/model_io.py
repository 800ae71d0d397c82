"""Reading and writing SMPL-format body model files (.pkl as distributed, or .npz).

The SMPL layout is a dict of arrays: ``v_template`` (V, 3), ``shapedirs`` (V, 3, K),
``posedirs`` (V, 3, 9 (J - 1)), ``J_regressor`` (J, V), ``weights`` (V, J),
``kintree_table`` (2, J) and ``f`` (F, 3). The official pickles were written by Python 2
and hold some arrays as chumpy objects and ``J_regressor`` as a scipy sparse matrix. This
module reads them with neither chumpy nor scipy installed, and without running code from
the file: a restricted unpickler resolves only an allow-list of numpy reconstructors and
small stand-in classes that keep the array data of chumpy and scipy.sparse objects.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from mimicgym.errors import ModelFileError
from mimicgym.utils.io import atomic_save_npz

__all__ = ["ModelFileError", "load_model_file", "validate_model_arrays", "save_model_npz", "gender_from_filename"]

REQUIRED_KEYS = ("v_template", "shapedirs", "J_regressor", "weights", "kintree_table", "f")
OPTIONAL_KEYS = ("posedirs",)
GENDERS = ("neutral", "female", "male")


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
        if len(shape) != 2:
            raise ModelFileError(f"sparse matrix ({self._source}) without a 2-D shape")
        fmt = self._format
        dense = np.zeros(shape, dtype=np.asarray(s["data"]).dtype)
        data = np.asarray(s["data"])
        if fmt == "coo":
            rows, cols = np.asarray(s["row"]), np.asarray(s["col"])
        else:
            indptr, indices = np.asarray(s["indptr"]), np.asarray(s["indices"])
            major = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
            rows, cols = (major, indices) if fmt == "csr" else (indices, major)
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


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only numpy array reconstruction and the chumpy / scipy.sparse stand-ins."""

    def find_class(self, module: str, name: str) -> Any:
        if module.split(".")[0] == "chumpy":
            return _make_stand_in(_ChumpyStandIn, module, name)
        if module.startswith("scipy.sparse") and name in _SPARSE_NAMES:
            return _make_stand_in(_SparseStandIn, module, name)
        if (module, name) in _ALLOWED:
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
        with open(path, "rb") as f:
            # latin1 maps Python 2 byte strings (numpy array buffers) one-to-one onto str.
            data = RestrictedUnpickler(f, encoding="latin1").load()
    except ModelFileError as err:
        raise ModelFileError(f"{path}: {err}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, KeyError,
            IndexError, UnicodeDecodeError) as err:
        raise ModelFileError(f"{path}: truncated or corrupt pickle ({type(err).__name__}: {err})") from err
    if not isinstance(data, dict):
        raise ModelFileError(f"{path}: expected a pickled dict of arrays, got {type(data).__name__}")
    return data


def _load_npz(path: Path) -> dict[str, Any]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (zipfile.BadZipFile, EOFError, ValueError, OSError, KeyError) as err:
        raise ModelFileError(f"{path}: truncated or corrupt .npz ({type(err).__name__}: {err})") from err


def gender_from_filename(path: str | os.PathLike) -> str:
    """'female' / 'male' / 'neutral' from names like SMPL_FEMALE.pkl or basicModel_f_lbs_...pkl."""
    stem = Path(path).name.lower()
    if "female" in stem or re.search(r"(^|[_\-.])f([_\-.]|$)", stem):
        return "female"
    if "male" in stem or re.search(r"(^|[_\-.])m([_\-.]|$)", stem):
        return "male"
    return "neutral"


def validate_model_arrays(raw: dict[str, Any], source: str = "model") -> dict[str, np.ndarray]:
    """Check keys, shapes, dtypes and finiteness; return plain numpy arrays in SMPL layout.

    ``posedirs`` may be absent (no pose correctives). Errors name the key and the expected shape.
    """
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise ModelFileError(f"{source}: missing key(s) {missing}; an SMPL-format model needs {list(REQUIRED_KEYS)}")
    arrays: dict[str, np.ndarray] = {}
    for key in REQUIRED_KEYS + OPTIONAL_KEYS:
        if key in raw and raw[key] is not None:
            try:
                arrays[key] = np.asarray(_to_plain(raw[key]))
            except ModelFileError as err:
                raise ModelFileError(f"{source}: key '{key}': {err}") from None
            if arrays[key].dtype == object:
                raise ModelFileError(f"{source}: key '{key}' is not a numeric array")

    def expect(key: str, shape: tuple, expected: str) -> None:
        got = arrays[key].shape
        if len(got) != len(shape) or any(s is not None and s != g for s, g in zip(shape, got)):
            raise ModelFileError(f"{source}: key '{key}' has shape {got}, expected {expected}")

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
        if key in ("kintree_table", "f"):
            continue
        if not np.issubdtype(value.dtype, np.floating) and not np.issubdtype(value.dtype, np.integer):
            raise ModelFileError(f"{source}: key '{key}' has dtype {value.dtype}, expected floats")
        if not np.isfinite(value).all():
            raise ModelFileError(f"{source}: key '{key}' contains NaN or infinite values")
    faces = arrays["f"]
    if not np.issubdtype(faces.dtype, np.integer) or faces.min() < 0 or faces.max() >= V:
        raise ModelFileError(f"{source}: key 'f' must hold integer vertex ids in [0, {V})")
    # SMPL stores the root's parent as 2**32 - 1 (uint32 of -1).
    parents = arrays["kintree_table"][0].astype(np.int64)
    parents[parents >= J] = -1
    parents[0] = -1
    if (parents[1:] < 0).any() or (parents[1:] >= np.arange(1, J)).any():
        raise ModelFileError(
            f"{source}: key 'kintree_table' row 0 must give each joint j > 0 a parent in [0, j), "
            f"got {parents.tolist()}")
    arrays["kintree_table"] = np.stack([parents, np.arange(J)])
    return arrays


def load_model_file(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], str]:
    """Load and validate an SMPL-format ``.pkl`` or ``.npz``; returns (arrays, gender)."""
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
    gender = gender_from_filename(path)
    if "gender" in raw:
        stored = str(np.asarray(raw["gender"]).item()).lower()
        if stored not in GENDERS:
            raise ModelFileError(f"{path}: key 'gender' must be one of {GENDERS}, got {stored!r}")
        gender = stored
    return validate_model_arrays(raw, source=str(path)), gender


def save_model_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray], gender: str = "neutral",
                   **extra: np.ndarray) -> None:
    """Validate and write an SMPL-format ``.npz`` atomically (plus metadata arrays in ``extra``)."""
    if gender not in GENDERS:
        raise ValueError(f"gender must be one of {GENDERS}, got {gender!r}")
    checked = validate_model_arrays(arrays, source=str(path))
    atomic_save_npz(path, **checked, gender=np.array(gender), **extra)

