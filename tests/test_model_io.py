"""Model files: npz/pkl round trips, chumpy/scipy pickles without those packages, bad files."""

import io
import pickle
import struct
import sys
import types

import numpy as np
import pytest
import torch
from _body_fixtures import random_smpl_arrays

from mimicgym.motion.body_model import BodyModel
from mimicgym.motion.model_io import ModelFileError, gender_from_filename, load_model_file, save_model_npz

SMALL_V = 300  # small meshes keep these tests fast; the shapes checks are size-agnostic


@pytest.fixture(scope="module")
def arrays():
    return random_smpl_arrays(seed=0, num_vertices=SMALL_V)


def _assert_same_model(loaded, arrays):
    for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "f"):
        np.testing.assert_array_equal(loaded[key], arrays[key], err_msg=key)
    parents = loaded["kintree_table"][0]
    assert parents[0] == -1 and list(parents[1:]) == list(arrays["kintree_table"][0, 1:])


def test_npz_round_trip_with_gender(tmp_path, arrays):
    path = tmp_path / "model.npz"
    save_model_npz(path, arrays, gender="female")
    loaded, gender = load_model_file(path)
    _assert_same_model(loaded, arrays)
    assert gender == "female"  # metadata wins over the neutral-looking file name
    model = BodyModel.load(path, dtype=torch.float64)
    assert model.gender == "female" and model.num_vertices == SMALL_V and model.num_joints == 24


def test_plain_pickle_and_gender_from_name(tmp_path, arrays):
    path = tmp_path / "basicModel_m_lbs_10_207_0_v1.0.0.pkl"
    path.write_bytes(pickle.dumps(arrays, protocol=2))
    loaded, gender = load_model_file(path)
    _assert_same_model(loaded, arrays)
    assert gender == "male"


@pytest.mark.parametrize("name, gender", [
    ("SMPL_FEMALE.pkl", "female"), ("SMPL_MALE.pkl", "male"), ("SMPL_NEUTRAL.pkl", "neutral"),
    ("basicModel_f_lbs_10_207_0_v1.0.0.pkl", "female"), ("basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl", "neutral"),
    ("model.npz", "neutral"),
])
def test_gender_from_filename(name, gender):
    assert gender_from_filename(name) == gender


def _fake_module(monkeypatch, name: str, **attrs) -> None:
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        monkeypatch.setitem(sys.modules, ".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
    for key, value in attrs.items():
        value.__module__ = name
        value.__qualname__ = key
        setattr(sys.modules[name], key, value)


class _Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` opcodes, as the official SMPL pickles do."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj):
        self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def test_chumpy_and_sparse_pickle_loads_without_those_packages(tmp_path, monkeypatch, arrays):
    # Stand-ins with the class paths and pickled state of chumpy.Ch and scipy's csc_matrix.
    class Ch:
        def __init__(self, x):
            self.x = x
            self._dirty_vars = set()

    class csc_matrix:
        def __init__(self, dense):
            cols = [np.flatnonzero(dense[:, c]) for c in range(dense.shape[1])]
            self.indices = np.concatenate(cols).astype(np.int32)
            self.indptr = np.concatenate([[0], np.cumsum([len(c) for c in cols])]).astype(np.int32)
            self.data = np.concatenate([dense[c, i] for i, c in enumerate(cols)])
            self._shape = dense.shape
            self.maxprint = 50

    _fake_module(monkeypatch, "chumpy.ch", Ch=Ch)
    _fake_module(monkeypatch, "scipy.sparse.csc", csc_matrix=csc_matrix)
    raw = dict(arrays)
    raw["shapedirs"], raw["posedirs"] = Ch(arrays["shapedirs"]), Ch(arrays["posedirs"])
    raw["v_template"] = Ch(arrays["v_template"])
    raw["J_regressor"] = csc_matrix(arrays["J_regressor"])
    raw["bs_style"] = "lbs"
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(raw)
    assert b"chumpy.ch" in buf.getvalue() and b"scipy.sparse.csc" in buf.getvalue()
    for name in ("chumpy", "chumpy.ch", "scipy", "scipy.sparse", "scipy.sparse.csc"):
        monkeypatch.delitem(sys.modules, name)  # the loader must not need them
    path = tmp_path / "SMPL_FEMALE.pkl"
    path.write_bytes(buf.getvalue())
    loaded, gender = load_model_file(path)
    _assert_same_model(loaded, arrays)
    assert gender == "female"
    assert "chumpy" not in sys.modules


def test_disallowed_class_is_refused_and_not_run(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (exec, ("import pathlib; pathlib.Path(%r).write_text('pwned')" % str(tmp_path / "flag"),))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"v_template": Exploit()}, protocol=2))
    with pytest.raises(ModelFileError, match=r"refusing to unpickle class (__builtin__|builtins)\.exec"):
        load_model_file(path)
    assert not (tmp_path / "flag").exists()


def test_truncated_files(tmp_path, arrays):
    good = tmp_path / "good.npz"
    save_model_npz(good, arrays)
    data = good.read_bytes()
    bad = tmp_path / "bad.npz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated or corrupt .npz"):
        load_model_file(bad)
    pkl = pickle.dumps(arrays, protocol=2)
    badpkl = tmp_path / "bad.pkl"
    badpkl.write_bytes(pkl[: len(pkl) // 2])
    with pytest.raises(ModelFileError, match="truncated or corrupt pickle"):
        load_model_file(badpkl)
    with pytest.raises(ModelFileError, match="not found"):
        load_model_file(tmp_path / "missing.npz")


def test_missing_key_and_wrong_shapes(tmp_path, arrays):
    raw = {k: v for k, v in arrays.items() if k != "weights"}
    path = tmp_path / "nokey.pkl"
    path.write_bytes(pickle.dumps(raw, protocol=2))
    with pytest.raises(ModelFileError, match=r"missing key\(s\) \['weights'\]"):
        load_model_file(path)

    cases = {
        "shapedirs": (np.zeros((SMALL_V, 2, 10)),
                      r"'shapedirs' has shape \(300, 2, 10\), expected \(V, 3, K\) = \(300, 3, K\)"),
        "J_regressor": (np.zeros((23, SMALL_V)),
                        r"'J_regressor' has shape \(23, 300\), expected \(J, V\) = \(24, 300\)"),
        "posedirs": (np.zeros((SMALL_V, 3, 200)), r"'posedirs' .* expected \(V, 3, 9 \(J - 1\)\) = \(300, 3, 207\)"),
        "weights": (np.zeros((SMALL_V, 3)), r"'weights' has shape \(300, 3\), expected \(V, J\) = \(300, 24\)"),
    }
    for key, (value, message) in cases.items():
        bad = dict(arrays, **{key: value})
        with pytest.raises(ModelFileError, match=message):
            save_model_npz(tmp_path / f"{key}.npz", bad)
    nan = dict(arrays, v_template=arrays["v_template"].copy())
    nan["v_template"][3, 1] = np.nan
    with pytest.raises(ModelFileError, match="'v_template' has non-finite values"):
        BodyModel(arrays=nan)
    cyclic = dict(arrays, kintree_table=arrays["kintree_table"].copy())
    cyclic["kintree_table"][0, 5] = 7  # a parent after its child
    with pytest.raises(ModelFileError, match="kintree_table"):
        BodyModel(arrays=cyclic)
    faces = dict(arrays, f=arrays["f"].copy())
    faces["f"][0, 0] = SMALL_V
    with pytest.raises(ModelFileError, match=r"'f' must hold integer vertex ids in \[0, 300\)"):
        BodyModel(arrays=faces)
