"""RLlib's algorithms through the run layer (``--agent rllib:PPO``): our run layout and
TensorBoard keys, ``mimicgym eval`` on the result, and clear errors.

Tests marked ``rllib`` need the ``rllib`` extra, which pins Gymnasium 1.2.2: they run in
``.venv-rllib`` with ``pytest -m rllib`` (``make test`` does), and the default run deselects
them (pyproject's addopts). The unmarked ones run in any environment.
"""

from __future__ import annotations

import dataclasses
import json
import sys

import numpy as np
import pytest
import torch

from mimicgym import runs
from mimicgym.cli import main
from mimicgym.errors import ConfigError


def _train(tmp_path, *args: str) -> int:
    return main(["train", "--logdir", str(tmp_path), "--no-progress", "--seed", "0", *args])


def _history(run_dir) -> dict[str, list]:
    return json.loads((run_dir / "progress.json").read_text())


def _event_tags(run_dir) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: set[str] = set()
    for path in run_dir.glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(path))
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
    return tags


def _assert_no_ray_left() -> None:
    import ray

    assert not ray.is_initialized()  # the learner shut down the Ray it started


# -- without RLlib (any environment: RLlib's absence is simulated where it is installed)
def test_without_rllib_the_error_names_the_extra_and_its_pin(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray.rllib", None)  # `import ray.rllib` raises ImportError
    monkeypatch.setitem(sys.modules, "ray.rllib.algorithms.registry", None)
    missing = r"RLlib is not installed.*pip install 'mimicgym\[rllib\]'.*gymnasium==1\.2\.2"
    with pytest.raises(ConfigError, match=missing):
        runs.train(runs.RunConfig(env="CartPole-v1", agent="rllib:PPO", timesteps=100, logdir=str(tmp_path)))
    assert _train(tmp_path, "--env", "CartPole-v1", "--agent", "rllib:PPO", "--timesteps", "100") == 2
    assert "pip install 'mimicgym[rllib]'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # refused before any run directory


def test_engine_ray_takes_rllib_agents_but_not_sb3():
    cfg = runs.RunConfig(env="CartPole-v1", agent="rllib:PPO", timesteps=100, engine="ray", workers=2)
    assert cfg.workers == 2  # RLlib's remote env runners
    with pytest.raises(ConfigError, match="engine 'ray'.*'sb3:PPO'"):
        runs.RunConfig(env="CartPole-v1", agent="sb3:PPO", timesteps=100, engine="ray", workers=2)


# -- with RLlib (.venv-rllib)
# RLlib's tuned CartPole PPO (rllib/examples/algorithms/ppo/cartpole_ppo.py) on 2,000-sample iterations.
CARTPOLE_PPO = ["lr=0.0003", "num_epochs=6", "vf_loss_coeff=0.01", "train_batch_size_per_learner=2000"]


@pytest.mark.rllib
def test_ppo_learns_cartpole_with_our_keys_and_eval_is_deterministic(tmp_path):
    assert _train(tmp_path, "--env", "CartPole-v1", "--agent", "rllib:PPO", "--timesteps", "16000",
                  "--eval-episodes", "5", "--set", *CARTPOLE_PPO) == 0
    _assert_no_ray_left()
    run_dir = tmp_path / "rllib_PPO_CartPole-v1_s0"
    history = _history(run_dir)
    returns = [v for _, v in history["rollout/ep_rew_mean"]]
    steps = [s for s, _ in history["rollout/ep_rew_mean"]]
    assert steps == list(range(2000, 16001, 2000))  # one point per RLlib iteration, at its timestep
    assert returns[0] < 40 and returns[-1] >= 100, returns  # random play averages about 22
    keys = {"rollout/ep_rew_mean", "rollout/ep_len_mean", "time/fps", "train/loss", "train/policy_loss",
            "train/value_loss", "train/entropy", "train/approx_kl", "train/learning_rate"}
    assert keys <= set(history)
    assert keys <= _event_tags(run_dir)  # written by our logger, under our names
    assert history["train/learning_rate"][-1][1] == pytest.approx(3e-4)  # --set reached RLlib
    record = json.loads((run_dir / "config.json").read_text())
    assert record["agent_class"] == "ray.rllib.PPO" and record["versions"]["gymnasium"]
    assert record["hyperparameters"]["num_epochs"] == 6
    payload = torch.load(run_dir / "model.pt", weights_only=True)  # nothing pickled
    assert payload["class"] == "rllib:PPO" and payload["timesteps"] == 16000
    assert not list(run_dir.glob("**/*.pkl"))

    trained = json.loads((run_dir / "eval.json").read_text())
    first = runs.evaluate_run(run_dir)  # rebuilt from model.pt and the run's config, no Ray
    second = runs.evaluate_run(run_dir)
    np.testing.assert_array_equal(first.returns, second.returns)
    assert first.returns.tolist() == trained["returns"]  # the evaluation training ended with
    assert first.returns.mean() >= 100
    assert main(["eval", str(run_dir), "--episodes", "2"]) == 0


@pytest.mark.rllib
def test_ppo_on_a_gridworld_gets_one_hot_states_and_the_run_layout(tmp_path):
    assert _train(tmp_path, "--env", "mimicgym/CliffWalking-v0", "--agent", "rllib:PPO", "--timesteps", "1000",
                  "--eval-episodes", "2", "--eval-max-steps", "50", "--set", "train_batch_size_per_learner=500",
                  "minibatch_size=100", "num_epochs=2", "model_config={fcnet_hiddens=[32]}") == 0
    _assert_no_ray_left()
    run_dir = tmp_path / "rllib_PPO_CliffWalking-v0_s0"
    for name in ("config.json", "progress.json", "eval.json", "model.pt", "learning_curve.png"):
        assert (run_dir / name).is_file(), name
    assert list(run_dir.glob("events.out.tfevents.*"))
    record = json.loads((run_dir / "config.json").read_text())
    assert record["config"]["wrapper"] == "onehot"  # Discrete states one-hot, recorded for eval
    assert record["hyperparameters"]["model_config"] == {"fcnet_hiddens": [32]}
    payload = torch.load(run_dir / "model.pt", weights_only=True)
    assert payload["module"]["encoder.actor_encoder.net.mlp.0.weight"].shape == (32, 48)  # 48 cells one-hot
    history = _history(run_dir)
    assert [s for s, _ in history["train/policy_loss"]] == [500, 1000]
    evaluation = json.loads((run_dir / "eval.json").read_text())
    assert evaluation["episodes"] == 2 and evaluation["mean_ep_length"] <= 50
    assert runs.evaluate_run(run_dir).returns.tolist() == evaluation["returns"]
    with pytest.raises(ConfigError, match="cannot be continued"):  # before anything is written
        runs.resume(run_dir, timesteps=2000)
    assert json.loads((run_dir / "config.json").read_text())["resumes"] == []


@pytest.mark.rllib
def test_ppo_on_the_imitation_env_logs_the_reward_terms(tmp_path):
    assert _train(tmp_path, "--env", "mimicgym/MimicWalk-v0", "--agent", "rllib:PPO", "--timesteps", "400",
                  "--eval-episodes", "1", "--set", "train_batch_size_per_learner=200", "minibatch_size=100",
                  "num_epochs=1", "model_config={fcnet_hiddens=[32]}") == 0
    _assert_no_ray_left()
    run_dir = tmp_path / "rllib_PPO_MimicWalk-v0_s0"
    history = _history(run_dir)
    for term in ("pose", "velocity", "end_effector", "com", "imitation_reward", "normalised_return"):
        points = history[f"imitation/{term}"]
        assert [s for s, _ in points] == [200, 400], term
        assert all(0.0 <= v <= 1.0 for _, v in points), (term, points)
    assert history["imitation/pose"][-1][1] > 0.05  # a falling character still tracks some pose
    assert {"imitation/pose", "imitation/normalised_return"} <= _event_tags(run_dir)
    record = json.loads((run_dir / "config.json").read_text())
    assert record["hyperparameters"]["gamma"] == 0.95  # DeepMimic's, as for our PPO and SB3's
    assert record["hyperparameters"]["train_batch_size_per_learner"] == 200  # --set over them
    evaluation = json.loads((run_dir / "eval.json").read_text())
    assert set(evaluation["reward_terms"]) == {"pose", "velocity", "end_effector", "com"}
    assert 0.0 < evaluation["normalised_return"] < 1.0


@pytest.mark.rllib
def test_bad_algorithm_and_hyperparameters_are_config_errors_naming_them(tmp_path):
    def train(agent="rllib:PPO", **hyperparameters):
        runs.train(runs.RunConfig(env="CartPole-v1", agent=agent, timesteps=100, logdir=str(tmp_path),
                                  hyperparameters=hyperparameters))

    with pytest.raises(ConfigError, match=r"unknown RLlib algorithm 'NOPE'.*rllib:DQN.*rllib:PPO"):
        train("rllib:NOPE")
    with pytest.raises(ConfigError, match=r"rllib:BC learns from offline data"):
        train("rllib:BC")
    with pytest.raises(ConfigError, match=r"rllib:PPO has no training option 'learning_rate' \(got learning_rate=0.1"):
        train(learning_rate=0.1)
    with pytest.raises(ConfigError, match=r"lr must be a number or a list, got 'fast'"):
        train(lr="fast")
    with pytest.raises(ConfigError, match=r"gamma must lie in \[0.0, 1.0\], got 1.5"):
        train(gamma=1.5)
    with pytest.raises(ConfigError, match=r"model_config has no key 'hidden'"):
        train(model_config={"hidden": [8]})
    with pytest.raises(ConfigError, match=r"minibatch_size"):  # RLlib's own validation, as a ConfigError
        train(train_batch_size_per_learner=100, minibatch_size=500)
    with pytest.raises(ConfigError, match=r"'rllib:PPO' counts timesteps, not episodes"):
        runs.train(runs.RunConfig(env="CartPole-v1", agent="rllib:PPO", episodes=5, logdir=str(tmp_path)))
    assert list(tmp_path.iterdir()) == []
    _assert_no_ray_left()


@pytest.mark.rllib
def test_engine_ray_samples_with_remote_env_runners(tmp_path):
    from mimicgym.runs.rllib import RllibLearner

    cfg = runs.RunConfig(env="CartPole-v1", agent="rllib:PPO", timesteps=1000, n_envs=2, engine="ray", workers=2,
                         logdir=str(tmp_path), hyperparameters={"train_batch_size_per_learner": 500,
                                                                "minibatch_size": 100, "num_epochs": 1})
    learner = RllibLearner(cfg)
    try:
        assert learner.algo.env_runner_group.num_remote_env_runners() == 2
        assert learner.config.num_envs_per_env_runner == 1  # the run's 2 envs split over them
    finally:
        learner.close()
    _assert_no_ray_left()
    with pytest.raises(ConfigError, match="--workers 2 must divide the run's n_envs, 3"):
        RllibLearner(dataclasses.replace(cfg, n_envs=3))
    _assert_no_ray_left()
    assert _train(tmp_path, "--env", "CartPole-v1", "--agent", "rllib:PPO", "--timesteps", "1000", "--engine", "ray",
                  "--workers", "2", "--n-envs", "2", "--eval-episodes", "1", "--set",
                  "train_batch_size_per_learner=500", "minibatch_size=100", "num_epochs=1") == 0
    run_dir = tmp_path / "rllib_PPO_CartPole-v1_s0"
    assert [s for s, _ in _history(run_dir)["train/policy_loss"]] == [500, 1000]
    # the policy evaluated at the end of training (the driver's copy) is the learner's, saved in model.pt
    assert runs.evaluate_run(run_dir).returns.tolist() == json.loads((run_dir / "eval.json").read_text())["returns"]
