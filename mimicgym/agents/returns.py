"""Return and advantage estimators: discounted Monte Carlo returns, n-step returns, GAE.

Pure tensor functions over a trajectory laid out time first, ``(T, *B)`` (``B``: any batch
shape, e.g. the vector env's ``n_envs``). They share one convention for episode ends:

- ``rewards[t]``: reward of the transition ``s_t -> s_{t+1}``.
- ``next_values[t]``: ``V(s_{t+1})``, the value of the observation that followed step ``t``
  (on truncation: the *final* observation of the episode, not the reset one).
- ``terminated[t]``: ``s_{t+1}`` is terminal, its value is 0: no bootstrap.
- ``truncated[t]``: the episode was cut after step ``t`` (time limit): ``s_{t+1}`` is not
  terminal, so the return bootstraps from ``next_values[t]``.

Either flag ends the episode, so nothing flows backwards across it. The end of the data
(``t = T - 1`` with no flag) is treated as a truncation: the estimate bootstraps from
``next_values[T - 1]``, which is how a rollout of ``n_steps`` is cut (Mnih et al. 2016).
"""

from __future__ import annotations

import torch


def _check_shapes(**tensors: torch.Tensor | None) -> None:
    shapes = {name: tuple(t.shape) for name, t in tensors.items() if t is not None}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"trajectory tensors must share one (T, *B) shape, got {shapes}")
    if next(iter(shapes.values()))[0] == 0:
        raise ValueError("empty trajectory (T = 0)")


def discounted_returns(rewards: torch.Tensor, terminated: torch.Tensor, truncated: torch.Tensor,
                       gamma: float, next_values: torch.Tensor | None = None) -> torch.Tensor:
    """Monte Carlo returns ``G_t = r_t + gamma * G_{t+1}``, restarted at every episode end.

    At a truncation (and at the end of the data) ``G_{t+1}`` is replaced by
    ``next_values[t]``; without ``next_values`` it is 0, the plain textbook return.
    Returns a float tensor of the shape of ``rewards``.
    """
    _check_shapes(rewards=rewards, terminated=terminated, truncated=truncated,
                  next_values=next_values)
    rewards = rewards.float()
    bootstrap = torch.zeros_like(rewards) if next_values is None else next_values.float()
    not_terminal = (~terminated.bool()).float()
    cut = (terminated.bool() | truncated.bool()).float()  # 1 where the episode ended
    returns = torch.empty_like(rewards)
    following = bootstrap[-1] * not_terminal[-1]  # G_T: the data ends as if truncated
    for t in range(rewards.shape[0] - 1, -1, -1):
        tail = cut[t] * bootstrap[t] * not_terminal[t] + (1.0 - cut[t]) * following
        following = rewards[t] + gamma * tail
        returns[t] = following
    return returns


def nstep_returns(rewards: torch.Tensor, next_values: torch.Tensor, terminated: torch.Tensor,
                  truncated: torch.Tensor, gamma: float, n: int | None = None) -> torch.Tensor:
    """n-step returns ``G_t^(n) = sum_{k<m} gamma^k r_{t+k} + gamma^m V(s_{t+m})``.

    ``m = n``, or fewer where the episode or the data ends first; the bootstrap term is 0
    when the episode terminated. ``n=None`` runs every chain to the end of the data (the
    A3C return of Mnih et al. 2016); ``n=1`` is the one-step TD target.
    Loops over the horizon ``k`` (not over ``t``): ``n`` tensor ops on slices.
    """
    _check_shapes(rewards=rewards, terminated=terminated, truncated=truncated,
                  next_values=next_values)
    length = rewards.shape[0]
    horizon = length if n is None else int(n)
    if horizon < 1:
        raise ValueError(f"n must be >= 1 or None, got {n!r}")
    horizon = min(horizon, length)
    rewards, next_values = rewards.float(), next_values.float()
    ended = terminated.bool() | truncated.bool()
    not_terminal = (~terminated.bool()).float()
    returns = torch.zeros_like(rewards)
    alive = torch.ones_like(ended)  # chain from t has not yet met an episode end
    for k in range(horizon):
        span = length - k  # chains t = 0..span-1 look at step t + k
        live = alive[:span]
        returns[:span] += live.float() * gamma**k * rewards[k:]
        # The chain stops at step t+k: episode end, horizon reached, or data exhausted.
        stop = ended[k:].clone()
        stop[-1] = True
        if k == horizon - 1:
            stop[:] = True
        stop &= live
        returns[:span] += stop.float() * gamma ** (k + 1) * not_terminal[k:] * next_values[k:]
        alive[:span] = live & ~stop
    return returns


def gae(rewards: torch.Tensor, values: torch.Tensor, next_values: torch.Tensor,
        terminated: torch.Tensor, truncated: torch.Tensor, gamma: float, gae_lambda: float
        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016); returns ``(advantages, returns)``.

    ``delta_t = r_t + gamma * V(s_{t+1}) * (1 - terminated_t) - V(s_t)`` (the one-step
    advantage), ``A_t = delta_t + gamma * lambda * A_{t+1}`` within an episode;
    ``returns = A + V`` are the critic's targets. ``lambda = 0`` gives the TD error,
    ``lambda = 1`` the n-step advantage ``nstep_returns(n=None) - V``.
    """
    _check_shapes(rewards=rewards, values=values, next_values=next_values,
                  terminated=terminated, truncated=truncated)
    if not (0.0 <= gae_lambda <= 1.0):
        raise ValueError(f"gae_lambda must lie in [0, 1], got {gae_lambda!r}")
    rewards, values, next_values = rewards.float(), values.float(), next_values.float()
    not_terminal = (~terminated.bool()).float()
    continues = (~(terminated.bool() | truncated.bool())).float()
    deltas = rewards + gamma * not_terminal * next_values - values  # (T, *B)
    advantages = torch.empty_like(deltas)
    following = torch.zeros_like(deltas[0])
    for t in range(deltas.shape[0] - 1, -1, -1):
        following = deltas[t] + gamma * gae_lambda * continues[t] * following
        advantages[t] = following
    return advantages, advantages + values


def explained_variance(predictions: torch.Tensor, targets: torch.Tensor,
                       mask: torch.Tensor) -> float:
    """``1 - Var[G - V] / Var[G]`` over the masked entries (NaN when the targets are constant)."""
    n = mask.sum().clamp(min=1.0)
    var = lambda x: ((x - (x * mask).sum() / n).square() * mask).sum() / n  # noqa: E731
    var_targets = var(targets)
    if var_targets.item() == 0.0:
        return float("nan")
    return float(1.0 - var(targets - predictions) / var_targets)
