"""Dynamic programming on the exact model of a finite MDP (Sutton & Barto, ch. 4).

Every function works on the sparse :class:`~mimicgym.envs.tabular.TabularModel`
(``next_states``/``probs``/``rewards`` of shape ``(S, A, K)``) and never builds the dense
``(S, A, S)`` tensor. A Bellman backup is ``K`` gathers ``V[s'_k]`` weighted by ``gamma * p_k``
and summed; the arrays are laid out successor-slot-major (``(K, A * S)``) so each of the
``K`` gathers, products and sums runs over one contiguous array into preallocated buffers.

Terminal states are absorbing zero-reward self-loops in the model, so they need no special
case here and their values come out 0. Sweeps are synchronous (Jacobi: the new ``V`` is
computed from the old one), which is what vectorising over states means; the book's
in-place variant converges to the same fixed point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import gymnasium as gym
import numpy as np

from mimicgym.agents.base import TabularAgent, check_policy
from mimicgym.envs.tabular import TabularModel
from mimicgym.utils.checks import check_positive, check_positive_int, check_probability

# States above which the exact linear solve refuses: its dense (S, S) float64 matrix would
# exceed 200 MB. scipy (whose sparse solver would lift the limit) is not a dependency.
EXACT_SOLVE_MAX_STATES = 5_000


# on_iteration(iteration, values) after each sweep or improvement round; False stops.
IterationHook = Callable[[int, np.ndarray], "bool | None"]


class DPResult(NamedTuple):
    values: np.ndarray  # (S,) state values
    policy: np.ndarray  # (S, A) greedy policy, one-hot rows
    q_values: np.ndarray  # (S, A) one-step lookahead of ``values``
    iterations: int  # sweeps (value iteration) or improvement steps (policy iteration)


class _Backup:
    """Precomputed sparse Bellman backups ``R + gamma * sum_k p_k V[s'_k]`` for one model."""

    def __init__(self, model: TabularModel, gamma: float):
        check_probability("gamma", gamma)
        n_states, n_actions, n_slots = model.next_states.shape
        self.shape = (n_states, n_actions)
        # (K, A * S): slot-major, then action-major, so q.reshape(A, S)[a] is contiguous.
        self.next_states = np.ascontiguousarray(model.next_states.transpose(2, 1, 0)).reshape(n_slots, -1)
        self.weights = gamma * np.ascontiguousarray(model.probs.transpose(2, 1, 0)).reshape(n_slots, -1)
        self.rewards = np.ascontiguousarray(model.R.T).reshape(-1)  # (A * S,)
        self._gathered = np.empty(n_actions * n_states)

    def q_values(self, values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(A, S) action values of ``values`` (note: action-major; ``.T`` for (S, A))."""
        n_states, n_actions = self.shape
        q = np.empty(n_actions * n_states) if out is None else out.reshape(-1)
        q[:] = self.rewards
        for idx, w in zip(self.next_states, self.weights):
            # TabularModel checked every index, and "clip" lets take() skip its error buffering.
            np.take(values, idx, out=self._gathered, mode="clip")
            self._gathered *= w
            q += self._gathered
        return q.reshape(n_actions, n_states)


def _check_policy(model: TabularModel, policy: np.ndarray) -> np.ndarray:
    return check_policy(policy, (model.n_states, model.n_actions))


def uniform_policy(model: TabularModel) -> np.ndarray:
    """(S, A) equiprobable random policy."""
    return np.full((model.n_states, model.n_actions), 1.0 / model.n_actions)


def greedy_policy(q_values: np.ndarray, previous: np.ndarray | None = None, atol: float = 1e-10) -> np.ndarray:
    """(S, A) one-hot greedy policy of ``q_values`` (S, A), ties to the first maximum.

    With ``previous`` (a deterministic policy), a state keeps its old action whenever that
    action is still within ``atol`` of the maximum, so policy iteration cannot cycle between
    equally good policies (the bug S&B's Exercise 4.4 asks about).
    """
    n_states = q_values.shape[0]
    best = q_values.max(1, keepdims=True)
    actions = np.argmax(q_values >= best - atol, axis=1)
    if previous is not None:
        old = previous.argmax(1)
        keep = q_values[np.arange(n_states), old] >= best[:, 0] - atol
        actions = np.where(keep, old, actions)
    policy = np.zeros_like(q_values)
    policy[np.arange(n_states), actions] = 1.0
    return policy


def _policy_mixture(model: TabularModel, policy: np.ndarray, gamma: float):
    """Expected reward ``r_pi`` (S,) and the successor lists of the policy's Markov chain.

    Returns ``r_pi``, successor indices ``(A * K, S)`` and weights ``gamma * pi * p``.
    """
    r_pi = np.einsum("sa,sa->s", policy, model.R)
    weights = gamma * policy[:, :, None] * model.probs  # (S, A, K)
    n_states = model.n_states
    idx = np.ascontiguousarray(model.next_states.reshape(n_states, -1).T)
    return r_pi, idx, np.ascontiguousarray(weights.reshape(n_states, -1).T)


def policy_evaluation(model: TabularModel, policy: np.ndarray, gamma: float = 1.0, tol: float = 1e-10,
                      max_iterations: int = 100_000, values: np.ndarray | None = None) -> np.ndarray:
    """Iterative policy evaluation: sweep ``V <- r_pi + gamma P_pi V`` until ``max |dV| < tol``.

    ``policy`` is (S, A) action probabilities; ``values`` an optional (S,) starting point.
    Raises ``RuntimeError`` if it has not converged after ``max_iterations`` sweeps (with
    ``gamma = 1`` the policy must reach a terminal state from every state).
    """
    policy = _check_policy(model, policy)
    check_probability("gamma", gamma)
    check_positive("tol", tol)
    r_pi, idx, weights = _policy_mixture(model, policy, gamma)
    v = np.zeros(model.n_states) if values is None else np.array(values, dtype=np.float64)
    v_new, gathered, diff = np.empty_like(v), np.empty_like(v), np.empty_like(v)
    for sweep in range(1, max_iterations + 1):
        v_new[:] = r_pi
        for i, w in zip(idx, weights):
            np.take(v, i, out=gathered, mode="clip")
            gathered *= w
            v_new += gathered
        np.subtract(v_new, v, out=diff)
        delta = np.abs(diff, out=diff).max()
        v, v_new = v_new, v
        if delta < tol:
            return v
        if not np.isfinite(delta):
            break
    raise RuntimeError(
        f"policy evaluation did not converge in {sweep} sweeps (last max |dV| = {delta:.3g}, "
        f"gamma={gamma}); with gamma=1 the policy must reach a terminal state from every state"
    )


def policy_transition_matrix(model: TabularModel, policy: np.ndarray) -> np.ndarray:
    """Dense (S, S) state-to-state matrix ``P_pi[s, s'] = sum_a pi(a|s) p(s'|s, a)``."""
    n_states = model.n_states
    weights = policy[:, :, None] * model.probs  # (S, A, K)
    rows = np.broadcast_to(np.arange(n_states)[:, None, None], model.next_states.shape)
    flat = (rows * n_states + model.next_states).reshape(-1)  # duplicates accumulate
    return np.bincount(flat, weights=weights.reshape(-1), minlength=n_states * n_states).reshape(n_states, n_states)


def policy_evaluation_exact(model: TabularModel, policy: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """Exact ``v_pi`` by solving ``(I - gamma P_pi) v = r_pi`` over the non-terminal states.

    Terminal values are 0 by definition, so their rows and columns drop out and the system
    stays regular at ``gamma = 1`` whenever the policy terminates from every state. Dense
    solve, limited to ``EXACT_SOLVE_MAX_STATES`` states (use :func:`policy_evaluation` above).
    """
    policy = _check_policy(model, policy)
    check_probability("gamma", gamma)
    if model.n_states > EXACT_SOLVE_MAX_STATES:
        raise ValueError(
            f"exact policy evaluation builds a dense {model.n_states}x{model.n_states} matrix; "
            f"limit is {EXACT_SOLVE_MAX_STATES} states: use policy_evaluation (iterative) instead"
        )
    live = ~model.terminal
    p_pi = policy_transition_matrix(model, policy)[np.ix_(live, live)]
    r_pi = np.einsum("sa,sa->s", policy, model.R)[live]
    system = np.eye(int(live.sum())) - gamma * p_pi
    values = np.zeros(model.n_states)
    try:
        solution = np.linalg.solve(system, r_pi)
    except np.linalg.LinAlgError:
        solution = None
    if solution is None or not np.isfinite(solution).all() or not np.allclose(system @ solution, r_pi, atol=1e-6):
        raise ValueError(
            f"(I - gamma P_pi) is singular for gamma={gamma}: the policy does not reach a "
            "terminal state from every state, so its undiscounted values are unbounded"
        )
    values[live] = solution
    return values


def policy_improvement(model: TabularModel, values: np.ndarray, gamma: float = 1.0,
                       policy: np.ndarray | None = None, atol: float = 1e-10) -> np.ndarray:
    """Greedy (S, A) one-hot policy w.r.t. the one-step lookahead of ``values``.

    Pass the current deterministic ``policy`` to keep its actions on ties (see ``greedy_policy``).
    """
    q = _Backup(model, gamma).q_values(np.asarray(values, dtype=np.float64)).T
    return greedy_policy(q, previous=policy, atol=atol)


def value_iteration(model: TabularModel, gamma: float = 0.99, tol: float = 1e-8,
                    max_iterations: int = 100_000, values: np.ndarray | None = None,
                    on_iteration: IterationHook | None = None) -> DPResult:
    """Value iteration: ``V <- max_a [R + gamma sum_k p_k V(s'_k)]`` until ``max |dV| < tol``.

    Returns the final values, the greedy policy (first maximum on ties), the lookahead
    ``q_values`` and the number of sweeps. Raises ``RuntimeError`` without convergence.
    ``on_iteration(sweep, values)`` runs after every sweep; ``False`` stops there and
    returns the values reached (not converged).
    """
    check_positive("tol", tol)
    backup = _Backup(model, gamma)
    n_states, n_actions = backup.shape
    v = np.zeros(n_states) if values is None else np.array(values, dtype=np.float64)
    v_new, diff = np.empty(n_states), np.empty(n_states)
    q = np.empty((n_actions, n_states))
    for sweep in range(1, max_iterations + 1):
        backup.q_values(v, out=q)
        np.max(q, axis=0, out=v_new)
        np.subtract(v_new, v, out=diff)
        delta = np.abs(diff, out=diff).max()
        v, v_new = v_new, v
        stop = on_iteration is not None and on_iteration(sweep, v) is False
        if delta < tol or stop:
            q_sa = np.ascontiguousarray(backup.q_values(v).T)
            return DPResult(v, greedy_policy(q_sa), q_sa, sweep)
        if not np.isfinite(delta):
            break
    raise RuntimeError(
        f"value iteration did not converge in {sweep} sweeps (last max |dV| = {delta:.3g}, "
        f"gamma={gamma}); with gamma=1 some state may never reach a terminal state"
    )


def policy_iteration(model: TabularModel, gamma: float = 0.99, policy: np.ndarray | None = None,
                     evaluation: str = "auto", tol: float = 1e-10, max_iterations: int = 1_000,
                     on_iteration: IterationHook | None = None) -> DPResult:
    """Policy iteration: evaluate, improve greedily, stop when the policy is stable.

    ``evaluation`` is ``"exact"`` (linear solve), ``"iterative"`` or ``"auto"`` (exact up to
    ``EXACT_SOLVE_MAX_STATES`` states). The start ``policy`` defaults to uniform random.
    ``on_iteration(step, values)`` runs after every evaluate-and-improve round; ``False``
    stops there with the policy evaluated last.
    """
    if evaluation not in ("auto", "exact", "iterative"):
        raise ValueError(f"evaluation must be 'auto', 'exact' or 'iterative', got {evaluation!r}")
    exact = evaluation == "exact" or (evaluation == "auto" and model.n_states <= EXACT_SOLVE_MAX_STATES)
    policy = uniform_policy(model) if policy is None else _check_policy(model, policy)
    values = None
    for step in range(1, max_iterations + 1):
        if exact:
            values = policy_evaluation_exact(model, policy, gamma)
        else:  # warm start from the previous policy's values: far fewer sweeps
            values = policy_evaluation(model, policy, gamma, tol=tol, values=values)
        deterministic = np.isin(policy, (0.0, 1.0)).all()
        improved = policy_improvement(model, values, gamma, policy if deterministic else None)
        stop = on_iteration is not None and on_iteration(step, values) is False
        if np.array_equal(improved, policy) or stop:
            q = np.ascontiguousarray(_Backup(model, gamma).q_values(values).T)
            return DPResult(values, policy, q, step)
        policy = improved
    raise RuntimeError(f"policy iteration found no stable policy in {max_iterations} improvements")


@dataclass
class DPConfig:
    gamma: float = 0.99  # discount factor
    tol: float = 1e-8  # stop when a sweep changes no value by more than this
    max_iterations: int = 100_000  # sweeps before giving up without convergence

    def __post_init__(self) -> None:
        check_probability("gamma", self.gamma)
        check_positive("tol", self.tol)
        check_positive_int("max_iterations", self.max_iterations)


@dataclass
class PolicyIterationConfig(DPConfig):
    evaluation: str = "auto"  # "exact" (linear solve), "iterative", or "auto" (exact if small)
    max_iterations: int = 1_000  # policy improvements

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.evaluation not in ("auto", "exact", "iterative"):
            raise ValueError(f"evaluation must be 'auto', 'exact' or 'iterative', got {self.evaluation!r}")


class _PlanningAgent(TabularAgent):
    """A DP agent: ``learn()`` plans on ``env.unwrapped.model()`` until its tolerance."""

    _arrays = ("values", "q_values")
    budget_units = ()  # plans to convergence on the model: no sample budget

    def __init__(self, env: gym.Env | str, *, seed: int = 0, **hyperparameters):
        super().__init__(env, seed=seed, **hyperparameters)
        self.values = np.zeros(self.n_states)
        self.q_values = np.zeros((self.n_states, self.n_actions))
        self.iterations = 0

    @property
    def policy(self) -> np.ndarray:
        """(S, A) one-hot greedy policy (first maximum)."""
        return self.action_probabilities()

    def model(self) -> TabularModel:
        base = self.env.unwrapped
        if not hasattr(base, "model"):
            raise ValueError(f"{type(self).__name__} needs an env with model(); {type(base).__name__} has none")
        model = base.model()
        if (model.n_states, model.n_actions) != (self.n_states, self.n_actions):
            raise ValueError(f"model has {model.n_states} states x {model.n_actions} actions, "
                             f"spaces say {self.n_states} x {self.n_actions}")
        return model

    def _plan(self, model: TabularModel, on_iteration: IterationHook | None) -> DPResult:
        raise NotImplementedError

    def learn(self, total_timesteps: int | None = None, *, callback=None,
              log_interval: int | None = None, progress_bar: bool = False,
              reset_num_timesteps: bool = True) -> "_PlanningAgent":
        """Plan to convergence: no sample budget, the tolerance decides (``total_timesteps``
        is accepted and ignored). The callback's ``on_step`` runs once per iteration (one
        full backup of value iteration, one evaluate-and-improve round of policy iteration)
        with ``iteration`` and ``values`` in its locals; ``False`` stops there."""
        with self._learning(None, callback, progress_bar, reset_num_timesteps, 0) as callback:

            def on_iteration(iteration: int, values: np.ndarray) -> bool:
                self.iterations, self.values = iteration, values
                return (callback is None or self._step_callback(callback, iteration=iteration,
                                                                values=values)) and not self._interrupt

            result = self._plan(self.model(), on_iteration)
            self.values, self.q_values, self.iterations = result.values, result.q_values, result.iterations
            self.logger.record("train/iterations", result.iterations)
            self.logger.record("train/value_mean", float(result.values.mean()))
            self.logger.dump(self.num_timesteps)
        return self


class ValueIteration(_PlanningAgent):
    """Value iteration (S&B section 4.4) on the env's exact model."""

    Config = DPConfig

    def _plan(self, model: TabularModel, on_iteration: IterationHook | None) -> DPResult:
        c = self.config
        return value_iteration(model, c.gamma, c.tol, c.max_iterations, on_iteration=on_iteration)


class PolicyIteration(_PlanningAgent):
    """Policy iteration (S&B section 4.3) from the uniform random policy."""

    Config = PolicyIterationConfig

    def _plan(self, model: TabularModel, on_iteration: IterationHook | None) -> DPResult:
        c = self.config
        return policy_iteration(model, c.gamma, evaluation=c.evaluation, tol=c.tol,
                                max_iterations=c.max_iterations, on_iteration=on_iteration)
