"""Deep Q-Network (Mnih et al. 2015), with Double DQN (van Hasselt et al. 2016) as an option.

Reads top to bottom: hyperparameters, the Q-network, the TD target, the agent (acting,
the training loop, one training round, target updates), checkpoint state. Hyperparameter
names and step accounting follow stable-baselines3's ``DQN``: the target network is
updated every ``target_update_interval`` *environment* steps, a training round of
``gradient_steps`` updates runs every ``train_freq`` steps once ``learning_starts`` steps
are collected, and epsilon decays linearly over ``exploration_fraction`` of the run.

Speed choices that keep SB3's semantics: the target network does not change during a
training round, so the TD targets of all ``gradient_steps`` minibatches are computed in
one batched forward pass (plain DQN; Double DQN needs the online net of each update); all
minibatch indices of a round are drawn and gathered at once; and training runs with
subnormal floats flushed to zero (``flush_denormals``), without which Adam's decaying
second moments make the optimizer step several times slower on CPU.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mimicgym.agents.buffers import ReplayBuffer
from mimicgym.agents.callbacks import MaybeCallback
from mimicgym.agents.env_state import EpisodeReplay, not_restored
from mimicgym.agents.networks import make_encoder, mlp
from mimicgym.agents.torch_agent import TorchAgent
from mimicgym.errors import ConfigError
from mimicgym.utils.checks import (
    check_choice,
    check_env_step,
    check_finite_input,
    check_number,
    check_positive,
    check_positive_int,
    check_probability,
)
from mimicgym.utils.torch_utils import check_finite, clip_grad_norm, derive_seed, obs_as_tensor

LOSSES = {"huber": F.smooth_l1_loss, "mse": F.mse_loss}


@dataclasses.dataclass
class DQNConfig:
    """DQN hyperparameters (SB3 names). Defaults: rl-baselines3-zoo's CartPole-v1 settings
    with Double DQN and ``learning_rate`` 1e-3 instead of 2.3e-3, which solve CartPole-v1
    within 50k steps for seeds 0-2 (``benchmarks/deep_agents.py``, ``dqn_solve``)."""

    learning_rate: float = 1e-3  # Adam step size
    buffer_size: int = 100_000  # transitions the replay buffer keeps
    learning_starts: int = 1_000  # uniform random steps before training starts
    batch_size: int = 64  # transitions per minibatch
    gamma: float = 0.99  # discount factor
    train_freq: int = 256  # environment steps between training rounds
    gradient_steps: int = 128  # updates per round; -1: as many as env steps in the round
    target_update_interval: int = 10  # environment steps between target updates
    tau: float = 1.0  # 1: hard copy; < 1: Polyak averaging
    exploration_fraction: float = 0.16  # share of the run over which epsilon decays
    exploration_initial_eps: float = 1.0  # epsilon at the start
    exploration_final_eps: float = 0.04  # epsilon after the decay
    max_grad_norm: float = 10.0  # gradient norm clip
    net_arch: Sequence[int] = (256, 256)  # hidden widths of the Q-network
    double_q: bool = True  # Double DQN targets (van Hasselt et al. 2016)
    loss: str = "huber"  # TD loss: huber | mse
    features_dim: int = 512  # CNN output width, image observations only

    def __post_init__(self):
        check_positive("learning_rate", self.learning_rate)
        for name in ("buffer_size", "batch_size", "train_freq", "target_update_interval",
                     "features_dim"):
            check_positive_int(name, getattr(self, name))
        if (isinstance(self.learning_starts, bool)
                or not isinstance(self.learning_starts, (int, np.integer)) or self.learning_starts < 0):
            raise ConfigError(f"learning_starts must be an int >= 0, got {self.learning_starts!r}")
        if (isinstance(self.gradient_steps, bool) or not isinstance(self.gradient_steps, (int, np.integer))
                or (self.gradient_steps <= 0 and self.gradient_steps != -1)):
            raise ConfigError(f"gradient_steps must be a positive int or -1, got {self.gradient_steps!r}")
        check_probability("gamma", self.gamma)
        if not (0.0 < check_number("tau", self.tau) <= 1.0):
            raise ConfigError(f"tau must lie in (0, 1], got {self.tau!r}")
        check_probability("exploration_fraction", self.exploration_fraction)
        check_probability("exploration_initial_eps", self.exploration_initial_eps)
        check_probability("exploration_final_eps", self.exploration_final_eps)
        check_positive("max_grad_norm", self.max_grad_norm)
        self.net_arch = tuple(int(w) for w in self.net_arch)
        if any(w <= 0 for w in self.net_arch):
            raise ConfigError(f"net_arch widths must be positive, got {list(self.net_arch)}")
        check_choice("loss", self.loss, LOSSES)


class QNetwork(nn.Module):
    """Raw observations -> encoder (one-hot / flatten / Nature CNN) -> MLP -> Q(s, .)."""

    def __init__(self, observation_space: gym.Space, n_actions: int, net_arch: Sequence[int],
                 features_dim: int = 512):
        super().__init__()
        self.encoder, n_features = make_encoder(observation_space, features_dim)
        self.head = mlp(n_features, net_arch, n_actions)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(obs))  # (B, n_actions)


def td_target(rewards: torch.Tensor, terminations: torch.Tensor, next_q: torch.Tensor,
              gamma: float) -> torch.Tensor:
    """``r + gamma * (1 - terminated) * max_a' Q_target(s', a')``; truncation still bootstraps.

    ``next_q``: the bootstrap value of ``s'`` (already maxed or Double-DQN-selected), any
    shape matching ``rewards``.
    """
    return rewards + gamma * (1.0 - terminations) * next_q


def linear_epsilon(progress: float, initial: float, final: float, fraction: float) -> float:
    """SB3's linear schedule: ``initial`` -> ``final`` over the first ``fraction`` of training."""
    if fraction == 0.0 or progress > fraction:
        return final
    return initial + progress * (final - initial) / fraction


