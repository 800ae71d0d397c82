"""Trained imitation policies that ship with the package: ``policy, env = pretrained.load("walk")``.

A shipped policy is the acting half of a PPO agent (observation normaliser, actor MLP, action
head and log-std; no critic, no optimiser) in a small torch file beside this module, with the
env id and keywords it was trained on and how it was trained. ``load`` rebuilds both::

    from mimicgym import pretrained
    policy, env = pretrained.load("walk")
    obs, _ = env.reset(seed=0)
    action, _ = policy.predict(obs, deterministic=True)   # any normalisation is inside

``export`` writes such a file from a run directory of ``mimicgym train --agent ppo``. The files
are agent checkpoints (class ``ActorPolicy``): written atomically, read with ``weights_only=True``
(tensors, numbers and strings only, nothing that runs code), a checksum over every entry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from torch import nn

from mimicgym.errors import ConfigError

CLASS = "ActorPolicy"
HERE = Path(__file__).parent
_ACTOR_KEYS = ("obs_normalizer.", "pi_net.", "action_head.", "distribution.")


def available() -> list[str]:
    """Names of the shipped policies."""
    return sorted(p.stem for p in HERE.glob("*.pt"))


class ActorPolicy(nn.Module):
    """The acting half of :class:`~mimicgym.agents.policies.ActorCritic` (same submodule names, so
    its state dict is the agent's minus the critic), with SB3's ``predict``."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, net_arch: list[int],
                 activation: str, normalize_observations: bool):
        from mimicgym.agents.networks import make_encoder, mlp
        from mimicgym.agents.normalization import RunningObservationNormalizer
        from mimicgym.agents.policies import ACTIVATIONS, make_distribution

        super().__init__()
        self.observation_space, self.action_space = observation_space, action_space
        self.obs_normalizer = (RunningObservationNormalizer(observation_space.shape)
                               if normalize_observations else None)
        self.encoder, n_features = make_encoder(observation_space)
        self.pi_net = mlp(n_features, net_arch, None, ACTIVATIONS[activation])
        self.distribution = make_distribution(action_space)
        self.action_head = nn.Linear(net_arch[-1] if net_arch else n_features, self.distribution.n_params)

    def actor(self, obs: torch.Tensor) -> torch.Tensor:
        if self.obs_normalizer is not None:
            obs = self.obs_normalizer(obs)
        return self.action_head(self.pi_net(self.encoder(obs)))

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True,
                generator: torch.Generator | None = None):
        """Actions for one observation or a batch (SB3's signature; ``state`` passes through)."""
        from mimicgym.agents.policies import predict_actions

        return predict_actions(self, observation, self.observation_space, self.action_space,
                               deterministic, generator, torch.device("cpu")), state


def export(run_dir: str | Path, out: str | Path, **training: Any) -> Path:
    """The policy of a finished PPO run (its ``model.pt``) as a shipped-policy file at ``out``;
    ``training`` (samples, normalised return...) is recorded beside it. The file's env is the
    run's evaluation env (a run trained on a shaped reward ships with the reward it is scored
    by); the training keywords are recorded under ``training``."""
    from mimicgym.agents.checkpoint import load_checkpoint, save_checkpoint
    from mimicgym.agents.policies import split_net_arch
    from mimicgym.runs.directory import find_model, run_config

    run_dir = Path(run_dir)
    cfg = run_config(run_dir)
    if cfg.agent != "ppo":
        raise ConfigError(f"{run_dir}: export takes runs of our PPO, this one trained {cfg.agent!r}")
    checkpoint = load_checkpoint(find_model(run_dir), map_location="cpu", expected_class="PPO")
    config = checkpoint["config"]
    if config.get("shared_actor_critic"):
        raise ConfigError(f"{run_dir}: a shared actor-critic trunk cannot be split off its critic")
    state = {k: v for k, v in checkpoint["modules"]["policy"].items() if k.startswith(_ACTOR_KEYS)}
    training = {"env_kwargs": dict(cfg.env_kwargs), **training} if cfg.eval_env_kwargs else training
    payload = {"class": CLASS, "env_id": cfg.env, "env_kwargs": {**cfg.env_kwargs, **cfg.eval_env_kwargs},
               "net_arch": split_net_arch(config["net_arch"])[0], "activation": config["activation"],
               "normalize_observations": bool(config["normalize_observations"]),
               "state_dict": state, "training": {"agent": "ppo", "seed": cfg.seed, **training}}
    return save_checkpoint(out, payload)


def read(path: str | Path) -> dict[str, Any]:
    """A shipped-policy file's contents, format and checksum verified."""
    from mimicgym.agents.checkpoint import load_checkpoint

    return load_checkpoint(path, map_location="cpu", expected_class=CLASS)


def load(name: str, **env_kwargs: Any) -> tuple[ActorPolicy, gym.Env]:
    """The shipped policy ``name`` (or a path to a policy file) and its env, made with the
    keywords it was trained on updated by ``env_kwargs`` (e.g. ``render_mode="rgb_array"``)."""
    path = Path(name) if str(name).endswith(".pt") else HERE / f"{name}.pt"
    if not path.is_file():
        raise ConfigError(f"no pretrained policy {name!r}; shipped: {', '.join(available()) or 'none'}")
    payload = read(path)
    env = gym.make(payload["env_id"], **{**payload["env_kwargs"], **env_kwargs})
    policy = ActorPolicy(env.observation_space, env.action_space, payload["net_arch"],
                         payload["activation"], payload["normalize_observations"])
    try:
        policy.load_state_dict(payload["state_dict"])
    except RuntimeError as e:
        env.close()
        raise ConfigError(f"{path}: weights do not fit {payload['env_id']}'s spaces: {e}") from None
    return policy.eval(), env


def describe(name: str) -> dict[str, Any]:
    """What a shipped policy says of itself: env, keywords and how it was trained."""
    payload = read(HERE / f"{name}.pt")
    return {k: payload[k] for k in ("env_id", "env_kwargs", "net_arch", "activation", "training")}


__all__ = ["ActorPolicy", "available", "describe", "export", "load", "read"]
