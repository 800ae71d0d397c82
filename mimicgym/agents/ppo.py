"""Proximal policy optimisation (PPO) with the clipped surrogate objective (Schulman et al. 2017).

Each iteration collects ``n_steps`` steps in ``n_envs`` parallel environments under the policy
pi_old, estimates advantages with GAE (Schulman et al. 2016), then makes ``n_epochs`` passes over
the rollout in shuffled minibatches of ``batch_size``, one gradient step each on

    loss = -E[min(r A, clip(r, 1 - eps, 1 + eps) A)] + vf_coef * E[(G - V(s))^2] - ent_coef * E[H],
    r = pi(a|s) / pi_old(a|s).

The clip removes the incentive to move pi far from pi_old, which lets one rollout serve many
gradient steps (A2C takes one). As in stable-baselines3: V(s) optionally clipped around V_old(s)
(``clip_range_vf``); the epochs stop once a minibatch's approximate KL ``E[(r - 1) - log r]``
passes 1.5 * ``target_kl``; ``"lin_<x>"`` schedules (rl-zoo's) for learning rate and clip range;
``normalize_reward`` divides rewards by the running std of the discounted return (VecNormalize's).

Rollouts run on any Gymnasium ``VectorEnv`` (:class:`~mimicgym.agents.on_policy.OnPolicyAgent`
collects them and checkpoints them with the envs' state for exact resume). NEXT_STEP autoreset
(Gymnasium's default): the step after an episode end is a *reset step* (action ignored, reward 0),
kept out of the minibatches, and the row after a truncation holds the final observation, which the
critic bootstraps from. SAME_STEP autoreset (the batched envs): no reset steps; the final
observation comes in ``info["final_obs"]`` and its value is taken at that step. pi_old's
log-probabilities and values are computed when the update starts, in one batched pass (the weights
and observation statistics are still those the rollout was collected with).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from mimicgym.agents.normalization import RunningObservationNormalizer
from mimicgym.agents.on_policy import NEXT_STEP, SAME_STEP, OnPolicyAgent, check_on_policy_config
from mimicgym.agents.policies import DiagGaussianDistribution, fold_policy_kwargs
from mimicgym.agents.returns import explained_variance, gae
from mimicgym.errors import ConfigError
from mimicgym.utils.checks import check_positive, check_positive_int
from mimicgym.utils.torch_utils import check_finite, clip_grad_norm

Schedule = Callable[[float], float]  # progress_remaining (1 at the start, 0 at the end) -> value


def progress_schedule(name: str, spec: float | str) -> Schedule:
    """A number (constant) or ``"lin_<x>"``: ``x * progress_remaining``, from x to 0 over the run."""
    if isinstance(spec, str) and spec.startswith("lin_"):
        try:
            start = float(spec[4:])
        except ValueError:
            raise ConfigError(f"{name} must be a number or 'lin_<number>', got {spec!r}") from None
        check_positive(name, start)
        return lambda progress: progress * start
    if isinstance(spec, str):
        raise ConfigError(f"{name} must be a number or 'lin_<number>', got {spec!r}")
    check_positive(name, spec)
    return lambda progress: float(spec)


@dataclasses.dataclass
class PPOConfig:
    """PPO hyperparameters with stable-baselines3's names and defaults, plus ``n_envs`` and the
    network and normalisation options of our A2C (SB3's ``policy_kwargs`` fold into them)."""

    learning_rate: float | str = 3e-4  # Adam step size, or "lin_<x>": x decayed linearly to 0
    n_steps: int = 2048  # steps per env and rollout
    batch_size: int = 64  # minibatch size
    n_epochs: int = 10  # passes over each rollout
    gamma: float = 0.99  # discount factor
    gae_lambda: float = 0.95  # GAE's bias-variance trade-off (1: Monte Carlo, 0: TD(0))
    clip_range: float | str = 0.2  # epsilon of the clipped surrogate, or "lin_<x>"
    clip_range_vf: float | str | None = None  # clip V around V_old (reward units); None: no clip
    normalize_advantage: bool = True  # advantages to zero mean, unit std per minibatch
    ent_coef: float = 0.0  # entropy bonus weight
    vf_coef: float = 0.5  # value loss weight
    max_grad_norm: float = 0.5  # gradient norm clip
    target_kl: float | None = None  # stop the epochs once a minibatch's KL > 1.5 * target_kl
    use_sde: bool = False  # SB3's gSDE exploration: not supported (use sb3:PPO)
    policy_kwargs: dict | None = None  # SB3's: net_arch, activation_fn, log_std_init, ortho_init
    n_envs: int = 1  # parallel envs (a sync vector env when given an env id)
    net_arch: Sequence[int] | dict = (64, 64)  # hidden widths, or {"pi": [...], "vf": [...]}
    activation: str = "tanh"  # hidden activation: tanh | relu | elu
    shared_actor_critic: bool = False  # one MLP trunk with two heads
    log_std_init: float = 0.0  # initial log std of Gaussian actions
    ortho_init: bool = True  # orthogonal initialisation, as SB3
    normalize_observations: bool = False  # running mean/std in the network (VecNormalize's)
    normalize_reward: bool = False  # rewards / running std of the discounted return (VecNormalize's)

    def __post_init__(self):
        if self.use_sde:
            raise ConfigError("use_sde=True: generalised state-dependent exploration is not supported "
                              "by mimicgym's PPO (a state-independent log std is); use sb3:PPO for it")
        fold_policy_kwargs(self)
        check_on_policy_config(self, check_learning_rate=False)  # a schedule: checked below
        for name in ("batch_size", "n_epochs"):
            check_positive_int(name, getattr(self, name))
        progress_schedule("learning_rate", self.learning_rate)
        progress_schedule("clip_range", self.clip_range)
        if self.clip_range_vf is not None:
            progress_schedule("clip_range_vf", self.clip_range_vf)
        if self.target_kl is not None:
            check_positive("target_kl", self.target_kl)
        rollout = self.n_steps * self.n_envs
        if self.batch_size > rollout:
            raise ConfigError(f"batch_size={self.batch_size} exceeds the rollout's n_steps * n_envs = "
                              f"{self.n_steps} * {self.n_envs} = {rollout} samples")
        if self.normalize_advantage and self.batch_size < 2:
            raise ConfigError(f"batch_size must be >= 2 to normalise advantages per minibatch, got {self.batch_size}")


class PPO(OnPolicyAgent):
    """``PPO(env_id_or_vector_env, seed=0, device="auto", **hyperparameters)``."""

    Config = PPOConfig
    autoreset_modes = (NEXT_STEP, SAME_STEP)
    default_log_interval = 1  # learn() dumps the logs every iteration, as SB3's PPO
    _modules = ("policy", "return_statistics")
    _ROLLOUT = OnPolicyAgent._ROLLOUT + ("_final_values",)
    _RUNNING = OnPolicyAgent._RUNNING + ("_reward_return",)

    def __init__(self, env: gym.vector.VectorEnv | str, *, seed: int = 0, device: str | torch.device = "auto",
                 deterministic: bool = False, checkpoint_path: str | Path | None = None, **hyperparameters: Any):
        super().__init__(env, seed=seed, device=device, deterministic=deterministic, checkpoint_path=checkpoint_path,
                         **hyperparameters)
        cfg = self.config
        self._learning_rate = progress_schedule("learning_rate", cfg.learning_rate)
        self._clip_range = progress_schedule("clip_range", cfg.clip_range)
        vf_clip = cfg.clip_range_vf
        self._clip_range_vf = None if vf_clip is None else progress_schedule("clip_range_vf", vf_clip)
        self._params = list(self.policy.parameters())
        # SB3's Adam settings for actor-critics (eps 1e-5 rather than torch's 1e-8).
        self.optimizer = torch.optim.Adam(self._params, lr=self._learning_rate(1.0), eps=1e-5, foreach=True)
        # Running variance of the discounted return (normalize_reward); its mean goes unused.
        self.return_statistics = RunningObservationNormalizer(())
        self._reward_return = np.zeros(cfg.n_envs)  # the discounted return so far, per env

    def _allocate_rollout(self) -> None:
        super()._allocate_rollout()
        self._final_values = np.zeros_like(self._rewards)  # SAME_STEP: V(final obs)

    # ----------------------------------------------------------------- training loop
    def _iteration(self) -> int:
        return self.num_timesteps // (self.config.n_steps * self.config.n_envs)  # rollouts, SB3's count

    def _record_step(self, t: int, info: dict, terminated: np.ndarray, truncated: np.ndarray) -> None:
        """SAME_STEP autoreset: V(final obs) of the episodes truncated at step ``t`` (the obs the
        step returned already begins the next episode); zeros otherwise."""
        values = np.zeros(self.config.n_envs, dtype=np.float32)
        where = np.flatnonzero(truncated & ~terminated) if self._same_step else ()
        if len(where):
            final = np.stack([np.asarray(info["final_obs"][i]) for i in where])
            with torch.inference_mode():
                values[where] = self.policy.value(torch.as_tensor(final, device=self.device)).cpu().numpy()
        self._final_values[t] = values

    def _scaled_rewards(self) -> np.ndarray:
        """Rewards over the running std of the discounted return, clipped to +-10 (VecNormalize's
        reward scaling, with the statistics updated once per rollout rather than per step)."""
        cfg, running = self.config, self._reward_return
        ended = self._terminated | self._truncated
        returns = np.empty(self._rewards.shape)
        for t in range(cfg.n_steps):
            running = running * cfg.gamma + self._rewards[t]
            returns[t] = running
            running = np.where(ended[t], 0.0, running)
        self._reward_return = running
        self.return_statistics.update(torch.from_numpy(returns[self._valid]))
        std = np.sqrt(self.return_statistics.var.item() + 1e-8)
        return np.clip(self._rewards / std, -10.0, 10.0).astype(np.float32)

    def _train(self) -> None:
        """``n_epochs`` passes of minibatch gradient steps on the rollout (SB3's ``PPO.train``)."""
        if not self._valid.any():  # a rollout of reset steps only (n_steps=1): nothing to learn
            return
        cfg, policy, dist = self.config, self.policy, self.policy.distribution
        T, N, step = cfg.n_steps, cfg.n_envs, self.num_timesteps
        progress = max(0.0, 1.0 - self.num_timesteps / self._total_timesteps)  # SB3's progress_remaining
        learning_rate, clip_range = self._learning_rate(progress), self._clip_range(progress)
        clip_range_vf = None if self._clip_range_vf is None else self._clip_range_vf(progress)
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate
        as_tensor = lambda a: torch.as_tensor(a, device=self.device)  # noqa: E731
        rewards = self._scaled_rewards() if cfg.normalize_reward else self._rewards
        obs = as_tensor(self._obs).reshape((T + 1) * N, *self.observation_space.shape)
        actions = as_tensor(self._actions).reshape(T * N, *self._actions.shape[2:])
        terminated, truncated = as_tensor(self._terminated), as_tensor(self._truncated)
        with torch.no_grad():  # pi_old and V_old: the weights the rollout was collected with
            params, values = policy(obs)
            old_log_prob = dist.log_prob(params[:T * N], actions)
            values = values.view(T + 1, N)
            # Row t+1 holds V(s_{t+1}), the final obs' value after a NEXT_STEP episode end.
            next_values = values[1:]
            if self._same_step:
                next_values = torch.where(truncated, as_tensor(self._final_values), next_values)
            advantages, returns = gae(as_tensor(rewards), values[:-1], next_values, terminated,
                                      truncated, cfg.gamma, cfg.gae_lambda)
        obs, old_values = obs[:T * N], values[:-1].reshape(-1)
        advantages, returns = advantages.reshape(-1), returns.reshape(-1)
        valid = np.flatnonzero(self._valid.reshape(-1))  # reset steps never enter a minibatch
        stats, continue_training = [], True
        for _ in range(cfg.n_epochs):
            approx_kls = []
            order = valid[self.rng.permutation(valid.size)]
            for start in range(0, order.size, cfg.batch_size):
                idx = as_tensor(order[start:start + cfg.batch_size])
                params, values = policy(obs[idx])
                log_prob = dist.log_prob(params, actions[idx])
                adv = advantages[idx]
                if cfg.normalize_advantage and len(idx) > 1:
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                log_ratio = log_prob - old_log_prob[idx]
                ratio = log_ratio.exp()
                policy_loss = -torch.min(adv * ratio, adv * ratio.clamp(1 - clip_range, 1 + clip_range)).mean()
                if clip_range_vf is not None:  # V may move at most clip_range_vf from V_old
                    values = old_values[idx] + (values - old_values[idx]).clamp(-clip_range_vf, clip_range_vf)
                value_loss = F.mse_loss(returns[idx], values)
                entropy_loss = -dist.entropy(params).mean()
                loss = policy_loss + cfg.ent_coef * entropy_loss + cfg.vf_coef * value_loss
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - log_ratio).mean()  # Schulman's low-variance estimator
                    clip_fraction = ((ratio - 1).abs() > clip_range).float().mean()
                    stats.append(torch.stack([policy_loss, value_loss, entropy_loss, clip_fraction]))
                approx_kls.append(approx_kl)
                if cfg.target_kl is not None and approx_kl.item() > 1.5 * cfg.target_kl:
                    continue_training = False  # this minibatch already strays too far: no step
                    break
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = clip_grad_norm(self._params, cfg.max_grad_norm)
                if not torch.isfinite(grad_norm):  # name the first non-finite term
                    for name, term in (("policy_loss", policy_loss), ("value_loss", value_loss),
                                       ("entropy_loss", entropy_loss)):
                        check_finite(name, term, step)
                    check_finite("grad_norm", grad_norm, step)
                self.optimizer.step()
            self._n_updates += 1  # SB3's count: epochs
            if not continue_training:
                break
        # After the update: the next rollout is acted on and trained with the same statistics.
        policy.update_observation_statistics(obs)
        # SB3's logs: means over the minibatches, approx_kl over the last epoch's, the last loss.
        pg_loss, value_loss, entropy_loss, clip_fraction = torch.stack(stats).mean(0).tolist()
        mask = as_tensor(self._valid).reshape(-1).float()
        for key, value in (("learning_rate", learning_rate), ("policy_gradient_loss", pg_loss),
                           ("value_loss", value_loss), ("entropy_loss", entropy_loss),
                           ("approx_kl", torch.stack(approx_kls).mean().item()),
                           ("clip_fraction", clip_fraction), ("loss", loss.item()),
                           ("explained_variance", explained_variance(old_values, returns, mask)),
                           ("clip_range", clip_range), ("clip_range_vf", clip_range_vf)):
            if value is not None:
                self.logger.record(f"train/{key}", value)
        if isinstance(dist, DiagGaussianDistribution):
            self.logger.record("train/std", dist.log_std.exp().mean().item())
