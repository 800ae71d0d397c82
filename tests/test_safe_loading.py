"""Nothing we load runs code: a crafted cloudpickle inside a stable-baselines3 zip and a
crafted ``vecnormalize.pkl`` are never unpickled by ``train --resume``, ``eval RUN`` or
``eval --model``; the entries are replaced from the run's config, or refused by name."""

from __future__ import annotations

import base64
import json
import os
import zipfile
from pathlib import Path

import cloudpickle
import pytest

from mimicgym.cli import main


class _Payload:
    """Unpickling this creates ``marker``: the proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _tamper(model: Path, marker: Path, key: str) -> None:
    """Replace (or add) ``key`` of the zip's data with a serialized payload."""
    with zipfile.ZipFile(model) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(files["data"])
    data[key] = {":type:": "<class 'object'>",
                 ":serialized:": base64.b64encode(cloudpickle.dumps(_Payload(marker))).decode()}
    files["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(model, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("runs")
    assert main(["train", "--env", "CartPole-v1", "--agent", "sb3:PPO", "--normalize", "--timesteps",
                 "256", "--set", "n_steps=128", "batch_size=64", "--logdir", str(logdir),
                 "--run-name", "ppo", "--no-progress", "--eval-episodes", "1"]) == 0
    return logdir / "ppo"


def _copy(run: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(run, tmp_path / run.name))


def test_serialized_entries_are_replaced_not_unpickled(trained, tmp_path, capsys):
    run, marker = _copy(trained, tmp_path), tmp_path / "pwned"
    for key in ("policy_class", "observation_space", "lr_schedule", "clip_range", "_last_obs"):
        _tamper(run / "model.zip", marker, key)
    assert main(["eval", str(run), "--episodes", "1"]) == 0
    assert main(["eval", "--model", str(run / "model.zip"), "--agent", "sb3:PPO", "--env",
                 "CartPole-v1", "--normalize", "--episodes", "1"]) == 0
    assert main(["train", "--resume", str(run), "--timesteps", "512", "--no-progress",
                 "--eval-episodes", "1"]) == 0
    assert not marker.exists()


def test_a_serialized_entry_we_cannot_replace_is_refused(trained, tmp_path, capsys):
    run, marker = _copy(trained, tmp_path), tmp_path / "pwned"
    _tamper(run / "model.zip", marker, "surprise")
    capsys.readouterr()
    for argv in (["eval", str(run)],
                 ["eval", "--model", str(run / "model.zip"), "--agent", "sb3:PPO", "--env", "CartPole-v1"],
                 ["train", "--resume", str(run), "--timesteps", "512", "--no-progress"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "refusing to unpickle" in err and "'surprise'" in err, err
    assert not marker.exists()


def test_a_pickled_vecnormalize_is_never_read(trained, tmp_path, capsys):
    run, marker = _copy(trained, tmp_path), tmp_path / "pwned"
    (run / "vecnormalize.npz").unlink()
    (run / "vecnormalize.pkl").write_bytes(cloudpickle.dumps(_Payload(marker)))
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--timesteps", "512", "--no-progress"]) == 2
    assert "vecnormalize.pkl" in capsys.readouterr().err
    assert main(["eval", str(run)]) == 2
    assert not marker.exists()
    assert "--trust-pickle" in capsys.readouterr().err


def test_trust_pickle_converts_sb3_statistics_once(trained, tmp_path, capsys):
    """A genuine SB3 ``vecnormalize.pkl`` is read only with --trust-pickle, once: the arrays
    written from it equal the statistics the run saved, and eval then reads the arrays."""
    import numpy as np
    from stable_baselines3.common.vec_env import DummyVecEnv

    from mimicgym.runs.normalization import load_vec_normalize

    run = _copy(trained, tmp_path)
    venv = DummyVecEnv([lambda: __import__("gymnasium").make("CartPole-v1")])
    original = load_vec_normalize(run / "vecnormalize.npz", venv)
    original.save(str(run / "vecnormalize.pkl"))  # SB3's own pickle format
    (run / "vecnormalize.npz").unlink()
    assert main(["eval", str(run), "--episodes", "1"]) == 2  # refused without the flag
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "1", "--trust-pickle"]) == 0
    assert "--trust-pickle: read" in capsys.readouterr().out
    converted = load_vec_normalize(run / "vecnormalize.npz", venv)
    np.testing.assert_array_equal(converted.obs_rms.mean, original.obs_rms.mean)
    np.testing.assert_array_equal(converted.obs_rms.var, original.obs_rms.var)
    assert converted.ret_rms.count == original.ret_rms.count
    (run / "vecnormalize.pkl").write_bytes(b"not a pickle any more")  # never read again: arrays exist
    assert main(["eval", str(run), "--episodes", "1", "--trust-pickle"]) == 0
    assert main(["train", "--env", "CartPole-v1", "--agent", "sb3:PPO", "--trust-pickle"]) == 2
