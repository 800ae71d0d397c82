"""Training pieces for imitation runs: reward-term logging (stable-baselines3 and mimicgym's
own agents) and deterministic evaluation.

SB3 is imported inside the functions so the env package does not depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mimicgym.envs.mimic.reward import TERMS

# SB3 PPO defaults for imitation runs (the CLI's and scripts/train_mimic.py's): DeepMimic's
# gamma 0.95, GAE lambda 0.95 and clip 0.2; an initial exploration std of 0.135 (log-std -2),
# which doubled the normalised return after 200k samples against -1; and a step size of 1e-4:
# with SB3's 3e-4 the small std makes each update move the policy far (approximate KL 1-4)
# and walk peaked at 0.54 normalised return, then fell back; 1e-4 reached 0.75 by 1.3M.
DEEPMIMIC_PPO: dict = {
    "learning_rate": 1e-4, "n_steps": 512, "batch_size": 512, "n_epochs": 5, "gamma": 0.95,
    "gae_lambda": 0.95, "clip_range": 0.2,
    "policy_kwargs": {"log_std_init": -2.0, "net_arch": {"pi": [512, 256], "vf": [512, 256]}},
}


@dataclass
class EvalResult:
    """Deterministic-policy figures: per-episode length, per-step imitation reward, normalised
    return (episode return / the most a full-length episode can earn)."""

    lengths: np.ndarray
    imitation_per_step: np.ndarray
    normalised_return: np.ndarray

    def summary(self) -> dict[str, float]:
        return {"mean_ep_length": float(self.lengths.mean()),
                "mean_imitation_reward": float(self.imitation_per_step.mean()),
                "normalised_return": float(self.normalised_return.mean())}


def evaluate_imitation(policy, env, episodes: int, seed: int, obs_normalizer=None,
                       frames: list | None = None) -> EvalResult:
    """Run ``episodes`` deterministic episodes of ``policy`` (an SB3 model) on a MimicEnv.

    ``obs_normalizer`` is a VecNormalize whose ``normalize_obs`` is applied to observations;
    ``frames``, if given, collects ``env.render()`` of the first episode.
    """
    base = env.unwrapped
    max_return = base.reward.max_imitation * base.max_episode_steps
    lengths, per_step, norm_return = [], [], []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        total, imitation, n, done = 0.0, 0.0, 0, False
        if frames is not None and ep == 0:
            frames.append(env.render())
        while not done:
            x = obs if obs_normalizer is None else obs_normalizer.normalize_obs(obs[None])[0]
            action, _ = policy.predict(x, deterministic=True)
            obs, reward, terminated, truncated, info = env.step(action)
            total += reward
            imitation += info["imitation_reward"]
            n += 1
            done = terminated or truncated
            if frames is not None and ep == 0:
                frames.append(env.render())
        lengths.append(n)
        per_step.append(imitation / n)
        norm_return.append(total / max_return)
    return EvalResult(np.array(lengths), np.array(per_step), np.array(norm_return))


def reward_terms_callback():
    """An SB3 callback logging the mean of each ``info["reward_terms"]`` entry per rollout
    (``imitation/<term>``), the imitation reward, and each finished episode's normalised return
    (``imitation/normalised_return``: episode return over the maximum possible)."""
    from stable_baselines3.common.callbacks import BaseCallback

    class RewardTerms(BaseCallback):
        def _on_rollout_start(self) -> None:
            self._sums = np.zeros(len(TERMS) + 1)
            self._count = 0
            self._returns: list[float] = []

        def _on_training_start(self) -> None:
            self._on_rollout_start()
            env = self.training_env
            self._max_return = env.get_attr("reward")[0].max_imitation * \
                env.get_attr("max_episode_steps")[0]
            self._ep_return = np.zeros(env.num_envs)

        def _on_step(self) -> bool:
            infos = self.locals["infos"]
            for i, info in enumerate(infos):
                terms = info.get("reward_terms")
                if terms is not None:
                    self._sums[:-1] += [terms[t] for t in TERMS]
                    self._sums[-1] += info["imitation_reward"]
                    self._count += 1
                    # The raw imitation reward, whatever VecNormalize does to the training one.
                    self._ep_return[i] += info["imitation_reward"]
            for i, done in enumerate(self.locals["dones"]):
                if done:
                    self._returns.append(self._ep_return[i] / self._max_return)
                    self._ep_return[i] = 0.0
            return True

        def _on_rollout_end(self) -> None:
            if self._count:
                for name, value in zip((*TERMS, "imitation_reward"), self._sums / self._count):
                    self.logger.record(f"imitation/{name}", value)
            if self._returns:
                self.logger.record("imitation/normalised_return", float(np.mean(self._returns)))

    return RewardTerms()


def log_reward_terms(agent) -> bool:
    """``learn(callback=...)`` for mimicgym's own agents: the step's reward terms and imitation
    reward into ``agent.logger`` as ``imitation/<term>``; the logger's dump averages them over
    the steps since the last one, as the SB3 callback does per rollout.

    Reads ``agent.last_info``: one env's info, or a vector env's dict of arrays, where the
    ``_reward_terms`` mask leaves out sub-envs that were resetting on this step.
    """
    info = agent.last_info
    terms = info.get("reward_terms")
    if terms is None:
        return True
    stepped = info.get("_reward_terms", True)  # True: a single env's scalar info
    series = {t: terms[t] for t in TERMS} | {"imitation_reward": info["imitation_reward"]}
    for name, values in series.items():
        values = np.asarray(values)[stepped]
        if values.size:
            agent.logger.record(f"imitation/{name}", float(values.mean()))
    return True
