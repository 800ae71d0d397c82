"""Runs as a user lives them, through the real console script in a subprocess: Ctrl-C to the
whole process group saves and prints the one command that continues the run; that command
alone continues it; a second identical ``train`` never touches the first run's files;
``eval RUN`` evaluates with the run's normalisation, as training did."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from mimicgym.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _cli(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "mimicgym.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group, like a terminal job


def _steps(run_dir: Path) -> int:
    """The step count of the run's saved model (any of the three formats)."""
    if (run_dir / "model.npz").is_file():
        with np.load(run_dir / "model.npz") as data:
            return json.loads(str(data["__meta__"]))["num_timesteps"]
    if (run_dir / "model.pt").is_file():
        return torch.load(run_dir / "model.pt", weights_only=True)["num_timesteps"]
    if (run_dir / "model.zip").is_file():
        with zipfile.ZipFile(run_dir / "model.zip") as z:
            return json.loads(z.read("data"))["num_timesteps"]
    return -1


def _ctrl_c_once_past(proc: subprocess.Popen, run_dir: Path, step: int, timeout: float = 120):
    """Wait until a checkpoint past ``step`` is on disk, then Ctrl-C the process group."""
    deadline = time.monotonic() + timeout
    while _steps(run_dir) <= step:
        if proc.poll() is not None or time.monotonic() > deadline:
            out, err = proc.communicate()
            pytest.fail(f"run ended or stalled before step {step}:\n{out}\n{err}")
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    return proc.communicate(timeout=timeout)


CASES = {
    "q_learning": ["--env", "mimicgym/CliffWalking-v0", "--agent", "q_learning",
                   "--timesteps", "1000000000", "--checkpoint-freq", "20000"],
    "dqn": ["--env", "CartPole-v1", "--agent", "dqn", "--timesteps", "100000000",
            "--checkpoint-freq", "300", "--set", "learning_starts=100", "buffer_size=5000",
            "net_arch=[16]"],
    "a2c": ["--env", "CartPole-v1", "--agent", "a2c", "--timesteps", "100000000",
            "--checkpoint-freq", "800"],
    "sb3_ppo_normalize": ["--env", "CartPole-v1", "--agent", "sb3:PPO", "--normalize",
                          "--timesteps", "100000000", "--checkpoint-freq", "256", "--set",
                          "n_steps=128", "batch_size=64", "n_epochs=1"],
    "imitation": ["--env", "mimicgym/MimicWalk-v0", "--agent", "sb3:PPO", "--n-envs", "2",
                  "--subproc", "--normalize", "--timesteps", "100000000", "--checkpoint-freq",
                  "256", "--set", "n_steps=64", "batch_size=64", "n_epochs=1"],
}


@pytest.mark.parametrize("case", CASES)
def test_ctrl_c_saves_and_the_printed_command_alone_continues(case, tmp_path):
    run_dir = tmp_path / "run"
    first = _cli(["train", *CASES[case], "--logdir", str(tmp_path), "--run-name", "run",
                  "--eval-episodes", "1"])
    out, err = _ctrl_c_once_past(first, run_dir, 0)
    assert first.returncode == 130, err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    command = re.search(r"continue with: (mimicgym train --resume \S+)", out)
    assert command and command.group(1) == f"mimicgym train --resume {run_dir}", out
    stopped_at = _steps(run_dir)
    assert stopped_at > 0

    args = command.group(1).split()[1:]  # the printed command, run as printed
    second = _cli(args)
    out, err = _ctrl_c_once_past(second, run_dir, stopped_at)
    assert second.returncode == 130 and "Traceback" not in err, err
    assert _steps(run_dir) > stopped_at  # the step count continued from the checkpoint
    record = json.loads((run_dir / "config.json").read_text())
    assert record["resumes"][0]["at_step"] == stopped_at
    history = json.loads((run_dir / "progress.json").read_text())
    for points in history.values():  # no point past the checkpoint survived the resume
        steps = [s for s, _ in points]  # (a stop dumps nothing: the checkpoint keeps what is pending)
        assert steps == sorted(steps)


def _hashes(run_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*")) if p.is_file()}


def test_a_second_identical_train_never_touches_the_first_run(tmp_path, capsys):
    argv = ["train", "--env", "mimicgym/CliffWalking-v0", "--agent", "q_learning", "--episodes",
            "50", "--logdir", str(tmp_path), "--no-progress", "--eval-episodes", "1"]
    assert main(argv) == 0
    first = tmp_path / "q_learning_CliffWalking-v0_s0"
    before = _hashes(first)
    assert main(argv) == 0
    assert (tmp_path / "q_learning_CliffWalking-v0_s0_2" / "model.npz").is_file()
    assert _hashes(first) == before
    capsys.readouterr()
    assert main([*argv, "--run-name", "q_learning_CliffWalking-v0_s0"]) == 2  # explicit: refused
    assert "exists" in capsys.readouterr().err and _hashes(first) == before


@pytest.mark.parametrize("agent, extra", [
    ("sb3:PPO", ["--n-envs", "2", "--set", "n_steps=128", "batch_size=64"]),
    ("a2c", ["--set", "n_envs=4"]),
])
def test_eval_of_a_run_uses_its_normalisation_and_equals_training_evaluation(agent, extra, tmp_path,
                                                                             capsys):
    argv = ["train", "--env", "CartPole-v1", "--agent", agent, "--normalize", "--timesteps",
            "3000", "--logdir", str(tmp_path), "--run-name", "run", "--no-progress",
            "--eval-episodes", "3", *extra]
    assert main(argv) == 0
    trained = json.loads((tmp_path / "run" / "eval.json").read_text())
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "run"), "--episodes", "3"]) == 0
    assert f"mean return {trained['mean_reward']:.3f}" in capsys.readouterr().out


def test_periodic_checkpoints_of_our_agents(tmp_path, monkeypatch):
    from mimicgym.agents.td import QLearning

    saved = []
    original = QLearning.save
    monkeypatch.setattr(QLearning, "save", lambda self, path: (saved.append(self.num_timesteps),
                                                                original(self, path))[1])
    assert main(["train", "--agent", "q_learning", "--timesteps", "1000", "--checkpoint-freq",
                 "250", "--logdir", str(tmp_path), "--no-progress", "--eval-episodes", "0"]) == 0
    assert saved == [250, 500, 750, 1000, 1000]  # four periodic saves, then the final one
