"""Checkpoints: round trip, weights_only safety, atomicity, errors naming the file, checksums that
catch flipped bits (torch files, tabular agent files, SB3 zips of a run), stale temporary files."""

import io
import json
import os
import struct
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from mimicgym.agents import checkpoint
from mimicgym.agents.checkpoint import FORMAT, load_checkpoint, save_checkpoint


class NotAllowed:
    """A class ``torch.load(weights_only=True)`` must refuse to unpickle."""


def test_round_trip_converts_numpy_and_keeps_plain_values(tmp_path):
    net = torch.nn.Linear(3, 2)
    path = save_checkpoint(tmp_path / "a.pt", {
        "class": "DQN",
        "weights": net.state_dict(),
        "array": np.arange(6, dtype=np.int16).reshape(2, 3),
        "scalar": np.float32(0.25),
        "nested": {"steps": [1, 2, 3], "name": "x", "none": None, "flag": True},
    })
    out = load_checkpoint(path, expected_class="DQN")
    assert out["format"] == FORMAT
    assert torch.equal(out["weights"]["weight"], net.weight.detach())
    assert isinstance(out["array"], torch.Tensor) and out["array"].dtype == torch.int16
    np.testing.assert_array_equal(out["array"].numpy(), np.arange(6).reshape(2, 3))
    assert out["scalar"] == 0.25 and type(out["scalar"]) is float
    assert out["nested"] == {"steps": [1, 2, 3], "name": "x", "none": None, "flag": True}


