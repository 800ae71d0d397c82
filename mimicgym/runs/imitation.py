"""What imitation runs add to the run layer: DeepMimic-like PPO defaults, the reward terms in
TensorBoard, the imitation figures of an evaluation, and rendering a run beside its ghost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from mimicgym.envs.mimic.reward import TERMS
from mimicgym.runs.evaluation import EvalResult, evaluate_episodes

# PPO defaults for imitation runs, ours and SB3's: DeepMimic's gamma 0.95, GAE lambda 0.95 and
# clip 0.2; an initial exploration std of 0.135 (log-std -2), which doubled the normalised return
# after 200k samples against -1; and a step size of 1e-4: with SB3's 3e-4 the small std makes each
# update move the policy far (approximate KL 1-4) and walk peaked at 0.54 normalised return, then
# fell back; 1e-4 reached 0.75 by 1.3M. ``--set`` overrides any of them.
DEEPMIMIC_PPO: dict = {
    "learning_rate": 1e-4, "n_steps": 512, "batch_size": 512, "n_epochs": 5, "gamma": 0.95,
    "gae_lambda": 0.95, "clip_range": 0.2,
    "policy_kwargs": {"log_std_init": -2.0, "net_arch": {"pi": [512, 256], "vf": [512, 256]}},
}
# Ours step 16 characters of the batched env per call: rollouts of 16 x 256 = 4,096 samples
# (DeepMimic's batch), observations normalised inside the network; SB3's policy_kwargs as our
# own fields, so that ``--set net_arch=...`` is not overwritten by them.
DEEPMIMIC_PPO_OURS: dict = {
    **{k: v for k, v in DEEPMIMIC_PPO.items() if k != "policy_kwargs"}, **DEEPMIMIC_PPO["policy_kwargs"],
    "n_envs": 16, "n_steps": 256, "normalize_observations": True,
}


def evaluate_imitation(policy, env, episodes: int, seed: int, obs_normalizer=None,
                       frames: list | None = None) -> EvalResult:
    """Deterministic episodes of ``policy`` on a MimicEnv with its imitation figures
    (``obs_normalizer``: a ``VecNormalize`` whose ``normalize_obs`` the policy expects)."""
    return evaluate_episodes(policy, env, episodes, seed, frames=frames,
                             normalize_obs=None if obs_normalizer is None else obs_normalizer.normalize_obs,
                             max_steps=env.unwrapped.max_episode_steps)


class RewardTermsCallback(BaseCallback):
    """Logs the mean of each ``info["reward_terms"]`` entry and of the imitation reward over
    each rollout (``imitation/<term>``), and the normalised return of each finished episode
    (``imitation/normalised_return``: raw imitation return over ``max_return``, the most a full
    episode earns, whatever reward scaling does to the training reward). Reads SB3's infos and
    ours in same-step autoreset, where an ended episode's last info sits in ``final_info``."""

    def __init__(self, max_return: float):
        super().__init__()
        self._max_return = float(max_return)

    def _on_training_start(self) -> None:
        self._episode_return = np.zeros(self.training_env.num_envs)
        self._on_rollout_start()

    def _on_rollout_start(self) -> None:
        self._sums = np.zeros(len(TERMS) + 1)
        self._count = 0
        self._returns: list[float] = []

    def _on_step(self) -> bool:
        for i, info in enumerate(self.locals["infos"]):
            if "reward_terms" not in info:
                info = info.get("final_info", info)
            terms = info.get("reward_terms")
            if terms is not None:
                self._sums[:-1] += [terms[t] for t in TERMS]
                self._sums[-1] += info["imitation_reward"]
                self._count += 1
                self._episode_return[i] += info["imitation_reward"]
        for i in np.flatnonzero(self.locals["dones"]):
            self._returns.append(self._episode_return[i] / self._max_return)
            self._episode_return[i] = 0.0
        return True

    def _on_rollout_end(self) -> None:
        if self._count:
            for name, value in zip((*TERMS, "imitation_reward"), self._sums / self._count):
                self.logger.record(f"imitation/{name}", value)
        if self._returns:
            self.logger.record("imitation/normalised_return", float(np.mean(self._returns)))


def max_imitation_return(env) -> float:
    """The most one full episode of an imitation env earns (per-step maximum x episode steps)."""
    base = env.unwrapped
    return base.reward.max_imitation * base.max_episode_steps


def render_policy(policy, env, normalize_obs=None, seed: int = 0) -> tuple[list, EvalResult]:
    """One deterministic episode from ``reset(seed)``: its frames and figures."""
    frames: list = []
    result = evaluate_episodes(policy, env, 1, seed, normalize_obs=normalize_obs, frames=frames,
                               max_steps=env.unwrapped.max_episode_steps)
    return frames, result


def save_render(frames: list, out: Path, strip_frames: int = 8, fps: int = 30) -> tuple[Path, Path]:
    """``out.mp4`` and a PNG strip ``out.png`` of ``frames``."""
    from mimicgym.envs.mimic.render import save_strip, save_video

    return (save_video(frames, out.with_suffix(".mp4"), fps=fps),
            save_strip(frames, out.with_suffix(".png"), n=strip_frames))
