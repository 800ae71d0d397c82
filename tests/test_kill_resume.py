"""``kill -9`` through the real CLI: a run with ``--checkpoint-freq`` killed once periodic
checkpoints are on disk continues with ``mimicgym train --resume`` from its last checkpoint's
step, removes what interrupted saves left behind, and ends exactly where a run that was never
killed ends (tables or weights, optimizer state, logged curves but wall-clock keys).

The killed run's budget is one it never reaches (the kill comes whenever the machine lets the
test look); the resume sets the total to a fixed number of steps past the checkpoint, and the
run never killed trains to that total (neither agent's schedule depends on the total)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mimicgym.agents.checkpoint import load_checkpoint
from mimicgym.cli import main

ROOT = Path(__file__).resolve().parents[1]

# name -> (train options, checkpoint frequency, steps after the kill, model file)
CASES = {
    "q_learning_slip": (["--env", "mimicgym/GridWorld-v0", "--env-kwarg", "slip=0.1", "--agent", "q_learning",
                         "--set", "log_interval=5"], 500, 15_000, "model.npz"),
    "a2c": (["--env", "CartPole-v1", "--agent", "a2c", "--set", "n_envs=4", "net_arch=[16]"], 400, 6_000,
            "model.pt"),
}


def _cli(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mimicgym.cli", *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group, as a terminal job


def _steps(model: Path) -> int:
    """The step count of a saved model, 0 while there is none."""
    if not model.is_file():
        return 0
    if model.suffix == ".npz":
        with np.load(model) as data:
            return json.loads(str(data["__meta__"]))["num_timesteps"]
    return load_checkpoint(model)["num_timesteps"]


def _learned(model: Path) -> dict:
    if model.suffix == ".npz":
        with np.load(model) as data:
            return {k: data[k] for k in data.files if not k.startswith("__")}  # meta holds wall-clock logs
    payload = load_checkpoint(model)
    return {"modules": payload["modules"], "optimizers": payload["optimizers"]}


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    return a == b


def _curves(run_dir: Path) -> dict:
    history = json.loads((run_dir / "progress.json").read_text())
    return {k: v for k, v in history.items() if not k.startswith("time/")}


@pytest.mark.parametrize("case", CASES)
def test_kill_9_resumes_from_the_last_periodic_checkpoint_exactly(case, tmp_path):
    options, every, after, model_file = CASES[case]
    common = [*options, "--checkpoint-freq", str(every), "--eval-episodes", "0", "--no-progress",
              "--logdir", str(tmp_path)]
    run_dir = tmp_path / "killed"
    proc = _cli(["train", *common, "--timesteps", "100000000", "--run-name", "killed"])
    deadline = time.monotonic() + 120
    while _steps(run_dir / model_file) < 2 * every:
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the run ended or stalled before its first checkpoint: {proc.communicate()[1]}")
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    at_step = _steps(run_dir / model_file)
    assert at_step >= 2 * every
    total = at_step + after

    # What interrupted saves leave (a kill inside a save leaves its temporary file), and a
    # file that is not ours.
    planted = [run_dir / f".{model_file}.mimicgym-tmp.x1y2z3ab.tmp", run_dir / ".progress.json.ab12cd34.tmp"]
    for path in [*planted, run_dir / "notes.tmp"]:
        path.write_bytes(b"partial")
    resumed = _cli(["train", "--resume", str(run_dir), "--timesteps", str(total)])
    # meanwhile, the run never killed
    assert main(["train", *common, "--timesteps", str(total), "--run-name", "straight"]) == 0
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err

    record = json.loads((run_dir / "config.json").read_text())
    assert [r["at_step"] for r in record["resumes"]] == [at_step]
    assert _steps(run_dir / model_file) == total
    leftovers = sorted(p.name for p in run_dir.iterdir() if p.name.endswith(".tmp"))
    assert leftovers == ["notes.tmp"]
    straight = tmp_path / "straight"
    assert _same(_learned(run_dir / model_file), _learned(straight / model_file))
    assert _curves(run_dir) == _curves(straight)
