"""``TorchAgent``: what every deep agent shares on top of :class:`~mimicgym.agents.base.Agent`.

Device choice, a torch generator seeded from the agent's numpy rng, seeded network
construction, ``save``/``load`` of modules, optimizers, counters, rng states and episode
statistics (plus whatever the subclass adds in ``_extra_state``), and a Ctrl-C guard that
checkpoints at the next consistent point of ``learn`` when ``checkpoint_path`` is set.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator

import gymnasium as gym
import numpy as np
import torch

import mimicgym
from mimicgym.agents.base import Agent, env_id
from mimicgym.agents.checkpoint import load_checkpoint, save_checkpoint
from mimicgym.agents.logging import EpisodeStats
from mimicgym.agents.torch_utils import (check_finite, derive_seed, resolve_device, seed_everything,
                                         torch_seed_scope)

# learn(callback=...) receives the agent after every environment step; returning False stops.
Callback = Callable[["TorchAgent"], "bool | None"]


class TorchAgent(Agent):
    """Base of the torch agents. Subclasses list their ``nn.Module`` and optimizer attributes."""

    _modules: ClassVar[tuple[str, ...]] = ()
    _optimizers: ClassVar[tuple[str, ...]] = ()

    def __init__(self, env: gym.Env | str | None, *, seed: int = 0,
                 device: str | torch.device = "auto", deterministic: bool = False,
                 checkpoint_path: str | Path | None = None, **hyperparameters: Any):
        super().__init__(env, seed=seed, **hyperparameters)
        self.device = resolve_device(device)
        self.deterministic = bool(deterministic)
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path is not None else None
        self.torch_rng = seed_everything(self.rng, self.device, self.deterministic)
        self._interrupt_requested = False
        self._n_updates = 0  # gradient steps over the agent's life
        # The last env step's info (a vector env's: Gymnasium's dict of arrays with "_key"
        # masks), for callbacks that log what the env reports, e.g. reward terms.
        self.last_info: dict[str, Any] = {}

    def seeded_init(self) -> contextlib.AbstractContextManager:
        """Context for building networks: their initial weights follow from the agent's seed."""
        return torch_seed_scope(derive_seed(self.rng))

    # ----------------------------------------------------------------- checkpointing
    def _dump_logs(self, start_steps: int, start_time: float) -> None:
        """SB3's ``rollout/`` keys (means over the last 100 episodes) and ``time/`` keys,
        then one dump at ``num_timesteps``; subclasses record their own keys first."""
        stats = self.episode_stats
        if stats.returns:
            self.logger.record("rollout/ep_rew_mean", float(np.mean(stats.returns[-100:])))
            self.logger.record("rollout/ep_len_mean", float(np.mean(stats.lengths[-100:])))
        elapsed = max(time.perf_counter() - start_time, 1e-9)
        self.logger.record("time/fps", (self.num_timesteps - start_steps) / elapsed)
        self.logger.record("time/episodes", self.num_episodes)
        self.logger.record("train/n_updates", self._n_updates)
        self.logger.dump(self.num_timesteps)

    def _dump_remaining_logs(self, log_interval: int, start_steps: int, start_time: float) -> None:
        """At the end of ``learn``: what was recorded since the last interval's dump, so runs
        shorter than one interval log too (SB3 drops it)."""
        if log_interval and self.logger.has_pending:
            self._dump_logs(start_steps, start_time)

    def _extra_state(self, save_replay_buffer: bool) -> dict[str, Any]:
        """State beyond modules/optimizers/counters; subclasses extend it (buffers, schedules)."""
        return {"n_updates": self._n_updates}

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        self._n_updates = int(extra["n_updates"])

    def save(self, path: str | Path, save_replay_buffer: bool = True) -> Path:
        """Everything needed to resume training exactly, written atomically to ``path``."""
        payload = {
            "class": type(self).__name__,
            "mimicgym_version": mimicgym.__version__,
            "env_id": env_id(self.env),
            "seed": self.seed,
            "deterministic": self.deterministic,
            "config": self.hyperparameters,
            "num_timesteps": self.num_timesteps,
            "num_episodes": self.num_episodes,
            "rng_state": self.rng.bit_generator.state,
            "torch_rng_state": self.torch_rng.get_state(),
            "episode_returns": list(self.episode_stats.returns),
            "episode_lengths": list(self.episode_stats.lengths),
            "modules": {name: getattr(self, name).state_dict() for name in self._modules},
            "optimizers": {name: getattr(self, name).state_dict() for name in self._optimizers},
            "extra": self._extra_state(save_replay_buffer),
        }
        return save_checkpoint(path, payload)

    @classmethod
    def load(cls, path: str | Path, env: gym.Env | str | None = None,
             device: str | torch.device = "auto", **kwargs: Any) -> "TorchAgent":
        """Rebuild an agent from ``save``'s file; ``env`` defaults to the recorded env id."""
        payload = load_checkpoint(path, map_location="cpu", expected_class=cls.__name__)
        env = env if env is not None else payload.get("env_id")
        if env is None:
            raise ValueError(f"{path} records no env id; pass env= to load()")
        agent = cls(env, seed=payload["seed"], device=device,
                    deterministic=payload.get("deterministic", False), **payload["config"], **kwargs)
        for group, names in (("modules", cls._modules), ("optimizers", cls._optimizers)):
            states = payload.get(group, {})
            for name in names:
                if name not in states:
                    raise ValueError(f"{path}: missing {group[:-1]} state {name!r}")
                try:
                    getattr(agent, name).load_state_dict(states[name])
                except (RuntimeError, ValueError, KeyError) as e:
                    raise ValueError(f"{path}: {group[:-1]} state {name!r} does not fit this "
                                     f"agent ({e})") from e
        agent.num_timesteps = int(payload["num_timesteps"])
        agent.num_episodes = int(payload["num_episodes"])
        agent.rng.bit_generator.state = payload["rng_state"]
        agent.torch_rng.set_state(payload["torch_rng_state"])
        agent.episode_stats = EpisodeStats()
        for r, n in zip(payload["episode_returns"], payload["episode_lengths"]):
            agent.episode_stats.add(r, n)
        agent._load_extra_state(payload["extra"])
        return agent

    # ----------------------------------------------------------------- Ctrl-C handling
    @contextlib.contextmanager
    def _interrupt_guard(self) -> Iterator[None]:
        """During ``learn``: the first Ctrl-C only sets a flag that ``_check_interrupt`` acts on.

        The training loop checks the flag between environment steps, where the agent's state
        is consistent, then saves (if ``checkpoint_path`` is set) and raises
        ``KeyboardInterrupt``. A second Ctrl-C gets Python's default behaviour.
        """
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.getsignal(signal.SIGINT)

        def request(signum, frame):
            self._interrupt_requested = True
            signal.signal(signal.SIGINT, previous)

        signal.signal(signal.SIGINT, request)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
            self._interrupt_requested = False

    def _check_interrupt(self) -> None:
        if self._interrupt_requested:
            self._interrupt_requested = False
            if self.checkpoint_path is not None:
                self.save(self.checkpoint_path)
                raise KeyboardInterrupt(f"training interrupted at step {self.num_timesteps}; "
                                        f"checkpoint saved to {self.checkpoint_path}")
            raise KeyboardInterrupt(f"training interrupted at step {self.num_timesteps}")


class PolicyAgent(TorchAgent):
    """A torch agent that acts through ``self.policy`` (an ``ActorCritic``) and improves it
    with ``self.optimizer``: REINFORCE and A2C."""

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        """Actions for one observation or a batch (SB3 signature; ``state`` passes through)."""
        from mimicgym.agents.policies import predict_actions

        return predict_actions(self.policy, observation, self.observation_space, self.action_space,
                               deterministic, self.torch_rng, self.device), state

    def _gradient_step(self, loss: torch.Tensor, max_grad_norm: float) -> None:
        """One optimizer step on ``loss`` with the gradient norm clipped; a non-finite norm
        stops training naming the step."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.policy.parameters(), max_grad_norm)
        check_finite("grad_norm", grad_norm, self.num_timesteps)
        self.optimizer.step()
        self._n_updates += 1
