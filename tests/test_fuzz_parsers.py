"""Loaders of untrusted input under fuzzing (issue 15): documented errors only, no hangs, no
silent nonsense; then one regression test per bug the issue's fuzzing found.

The cases are ``benchmarks/fuzz_parsers.py``'s (same mutations of valid files, same checks on
what loads), driven by hypothesis with ``derandomize=True`` and a fixed ``max_examples`` per
target, so the suite is deterministic and quick; the full fuzz (2,000 cases per target) is
that benchmark.
"""

from __future__ import annotations

import importlib.util
import io
import json
import pickle
import struct
import sys
import types
import zipfile
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from _body_fixtures import random_smpl_arrays
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mimicgym.envs.gridworld import GridWorldEnv
from mimicgym.errors import MapError, MimicgymError, ModelFileError, MotionFileError
from mimicgym.motion.amass import load_amass
from mimicgym.motion.bvh import load_bvh
from mimicgym.motion.clip import MotionClip
from mimicgym.motion.deepmimic import load_deepmimic
from mimicgym.motion.model_io import load_model_file, save_model_npz

_SPEC = importlib.util.spec_from_file_location(
    "fuzz_parsers", Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz_parsers.py")
fuzz = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = fuzz  # dataclasses look their module up there
_SPEC.loader.exec_module(fuzz)

TARGETS = fuzz.targets()
EXAMPLES = 250  # per target: about 15 s for the ten targets on one core
CASE_TIMEOUT = 2.0  # seconds before a case counts as a hang


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    """Each target's valid inputs and a scratch folder, built once."""
    cache = {}

    def get(name: str):
        if name not in cache:
            workdir = tmp_path_factory.mktemp(name)
            cache[name] = (TARGETS[name].seeds(workdir), workdir)
        return cache[name]
    return get


@pytest.mark.parametrize("name", list(TARGETS))
def test_fuzzed_inputs_raise_only_documented_errors(name, seeds):
    target = TARGETS[name]
    valid, workdir = seeds(name)

    @settings(derandomize=True, max_examples=EXAMPLES, deadline=timedelta(seconds=5), database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(rng=st.randoms(use_true_random=False))
    def case(rng):
        outcome, detail, _ = fuzz.run_case(target, valid, rng, workdir, CASE_TIMEOUT)
        assert outcome in ("accepted", "documented"), f"{name}: {outcome}: {detail}"

    case()


def test_every_documented_error_is_a_value_error():
    for error in (MapError, MotionFileError, ModelFileError):
        assert issubclass(error, MimicgymError) and issubclass(error, ValueError)


# ----------------------------------------------------------------------------- gridworld
def _quick(fn, seconds: float = 1.0):
    """``fn()`` under a time limit (raising too): a hang fails the test instead of stalling it."""
    with fuzz.time_limit(seconds):
        return fn()


def test_huge_wind_is_refused_at_once():  # it looped 10**9 times in build_model
    with pytest.raises(MapError, match=r"wind\[0\] = 1000000000 is larger than the grid's 3 rows"):
        _quick(lambda: GridWorldEnv(map=["S", ".", "G"], wind=[10**9]))
    with pytest.raises(MapError, match=r"wind\[3\] = -9223372036854775808"):
        GridWorldEnv(layout="windy", wind=[0, 0, 0, -2**63, 0, 0, 0, 0, 0, 0])
    with pytest.raises(MapError, match=r"wind\[0\] = 10{56}\.\.\. is larger"):  # no 400-digit message
        GridWorldEnv(map=["S", "G"], wind=[10**400])


UP, RIGHT, DOWN, LEFT = range(4)


def test_wind_as_strong_as_the_grid_builds_in_one_pass():
    # 2,000 rows, wind 2,000 in the middle column: the push is clamped at once, not cell by cell.
    tall = ["S.."] + ["..."] * 998 + [".#."] + ["..."] * 999 + ["..G"]
    model = _quick(lambda: GridWorldEnv(map=tall, wind=[0, 2000, 0]), seconds=5.0).model()
    assert model.next_states[1998 * 3 + 1, UP, 0] == 1000 * 3 + 1  # stopped below the wall
    assert model.next_states[1998 * 3 + 1, RIGHT, 0] == 0 * 3 + 2  # column 2: up to the edge
    assert model.next_states[500 * 3 + 1, LEFT, 0] == 0  # wind of column 1 carries it up column 0


def _push_cell_by_cell(chars: np.ndarray, row: int, col: int, push: int) -> int:
    """The wind's rule as the docs state it: one cell at a time, stopping at walls and the edge."""
    step = 1 if push > 0 else -1
    for _ in range(abs(push)):
        nxt = row - step
        if not 0 <= nxt < chars.shape[0] or chars[nxt, col] == "#":
            break
        row = nxt
    return row


@pytest.mark.parametrize("seed", range(20))
def test_clamped_wind_matches_cell_by_cell_pushes(seed):
    rng = np.random.default_rng(seed)
    rows, cols = rng.integers(2, 8, size=2)
    chars = rng.choice(list("..#"), size=(rows, cols))
    chars.flat[rng.choice(rows * cols, 2, replace=False)] = ["S", "G"]
    wind = rng.integers(-rows, rows + 1, size=cols)
    env = GridWorldEnv(map=["".join(r) for r in chars], wind=wind.tolist())
    model = env.model()
    for s in np.flatnonzero(~np.isin(chars.ravel(), ["#", "G"])):
        r, c = divmod(int(s), int(cols))
        for a, (dr, dc) in enumerate(env.moves.tolist()):
            r1, c1 = r + dr, c + dc
            if not (0 <= r1 < rows and 0 <= c1 < cols) or chars[r1, c1] == "#":
                r1, c1 = r, c
            landing = _push_cell_by_cell(chars, r1, c1, int(wind[c])) * cols + c1
            assert model.next_states[s, a, 0] == landing, (s, a)


@pytest.mark.parametrize("wind", [[float("inf")], [float("nan")], [1.5], ["1"], [True], [1j], [None]])
def test_non_integer_wind_is_refused_not_cast(wind):  # inf became -2**63 with a warning
    with pytest.raises(MapError, match=r"wind entries must be integers .* wind\[0\]"):
        GridWorldEnv(map=["S", "G"], wind=wind)


def test_integral_float_wind_still_works():
    assert GridWorldEnv(map=["S", ".", "G"], wind=[1.0]).config.wind.tolist() == [1]


@pytest.mark.parametrize("grid_map", [5, 3.5, b"S.G", {"S": 1}, ["S.G", 5], {"S.G"}])
def test_a_map_that_is_no_list_of_strings_is_a_map_error(grid_map):  # TypeError before
    with pytest.raises(MapError, match="map"):
        GridWorldEnv(map=grid_map)


def test_maps_beyond_ten_million_cells_are_refused_before_building():
    with pytest.raises(MapError, match=r"1x10000001 cells exceeds max_cells=10000000"):
        _quick(lambda: GridWorldEnv(map="S" + "." * 10**7))
    with pytest.raises(MapError, match="MAX_MAP_CELLS"):
        GridWorldEnv(layout="random_walk", n_states=10**9 + 1)


@pytest.mark.parametrize("kwargs, message", [
    ({"rewards": [("G", 1.0)]}, "rewards must be a dict"),
    ({"rewards": {(1.5, 0): 1.0}}, r"\(1.5, 0\) is neither"),
    ({"map": ["S.A", "..a"], "jumps": {"A": (["a"], 1.0)}}, "the target must be one map character"),
    ({"king_moves": np.array([1, 2])}, "king_moves must be True or False"),
    ({"slip": 10**400}, "slip must be a probability"),
    ({"layout": ["windy"]}, "layout must be a layout name"),
    ({"layout": "random_walk", "n_states": np.array([1, 2])}, "n_states must be an odd positive int"),
])
def test_bad_options_are_map_errors(kwargs, message):
    with pytest.raises(MapError, match=message):
        GridWorldEnv(**kwargs)


# ----------------------------------------------------------------------------- DeepMimic
def _walk() -> dict:
    return json.loads(fuzz.deepmimic_path("walk").read_text())


def _write(tmp_path: Path, doc, name: str = "clip.txt") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def test_deeply_nested_json_is_a_motion_file_error(tmp_path):  # RecursionError before
    path = _write(tmp_path, "[" * 100_000 + "]" * 100_000)
    with pytest.raises(MotionFileError, match="nested too deeply"):
        load_deepmimic(path)


@pytest.mark.parametrize("duration", [1e6, 1e4, 1.5])  # 1e6: a 13.4 GiB resampling; 1e4: 39 -> 300,050 frames
def test_frame_durations_beyond_one_second_are_refused(tmp_path, duration):
    doc = _walk()
    doc["Frames"][3][0] = duration
    with pytest.raises(MotionFileError, match=rf"frame 3 value 0 \({duration}\) is a duration beyond "
                                              r"max_frame_duration=1 s"):
        _quick(lambda: load_deepmimic(_write(tmp_path, doc)))


def test_bounds_are_keywords(tmp_path):
    doc = _walk()
    doc["Frames"][3][0] = 1.5
    path = _write(tmp_path, doc)
    with pytest.raises(MotionFileError, match="max_frame_duration=1 s"):
        load_deepmimic(path)
    assert load_deepmimic(path, max_frame_duration=2.0).num_frames > 39  # resampled at the median
    doc["Frames"][3][0] = 0.1  # uneven: 39 frames become 41
    path = _write(tmp_path, doc)
    assert load_deepmimic(path).num_frames == 41
    with pytest.raises(MotionFileError, match="gives 41 frames, more than max_frames=40"):
        load_deepmimic(path, max_frames=40)
    with pytest.raises(MotionFileError, match="2 to max_frames=30 frames, got 39"):
        load_deepmimic(path, max_frames=30)
    doc["Frames"][2][1] = 20.0  # a root 20 m away
    with pytest.raises(MotionFileError, match=r"frame 2 value 1 \(20.0\) is beyond \|x\| <= max_abs=10"):
        load_deepmimic(_write(tmp_path, doc), max_abs=10.0)


def test_a_tiny_median_frame_time_cannot_blow_up_the_resampling(tmp_path):
    doc = _walk()
    for frame in doc["Frames"][:-2]:
        frame[0] = 1e-7
    doc["Frames"][-2][0] = 1.0
    with pytest.raises(MotionFileError, match=r"gives \d+ frames, more than max_frames=1000000"):
        _quick(lambda: load_deepmimic(_write(tmp_path, doc)))


@pytest.mark.parametrize("value, message", [
    (10**400, r"value 5 \(inf\) is not finite"),  # OverflowError before
    ("1.0", "value 5 is '1.0', not a number"),  # silently converted before
    (True, "value 5 is 'True', not a number"),
    (None, "value 5 is 'None', not a number"),
    (float("nan"), r"value 5 \(nan\) is not finite"),
])
def test_non_numbers_and_non_finite_numbers_are_named(tmp_path, value, message):
    doc = _walk()
    doc["Frames"][7][5] = value
    with pytest.raises(MotionFileError, match=rf"frame 7 {message}"):
        load_deepmimic(_write(tmp_path, doc))


def test_durations_below_float_resolution_are_an_error_not_nan(tmp_path):
    doc = _walk()
    for frame in doc["Frames"]:
        frame[0] = 1e-320  # denormal: the frame rate overflows, time stamps repeat
    doc["Frames"][5][0] = 2e-320
    with pytest.raises(MotionFileError, match="fps must be a positive number"):
        load_deepmimic(_write(tmp_path, doc))


def test_binary_and_missing_files_are_motion_file_errors(tmp_path):
    (tmp_path / "clip.txt").write_bytes(b"\xff\xfe\x00[")
    with pytest.raises(MotionFileError, match="not valid JSON"):
        load_deepmimic(tmp_path / "clip.txt")
    with pytest.raises(MotionFileError, match="not found"):
        load_deepmimic(tmp_path / "missing.txt")


# ----------------------------------------------------------------------------- BVH
BVH = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Chest
  {
    OFFSET 0 20 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 30 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.04
0 90 0 0 0 0 0 0 0
1 91 0 0 5 0 0 10 0
"""


def _bvh(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "m.bvh"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_the_small_bvh_loads(tmp_path):
    clip = load_bvh(_bvh(tmp_path, BVH), scale=0.01)
    assert clip.skeleton.joint_names == ("Hips", "Chest", "Chest_end") and clip.num_frames == 2


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.replace("ROOT Hips\n{\n  OFFSET 0 0 0\n", "CHANNELS 3 Xrotation Yrotation Zrotation\nROOT Hips\n{\n"),
     "line 2: CHANNELS outside a joint block"),  # IndexError before
    (lambda s: s.replace("JOINT Chest", "JOINT"), "line 6: JOINT without a name"),  # accepted before
    (lambda s: s.replace("ROOT Hips", "ROOT "), "line 2: ROOT without a name"),
    (lambda s: s.replace("OFFSET 0 20 0", "OFFSET 0 1e308 0"), r"line 8: OFFSET '0 1e308 0' is not finite or beyond"),
    (lambda s: s.replace("OFFSET 0 20 0", "OFFSET 0 inf 0"), "line 8: OFFSET '0 inf 0'"),
    (lambda s: s.replace("JOINT Chest", "JOINT Hips"), "line 7: joint name 'Hips' is used twice"),
    (lambda s: s.replace("    OFFSET 0 30 0", "    CHANNELS 1 Xrotation"), "line 12: CHANNELS inside an End Site"),
    (lambda s: s.replace("Zrotation Xrotation Yrotation\n    End", "Zrotation Zrotation Yrotation\n    End"),
     "line 9: CHANNELS declares 3"),
    (lambda s: s.replace("Frame Time: 0.04", "Frame Time: 2"), r"frame time in \(0, 1.0\] s"),
    (lambda s: s.replace("Frames: 2", "Frames: 99999999999"), "need 2 to max_frames=1000000 frames"),
    (lambda s: s.replace("1 91 0", "1 1e5 0"), "frame 1: root position beyond"),
    (lambda s: s.replace("1 91 0", "1 nan 0"), "line 20: frame 1 is not finite"),
])
def test_bad_bvh_files_name_the_line(tmp_path, edit, message):
    with pytest.raises(MotionFileError, match=message):
        load_bvh(_bvh(tmp_path, edit(BVH)))


def test_non_utf8_bvh_names_file_and_line(tmp_path):  # a path-less UnicodeDecodeError before
    path = _bvh(tmp_path, BVH.encode().replace(b"JOINT Chest", b"JOINT Ch\xe9st"))
    with pytest.raises(MotionFileError, match=rf"{path}: line 6: not UTF-8 text \(byte 0xe9\)"):
        load_bvh(path)


def test_offset_bound_is_a_keyword(tmp_path):
    path = _bvh(tmp_path, BVH.replace("OFFSET 0 20 0", "OFFSET 0 20000 0"))
    with pytest.raises(MotionFileError, match="max_offset=10000"):
        load_bvh(path)
    assert load_bvh(path, max_offset=1e5, scale=0.01).skeleton.offsets[1, 1] == 200.0


# ----------------------------------------------------------------------------- npz files
def _corrupt_deflate(path: Path, key: str) -> None:
    """Overwrite one entry's compressed bytes with 0xff: deflate's reserved block type."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{key}.npy")
    data = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len
    data[start:start + info.compress_size] = b"\xff" * info.compress_size
    path.write_bytes(bytes(data))


def _lying_npz(path: Path, key: str, shape: tuple) -> None:
    """An archive whose entry's header claims ``shape`` but holds 8 bytes."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{key}.npy", header.getvalue() + bytes(8))


def _clip_arrays(tmp_path: Path) -> dict:
    fuzz._short_clip("walk", 5).save(tmp_path / "walk.npz")
    with np.load(tmp_path / "walk.npz") as data:
        return {k: data[k] for k in data.files}


def test_corrupt_deflate_streams_are_documented_errors(tmp_path):  # raw zlib.error before
    fuzz._short_clip("walk", 5).save(tmp_path / "c.npz")
    _corrupt_deflate(tmp_path / "c.npz", "rotations")
    with pytest.raises(MotionFileError, match=r"c.npz: truncated or corrupt .npz \(error: .*invalid block type"):
        MotionClip.load(tmp_path / "c.npz")
    save_model_npz(tmp_path / "m.npz", random_smpl_arrays(0, num_vertices=60))
    _corrupt_deflate(tmp_path / "m.npz", "v_template")
    with pytest.raises(ModelFileError, match="m.npz: truncated or corrupt .npz"):
        load_model_file(tmp_path / "m.npz")


@pytest.mark.parametrize("load, error", [(MotionClip.load, MotionFileError), (load_amass, MotionFileError),
                                         (load_model_file, ModelFileError)])
def test_headers_claiming_more_than_the_file_holds_are_refused_before_allocating(tmp_path, load, error):
    _lying_npz(tmp_path / "x.npz", "poses", (10**12,))
    with pytest.raises(error, match=r"key 'poses': header shape \(1000000000000,\) of float64 needs "
                                    r"8000000000000 bytes, the entry holds 8"):
        _quick(lambda: load(tmp_path / "x.npz"))


@pytest.mark.parametrize("key, value, message", [
    ("fps", np.complex128(30 + 1j), "key 'fps' holds complex numbers"),  # TypeError before
    ("root_trans", None, "key 'root_trans' holds complex numbers"),  # cut to the real part before
    ("joint_names", np.str_("x"), r"key 'joint_names'|'joint_names' must list 1 to 1000 joints"),  # TypeError before
    ("offsets", None, "key 'offsets' has values beyond"),
    ("loop", np.str_("False"), "key 'loop' has dtype <U5, expected bool values"),  # read as True before
    ("parents", None, "key 'parents' has dtype float64, expected int values"),
])
def test_npz_clip_values_are_checked_by_key(tmp_path, key, value, message):
    arrays = _clip_arrays(tmp_path)
    if key == "root_trans":
        value = arrays["root_trans"] + 1j
    if key == "offsets":
        value = arrays["offsets"] * 1e9
    if key == "parents":
        value = arrays["parents"].astype(np.float64)
    arrays[key] = value
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(MotionFileError, match=message):
        MotionClip.load(tmp_path / "bad.npz")


def test_npz_text_with_invalid_characters_is_refused(tmp_path):
    arrays = _clip_arrays(tmp_path)
    raw = bytearray(arrays["joint_names"].tobytes())
    raw[:4] = b"\xff\xff\xff\xff"  # no Unicode character, but numpy stores it
    arrays["joint_names"] = np.frombuffer(bytes(raw), dtype=arrays["joint_names"].dtype)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(MotionFileError, match="key 'joint_names' holds text with invalid characters"):
        MotionClip.load(tmp_path / "bad.npz")


def test_clip_frame_bound_is_a_keyword(tmp_path):
    _clip_arrays(tmp_path)
    with pytest.raises(MotionFileError, match="5 frames, more than max_frames=4"):
        MotionClip.load(tmp_path / "walk.npz", max_frames=4)


def _amass_arrays(**extra) -> dict:
    rng = np.random.default_rng(0)
    return dict(poses=rng.normal(0, 0.3, (6, 72)), trans=rng.normal(0, 1, (6, 3)),
                mocap_framerate=np.float64(60.0), **extra)


@pytest.mark.parametrize("extra, message", [
    (dict(mocap_framerate=np.array([60.0, 30.0])), r"'mocap_framerate' must be one number"),  # TypeError before
    (dict(mocap_framerate=np.float64(0.5)), "at least 1"),
    (dict(poses=np.full((6, 72), 1e5)), "key 'poses' has values beyond"),
    (dict(trans=np.zeros((6, 3)) + 1j), "key 'trans' holds complex numbers"),
    (dict(betas=np.array([np.inf])), "key 'betas' has non-finite values"),
])
def test_amass_values_are_checked(tmp_path, extra, message):
    np.savez(tmp_path / "a.npz", **{**_amass_arrays(), **extra})
    with pytest.raises(MotionFileError, match=message):
        load_amass(tmp_path / "a.npz")


# ----------------------------------------------------------------------------- body models
@pytest.fixture(scope="module")
def model_arrays():
    return random_smpl_arrays(0, num_vertices=60)


@pytest.mark.parametrize("edit, message", [
    (lambda a: a["v_template"].__setitem__((3, 1), np.inf), "key 'v_template' has non-finite values"),  # accepted
    (lambda a: a["weights"].__setitem__(slice(None), 0.0), r"key 'weights' row 0 .* sums to 0"),  # accepted
    (lambda a: a["weights"].__imul__(2.0), r"key 'weights' row 0 .* sums to 2"),  # accepted
    (lambda a: a["shapedirs"].__setitem__((0, 0, 0), 1e300), "key 'shapedirs' has values beyond"),
])
def test_body_model_values_are_checked(tmp_path, model_arrays, edit, message):
    arrays = {k: v.copy() for k, v in model_arrays.items()}
    edit(arrays)
    np.savez(tmp_path / "m.npz", **arrays)
    with pytest.raises(ModelFileError, match=message):
        load_model_file(tmp_path / "m.npz")


@pytest.mark.parametrize("key", ["kintree_table", "v_template", "f"])
def test_complex_body_model_arrays_are_refused_not_cut(tmp_path, model_arrays, key):
    arrays = dict(model_arrays, **{key: model_arrays[key] + 1j})
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(arrays, protocol=2))
    with pytest.raises(ModelFileError, match=rf"key '{key}' (has dtype|holds) complex"):
        load_model_file(path)


def test_pickled_reconstruction_cannot_allocate_what_the_file_does_not_hold(tmp_path, model_arrays):
    class Huge:
        def __reduce__(self):
            return (np._core.multiarray._reconstruct, (np.ndarray, (10**10,), b"b"))

    class Codec:
        def __reduce__(self):
            import codecs
            return (codecs.encode, ("x" * 10, "zlib_codec"))

    for value, message in ((Huge(), r"of shape \(10000000000,\)"), (Codec(), "only latin1")):
        path = tmp_path / "m.pkl"
        path.write_bytes(pickle.dumps(dict(model_arrays, v_template=value), protocol=2))
        with pytest.raises(ModelFileError, match=message):
            _quick(lambda path=path: load_model_file(path))


def test_pickled_sparse_matrix_indices_are_checked(tmp_path, monkeypatch, model_arrays):
    class csc_matrix:
        def __init__(self, **state):
            self.__dict__.update(state)

    module = types.ModuleType("scipy.sparse._csc")
    csc_matrix.__module__, csc_matrix.__qualname__ = module.__name__, "csc_matrix"
    module.csc_matrix = csc_matrix
    for name in ("scipy", "scipy.sparse"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    J, V = model_arrays["J_regressor"].shape
    one_per_column = np.r_[0, np.ones(V, int)]  # csc: column 0 holds the one entry
    bad = {"out of range": dict(_shape=(J, V), data=np.ones(1), indices=np.array([J]), indptr=one_per_column),
           "negative": dict(_shape=(J, V), data=np.ones(1), indices=np.array([-1]), indptr=one_per_column),
           "huge": dict(_shape=(10**6, 10**6), data=np.ones(1), indices=np.array([0]), indptr=np.array([0, 1])),
           "no data": dict(_shape=(J, V), indices=np.array([0]), indptr=one_per_column)}
    for what, state in bad.items():
        path = tmp_path / "m.pkl"
        path.write_bytes(pickle.dumps(dict(model_arrays, J_regressor=csc_matrix(**state)), protocol=2))
        with pytest.raises(ModelFileError, match="J_regressor"):
            load_model_file(path)


def test_gender_entry_is_checked(tmp_path, model_arrays):
    save_model_npz(tmp_path / "m.npz", model_arrays, gender="male")
    assert load_model_file(tmp_path / "m.npz")[1] == "male"
    np.savez(tmp_path / "g.npz", **model_arrays, gender=np.array(["male", "female"]))
    with pytest.raises(ModelFileError, match="key 'gender' must be one of"):
        load_model_file(tmp_path / "g.npz")
