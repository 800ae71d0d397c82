"""REINFORCE with a learned state-value baseline (Williams 1992; Sutton & Barto 2018, 13.4).

Each update plays ``n_episodes`` whole episodes with the current policy, computes the
discounted Monte Carlo return ``G_t`` of every step, and takes one gradient step on

    loss = -E[(G_t - V(s_t)) * log pi(a_t|s_t)] - ent_coef * E[H] + vf_coef * E[(G_t - V(s_t))^2].

Episodes cut by a time limit are not terminal: their return bootstraps from the value of
the final observation (``bootstrap_truncated``), the only place the critic enters ``G``.

A stop keeps the unfinished batch (``_batch``: the episodes played for the next update, and
``_episode``: the one in progress, with how its env got there), and a checkpoint holds it, so
the continued run plays and trains on exactly what one run would have.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
import torch

from mimicgym.agents.callbacks import MaybeCallback
from mimicgym.agents.checkpoint import as_numpy
from mimicgym.agents.env_state import EpisodeReplay, not_restored
from mimicgym.agents.policies import (
    ActorCritic,
    DiagGaussianDistribution,
    actions_to_env,
    check_actor_critic_hyperparameters,
)
from mimicgym.agents.returns import discounted_returns, explained_variance
from mimicgym.agents.torch_agent import PolicyAgent
from mimicgym.utils.checks import check_env_step, check_positive_int
from mimicgym.utils.torch_utils import check_finite, derive_seed


@dataclasses.dataclass
class ReinforceConfig:
    """REINFORCE hyperparameters (SB3 names where the concept exists). The defaults solve
    CartPole-v1 (see ``benchmarks/deep_agents.py``)."""

    learning_rate: float = 1e-3  # Adam step size
    gamma: float = 0.99  # discount factor
    n_episodes: int = 2  # whole episodes per gradient step
    baseline: bool = True  # subtract the learned V(s_t) from G_t
    normalize_advantage: bool = True  # without a baseline: return normalisation
    bootstrap_truncated: bool = True  # time-limit cuts bootstrap from V(final obs)
    ent_coef: float = 0.0  # entropy bonus weight
    vf_coef: float = 0.5  # value loss weight
    max_grad_norm: float = 0.5  # gradient norm clip
    net_arch: Sequence[int] | dict = (64, 64)  # hidden widths, or {"pi": [...], "vf": [...]}
    activation: str = "tanh"  # hidden activation: tanh | relu
    log_std_init: float = 0.0  # initial log std of Gaussian actions
    ortho_init: bool = True  # orthogonal initialisation, as SB3
    normalize_observations: bool = False  # running mean/std in the network (VecNormalize's)

    def __post_init__(self):
        check_actor_critic_hyperparameters(self)
        check_positive_int("n_episodes", self.n_episodes)


class Reinforce(PolicyAgent):
    """``Reinforce(env_or_id, seed=0, device="auto", **hyperparameters)`` on a single env."""

    Config = ReinforceConfig
    logs_per_episode = False
    _modules = ("policy",)
    _optimizers = ("optimizer",)

    def __init__(self, env: gym.Env | str, *, seed: int = 0, device: str | torch.device = "auto",
                 deterministic: bool = False, checkpoint_path: str | Path | None = None,
                 **hyperparameters: Any):
        super().__init__(env, seed=seed, device=device,
                         deterministic=deterministic, checkpoint_path=checkpoint_path,
                         **hyperparameters)
        if isinstance(self.env, gym.vector.VectorEnv):
            raise TypeError("Reinforce plays whole episodes on a single env; "
                            "pass a gym.Env or an env id")
        cfg = self.config
        self.observation_space = self.env.observation_space
        self.action_space = self.env.action_space
        with self.seeded_init():
            # Separate actor and critic MLPs: the baseline must not shape the policy features.
            self.policy = ActorCritic(self.observation_space, self.action_space, cfg.net_arch,
                                      cfg.activation, False, cfg.log_std_init,
                                      cfg.ortho_init, cfg.normalize_observations).to(self.device)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=cfg.learning_rate)
        self._batch: list[dict[str, Any]] = []  # whole episodes of the next update
        self._episode: dict[str, Any] | None = None  # the episode in progress: obs, actions, ...
        self._replay = EpisodeReplay()  # its reset seed and env actions
        self._loaded_replay: dict[str, Any] | None = None  # from load(), until learn() replays it

    # ----------------------------------------------------------------- training loop
    def learn(self, total_timesteps: int, *, callback: MaybeCallback = None,
              log_interval: int = 10, progress_bar: bool = False,
              reset_num_timesteps: bool = True) -> "Reinforce":
        """Train for ``total_timesteps`` env steps (finishing the last batch of episodes); dump
        the logs every ``log_interval`` updates. A callback's stop keeps the unfinished batch,
        which ``learn(..., reset_num_timesteps=False)`` goes on with."""
        with self._learning(total_timesteps, callback, progress_bar, reset_num_timesteps,
                            log_interval) as callback:
            if reset_num_timesteps:
                self._batch, self._episode, self._loaded_replay = [], None, None
            elif self._loaded_replay is not None:
                self._restore_episode()
            while self.num_timesteps < self._total_timesteps and not self._interrupt:
                if callback is not None:
                    callback.on_rollout_start()
                while len(self._batch) < self.config.n_episodes:
                    if not self._play_episode(callback):
                        break
                if len(self._batch) < self.config.n_episodes:
                    break
                if callback is not None:
                    callback.on_rollout_end()
                episodes, self._batch = self._batch, []
                self._train(episodes)
                self._update_progress()
                if log_interval and self._n_updates % log_interval == 0:
                    self._dump_logs()
        return self

    def _play_episode(self, callback) -> bool:
        """Play the episode in progress (or a new one) to its end with sampled actions and add
        it to ``_batch``: obs ``(L+1, ...)`` (final obs last), actions, rewards ``(L,)`` and
        whether it terminated. False if the callback stopped training."""
        if self._episode is None:
            obs, _ = self._replay.reset(self.env, seed=derive_seed(self.rng))
            self._episode = {"obs": [obs], "actions": [], "rewards": [], "return": 0.0}
        episode = self._episode
        observations, actions, rewards = episode["obs"], episode["actions"], episode["rewards"]
        obs = observations[-1]
        while True:
            with torch.inference_mode():
                batch = torch.as_tensor(np.asarray(obs)[None], device=self.device)
                params = self.policy.actor(batch)
                action = self.policy.distribution.sample(params, self.torch_rng)  # (1, ...)
            env_action = actions_to_env(action, self.action_space)[0]
            self._replay.actions.append(env_action)
            obs, reward, terminated, truncated, info = self.env.step(env_action)
            if self.check_finite_inputs:
                check_env_step(obs, reward, self.num_timesteps + 1)
            observations.append(obs)
            actions.append(action[0])
            rewards.append(float(reward))
            episode["return"] += float(reward)
            self.num_timesteps += 1
            done = terminated or truncated
            if done:  # into the batch before the callback, whose save must see it there
                self._finish_episode(episode["return"], len(rewards))
                self._batch.append({"obs": np.stack(observations), "actions": torch.stack(actions),
                                    "rewards": np.asarray(rewards, dtype=np.float32),
                                    "terminated": bool(terminated)})
                self._episode = None
            if callback is not None and not self._step_callback(
                    callback, new_obs=np.asarray(obs)[None], rewards=np.array([reward]),
                    dones=np.array([done]), infos=[info], actions=np.asarray(env_action)[None]):
                return False
            if done:
                return True

    def _train(self, episodes: list[dict[str, Any]]) -> None:
        """One gradient step on a batch of whole episodes (concatenated along time)."""
        cfg, policy = self.config, self.policy
        lengths = [len(e["rewards"]) for e in episodes]
        total = sum(lengths)
        as_tensor = lambda a: torch.as_tensor(a, device=self.device)  # noqa: E731
        # All states plus each episode's final observation, through the network at once.
        obs = as_tensor(np.concatenate([e["obs"] for e in episodes]))
        params, all_values = policy(obs)
        last = np.cumsum([n + 1 for n in lengths]) - 1  # row of each final observation
        step_rows = np.setdiff1d(np.arange(len(obs)), last)
        params, values = params[step_rows], all_values[step_rows]  # (total, P), (total,)
        rewards = as_tensor(np.concatenate([e["rewards"] for e in episodes]))
        ends = np.cumsum(lengths) - 1  # last step of each episode
        terminated = torch.zeros(total, dtype=torch.bool, device=self.device)
        truncated = torch.zeros_like(terminated)
        terminated[ends] = as_tensor([e["terminated"] for e in episodes])
        truncated[ends] = ~terminated[ends]
        next_values = torch.zeros(total, device=self.device)
        if cfg.bootstrap_truncated:
            next_values[ends] = all_values[last].detach()
        returns = discounted_returns(rewards, terminated, truncated, cfg.gamma, next_values)
        advantages = returns - values.detach() if cfg.baseline else returns.clone()
        if cfg.normalize_advantage and total > 1:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        actions = torch.cat([e["actions"] for e in episodes]).to(self.device)
        log_prob = policy.distribution.log_prob(params, actions)
        entropy = policy.distribution.entropy(params)
        policy_loss = -(advantages * log_prob).mean()
        # The critic is trained whenever it is used: as baseline or for truncated episodes.
        value_loss = ((returns - values).square().mean()
                      if cfg.baseline or cfg.bootstrap_truncated
                      else torch.zeros((), device=self.device))
        entropy_loss = -entropy.mean()
        loss = policy_loss + cfg.ent_coef * entropy_loss + cfg.vf_coef * value_loss
        for name, tensor in (("policy_loss", policy_loss), ("value_loss", value_loss),
                             ("entropy_loss", entropy_loss), ("loss", loss)):
            check_finite(name, tensor.detach(), self.num_timesteps)
        self._gradient_step(loss, cfg.max_grad_norm)
        # After the step: the next batch is played and trained with the same statistics.
        policy.update_observation_statistics(obs)
        rec = self.logger.record
        rec("train/loss", loss.item())
        rec("train/policy_loss", policy_loss.item())
        rec("train/value_loss", value_loss.item())
        rec("train/entropy_loss", entropy_loss.item())
        rec("train/explained_variance",
            explained_variance(values.detach(), returns, torch.ones_like(returns)))
        if isinstance(policy.distribution, DiagGaussianDistribution):
            rec("train/std", policy.distribution.log_std.exp().mean().item())

    # ----------------------------------------------------------------- checkpoint state
    def _restore_episode(self) -> None:
        """After ``load``: replay the episode in progress on the fresh env, or drop it (and
        its steps) with a warning if the env does not come back to it."""
        obs = self._replay.restore(self.env, self._loaded_replay)
        self._loaded_replay = None
        if obs is None or not np.array_equal(np.asarray(obs), np.asarray(self._episode["obs"][-1])):
            not_restored("unfinished episode")
            self._episode = None

    def _extra_state(self, save_replay_buffer: bool) -> dict[str, Any]:
        episode = self._episode
        if episode is not None:
            episode = {**episode, "obs": list(episode["obs"]), "actions": list(episode["actions"]),
                       "rewards": list(episode["rewards"])}
        return {**super()._extra_state(save_replay_buffer), "batch": list(self._batch),
                "episode": episode,
                "replay": (None if episode is None else self._loaded_replay
                           if self._loaded_replay is not None else self._replay.state_dict(self.env))}

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        super()._load_extra_state(extra)
        # Observations and rewards live as numpy, the sampled actions as tensors.
        self._batch = [{**as_numpy(e), "actions": e["actions"]} for e in extra.get("batch", [])]
        episode = extra.get("episode")
        if episode is not None:
            self._episode = {**as_numpy(episode), "actions": list(episode["actions"])}
            self._loaded_replay = as_numpy(extra["replay"])
