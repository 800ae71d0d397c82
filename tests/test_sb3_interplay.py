"""stable-baselines3 trains on our gridworlds as they are, and through the CLI's sb3:ALGO."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.evaluation import evaluate_policy

from mimicgym.cli import main

MAP = ["S..#",
       ".#..",
       "...G"]  # shortest path: 5 steps, return -5
OPTIMAL = -5.0


def _make():
    return gym.make("mimicgym/GridWorld-v0", map=MAP, max_episode_steps=30)


def _greedy_return(model) -> float:
    env = _make()
    env.reset(seed=123)
    mean, _ = evaluate_policy(model, env, n_eval_episodes=3, deterministic=True, warn=False)
    return float(mean)


@pytest.mark.slow
@pytest.mark.parametrize("algo, kwargs, steps", [
    (PPO, {"n_steps": 512, "batch_size": 64, "learning_rate": 1e-3}, 4_096),
    (DQN, {"learning_starts": 200, "exploration_fraction": 0.5, "target_update_interval": 200,
           "learning_rate": 1e-3, "train_freq": 1}, 6_000),
])
def test_sb3_learns_a_gridworld_from_discrete_observations(algo, kwargs, steps):
    model = algo("MlpPolicy", _make(), seed=0, verbose=0, **kwargs)
    before = _greedy_return(model)
    model.learn(steps)
    after = _greedy_return(model)
    assert after == OPTIMAL
    assert after > before


@pytest.mark.slow
def test_cli_runs_sb3_with_vecnormalize_checkpoints_and_resume(tmp_path):
    argv = ["train", "--env", "CartPole-v1", "--agent", "sb3:PPO", "--timesteps", "1024",
            "--n-envs", "2", "--normalize", "--checkpoint-freq", "512", "--eval-episodes", "2",
            "--logdir", str(tmp_path), "--run-name", "first", "--no-progress",
            "--set", "n_steps=256"]
    assert main(argv) == 0
    run = tmp_path / "first"
    # normalisation statistics as arrays, SB3's logs in our progress.json
    for name in ("model.zip", "vecnormalize.npz", "config.json", "eval.json", "progress.json"):
        assert (run / name).exists(), name
    assert not list(run.glob("*.pkl"))
    assert list(run.glob("events.out.tfevents.*"))
    first_steps = PPO.load(run / "model.zip").num_timesteps
    # --resume continues the run in place; --timesteps is the run's new total
    resume = ["train", "--resume", str(run), "--timesteps", str(first_steps + 512),
              "--eval-episodes", "1", "--no-progress"]
    assert main(resume) == 0
    assert PPO.load(run / "model.zip").num_timesteps == first_steps + 512
    assert json.loads((run / "eval.json").read_text())["episodes"] == 1
