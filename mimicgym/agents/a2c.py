"""Advantage actor-critic (A2C), the synchronous variant of Mnih et al. (2016).

Each update: ``n_steps`` steps in ``n_envs`` parallel environments, GAE (or fixed n-step)
advantages bootstrapped from the critic, then one gradient step on

    loss = -E[A * log pi(a|s)] - ent_coef * E[H(pi(.|s))] + vf_coef * E[(G - V(s))^2].

The rollout, its NEXT_STEP autoreset (reset steps masked out of every loss term, the row
after an episode end holding its final observation) and the checkpointed env state that
makes a stop anywhere resume exactly are :class:`~mimicgym.agents.on_policy.OnPolicyAgent`'s.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym
import torch

from mimicgym.agents.on_policy import OnPolicyAgent, check_on_policy_config
from mimicgym.agents.policies import DiagGaussianDistribution
from mimicgym.agents.returns import explained_variance, gae, nstep_returns
from mimicgym.utils.checks import check_positive, check_positive_int
from mimicgym.utils.torch_utils import check_finite


@dataclasses.dataclass
class A2CConfig:
    """A2C hyperparameters with SB3's names and defaults, plus ``n_envs=8``: together
    rl-baselines3-zoo's CartPole-v1 settings, which solve it (``benchmarks/deep_agents.py``)."""

    learning_rate: float = 7e-4  # optimizer step size
    n_steps: int = 5  # steps per env and update
    gamma: float = 0.99  # discount factor
    gae_lambda: float = 1.0  # 1: n-step return to the end of the rollout (A3C); 0: TD(0)
    n_step_return: int | None = None  # a fixed n-step horizon instead of GAE
    ent_coef: float = 0.0  # entropy bonus weight
    vf_coef: float = 0.5  # value loss weight
    max_grad_norm: float = 0.5  # gradient norm clip
    n_envs: int = 8  # parallel envs (a sync vector env)
    net_arch: Sequence[int] | dict = (64, 64)  # hidden widths, or {"pi": [...], "vf": [...]}
    activation: str = "tanh"  # hidden activation: tanh | relu
    shared_actor_critic: bool = False  # one MLP trunk with two heads
    normalize_advantage: bool = False  # advantages to zero mean, unit std per update
    use_rms_prop: bool = True  # else Adam
    rms_prop_eps: float = 1e-5  # RMSprop epsilon (SB3's)
    log_std_init: float = 0.0  # initial log std of Gaussian actions
    ortho_init: bool = True  # orthogonal initialisation, as SB3
    normalize_observations: bool = False  # running mean/std in the network (VecNormalize's)

    def __post_init__(self):
        check_on_policy_config(self)
        if self.n_step_return is not None:
            check_positive_int("n_step_return", self.n_step_return)
        check_positive("rms_prop_eps", self.rms_prop_eps)


class A2C(OnPolicyAgent):
    """``A2C(env_id_or_vector_env, seed=0, device="auto", **hyperparameters)``."""

    Config = A2CConfig
    default_log_interval = 100  # learn() dumps the logs every 100 updates, as SB3's A2C

    def __init__(self, env: gym.vector.VectorEnv | str, *, seed: int = 0, device: str | torch.device = "auto",
                 deterministic: bool = False, checkpoint_path: str | Path | None = None, **hyperparameters: Any):
        super().__init__(env, seed=seed, device=device, deterministic=deterministic, checkpoint_path=checkpoint_path,
                         **hyperparameters)
        cfg = self.config
        if cfg.use_rms_prop:  # SB3's RMSprop settings (TF-like alpha and eps)
            self.optimizer = torch.optim.RMSprop(self.policy.parameters(), lr=cfg.learning_rate,
                                                 alpha=0.99, eps=cfg.rms_prop_eps, foreach=True)
        else:
            self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=cfg.learning_rate,
                                              foreach=True)

    def _iteration(self) -> int:
        return self._n_updates  # one per rollout

    def _train(self) -> None:
        """One gradient step on the rollout: a single forward pass for actor and critic."""
        cfg, policy, T, N = self.config, self.policy, self.config.n_steps, self.config.n_envs
        as_tensor = lambda a: torch.as_tensor(a, device=self.device)  # noqa: E731
        obs = as_tensor(self._obs).reshape((T + 1) * N, *self.observation_space.shape)
        params, values = policy(obs)  # ((T+1)N, P), ((T+1)N,)
        values = values.view(T + 1, N)
        rewards, terminated, truncated = map(as_tensor, (self._rewards, self._terminated,
                                                         self._truncated))
        with torch.no_grad():
            # Row t+1 holds V(s_{t+1}): after an episode end it is the final obs' value.
            next_values = values[1:].detach()
            if cfg.n_step_return is None:
                advantages, returns = gae(rewards, values[:-1].detach(), next_values, terminated,
                                          truncated, cfg.gamma, cfg.gae_lambda)
            else:
                returns = nstep_returns(rewards, next_values, terminated, truncated, cfg.gamma,
                                        cfg.n_step_return)
                advantages = returns - values[:-1].detach()
        mask = as_tensor(self._valid).float()  # (T, N); 0 on reset steps
        n_valid = mask.sum().clamp(min=1.0)
        if cfg.normalize_advantage:
            mean = (advantages * mask).sum() / n_valid
            std = (((advantages - mean) * mask).square().sum() / n_valid).sqrt()
            advantages = (advantages - mean) / (std + 1e-8)
        step_params = params.view(T + 1, N, -1)[:-1].reshape(T * N, -1)
        actions = as_tensor(self._actions).reshape(T * N, *self._actions.shape[2:])
        log_prob = policy.distribution.log_prob(step_params, actions).view(T, N)
        entropy = policy.distribution.entropy(step_params).view(T, N)
        policy_loss = -(advantages * log_prob * mask).sum() / n_valid
        value_loss = ((returns - values[:-1]).square() * mask).sum() / n_valid
        entropy_loss = -(entropy * mask).sum() / n_valid
        loss = policy_loss + cfg.ent_coef * entropy_loss + cfg.vf_coef * value_loss
        # One host sync for all four scalars, then the NaN/inf guard on each by name.
        terms = dict(zip(("loss", "policy_loss", "value_loss", "entropy_loss"),
                         torch.stack([loss, policy_loss, value_loss, entropy_loss]).tolist()))
        for name in ("policy_loss", "value_loss", "entropy_loss", "loss"):
            check_finite(name, terms[name], self.num_timesteps)
        self._gradient_step(loss, cfg.max_grad_norm)
        # After the step: the next rollout is acted on and trained with the same statistics.
        policy.update_observation_statistics(obs[:T * N])
        for name, value in terms.items():
            self.logger.record(f"train/{name}", value)
        self.logger.record("train/explained_variance",
                           explained_variance(values[:-1].detach(), returns, mask))
        if isinstance(policy.distribution, DiagGaussianDistribution):
            self.logger.record("train/std", policy.distribution.log_std.exp().mean().item())
