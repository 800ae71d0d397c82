"""Torch checkpoints: round trip, weights_only safety, atomicity, errors naming the file."""

import os

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
