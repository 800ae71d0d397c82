"""Advantage actor-critic (A2C), the synchronous variant of Mnih et al. (2016).

Each update: ``n_steps`` steps in ``n_envs`` parallel environments, GAE (or fixed n-step)
advantages bootstrapped from the critic, then one gradient step on

    loss = -E[A * log pi(a|s)] - ent_coef * E[H(pi(.|s))] + vf_coef * E[(G - V(s))^2].

Gymnasium vector envs autoreset in NEXT_STEP mode: the step that ends an episode returns
the episode's *final* observation as the next obs, and the step after it is a *reset
step* (action ignored, reward 0, the new episode's first obs). So ``V(s_{t+1})`` is
simply the next row of the rollout (the final obs on truncation, zeroed on termination),
and reset steps are masked out of every loss term. ``num_timesteps`` counts vector steps
times ``n_envs``, reset steps included.

A checkpoint holds the unfinished rollout and where every env stands (last observations,
which envs reset next, the episodes' running returns and lengths, and the actions since each
episode began, which a loaded agent replays on its fresh envs), so a stop anywhere resumes
as if never stopped.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
import torch

from mimicgym.agents.callbacks import MaybeCallback, vector_infos
from mimicgym.agents.checkpoint import as_numpy
from mimicgym.agents.env_state import VectorEnvReplay, not_restored
from mimicgym.agents.policies import (
    ActorCritic,
    DiagGaussianDistribution,
    actions_to_env,
    check_actor_critic_hyperparameters,
    split_net_arch,
)
from mimicgym.agents.returns import explained_variance, gae, nstep_returns
from mimicgym.agents.torch_agent import PolicyAgent
from mimicgym.errors import ConfigError
from mimicgym.utils.checks import check_env_step, check_positive, check_positive_int, check_probability
from mimicgym.utils.torch_utils import check_finite, derive_seed


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
        check_actor_critic_hyperparameters(self)
        for name in ("n_steps", "n_envs"):
            check_positive_int(name, getattr(self, name))
        if self.n_step_return is not None:
            check_positive_int("n_step_return", self.n_step_return)
        check_probability("gae_lambda", self.gae_lambda)
        check_positive("rms_prop_eps", self.rms_prop_eps)
        pi, _ = split_net_arch(self.net_arch)
        if self.shared_actor_critic and (isinstance(self.net_arch, dict) or not pi):
            raise ConfigError(f"shared_actor_critic needs a non-empty list net_arch, "
                              f"got {self.net_arch!r}")


def _make_vec_env(env: Any, n_envs: int) -> gym.vector.VectorEnv:
    """A sync vector env from an id, or a ready VectorEnv (NEXT_STEP autoreset) checked."""
    if isinstance(env, str):
        return gym.make_vec(env, num_envs=n_envs, vectorization_mode="sync")
    if not isinstance(env, gym.vector.VectorEnv):
        raise TypeError(f"A2C needs an env id or a gymnasium VectorEnv, got {type(env).__name__}; "
                        f"wrap a single env with gym.vector.SyncVectorEnv([lambda: env])")
    if env.num_envs != n_envs:
        raise ValueError(f"n_envs={n_envs} but the given VectorEnv has num_envs={env.num_envs}")
    mode = env.metadata.get("autoreset_mode", gym.vector.AutoresetMode.NEXT_STEP)
    if mode != gym.vector.AutoresetMode.NEXT_STEP:
        raise ValueError(f"A2C expects a vector env with NEXT_STEP autoreset, got {mode}")
    return env


class A2C(PolicyAgent):
    """``A2C(env_id_or_vector_env, seed=0, device="auto", **hyperparameters)``."""

    Config = A2CConfig
    vectorized = True
    logs_per_episode = False
    _modules = ("policy",)
    _optimizers = ("optimizer",)

    def __init__(self, env: gym.vector.VectorEnv | str, *, seed: int = 0,
                 device: str | torch.device = "auto", deterministic: bool = False,
                 checkpoint_path: str | Path | None = None, **hyperparameters: Any):
        n_envs = A2CConfig(**hyperparameters).n_envs
        super().__init__(_make_vec_env(env, n_envs), seed=seed, device=device,
                         deterministic=deterministic, checkpoint_path=checkpoint_path,
                         **hyperparameters)
        cfg = self.config
        self.observation_space = self.env.single_observation_space
        self.action_space = self.env.single_action_space
        with self.seeded_init():
            self.policy = ActorCritic(self.observation_space, self.action_space, cfg.net_arch,
                                      cfg.activation, cfg.shared_actor_critic, cfg.log_std_init,
                                      cfg.ortho_init, cfg.normalize_observations).to(self.device)
        if cfg.use_rms_prop:  # SB3's RMSprop settings (TF-like alpha and eps)
            self.optimizer = torch.optim.RMSprop(self.policy.parameters(), lr=cfg.learning_rate,
                                                 alpha=0.99, eps=cfg.rms_prop_eps, foreach=True)
        else:
            self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=cfg.learning_rate,
                                              foreach=True)
        self._last_obs: np.ndarray | None = None
        self._last_done = np.zeros(cfg.n_envs, dtype=bool)  # next step is a reset step
        self._episode_return = np.zeros(cfg.n_envs)
        self._episode_length = np.zeros(cfg.n_envs, dtype=np.int64)
        self._env_replay = VectorEnvReplay(self.env)
        self._loaded_envs: Any = False  # from load(), until learn() replays them
        self._rollout_step = 0  # steps of the current rollout already collected
        self._allocate_rollout()

    def _allocate_rollout(self) -> None:
        """Rollout arrays, reused every update; on CPU the torch views share their memory."""
        T, N = self.config.n_steps, self.config.n_envs
        obs_space, act_space = self.observation_space, self.action_space
        self._obs = np.zeros((T + 1, N, *obs_space.shape), dtype=obs_space.dtype)
        discrete = isinstance(act_space, gym.spaces.Discrete)
        act_shape = () if discrete else (int(np.prod(act_space.shape)),)
        act_dtype = np.int64 if discrete else np.float32
        self._actions = np.zeros((T, N, *act_shape), dtype=act_dtype)
        self._rewards = np.zeros((T, N), dtype=np.float32)
        self._terminated = np.zeros((T, N), dtype=bool)
        self._truncated = np.zeros((T, N), dtype=bool)
        self._valid = np.zeros((T, N), dtype=bool)

    # ----------------------------------------------------------------- training loop
    def learn(self, total_timesteps: int, *, callback: MaybeCallback = None,
              log_interval: int = 100, progress_bar: bool = False,
              reset_num_timesteps: bool = True) -> "A2C":
        """Train for ``total_timesteps`` env steps (rounded up to whole rollouts); dump the
        logs every ``log_interval`` updates. ``reset_num_timesteps=False`` continues the
        counters of a previous ``learn`` or a loaded checkpoint."""
        with self._learning(total_timesteps, callback, progress_bar, reset_num_timesteps,
                            log_interval) as callback:
            if reset_num_timesteps or self._last_obs is None:
                self._reset_envs()
            elif self._loaded_envs is not False:
                if not self._env_replay.restore(self.env, self._loaded_envs, self._last_done,
                                                self._last_obs):
                    not_restored("vector env")
                    self._reset_envs()
                self._loaded_envs = False
            while self.num_timesteps < self._total_timesteps and not self._interrupt:
                if not self._collect_rollout(callback):
                    break
                self._train()
                self._update_progress()
                if log_interval and self._n_updates % log_interval == 0:
                    self._dump_logs()
        return self

    def _reset_envs(self) -> None:
        self._last_obs, _ = self._env_replay.reset(self.env, derive_seed(self.rng))
        self._last_done[:] = False
        self._episode_return[:] = 0.0
        self._episode_length[:] = 0
        self._rollout_step, self._loaded_envs = 0, False

    def _collect_rollout(self, callback) -> bool:
        """Fill the rollout arrays up to ``n_steps`` vector steps (going on with a rollout a stop
        left unfinished); False if the callback stopped."""
        cfg, policy, env, replay = self.config, self.policy, self.env, self._env_replay
        obs_t = torch.from_numpy(self._obs) if self.device.type == "cpu" else None
        if self._rollout_step == 0:
            self._obs[0] = self._last_obs
        if callback is not None:
            callback.on_rollout_start()
        for t in range(self._rollout_step, cfg.n_steps):
            with torch.inference_mode():
                current = (obs_t[t] if obs_t is not None
                           else torch.as_tensor(self._obs[t], device=self.device))
                actions = policy.distribution.sample(policy.actor(current), self.torch_rng)
            env_actions = actions_to_env(actions, self.action_space)
            replay.before_step(env, self._last_done)
            next_obs, rewards, terminated, truncated, info = env.step(env_actions)
            if self.check_finite_inputs:
                check_env_step(next_obs, rewards, self.num_timesteps + cfg.n_envs)
            replay.after_step(env_actions, ~self._last_done)
            self._actions[t] = actions.cpu().numpy().reshape(self._actions[t].shape)
            self._rewards[t] = rewards
            self._terminated[t] = terminated
            self._truncated[t] = truncated
            self._valid[t] = ~self._last_done
            self._obs[t + 1] = next_obs
            dones = terminated | truncated
            self._track_episodes(rewards, dones)
            self.num_timesteps += cfg.n_envs
            self._rollout_step, self._last_obs = t + 1, self._obs[t + 1]
            if callback is not None and not self._step_callback(
                    callback, new_obs=next_obs, rewards=rewards, dones=dones,
                    infos=vector_infos(info, cfg.n_envs), actions=env_actions):
                return False
        self._rollout_step = 0
        self._last_obs = self._obs[-1].copy()
        if callback is not None:
            callback.on_rollout_end()
        return True

    def _track_episodes(self, rewards: np.ndarray, done: np.ndarray) -> None:
        self._episode_return += rewards
        self._episode_length += ~self._last_done
        for i in np.flatnonzero(done):
            self._finish_episode(self._episode_return[i], self._episode_length[i])
        self._episode_return[done] = 0.0
        self._episode_length[done] = 0
        self._last_done = done

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

    # ----------------------------------------------------------------- checkpoint state
    _ROLLOUT = ("_obs", "_actions", "_rewards", "_terminated", "_truncated", "_valid")

    def _extra_state(self, save_replay_buffer: bool) -> dict[str, Any]:
        started = self._last_obs is not None
        return {
            **super()._extra_state(save_replay_buffer),
            "last_obs": np.array(self._last_obs) if started else None,
            "last_done": self._last_done.copy(),
            "episode_return": self._episode_return.copy(),
            "episode_length": self._episode_length.copy(),
            "envs": (self._loaded_envs if self._loaded_envs is not False
                     else self._env_replay.state_dict(self.env) if started else None),
            "rollout_step": self._rollout_step,
            "rollout": ({name: getattr(self, name).copy() for name in self._ROLLOUT}
                        if self._rollout_step else None),
        }

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        super()._load_extra_state(extra)
        if extra.get("last_obs") is None:  # not started, or the first format: fresh envs
            return
        extra = as_numpy(extra)
        self._last_obs = extra["last_obs"]
        self._last_done = extra["last_done"].astype(bool)
        self._episode_return[:] = extra["episode_return"]
        self._episode_length[:] = extra["episode_length"]
        self._loaded_envs = extra["envs"]
        self._rollout_step = int(extra["rollout_step"])
        for name, values in (extra["rollout"] or {}).items():
            getattr(self, name)[...] = values
