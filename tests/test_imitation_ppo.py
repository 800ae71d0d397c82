"""Our PPO learns to imitate: 200k samples of `mimicgym train --agent ppo` on MimicWalk with the
imitation defaults, against the same network untrained (about two minutes on one core)."""

from __future__ import annotations

import gymnasium as gym

import mimicgym  # noqa: F401
from mimicgym.agents import PPO
from mimicgym.runs import RunConfig, train
from mimicgym.runs.evaluation import EVAL_SEED_OFFSET, evaluate_episodes
from mimicgym.runs.imitation import DEEPMIMIC_PPO_OURS

ENV = "mimicgym/MimicWalk-v0"


def test_200k_samples_of_ppo_walk_beat_the_untrained_policy_by_30_percent(tmp_path):
    cfg = RunConfig(env=ENV, agent="ppo", timesteps=200_000, seed=0, logdir=str(tmp_path),
                    eval_episodes=10, progress_bar=False)
    trained = train(cfg).evaluation.summary()

    env = gym.make_vec(ENV, num_envs=DEEPMIMIC_PPO_OURS["n_envs"], vectorization_mode="vector_entry_point")
    untrained = PPO(env, seed=0, device="cpu", **DEEPMIMIC_PPO_OURS)  # the run's start, same seed
    single = gym.make(ENV)
    before = evaluate_episodes(untrained, single, 10, cfg.seed + EVAL_SEED_OFFSET,
                               max_steps=single.unwrapped.max_episode_steps).summary()
    env.close()
    single.close()
    assert trained["mean_ep_length"] >= 1.3 * before["mean_ep_length"], (trained, before)
    assert trained["normalised_return"] >= 1.3 * before["normalised_return"], (trained, before)
