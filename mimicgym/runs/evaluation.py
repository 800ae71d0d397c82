"""Deterministic evaluation of a trained agent or model, bounded and the same everywhere.

One loop serves every route (our agents, stable-baselines3 models, imitation runs, the
periodic evaluation during training, ``mimicgym eval``): episode ``i`` starts from
``reset(seed=seed + i)``, actions come from ``predict(obs, deterministic=True)`` (after the
run's observation normalisation), and an episode is cut after ``max_steps`` steps so that a
policy that never ends an episode cannot hang the run. Imitation envs add their figures:
the mean per-step imitation reward and the normalised return (episode return over the most
a full-length episode can earn).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from mimicgym.utils.progress import ProgressBar

# Evaluation episodes of a run with seed s start from reset(seed=s + EVAL_SEED_OFFSET + i): never
# a seed its training envs used, and the same for training's evaluation and `mimicgym eval`.
EVAL_SEED_OFFSET = 10_000


@dataclass
class EvalResult:
    returns: np.ndarray  # (E,) episode returns
    lengths: np.ndarray  # (E,) episode lengths
    cut: int = 0  # episodes cut at max_steps
    imitation_per_step: np.ndarray | None = None  # (E,) imitation envs only
    normalised_return: np.ndarray | None = None  # (E,) imitation envs only
    reward_terms: dict[str, float] | None = None  # imitation envs: each term's mean over all steps

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "episodes": len(self.returns),
            "mean_reward": float(self.returns.mean()) if len(self.returns) else None,
            "std_reward": float(self.returns.std()) if len(self.returns) else None,
            "mean_ep_length": float(self.lengths.mean()) if len(self.lengths) else None,
            "cut_episodes": self.cut,
            "returns": self.returns.tolist(),
        }
        if self.imitation_per_step is not None and len(self.lengths):
            out["mean_imitation_reward"] = float(self.imitation_per_step.mean())
            out["normalised_return"] = float(self.normalised_return.mean())
        if self.reward_terms:
            out["reward_terms"] = self.reward_terms
        return out


def evaluate_episodes(policy, env: gym.Env, episodes: int, seed: int, *,
                      normalize_obs: Callable[[np.ndarray], np.ndarray] | None = None,
                      max_steps: int = 10_000, frames: list | None = None,
                      progress_bar: bool = False) -> EvalResult:
    """``episodes`` deterministic episodes of ``policy`` (anything with SB3's ``predict``).

    ``normalize_obs`` maps a batch of observations (1, ...) to what the policy expects;
    ``frames``, if given, collects ``env.render()`` of the first episode.
    """
    base = env.unwrapped
    reward_model = getattr(base, "reward", None)
    max_return = (reward_model.max_imitation * base.max_episode_steps
                  if hasattr(reward_model, "max_imitation") else None)
    returns, lengths, per_step, normalised, cut = [], [], [], [], 0
    term_sums: dict[str, float] = {}
    bar = ProgressBar(episodes, unit="ep", enabled=progress_bar)
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        total, imitation, n, done = 0.0, 0.0, 0, False
        record = frames is not None and ep == 0
        if record:
            frames.append(env.render())
        while not done:
            x = obs if normalize_obs is None else normalize_obs(np.asarray(obs)[None])[0]
            action, _ = policy.predict(x, deterministic=True)
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            imitation += float(info.get("imitation_reward", 0.0))
            for name, value in info.get("reward_terms", {}).items():
                term_sums[name] = term_sums.get(name, 0.0) + float(value)
            n += 1
            done = terminated or truncated
            if not done and n >= max_steps:
                done, cut = True, cut + 1
            if record:
                frames.append(env.render())
        returns.append(total)
        lengths.append(n)
        per_step.append(imitation / n)
        if max_return is not None:
            normalised.append(total / max_return)
        bar.update(ep + 1, total)
    bar.close()
    imitation_env = max_return is not None
    steps = max(sum(lengths), 1)
    return EvalResult(np.array(returns), np.array(lengths), cut,
                      np.array(per_step) if imitation_env else None,
                      np.array(normalised) if imitation_env else None,
                      {name: total / steps for name, total in term_sums.items()} if imitation_env else None)