class DQN(TorchAgent):
    """DQN for Box/Discrete observations and Discrete actions: ``DQN(env, seed=0, **hp)``."""

    Config = DQNConfig
    _modules = ("q_net", "q_target")
    _optimizers = ("optimizer",)

    def __init__(self, env: gym.Env | str, *, seed: int = 0, device: str | torch.device = "auto",
                 **hyperparameters: Any):
        super().__init__(env, seed=seed, device=device, **hyperparameters)
        if not isinstance(self.env.action_space, gym.spaces.Discrete):
            raise TypeError(f"DQN needs a Discrete action space, got {self.env.action_space}")
        cfg = self.config
        self.observation_space = self.env.observation_space
        self.n_actions = int(self.env.action_space.n)
        with self.seeded_init():
            self.q_net = QNetwork(self.observation_space, self.n_actions, cfg.net_arch,
                                  cfg.features_dim).to(self.device)
        self.q_target = copy.deepcopy(self.q_net).requires_grad_(False)
        # Fused Adam updates all parameters in one kernel, the main per-update saving on CPU.
        self.optimizer = torch.optim.Adam(self.q_net.parameters(), lr=cfg.learning_rate,
                                          fused=True)
        self.replay_buffer = ReplayBuffer(cfg.buffer_size, self.observation_space.shape,
                                          self.observation_space.dtype)
        self.exploration_rate = cfg.exploration_initial_eps
        self._n_calls = 0  # env steps over the agent's life: times target updates (as SB3)
        self._total_timesteps = 0
        self._last_obs: np.ndarray | None = None
        self._replay = EpisodeReplay()  # the current episode: its reset seed and actions
        self._episode_return = 0.0
        self._env_needs_restore = False
        self._loaded_replay: dict[str, Any] | None = None  # from load(), until learn() replays it

    @property
    def _episode_actions(self) -> list[int]:
        return self._replay.actions

    # ----------------------------------------------------------------- acting
    @torch.inference_mode()
    def _greedy(self, obs_batch: np.ndarray) -> np.ndarray:
        return self.q_net(obs_as_tensor(obs_batch, self.device)).argmax(dim=1).cpu().numpy()

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        """Greedy (or epsilon-greedy with the current rate) actions for one or a batch of obs."""
        obs = np.asarray(observation)
        single_shape = self.observation_space.shape
        single = obs.shape == single_shape
        batch = obs[None] if single else obs
        if batch.shape[1:] != single_shape:
            raise ValueError(f"observation of shape {obs.shape} fits neither the observation "
                             f"space shape {single_shape} nor a batch of it")
        if self.check_finite_inputs:
            check_finite_input("observation", obs)
        actions = self._greedy(batch)
        if not deterministic:
            explore = self.rng.random(len(actions)) < self.exploration_rate
            actions = np.where(explore, self.rng.integers(self.n_actions, size=len(actions)),
                               actions)
        return (actions[0] if single else actions), state

    # ----------------------------------------------------------------- the training loop
    def learn(self, total_timesteps: int, *, callback: MaybeCallback = None,
              log_interval: int = 4, progress_bar: bool = False,
              reset_num_timesteps: bool = True) -> "DQN":
        """Train for ``total_timesteps`` env steps; log every ``log_interval`` episodes.

        With ``reset_num_timesteps=False`` a run (or a loaded checkpoint) continues where it
        stopped, the exploration schedule included.
        """
        cfg, env, rng = self.config, self.env, self.rng
        with self._learning(total_timesteps, callback, progress_bar, reset_num_timesteps,
                            log_interval) as callback:
            if reset_num_timesteps or self._last_obs is None:
                self._new_episode()
            elif self._env_needs_restore:
                self._restore_episode()
            obs = self._last_obs
            if callback is not None:
                callback.on_rollout_start()
            while self.num_timesteps < self._total_timesteps and not self._interrupt:
                # -- act: uniform random before learning_starts (as SB3), then eps-greedy
                if self.num_timesteps < cfg.learning_starts or rng.random() < self.exploration_rate:
                    action = int(rng.integers(self.n_actions))
                else:
                    action = int(self._greedy(np.asarray(obs)[None])[0])
                self._replay.actions.append(action)
                next_obs, reward, terminated, truncated, info = env.step(action)
                if self.check_finite_inputs:
                    check_env_step(next_obs, reward, self.num_timesteps + 1)
                self.replay_buffer.add(obs, action, reward, next_obs, terminated)
                self._episode_return += float(reward)
                obs = next_obs
                self.num_timesteps += 1
                self._on_step()
                done = terminated or truncated
                if done:
                    self._finish_episode(self._episode_return, len(self._replay.actions))
                    obs = self._new_episode()
                    self._update_progress()
                self._last_obs = obs
                # -- train every train_freq steps once learning_starts steps are stored; the
                # phase follows num_timesteps, so a resumed run trains on the same steps
                if self.num_timesteps % cfg.train_freq == 0:
                    if callback is not None:
                        callback.on_rollout_end()
                    if self.num_timesteps > cfg.learning_starts:
                        self.train(cfg.gradient_steps if cfg.gradient_steps > 0 else cfg.train_freq)
                    if callback is not None:
                        callback.on_rollout_start()
                # -- the step's callback sees the agent after the step's training round
                if callback is not None and not self._step_callback(
                        callback, new_obs=np.asarray(next_obs)[None], rewards=np.array([reward]),
                        dones=np.array([done]), infos=[info], actions=np.array([action])):
                    break
        return self

    def _on_step(self) -> None:
        """Per env step, as SB3's ``_on_step``: target update timing and the epsilon schedule."""
        cfg = self.config
        self._n_calls += 1
        if self._n_calls % cfg.target_update_interval == 0:
            self.update_target(cfg.tau)
        progress = self.num_timesteps / self._total_timesteps
        self.exploration_rate = linear_epsilon(progress, cfg.exploration_initial_eps,
                                               cfg.exploration_final_eps, cfg.exploration_fraction)

    def _new_episode(self) -> np.ndarray:
        """Reset with a seed from the agent's rng, so an episode replays from (seed, actions)."""
        self._env_needs_restore = False
        self._episode_return = 0.0
        self._last_obs, _ = self._replay.reset(self.env, seed=derive_seed(self.rng))
        return self._last_obs

    def _restore_episode(self) -> None:
        """After ``load``: replay the checkpoint's unfinished episode on the fresh env
        (:mod:`~mimicgym.agents.env_state`); if it does not come back, start a new one."""
        obs = self._replay.restore(self.env, self._loaded_replay)
        self._env_needs_restore, self._loaded_replay = False, None
        if obs is not None and np.array_equal(np.asarray(obs), np.asarray(self._last_obs)):
            self._last_obs = obs
        else:
            not_restored("unfinished episode")
            self._new_episode()

    # ----------------------------------------------------------------- one training round
    def train(self, gradient_steps: int) -> None:
        """``gradient_steps`` minibatch updates of the Q-network on uniform replay samples."""
        cfg, device = self.config, self.device
        batch = self.replay_buffer.sample(self.rng, cfg.batch_size, gradient_steps)
        obs, next_obs, actions, rewards, terms = (
            torch.from_numpy(batch[k]).to(device) for k in
            ("observations", "next_observations", "actions", "rewards", "terminations"))
        with torch.no_grad():
            if not cfg.double_q:  # the target net is fixed during a round: one forward pass
                next_q = self.q_target(next_obs.flatten(0, 1)).amax(dim=1)
                targets = td_target(rewards, terms, next_q.view(rewards.shape), cfg.gamma)
        loss_fn = LOSSES[cfg.loss]
        params = list(self.q_net.parameters())
        losses = []
        for g in range(gradient_steps):
            if cfg.double_q:
                with torch.no_grad():  # select a' with the online net, evaluate with the target
                    best = self.q_net(next_obs[g]).argmax(dim=1, keepdim=True)
                    next_q = self.q_target(next_obs[g]).gather(1, best).squeeze(1)
                    target_g = td_target(rewards[g], terms[g], next_q, cfg.gamma)
            else:
                target_g = targets[g]
            q = self.q_net(obs[g]).gather(1, actions[g].unsqueeze(1)).squeeze(1)  # (B,)
            loss = loss_fn(q, target_g)
            for p in params:  # optimizer.zero_grad(set_to_none=True), minus its overhead
                p.grad = None
            loss.backward()
            grad_norm = clip_grad_norm(params, cfg.max_grad_norm)
            # Stop before a non-finite gradient reaches the weights (one scalar read each).
            loss_value, norm_value = loss.item(), grad_norm.item()
            if not (math.isfinite(loss_value) and math.isfinite(norm_value)):
                check_finite("TD loss", loss.detach(), self.num_timesteps)
                check_finite("gradient norm", grad_norm, self.num_timesteps)
            self.optimizer.step()
            losses.append(loss_value)
        self._n_updates += gradient_steps
        self.logger.record("train/loss", float(np.mean(losses)))
        self.logger.record("train/learning_rate", cfg.learning_rate)

    @torch.no_grad()
    def update_target(self, tau: float) -> None:
        """``theta' <- tau * theta + (1 - tau) * theta'`` (SB3's ``polyak_update``); tau=1 copies."""
        target = list(self.q_target.parameters())
        online = list(self.q_net.parameters())
        if tau == 1.0:
            torch._foreach_copy_(target, online)
        else:
            torch._foreach_mul_(target, 1.0 - tau)
            torch._foreach_add_(target, online, alpha=tau)

    def _record_train_metrics(self) -> None:
        self.logger.record("rollout/exploration_rate", self.exploration_rate)
        super()._record_train_metrics()

    # ----------------------------------------------------------------- checkpoint state
    def _extra_state(self, save_replay_buffer: bool) -> dict[str, Any]:
        return {
            **super()._extra_state(save_replay_buffer),
            "n_calls": self._n_calls,
            "total_timesteps": self._total_timesteps,
            "exploration_rate": self.exploration_rate,
            "last_obs": None if self._last_obs is None else np.asarray(self._last_obs),
            "episode": (None if self._last_obs is None else self._loaded_replay
                        if self._env_needs_restore else self._replay.state_dict(self.env)),
            "episode_return": self._episode_return,
            "replay_buffer": self.replay_buffer.state_dict() if save_replay_buffer else None,
        }

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        super()._load_extra_state(extra)
        self._n_calls = int(extra["n_calls"])
        self._total_timesteps = int(extra["total_timesteps"])
        self.exploration_rate = float(extra["exploration_rate"])
        last_obs = extra["last_obs"]
        self._last_obs = None if last_obs is None else np.asarray(last_obs)
        self._loaded_replay = extra.get("episode")
        if "episode_seed" in extra:  # the first format: no generator state to check against
            self._loaded_replay = {"seed": extra["episode_seed"], "rng_state": None, "options": None,
                                   "actions": extra["episode_actions"], "rng_now": None}
        self._episode_return = float(extra["episode_return"])
        # Files without the episode's replay (the first format) start a new episode.
        self._env_needs_restore = self._last_obs is not None and self._loaded_replay is not None
        if self._loaded_replay is None:
            self._last_obs = None
        if extra["replay_buffer"] is not None:
            self.replay_buffer.load_state_dict(extra["replay_buffer"])

