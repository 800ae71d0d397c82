"""``--engine ray``: the envs of an on-policy run in Ray actors. The agent sees the same vector
env, so a run on 1 or 2 workers takes the same samples in the same order as the local run and
ends with the same weights and logs, bit for bit; bad options are refused before Ray starts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mimicgym.cli import main
from mimicgym.errors import ConfigError
from mimicgym.runs import RunConfig, resume, train
from mimicgym.runs.ray_rollouts import merge_infos

PPO_SMALL = {"n_envs": 4, "n_steps": 32, "batch_size": 64, "n_epochs": 2}


def _run(tmp_path, name: str, **options):
    values = {"env": "CartPole-v1", "agent": "ppo", "timesteps": 512, "seed": 1, "eval_episodes": 2,
              "hyperparameters": PPO_SMALL, "logdir": str(tmp_path), "run_name": name, "progress_bar": False,
              **options}
    result = train(RunConfig(**values))
    progress = json.loads((result.run_dir / "progress.json").read_text())
    return result.agent.policy.state_dict(), progress, result


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_one_or_two_workers_learn_exactly_as_the_local_run(ray_session, tmp_path):
    weights, progress, local = _run(tmp_path, "local")
    for workers in (1, 2):
        w, p, result = _run(tmp_path, f"ray{workers}", engine="ray", workers=workers)
        _assert_same(weights, w)
        assert p["rollout/ep_rew_mean"] == progress["rollout/ep_rew_mean"]
        assert result.eval_mean == local.eval_mean
        assert json.loads((result.run_dir / "config.json").read_text())["config"]["engine"] == "ray"
    assert ray_session.is_initialized()  # a Ray the run did not start is left running


def test_imitation_rollouts_on_two_workers_keep_the_reward_terms(ray_session, tmp_path):
    options = {"env": "mimicgym/MimicWalk-v0", "timesteps": 256, "eval_episodes": 1,
               "env_kwargs": {"episode_seconds": 1.0},
               "hyperparameters": {**PPO_SMALL, "n_epochs": 1, "net_arch": {"pi": [32], "vf": [32]}}}
    weights, progress, _ = _run(tmp_path, "local", **options)
    w, p, _ = _run(tmp_path, "ray", engine="ray", workers=2, **options)
    _assert_same(weights, w)
    for key in ("imitation/pose", "imitation/com", "imitation/normalised_return", "rollout/ep_rew_mean"):
        assert p[key] == progress[key], key  # episodes ended inside a rollout: final_info came through


def test_a_resumed_ray_run_goes_on(ray_session, tmp_path):
    _, _, first = _run(tmp_path, "r", engine="ray", workers=2)
    result = resume(first.run_dir, timesteps=1024)
    assert result.agent.num_timesteps == 1024
    assert np.isfinite(result.eval_mean)


@pytest.mark.parametrize("options, words", [
    ({"engine": "ray", "workers": 3}, ["--workers 3", "n_envs, 4"]),
    ({"engine": "ray", "agent": "dqn", "timesteps": 100, "hyperparameters": {}}, ["engine 'ray'", "'dqn'"]),
    ({"engine": "ray", "agent": "sb3:PPO"}, ["engine 'ray'", "'sb3:PPO'"]),
    ({"workers": 2}, ["workers=2", "--engine ray"]),
    ({"engine": "ray", "workers": 0}, ["workers", "0"]),
    ({"engine": "spark"}, ["engine", "'spark'"]),
])
def test_bad_engine_options_are_refused_before_anything_runs(options, words, tmp_path):
    with pytest.raises(ConfigError) as e:
        _run(tmp_path, "bad", **options)
    assert all(w in str(e.value) for w in words), e.value
    assert not (tmp_path / "bad").exists()


def test_the_cli_takes_engine_and_workers(ray_session, tmp_path, capsys):
    argv = ["train", "--env", "CartPole-v1", "--agent", "ppo", "--timesteps", "256", "--engine", "ray",
            "--workers", "2", "--set", "n_envs=4", "n_steps=32", "batch_size=64", "--eval-episodes", "1",
            "--logdir", str(tmp_path), "--run-name", "cli", "--no-progress"]
    assert main(argv) == 0
    config = json.loads((tmp_path / "cli" / "config.json").read_text())["config"]
    assert (config["engine"], config["workers"]) == ("ray", 2)
    assert main([*argv[:-5], "--workers", "3", "--logdir", str(tmp_path), "--run-name", "c3"]) == 2
    assert "--workers 3" in capsys.readouterr().err


def test_infos_of_worker_blocks_merge_as_one_vector_env_reports_them():
    a = {"x": np.array([1.0, 2.0]), "_x": np.array([True, True]),
         "final_info": {"r": np.array([0.5, 0.0]), "_r": np.array([True, False])}}
    b = {"y": np.array([3]), "_y": np.array([True])}
    merged = merge_infos([a, b], [2, 1])
    np.testing.assert_array_equal(merged["x"], [1.0, 2.0, 0.0])
    np.testing.assert_array_equal(merged["_x"], [True, True, False])
    np.testing.assert_array_equal(merged["y"], [0, 0, 3])
    np.testing.assert_array_equal(merged["final_info"]["r"], [0.5, 0.0, 0.0])
    np.testing.assert_array_equal(merged["final_info"]["_r"], [True, False, False])
