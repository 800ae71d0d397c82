"""Observation wrappers that turn a gridworld's state index into network input."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np

from mimicgym.envs.render import GridPainter

# stable-baselines3's CnnPolicy needs images of at least 36x36 pixels
MIN_IMAGE_SIDE = 36


class OneHotObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Discrete(n) state -> float32 one-hot vector of length n."""

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        if not isinstance(env.observation_space, gym.spaces.Discrete):
            raise ValueError(f"OneHotObservation needs a Discrete observation space, got {env.observation_space}")
        self._n = int(env.observation_space.n)
        self._start = int(env.observation_space.start)
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(self._n,), dtype=np.float32)

    def observation(self, observation) -> np.ndarray:
        one_hot = np.zeros(self._n, dtype=np.float32)
        one_hot[int(observation) - self._start] = 1.0
        return one_hot


class ImageObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """State -> RGB uint8 image (H, W, 3) of the grid with the agent drawn, as
    ``render_mode="rgb_array"`` draws it.

    ``cell_size`` (pixels per cell) defaults to the smallest size >= 8 that makes both
    sides at least 36 pixels, the minimum of stable-baselines3's ``CnnPolicy``.
    """

    def __init__(self, env: gym.Env, cell_size: int | None = None):
        gym.utils.RecordConstructorArgs.__init__(self, cell_size=cell_size)
        gym.ObservationWrapper.__init__(self, env)
        base = env.unwrapped
        if not hasattr(base, "config") or not isinstance(env.observation_space, gym.spaces.Discrete):
            raise ValueError(f"ImageObservation needs a mimicgym gridworld with Discrete states, got {base!r}")
        chars = base.config.chars
        if cell_size is None:
            cell_size = max(8, math.ceil(MIN_IMAGE_SIDE / min(chars.shape)))
        self.painter = GridPainter(chars, cell_size)
        self.observation_space = gym.spaces.Box(0, 255, shape=self.painter.shape, dtype=np.uint8)

    def observation(self, observation) -> np.ndarray:
        return self.painter.draw(int(observation))
