"""``TorchAgent``: what every deep agent shares on top of :class:`~mimicgym.agents.base.Agent`.

Device choice, a torch generator seeded from the agent's numpy rng, seeded network
construction, ``save``/``load`` of modules, optimizers, counters, rng states, episode
statistics and the log (plus what the subclass adds in ``_extra_state``: buffers, schedules,
where its envs and the unfinished episode or rollout stand), training with subnormal floats
flushed to zero, and a checkpoint at the Ctrl-C stop when ``checkpoint_path`` is set.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from mimicgym.agents.base import Agent
from mimicgym.agents.checkpoint import load_checkpoint, save_checkpoint
from mimicgym.errors import CheckpointError
from mimicgym.utils.checks import check_finite_input
from mimicgym.utils.torch_utils import (
    check_finite,
    derive_seed,
    flush_denormals,
    resolve_device,
    seed_everything,
    torch_seed_scope,
)


class TorchAgent(Agent):
    """Base of the torch agents. Subclasses list their ``nn.Module`` and optimizer attributes."""

    _modules: ClassVar[tuple[str, ...]] = ()
    _optimizers: ClassVar[tuple[str, ...]] = ()
    uses_device = True

    def __init__(self, env: gym.Env | str | None, *, seed: int = 0,
                 device: str | torch.device = "auto", deterministic: bool = False,
                 checkpoint_path: str | Path | None = None, **hyperparameters: Any):
        super().__init__(env, seed=seed, **hyperparameters)
        self.device = resolve_device(device)
        self.deterministic = bool(deterministic)
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path is not None else None
        self.torch_rng = seed_everything(self.rng, self.device, self.deterministic)
        self._n_updates = 0  # gradient steps over the agent's life

    def seeded_init(self) -> contextlib.AbstractContextManager:
        """Context for building networks: their initial weights follow from the agent's seed."""
        return torch_seed_scope(derive_seed(self.rng))

    # ----------------------------------------------------------------- learn's scaffolding
    def _numerics(self) -> contextlib.AbstractContextManager:
        # Adam's decaying second moments reach subnormal floats, where a CPU step is ~6x slower.
        return flush_denormals()

    def _save_on_interrupt(self) -> str:
        if self.checkpoint_path is None:
            return ""
        self.save(self.checkpoint_path)
        return f"; checkpoint saved to {self.checkpoint_path}"

    def _record_train_metrics(self) -> None:
        self.logger.record("train/n_updates", self._n_updates)

    # ----------------------------------------------------------------- checkpointing
    def _extra_state(self, save_replay_buffer: bool) -> dict[str, Any]:
        """State beyond modules/optimizers/counters; subclasses extend it (buffers, schedules)."""
        return {"n_updates": self._n_updates}

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        self._n_updates = int(extra["n_updates"])

    def save(self, path: str | Path, save_replay_buffer: bool = True) -> Path:
        """Everything needed to resume training exactly, written atomically to ``path``."""
        payload = {
            **self._metadata(),
            "deterministic": self.deterministic,
            "torch_rng_state": self.torch_rng.get_state(),
            "resume": self._resume_state(),
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
            raise CheckpointError(f"{path} records no env id; pass env= to load()")
        agent = cls(env, seed=payload["seed"], device=device,
                    deterministic=payload.get("deterministic", False), **payload["config"], **kwargs)
        for group, names in (("modules", cls._modules), ("optimizers", cls._optimizers)):
            states = payload.get(group, {})
            for name in names:
                if name not in states:
                    raise CheckpointError(f"{path}: missing {group[:-1]} state {name!r}")
                try:
                    getattr(agent, name).load_state_dict(states[name])
                except (RuntimeError, ValueError, KeyError) as e:
                    raise CheckpointError(f"{path}: {group[:-1]} state {name!r} does not fit this "
                                     f"agent ({e})") from e
        agent.num_timesteps = int(payload["num_timesteps"])
        agent.num_episodes = int(payload["num_episodes"])
        agent.rng.bit_generator.state = payload["rng_state"]
        agent.torch_rng.set_state(payload["torch_rng_state"])
        # Files of the first format kept the episode statistics at the top level.
        agent._load_resume_state(payload.get("resume", payload))
        agent._load_extra_state(payload["extra"])
        return agent


class PolicyAgent(TorchAgent):
    """A torch agent that acts through ``self.policy`` (an ``ActorCritic``) and improves it
    with ``self.optimizer``: REINFORCE, and A2C and PPO through their on-policy base."""

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        """Actions for one observation or a batch (SB3 signature; ``state`` passes through)."""
        from mimicgym.agents.policies import predict_actions

        if self.check_finite_inputs:
            check_finite_input("observation", np.asarray(observation))
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
