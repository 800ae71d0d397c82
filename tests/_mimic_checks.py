"""Checks shared by the imitation-env tests of both characters."""

from __future__ import annotations

import numpy as np


def random_rollout_episodes(env, steps: int) -> int:
    """Step ``env`` with seeded random actions, asserting finite observations and rewards and
    reward terms in [0, 1]; return the number of finished episodes."""
    env.reset(seed=0)
    env.action_space.seed(0)
    episodes = 0
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert np.isfinite(obs).all() and np.isfinite(reward)
        assert all(0.0 <= v <= 1.0 for v in info["reward_terms"].values())
        if terminated or truncated:
            episodes += 1
            env.reset()
    return episodes


def check_rsi(env, n_seeds: int) -> None:
    """Reference state initialisation: each reset puts the state exactly on the reference at
    a phase of its own, and the observation ends with that phase."""
    phases = set()
    for seed in range(n_seeds):
        obs, info = env.reset(seed=seed)
        qpos, qvel = env.ref.state(env.reference_step)
        np.testing.assert_array_equal(env.data.qpos, qpos)
        np.testing.assert_array_equal(env.data.qvel, qvel)
        assert obs.shape == env.observation_space.shape
        assert abs(obs[-1] - info["phase"]) <= 1e-6
        phases.add(round(info["phase"], 6))
    assert len(phases) == n_seeds


def ghost_coverage(env, frame: np.ndarray) -> float:
    """Fraction of pixels that the translucent reference ghost changes in ``frame``."""
    alone = env._renderer.render(env.data.qpos)  # the same scene without the ghost
    return float((np.abs(frame.astype(int) - alone.astype(int)).sum(-1) > 30).mean())
