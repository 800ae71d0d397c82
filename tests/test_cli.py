"""The console script and run directories: config, TensorBoard, saved agent, evaluation, plots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mimicgym.cli import build_parser, config_from_args, main, parse_value
from mimicgym.errors import ConfigError


def _only_run_dir(logdir: Path) -> Path:
    (run_dir,) = [p for p in logdir.iterdir() if p.is_dir()]
    return run_dir


def test_parse_value_reads_toml_literals_and_falls_back_to_strings():
    assert parse_value("0.5") == 0.5
    assert parse_value("true") is True
    assert parse_value("[64, 64]") == [64, 64]
    assert parse_value("1/n") == "1/n"


def test_flags_override_config_file(tmp_path):
    cfg_file = tmp_path / "run.toml"
    cfg_file.write_text('agent = "sarsa"\nepisodes = 10\nseed = 3\n'
                        '[hyperparameters]\nepsilon = 0.2\nlearning_rate = 0.1\n')
    args = build_parser().parse_args(
        ["train", "--config", str(cfg_file), "--seed", "7", "--set", "learning_rate=0.5"])
    cfg = config_from_args(args)
    assert (cfg.agent, cfg.episodes, cfg.seed) == ("sarsa", 10, 7)
    assert cfg.hyperparameters == {"epsilon": 0.2, "learning_rate": 0.5}


def test_unknown_config_key_is_named(tmp_path):
    cfg_file = tmp_path / "run.toml"
    cfg_file.write_text("learning_rat = 0.5\n")
    with pytest.raises(ConfigError, match="learning_rat"):
        config_from_args(build_parser().parse_args(["train", "--config", str(cfg_file)]))


def test_train_writes_a_complete_run_directory(tmp_path, capsys):
    argv = ["train", "--env", "mimicgym/CliffWalking-v0", "--agent", "q_learning",
            "--episodes", "300", "--seed", "0", "--logdir", str(tmp_path), "--no-progress",
            "--eval-episodes", "2", "--set", "learning_rate=0.5", "epsilon=0.1", "gamma=1.0"]
    assert main(argv) == 0
    run_dir = _only_run_dir(tmp_path)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["config"]["agent"] == "q_learning"
    assert config["hyperparameters"]["learning_rate"] == 0.5
    assert config["versions"]["gymnasium"] and "git_commit" in config
    assert list(run_dir.glob("events.out.tfevents.*"))
    progress = json.loads((run_dir / "progress.json").read_text())
    assert "rollout/ep_rew_mean" in progress and "time/fps" in progress
    for name in ("model.npz", "learning_curve.png", "values.png"):
        assert (run_dir / name).stat().st_size > 0
    # Q-learning's greedy policy walks the 13-step cliff edge.
    assert json.loads((run_dir / "eval.json").read_text())["mean_reward"] == -13.0

    assert main(["eval", str(run_dir), "--episodes", "3"]) == 0
    assert "mean return -13.000" in capsys.readouterr().out


def test_same_seed_gives_identical_logged_curves(tmp_path):
    histories = []
    for name in ("a", "b"):
        argv = ["train", "--env", "mimicgym/CliffWalking-v0", "--agent", "sarsa", "--episodes",
                "50", "--seed", "1", "--logdir", str(tmp_path / name), "--no-progress",
                "--eval-episodes", "0"]
        assert main(argv) == 0
        progress = json.loads((_only_run_dir(tmp_path / name) / "progress.json").read_text())
        histories.append({k: v for k, v in progress.items() if not k.startswith("time/fps")})
    assert histories[0] == histories[1]


def test_value_iteration_run_needs_no_budget(tmp_path):
    argv = ["train", "--env", "mimicgym/SuttonGrid4x4-v0", "--agent", "value_iteration",
            "--logdir", str(tmp_path), "--no-progress", "--eval-episodes", "1", "--set", "gamma=1.0"]
    assert main(argv) == 0
    run_dir = _only_run_dir(tmp_path)
    assert (run_dir / "values.png").exists()
    assert json.loads((run_dir / "eval.json").read_text())["mean_reward"] <= -1.0


def test_bad_input_is_reported_not_raised(tmp_path, capsys):
    assert main(["train", "--agent", "nope", "--logdir", str(tmp_path)]) == 2
    assert "unknown agent 'nope'" in capsys.readouterr().err
    assert main(["train", "--agent", "sarsa", "--logdir", str(tmp_path), "--no-progress"]) == 2
    assert "timesteps or episodes" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # a failed start leaves no run directory


def test_plots_leave_cells_the_agent_never_occupies_blank():
    import gymnasium as gym
    import numpy as np

    from mimicgym.runs.plots import occupiable_states

    model = gym.make("mimicgym/CliffWalking-v0").unwrapped.model()
    expected = np.ones((4, 12), bool)
    expected[3, 1:11] = False  # the cliff: entering it sends the agent back to start
    np.testing.assert_array_equal(occupiable_states(model).reshape(4, 12), expected)


def test_cli_trains_evaluates_and_resumes_a_deep_agent(tmp_path, capsys):
    import torch

    base = ["train", "--env", "mimicgym/SuttonGrid4x4-v0", "--wrapper", "onehot",
            "--agent", "a2c", "--logdir", str(tmp_path), "--no-progress", "--set", "n_envs=4"]
    assert main([*base, "--timesteps", "3000", "--run-name", "first", "--eval-episodes", "2"]) == 0
    first = tmp_path / "first"
    # From the start cell (3, 0) the nearest terminal corner is 3 steps away.
    assert json.loads((first / "eval.json").read_text())["mean_reward"] == -3.0
    assert main(["eval", str(first), "--episodes", "2"]) == 0
    assert "mean return -3.000" in capsys.readouterr().out
    before = torch.load(first / "model.pt", weights_only=True)["num_timesteps"]
    # --resume continues the run in place, with its own options; --timesteps is the new total
    resumed = ["train", "--resume", str(first / "model.pt"), "--timesteps", str(before + 1000),
               "--eval-episodes", "1", "--no-progress"]
    assert main(resumed) == 0
    after = torch.load(first / "model.pt", weights_only=True)["num_timesteps"]
    assert after >= before + 1000
