"""Shipped imitation policies: export from a PPO run, load by name or path, corrupt files refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mimicgym  # noqa: F401
from mimicgym import pretrained
from mimicgym.agents import PPO
from mimicgym.errors import CheckpointError, ConfigError
from mimicgym.runs import RunConfig, train


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    cfg = RunConfig(env="mimicgym/MimicWalk-v0", agent="ppo", timesteps=128, seed=3,
                    logdir=str(tmp_path_factory.mktemp("runs")), eval_episodes=0, progress_bar=False,
                    env_kwargs={"episode_seconds": 1.0},
                    hyperparameters={"n_envs": 2, "n_steps": 32, "batch_size": 32, "n_epochs": 1,
                                     "net_arch": {"pi": [32, 16], "vf": [8]}})
    return train(cfg)


def test_exported_policy_acts_as_the_agent(tiny_run, tmp_path):
    path = pretrained.export(tiny_run.run_dir, tmp_path / "tiny.pt", samples=128)
    policy, env = pretrained.load(str(path))
    agent = PPO.load(tiny_run.model_path, env=tiny_run.agent.env, device="cpu")
    assert env.unwrapped.max_episode_steps == 30  # the run's env keywords came along
    obs, _ = env.reset(seed=0)
    batch = np.stack([obs, env.observation_space.sample()])
    np.testing.assert_array_equal(policy.predict(batch)[0], agent.predict(batch, deterministic=True)[0])
    np.testing.assert_array_equal(policy.predict(obs)[0], agent.predict(obs, deterministic=True)[0])
    # The observation statistics travelled: they are not the identity after an update.
    assert policy.obs_normalizer.count.item() == 128
    # Only the actor is shipped: no critic, no optimiser.
    keys = pretrained.read(path)["state_dict"].keys()
    assert not any(k.startswith(("vf_net", "value_head")) for k in keys)
    generator = torch.Generator().manual_seed(0)
    noisy = policy.predict(obs, deterministic=False, generator=generator)[0]
    assert not np.array_equal(noisy, policy.predict(obs)[0])
    env.close()


def test_bad_names_and_files_are_refused(tiny_run, tmp_path):
    with pytest.raises(ConfigError, match="no pretrained policy 'nope'"):
        pretrained.load("nope")
    path = pretrained.export(tiny_run.run_dir, tmp_path / "tiny.pt")
    data = bytearray(path.read_bytes())
    (tmp_path / "cut.pt").write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(CheckpointError, match="cut.pt"):
        pretrained.load(str(tmp_path / "cut.pt"))
    with pytest.raises(CheckpointError, match="holds a 'PPO' checkpoint"):
        pretrained.read(tiny_run.model_path)


def test_export_refuses_other_agents(tmp_path):
    cfg = RunConfig(env="mimicgym/CliffWalking-v0", agent="q_learning", episodes=2, logdir=str(tmp_path),
                    eval_episodes=0, progress_bar=False)
    run = train(cfg)
    with pytest.raises(ConfigError, match="q_learning"):
        pretrained.export(run.run_dir, tmp_path / "x.pt")


def test_a_shaped_training_reward_is_scored_and_shipped_with_the_papers(tmp_path):
    """``eval_env_kwargs``: a run trained on the "keep_up" reward evaluates (periodically, at the
    end, in ``evaluate_run``) and ships with the paper's reward; the flag reaches the config."""
    import gymnasium as gym

    from mimicgym.cli import build_parser, config_from_args
    from mimicgym.envs.mimic.reward import REWARD_PRESETS, RewardConfig
    from mimicgym.runs.envs import make_env
    from mimicgym.runs.evaluation import EVAL_SEED_OFFSET, evaluate_episodes
    from mimicgym.runs.playback import evaluate_run

    args = build_parser().parse_args(["train", "--env", "mimicgym/MimicWalk-v0", "--env-kwarg", "reward_config=keep_up",
                                      "episode_seconds=0.5", "--eval-env-kwarg", "reward_config=paper"])
    cfg = config_from_args(args)
    assert cfg.env_kwargs == {"reward_config": "keep_up", "episode_seconds": 0.5}
    assert cfg.eval_env_kwargs == {"reward_config": "paper"}
    assert make_env(cfg).unwrapped.reward.config == REWARD_PRESETS["keep_up"]
    evaluation_env = make_env(cfg, evaluation=True).unwrapped
    assert evaluation_env.reward.config == RewardConfig() and evaluation_env.max_episode_steps == 15

    cfg = RunConfig(env="mimicgym/MimicWalk-v0", agent="ppo", timesteps=64, seed=1, logdir=str(tmp_path),
                    eval_episodes=2, progress_bar=False, env_kwargs=cfg.env_kwargs,
                    eval_env_kwargs=cfg.eval_env_kwargs,
                    hyperparameters={"n_envs": 2, "n_steps": 32, "batch_size": 32, "n_epochs": 1,
                                     "net_arch": {"pi": [32, 16], "vf": [8]}})
    run = train(cfg)
    agent = PPO.load(run.model_path, env=run.agent.env, device="cpu")

    def scored(**kwargs):
        env = gym.make("mimicgym/MimicWalk-v0", episode_seconds=0.5, **kwargs)
        return evaluate_episodes(agent, env, 2, 1 + EVAL_SEED_OFFSET).normalised_return

    paper, shaped = scored(reward_config="paper"), scored(reward_config="keep_up")
    assert not np.allclose(paper, shaped)
    np.testing.assert_allclose(evaluate_run(run.run_dir).normalised_return, paper, rtol=1e-12)
    np.testing.assert_allclose(run.evaluation.normalised_return, paper, rtol=1e-12)
    path = pretrained.export(run.run_dir, tmp_path / "shaped.pt")
    _, env = pretrained.load(str(path))
    assert env.unwrapped.reward.config == RewardConfig()
    assert pretrained.read(path)["training"]["env_kwargs"]["reward_config"] == "keep_up"


def test_the_shipped_walk_policy_imitates_its_clip():
    """The issue's bar: deterministic normalised return >= 0.85 over 5 episodes of 10 s."""
    from mimicgym.runs.imitation import evaluate_imitation

    policy, env = pretrained.load("walk")
    result = evaluate_imitation(policy, env, episodes=5, seed=0)
    env.close()
    assert (result.lengths == 300).all(), result.lengths  # no fall: every episode runs its 10 s
    assert result.normalised_return.mean() >= 0.85, result.summary()
    assert pretrained.describe("walk")["env_id"] == "mimicgym/MimicWalk-v0"
