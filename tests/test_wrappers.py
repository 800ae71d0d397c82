"""OneHotObservation and ImageObservation on the gridworlds."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import mimicgym  # noqa: F401
from mimicgym.envs.wrappers import ImageObservation, OneHotObservation

RIGHT = 1


def test_one_hot_observation():
    env = OneHotObservation(gym.make("mimicgym/CliffWalking-v0"))
    assert env.observation_space == gym.spaces.Box(0.0, 1.0, (48,), np.float32)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.sum() == 1.0 and obs[36] == 1.0
    obs, reward, *_ = env.step(RIGHT)  # the cliff sends the agent back to start
    assert obs[36] == 1.0 and reward == -100
    with pytest.raises(ValueError, match="Discrete observation space"):
        OneHotObservation(env)


def test_image_observation_matches_render():
    env = ImageObservation(gym.make("mimicgym/SuttonGrid4x4-v0"))
    assert env.observation_space.shape == (36, 36, 3)  # 9-pixel cells reach 36 pixels
    obs, _ = env.reset(seed=0)
    base = env.unwrapped
    assert obs.dtype == np.uint8
    np.testing.assert_array_equal(obs, env.painter.draw(12))
    obs, *_ = env.step(RIGHT)
    assert base.s == 13
    reference = gym.make("mimicgym/SuttonGrid4x4-v0", render_mode="rgb_array", cell_size=9)
    reference.reset(seed=0)
    reference.step(RIGHT)
    np.testing.assert_array_equal(obs, reference.render())
    assert ImageObservation(gym.make("mimicgym/RandomWalk-v0")).observation_space.shape == (36, 252, 3)
    assert ImageObservation(gym.make("mimicgym/CliffWalking-v0"), cell_size=5).observation_space.shape == (20, 60, 3)


@pytest.mark.parametrize("wrapper", [OneHotObservation, ImageObservation])
@pytest.mark.parametrize("env_id,kwargs", [
    ("mimicgym/GridWorld-v0", {"slip": 0.1}),
    ("mimicgym/RandomWalk-v0", {}),
    ("mimicgym/WindyGridWorld-v0", {"king_moves": True}),
])
def test_wrapped_envs_pass_check_env(wrapper, env_id, kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # Gymnasium's checker always notes that a wrapped env is not the raw env
        warnings.filterwarnings("ignore", message=".*different from the unwrapped version")
        gym_check_env(wrapper(gym.make(env_id, **kwargs).unwrapped))
        sb3_check_env(wrapper(gym.make(env_id, **kwargs)))
