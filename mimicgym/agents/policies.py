"""Actor-critic networks and the action distributions of the policy-gradient agents.

Distributions are small modules acting on the actor's raw output (logits or means), with
no ``torch.distributions`` objects: A2C samples one action per env step, where building a
distribution object costs more than the arithmetic. Sampling draws from the agent's
``torch.Generator``, so a seed fixes every action.
"""

from __future__ import annotations

import math
from typing import Sequence

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mimicgym.agents.networks import make_encoder, mlp
from mimicgym.agents.normalization import RunningObservationNormalizer
from mimicgym.errors import ConfigError
from mimicgym.utils.checks import check_choice, check_positive, check_probability

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


class CategoricalDistribution(nn.Module):
    """pi(a|s) = softmax(logits)_a over ``Discrete(n)`` actions."""

    def __init__(self, n: int):
        super().__init__()
        self.n_params = int(n)

    def sample(self, logits: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        # Gumbel-max: argmax(logits + Gumbel noise) ~ softmax(logits); three elementwise ops,
        # about half the time of torch.multinomial on a (8, 2) batch.
        uniform = torch.rand(logits.shape, generator=generator, device=logits.device)
        return (logits - uniform.log_().neg_().log_()).argmax(dim=-1)  # (B,)

    def mode(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.argmax(dim=-1)

    def log_prob(self, logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits, dim=-1)
        return log_p.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)  # (B,)

    def entropy(self, logits: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits, dim=-1)
        return -(log_p.exp() * log_p).sum(-1)  # (B,)


class DiagGaussianDistribution(nn.Module):
    """pi(a|s) = N(mu(s), diag(sigma^2)) with a learned, state-independent ``log_std``."""

    def __init__(self, action_dim: int, log_std_init: float = 0.0):
        super().__init__()
        self.n_params = int(action_dim)
        self.log_std = nn.Parameter(torch.full((int(action_dim),), float(log_std_init)))

    def sample(self, mean: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + self.log_std.exp() * noise  # (B, d)

    def mode(self, mean: torch.Tensor) -> torch.Tensor:
        return mean

    def log_prob(self, mean: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        z = (actions - mean) * torch.exp(-self.log_std)  # (B, d)
        return (-0.5 * z.square() - self.log_std - _LOG_SQRT_2PI).sum(-1)  # (B,)

    def entropy(self, mean: torch.Tensor) -> torch.Tensor:
        per_dim = 0.5 + _LOG_SQRT_2PI + self.log_std  # (d,)
        return per_dim.sum().expand(mean.shape[0])  # (B,)


def make_distribution(action_space: gym.Space, log_std_init: float = 0.0) -> nn.Module:
    if isinstance(action_space, gym.spaces.Discrete):
        return CategoricalDistribution(int(action_space.n))
    if isinstance(action_space, gym.spaces.Box) and np.issubdtype(action_space.dtype, np.floating):
        return DiagGaussianDistribution(int(np.prod(action_space.shape)), log_std_init)
    raise TypeError(f"unsupported action space {action_space}; use Discrete or a float Box")


def check_actor_critic_hyperparameters(config, check_learning_rate: bool = True) -> None:
    """The checks A2C's, REINFORCE's and PPO's configs share, by field name; normalises a list
    ``net_arch`` to ints in place. (PPO checks its learning rate schedule itself.)"""
    if check_learning_rate:
        check_positive("learning_rate", config.learning_rate)
    check_probability("gamma", config.gamma)
    check_positive("ent_coef", config.ent_coef, allow_zero=True)
    check_positive("vf_coef", config.vf_coef, allow_zero=True)
    check_positive("max_grad_norm", config.max_grad_norm)
    check_choice("activation", config.activation, ACTIVATIONS)
    split_net_arch(config.net_arch)  # validates widths and dict keys
    if not isinstance(config.net_arch, dict):
        config.net_arch = [int(w) for w in config.net_arch]


# SB3's policy_kwargs -> the config fields our actor-critic agents build their network from
_POLICY_KWARGS = {"net_arch": "net_arch", "activation_fn": "activation", "log_std_init": "log_std_init",
                  "ortho_init": "ortho_init"}


def fold_policy_kwargs(config) -> None:
    """Move SB3's ``config.policy_kwargs`` (``net_arch``, ``activation_fn`` as a name or an
    ``nn.Module`` class, ``log_std_init``, ``ortho_init``) into the config's own fields, in place,
    and set it to None: saved configs keep plain values."""
    kwargs = config.policy_kwargs
    if kwargs is None:
        return
    if not isinstance(kwargs, dict):
        raise ConfigError(f"policy_kwargs must be a dict, got {kwargs!r}")
    for key, value in kwargs.items():
        if key not in _POLICY_KWARGS:
            raise ConfigError(f"policy_kwargs[{key!r}] is not supported; supported keys: {', '.join(_POLICY_KWARGS)}")
        if key == "activation_fn" and not isinstance(value, str):  # nn.Tanh -> "tanh"
            value = getattr(value, "__name__", repr(value)).lower()
        setattr(config, _POLICY_KWARGS[key], value)
    config.policy_kwargs = None


def split_net_arch(net_arch: Sequence[int] | dict) -> tuple[list[int], list[int]]:
    """SB3's ``net_arch``: a list (same widths for actor and critic) or ``dict(pi=..., vf=...)``."""
    if isinstance(net_arch, dict):
        if set(net_arch) != {"pi", "vf"}:
            raise ValueError(f"net_arch dict needs exactly the keys 'pi' and 'vf', "
                             f"got {net_arch!r}")
        pi, vf = list(net_arch["pi"]), list(net_arch["vf"])
    else:
        pi = vf = list(net_arch)
    for width in pi + vf:
        if not isinstance(width, (int, np.integer)) or width <= 0:
            raise ValueError(f"net_arch widths must be positive ints, got {net_arch!r}")
    return pi, vf


class ActorCritic(nn.Module):
    """Encoder -> actor MLP -> distribution parameters, and encoder -> critic MLP -> V(s).

    ``shared=True`` uses one MLP trunk (``net_arch`` must then be a list) with two linear
    heads; otherwise actor and critic have separate MLPs after the common encoder (the
    encoder is the identity-like flatten/one-hot for vectors, the CNN for images).
    Orthogonal initialisation follows SB3/A2C: gain sqrt(2) in hidden layers, 0.01 on the
    policy head (near-uniform initial policy), 1 on the value head.
    ``normalize_observations`` puts a :class:`RunningObservationNormalizer` in front (float
    ``Box`` observations only); the agent updates its statistics.
    """

    def __init__(self, observation_space: gym.Space, action_space: gym.Space,
                 net_arch: Sequence[int] | dict = (64, 64), activation: str = "tanh",
                 shared: bool = False, log_std_init: float = 0.0, ortho_init: bool = True,
                 normalize_observations: bool = False):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.obs_normalizer: RunningObservationNormalizer | None = None
        if normalize_observations:
            if not (isinstance(observation_space, gym.spaces.Box)
                    and np.issubdtype(observation_space.dtype, np.floating)):
                raise ValueError(f"normalize_observations needs a float Box observation space, "
                                 f"got {observation_space}")
            self.obs_normalizer = RunningObservationNormalizer(observation_space.shape)
        act = ACTIVATIONS[activation]
        pi_arch, vf_arch = split_net_arch(net_arch)
        if shared and isinstance(net_arch, dict):
            raise ValueError(f"a shared actor-critic takes a list net_arch, got {net_arch!r}")
        self.encoder, n_features = make_encoder(observation_space)
        self.distribution = make_distribution(action_space, log_std_init)
        self.shared = bool(shared)
        self.pi_net = mlp(n_features, pi_arch, None, act)
        self.vf_net = self.pi_net if shared else mlp(n_features, vf_arch, None, act)
        self.action_head = nn.Linear(pi_arch[-1] if pi_arch else n_features,
                                     self.distribution.n_params)
        self.value_head = nn.Linear(vf_arch[-1] if vf_arch else n_features, 1)
        if ortho_init:
            self._orthogonal_init()

    def _orthogonal_init(self) -> None:
        for net in {id(m): m for m in (self.pi_net, self.vf_net)}.values():
            for layer in net.modules():
                if isinstance(layer, nn.Linear):
                    nn.init.orthogonal_(layer.weight, gain=math.sqrt(2.0))
                    nn.init.zeros_(layer.bias)
        for head, gain in ((self.action_head, 0.01), (self.value_head, 1.0)):
            nn.init.orthogonal_(head.weight, gain=gain)
            nn.init.zeros_(head.bias)

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        if self.obs_normalizer is not None:
            obs = self.obs_normalizer(obs)
        return self.encoder(obs)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Distribution parameters ``(B, n_params)`` and values ``(B,)`` in one pass."""
        features = self.features(obs)
        pi_latent = self.pi_net(features)
        vf_latent = pi_latent if self.shared else self.vf_net(features)
        return self.action_head(pi_latent), self.value_head(vf_latent).squeeze(-1)

    def actor(self, obs: torch.Tensor) -> torch.Tensor:
        """Distribution parameters only: what acting needs (the critic is skipped)."""
        return self.action_head(self.pi_net(self.features(obs)))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.value_head(self.vf_net(self.features(obs))).squeeze(-1)

    def update_observation_statistics(self, obs: torch.Tensor) -> None:
        """Merge a batch into the normaliser's statistics (no-op without one)."""
        if self.obs_normalizer is not None:
            self.obs_normalizer.update(obs)


def actions_to_env(actions: torch.Tensor, action_space: gym.Space) -> np.ndarray:
    """Policy samples ``(B,)`` / ``(B, d)`` -> env actions (Discrete offset, Box clipped)."""
    actions = actions.detach().cpu().numpy()
    if isinstance(action_space, gym.spaces.Discrete):
        return (actions + action_space.start).astype(action_space.dtype)
    actions = actions.reshape((actions.shape[0], *action_space.shape))
    return np.clip(actions, action_space.low, action_space.high).astype(action_space.dtype)


def predict_actions(policy: ActorCritic, observation, observation_space: gym.Space,
                    action_space: gym.Space, deterministic: bool,
                    generator: torch.Generator | None, device: torch.device) -> np.ndarray:
    """SB3-style ``predict``: one observation -> one action, a batch -> a batch of actions."""
    obs = np.asarray(observation)
    single_shape = tuple(observation_space.shape)
    if obs.shape == single_shape:
        batch, single = obs[None], True
    elif obs.shape[1:] == single_shape and obs.ndim == len(single_shape) + 1:
        batch, single = obs, False
    else:
        raise ValueError(f"observation of shape {obs.shape} fits neither one observation of "
                         f"{observation_space} (shape {single_shape}) nor a batch of them")
    with torch.no_grad():
        params = policy.actor(torch.as_tensor(batch, device=device))
        dist = policy.distribution
        actions = dist.mode(params) if deterministic else dist.sample(params, generator)
    env_actions = actions_to_env(actions, action_space)
    return env_actions[0] if single else env_actions