def test_truncated_and_garbage_files_raise_value_error_naming_the_path(tmp_path):
    good = save_checkpoint(tmp_path / "good.pt", {"w": torch.arange(1000.0)})
    data = good.read_bytes()
    for name, content in (("truncated.pt", data[: len(data) // 2]), ("garbage.pt", b"not a zip")):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ValueError, match=name):
            load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


def test_format_and_class_are_checked(tmp_path):
    torch.save({"w": torch.zeros(2)}, tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="format None, expected"):
        load_checkpoint(tmp_path / "plain.pt")
    path = save_checkpoint(tmp_path / "a2c.pt", {"class": "A2C"})
    with pytest.raises(ValueError, match="holds a 'A2C' checkpoint, not 'DQN'"):
        load_checkpoint(path, expected_class="DQN")


def test_arbitrary_pickled_objects_are_refused(tmp_path):
    torch.save({"format": FORMAT, "evil": NotAllowed()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="evil.pt"):
        load_checkpoint(tmp_path / "evil.pt")
    with pytest.raises(TypeError, match=r"payload\.cfg\.obj has type NotAllowed"):
        save_checkpoint(tmp_path / "x.pt", {"cfg": {"obj": NotAllowed()}})
    assert not (tmp_path / "x.pt").exists()


def test_failed_write_leaves_the_old_checkpoint_and_no_temporary_file(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "ckpt.pt", {"step": 1})

    def crash(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert os.listdir(tmp_path) == ["ckpt.pt"]


# ----------------------------------------------------------------- checksums
def _tensor_data_ranges(path) -> list[tuple[int, int]]:
    """(start, end) byte ranges of the raw tensor records (``<archive>/data/<n>``) of a torch file."""
    data = path.read_bytes()
    ranges = []
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if "/data/" in info.filename and info.file_size:
                name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
                start = info.header_offset + 30 + name_len + extra_len
                ranges.append((start, start + info.file_size))
    return ranges


def _flipped(data: bytes, position: int) -> bytes:
    out = bytearray(data)
    out[position] ^= 1 << (position % 8)
    return bytes(out)


def test_a_flipped_bit_in_tensor_data_is_a_checksum_error(tmp_path):
    from mimicgym.agents import DQN
    from mimicgym.errors import CheckpointError

    agent = DQN("CartPole-v1", seed=0, device="cpu", learning_starts=50, train_freq=16, gradient_steps=2,
                net_arch=(8,), buffer_size=300).learn(200)
    path = agent.save(tmp_path / "dqn.pt")
    data = path.read_bytes()
    positions = np.concatenate([np.arange(start, end) for start, end in _tensor_data_ranges(path)])
    assert len(positions) > 10_000  # weights, Adam moments, replay buffer, rng states
    bad = tmp_path / "bad.pt"
    for position in positions[:: len(positions) // 300]:  # 300 positions spread over every tensor
        bad.write_bytes(_flipped(data, int(position)))
        with pytest.raises(CheckpointError, match="checksum"):
            load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="bad.pt: checksum mismatch"):
        DQN.load(bad)


def test_no_single_flipped_bit_anywhere_loads_a_different_payload(tmp_path):
    from mimicgym.errors import CheckpointError

    path = save_checkpoint(tmp_path / "small.pt", {"class": "X", "w": torch.arange(6.0), "n": 3, "s": "abc"})
    data, reference = path.read_bytes(), load_checkpoint(path)["checksum"]
    bad, outcomes = tmp_path / "bad.pt", {"refused": 0, "unchanged": 0}
    for position in range(0, len(data), 3):
        bad.write_bytes(_flipped(data, position))
        try:
            payload = load_checkpoint(bad)
        except CheckpointError:
            outcomes["refused"] += 1
        else:  # zip metadata the reader ignores (timestamps, a CRC torch does not check...)
            assert payload["checksum"] == reference and torch.equal(payload["w"], torch.arange(6.0))
            outcomes["unchanged"] += 1
    assert outcomes["refused"] > 100 and outcomes["unchanged"] > 0


def test_files_of_the_first_format_load_unverified(tmp_path):
    torch.save({"format": checkpoint.FORMAT_V1, "class": "X", "w": torch.zeros(2)}, tmp_path / "v1.pt")
    assert load_checkpoint(tmp_path / "v1.pt", expected_class="X")["class"] == "X"


def test_tabular_agent_files_carry_a_checksum(tmp_path):
    import gymnasium as gym

    from mimicgym.agents import QLearning
    from mimicgym.errors import CheckpointError

    agent = QLearning(gym.make("mimicgym/GridWorld-v0", slip=0.1), seed=0).learn(1001)
    path = agent.save(tmp_path / "q.npz")
    # A change the zip's CRC cannot see (the entry rewritten whole) is the checksum's to catch.
    with np.load(path) as stored:
        entries = {k: stored[k] for k in stored.files}
    entries["q_values"] = entries["q_values"].copy()
    entries["q_values"][3, 1] += 1e-9
    np.savez_compressed(tmp_path / "edited.npz", **entries)
    with pytest.raises(CheckpointError, match="edited.npz: checksum mismatch"):
        QLearning.load(tmp_path / "edited.npz")
    # Every single flipped bit is refused or changes nothing that loads.
    data, bad = path.read_bytes(), tmp_path / "bad.npz"
    for position in range(0, len(data), 11):
        bad.write_bytes(_flipped(data, position))
        try:
            loaded = QLearning.load(bad)
        except CheckpointError:
            continue
        np.testing.assert_array_equal(loaded.q_values, agent.q_values)
        assert loaded.num_timesteps == agent.num_timesteps


def _sb3_zip(n_steps: int, pickled: str = "gASVAAAA") -> bytes:
    """A zip laid out as stable-baselines3's: a ``data`` table and tensor files."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("data", json.dumps({"n_steps": n_steps, "policy_class": {":serialized:": pickled}}))
        archive.writestr("policy.pth", bytes(range(256)) * 16)
    return buffer.getvalue()


def test_sb3_models_are_checked_against_the_checksum_their_run_recorded(tmp_path):
    from mimicgym.errors import CheckpointError
    from mimicgym.runs.sb3 import CHECKSUMS_FILE, save_model_file, verify_model_file

    model = tmp_path / "model.zip"
    save_model_file(model, _sb3_zip(64))
    save_model_file(model, _sb3_zip(128))
    verify_model_file(model)
    # A kill between the record's write and the model's leaves the previous file: it verifies.
    model.write_bytes(_sb3_zip(64))
    verify_model_file(model)
    # Cloudpickled entries are replaced on load, never read: they are not part of the checksum.
    model.write_bytes(_sb3_zip(128, pickled="b3RoZXI="))
    verify_model_file(model)
    model.write_bytes(_sb3_zip(256))  # a changed value, in a zip whose own CRCs are all right
    with pytest.raises(CheckpointError, match="model.zip: checksum mismatch"):
        verify_model_file(model)
    data = _sb3_zip(128)
    for position in range(0, len(data), 17):
        model.write_bytes(_flipped(data, position))
        try:
            verify_model_file(model)
        except CheckpointError as e:
            assert "checksum" in str(e)
        else:  # zip metadata the reader ignores
            with zipfile.ZipFile(model) as archive:
                assert archive.read("policy.pth") == bytes(range(256)) * 16
    (tmp_path / CHECKSUMS_FILE).unlink()
    verify_model_file(model)  # no record (a model saved elsewhere): nothing to check against


def test_eval_of_a_sb3_run_refuses_a_flipped_bit(tmp_path, capsys):
    from mimicgym.cli import main

    assert main(["train", "--env", "CartPole-v1", "--agent", "sb3:PPO", "--timesteps", "128", "--set",
                 "n_steps=64", "batch_size=32", "n_epochs=1", "--logdir", str(tmp_path), "--run-name", "run",
                 "--no-progress", "--eval-episodes", "0"]) == 0
    model = tmp_path / "run" / "model.zip"
    data = model.read_bytes()
    model.write_bytes(_flipped(data, len(data) // 2))
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "run"), "--episodes", "1"]) == 2
    assert "checksum" in capsys.readouterr().err
    # A changed value in a zip whose own CRCs are right (rewritten whole) is the checksum's to catch.
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    table = json.loads(members["data"])
    table["gamma"] = 0.5
    members["data"] = json.dumps(table).encode()
    with zipfile.ZipFile(model, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    assert main(["eval", str(tmp_path / "run"), "--episodes", "1"]) == 2
    assert "checksum mismatch" in capsys.readouterr().err
    model.write_bytes(data)
    assert main(["eval", str(tmp_path / "run"), "--episodes", "1"]) == 0


# ----------------------------------------------------------------- stale temporary files
def test_stale_temporary_files_of_interrupted_saves_are_removed(tmp_path):
    from mimicgym.utils import io as mimicgym_io
    from mimicgym.utils.io import atomic_write, remove_stale_temp_files

    def touch(name: str, mtime: float) -> Path:
        path = tmp_path / name
        path.write_bytes(b"partial")
        os.utime(path, (mtime, mtime))
        return path

    # Stale means written before this process started (the worker may have run for many minutes).
    before, now = mimicgym_io._PROCESS_START - 60, time.time() + 5
    stale = [touch(".model.pt.mimicgym-tmp.k3j9x_2a.tmp", before),  # a save a kill -9 cut short
             touch(".progress.json.ab12cd34.tmp", before)]  # the name before the tag (older runs)
    others = [touch(".model.pt.mimicgym-tmp.fresh123.tmp", now),  # a writer still at work
              touch("notes.tmp", before), touch(".hidden.tmp", before)]  # not ours
    with atomic_write(tmp_path / "model.pt") as f:  # a save removes its own target's leftovers
        f.write(b"complete")
    assert not stale[0].exists() and stale[1].exists()
    assert remove_stale_temp_files(tmp_path) == [stale[1]]  # a resume sweeps the run directory
    assert all(p.exists() for p in others)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["model.pt", *(p.name for p in others)])


def test_write_results_writes_json_and_table_atomically(tmp_path):
    from mimicgym.utils.io import write_results

    paths = write_results(tmp_path / "deep" / "bench.json", {"a": {"nll": 1.5}}, "| a | 1.5 |")
    assert paths == [tmp_path / "deep" / "bench.json", tmp_path / "deep" / "bench.md"]
    assert json.loads(paths[0].read_text()) == {"a": {"nll": 1.5}} and paths[1].read_text() == "| a | 1.5 |\n"
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == ["bench.json", "bench.md"]  # no temp files left
