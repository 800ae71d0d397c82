"""Dynamic programming on hand-built and random TabularModels, and the DP agents."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import mimicgym  # noqa: F401
from mimicgym import agents
from mimicgym.agents import dp
from mimicgym.envs.tabular import TabularModel


def two_state_model() -> TabularModel:
    """State 0: action 0 earns 1 and stays w.p. 0.5 or ends w.p. 0.5; action 1 earns 2 and
    ends. State 1 is terminal."""
    next_states = np.array([[[0, 1], [1, 1]], [[1, 1], [1, 1]]])
    probs = np.array([[[0.5, 0.5], [1.0, 0.0]], [[1.0, 0.0], [1.0, 0.0]]])
    rewards = np.array([[[1.0, 1.0], [2.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]])
    return TabularModel(next_states, probs, rewards, terminal=np.array([False, True]))


def random_model(seed: int, n_states: int = 30, n_actions: int = 4, n_slots: int = 3) -> TabularModel:
    rng = np.random.default_rng(seed)
    next_states = rng.integers(n_states, size=(n_states, n_actions, n_slots))
    probs = rng.dirichlet(np.ones(n_slots), size=(n_states, n_actions))
    rewards = rng.normal(size=(n_states, n_actions, n_slots))
    return TabularModel(next_states, probs, rewards, terminal=np.zeros(n_states, bool))


def test_two_state_model_by_hand():
    model = two_state_model()
    gamma = 0.9
    # uniform policy: V = 0.5 * 0.5 * (1 + 0.9 V) + 0.5 * 0.5 * 1 + 0.5 * 2  =>  V = 1.5 / 0.775
    expected = 1.5 / 0.775
    uniform = dp.uniform_policy(model)
    assert dp.policy_evaluation_exact(model, uniform, gamma)[0] == pytest.approx(expected, abs=1e-12)
    assert dp.policy_evaluation(model, uniform, gamma, tol=1e-12)[0] == pytest.approx(expected, abs=1e-10)
    # optimal: action 1 (2.0) beats action 0 (1 + 0.5 * 0.9 * 2 = 1.9)
    result = dp.value_iteration(model, gamma)
    np.testing.assert_allclose(result.values, [2.0, 0.0], atol=1e-8)
    np.testing.assert_allclose(result.q_values[0], [1.9, 2.0], atol=1e-8)
    np.testing.assert_array_equal(result.policy[0], [0.0, 1.0])


@pytest.mark.parametrize("seed", range(5))
def test_value_and_policy_iteration_agree_with_the_exact_solve(seed):
    model = random_model(seed)
    gamma = 0.9
    vi = dp.value_iteration(model, gamma, tol=1e-11)
    pi_exact = dp.policy_iteration(model, gamma, evaluation="exact")
    pi_iter = dp.policy_iteration(model, gamma, evaluation="iterative", tol=1e-11)
    np.testing.assert_allclose(pi_exact.values, vi.values, atol=1e-8)
    np.testing.assert_allclose(pi_iter.values, vi.values, atol=1e-8)
    np.testing.assert_array_equal(pi_exact.policy, vi.policy)
    # v* is the exact value of the greedy policy and satisfies the Bellman optimality equation
    np.testing.assert_allclose(dp.policy_evaluation_exact(model, vi.policy, gamma), vi.values, atol=1e-8)
    dense_q = model.R + gamma * np.einsum("sat,t->sa", model.P, vi.values)
    np.testing.assert_allclose(dense_q.max(1), vi.values, atol=1e-9)
    np.testing.assert_allclose(vi.q_values, dense_q, atol=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_undiscounted_episodic_random_mdps(seed):
    """gamma = 1 with a terminal state 0 that every (s, a) reaches w.p. >= 0.1: every policy is
    proper, so all three methods must find the same finite v*, and v*(terminal) = 0."""
    base = random_model(seed, n_states=25)
    next_states, probs, rewards = base.next_states.copy(), base.probs.copy(), base.rewards.copy()
    next_states[:, :, 0] = 0
    probs[:, :, 0] = np.maximum(probs[:, :, 0], 0.1)
    probs /= probs.sum(-1, keepdims=True)
    next_states[0], probs[0], rewards[0] = 0, 1.0 / probs.shape[-1], 0.0  # absorbing, zero reward
    terminal = np.zeros(25, bool)
    terminal[0] = True
    model = TabularModel(next_states, probs, rewards, terminal)
    vi = dp.value_iteration(model, gamma=1.0, tol=1e-11)
    pi = dp.policy_iteration(model, gamma=1.0)
    assert vi.values[0] == 0.0
    np.testing.assert_allclose(pi.values, vi.values, atol=1e-8)
    np.testing.assert_allclose(dp.policy_evaluation_exact(model, vi.policy, 1.0), vi.values, atol=1e-8)
    np.testing.assert_allclose(dp.policy_evaluation(model, vi.policy, 1.0, tol=1e-12), vi.values, atol=1e-8)


@pytest.mark.parametrize("seed", range(3))
def test_policy_evaluation_matches_dense_linear_algebra(seed):
    model = random_model(seed, n_states=20)
    policy = np.random.default_rng(seed).dirichlet(np.ones(model.n_actions), size=model.n_states)
    p_pi = np.einsum("sa,sat->st", policy, model.P)  # dense reference
    np.testing.assert_allclose(dp.policy_transition_matrix(model, policy), p_pi, atol=1e-12)
    r_pi = (policy * model.R).sum(1)
    reference = np.linalg.solve(np.eye(model.n_states) - 0.95 * p_pi, r_pi)
    np.testing.assert_allclose(dp.policy_evaluation_exact(model, policy, 0.95), reference, atol=1e-9)
    np.testing.assert_allclose(dp.policy_evaluation(model, policy, 0.95, tol=1e-12), reference, atol=1e-9)


def test_policy_improvement_keeps_the_old_action_on_ties():
    model = gym.make("mimicgym/SuttonGrid4x4-v0").unwrapped.model()
    v_star = dp.value_iteration(model, gamma=1.0).values
    # state 5 (row 1, col 1): up and left both lead optimally to the corner (0, 0)
    first_max = dp.policy_improvement(model, v_star, 1.0)
    assert first_max[5].argmax() == 0  # up, the first maximum
    previous = np.zeros_like(first_max)
    previous[:, 3] = 1.0  # always left
    kept = dp.policy_improvement(model, v_star, 1.0, policy=previous)
    assert kept[5].argmax() == 3


def test_improper_policy_and_bad_inputs_raise_clear_errors():
    model = gym.make("mimicgym/SuttonGrid4x4-v0").unwrapped.model()
    always_up = np.zeros((16, 4))
    always_up[:, 0] = 1.0  # the top row bumps into the edge forever: never terminates
    with pytest.raises(ValueError, match="singular"):
        dp.policy_evaluation_exact(model, always_up, gamma=1.0)
    with pytest.raises(RuntimeError, match="did not converge"):
        dp.policy_evaluation(model, always_up, gamma=1.0, max_iterations=500)
    assert np.isfinite(dp.policy_evaluation_exact(model, always_up, gamma=0.9)).all()
    with pytest.raises(ValueError, match=r"policy must have shape \(16, 4\)"):
        dp.policy_evaluation(model, np.ones((16, 3)) / 3)
    bad = always_up.copy()
    bad[7] = [0.5, 0.6, 0.0, 0.0]
    with pytest.raises(ValueError, match=r"policy\[7\] is not a distribution"):
        dp.policy_evaluation_exact(model, bad)
    with pytest.raises(ValueError, match="gamma must lie in"):
        dp.value_iteration(model, gamma=1.5)
    with pytest.raises(ValueError, match="evaluation must be"):
        dp.policy_iteration(model, evaluation="magic")
    loop = TabularModel(np.zeros((1, 1, 1), int), np.ones((1, 1, 1)), np.ones((1, 1, 1)), terminal=[False])
    with pytest.raises(RuntimeError, match="value iteration did not converge in 50 sweeps"):
        dp.value_iteration(loop, gamma=1.0, max_iterations=50)  # +1 forever: v* is infinite


def test_exact_evaluation_refuses_huge_models():
    n = dp.EXACT_SOLVE_MAX_STATES + 1
    loops = np.arange(n)[:, None, None]
    model = TabularModel(loops, np.ones((n, 1, 1)), np.zeros((n, 1, 1)), terminal=np.ones(n, bool))
    with pytest.raises(ValueError, match="use policy_evaluation"):
        dp.policy_evaluation_exact(model, np.ones((n, 1)))
    assert dp.policy_evaluation(model, np.ones((n, 1))).max() == 0.0  # iterative still works


def test_value_iteration_on_a_slippery_grid_is_bellman_optimal():
    """The 100x100 benchmark's model at 30x30: v* must satisfy the optimality equation and
    be the value of its own greedy policy (timing lives in benchmarks/)."""
    from mimicgym.envs.maps import open_grid

    env = gym.make("mimicgym/GridWorld-v0", map=open_grid(30, 30), slip=0.1, step_reward=-1.0)
    model = env.unwrapped.model()
    result = dp.value_iteration(model, gamma=0.99, tol=1e-10)
    q = dp.policy_improvement(model, result.values, 0.99)
    np.testing.assert_allclose(result.q_values.max(1), result.values, atol=1e-8)
    np.testing.assert_array_equal(q, result.policy)
    np.testing.assert_allclose(dp.policy_evaluation_exact(model, result.policy, 0.99), result.values, atol=1e-7)
    assert result.values[-1] == 0.0 and result.values[0] < result.values[-2] < 0


def test_dp_agents_cliff_walking_predict_save_load_and_evaluate_policy(tmp_path):
    from stable_baselines3.common.evaluation import evaluate_policy

    env = gym.make("mimicgym/CliffWalking-v0")
    vi = agents.ValueIteration(env, gamma=1.0, tol=1e-10).learn()
    pi = agents.PolicyIteration(env, gamma=1.0).learn()
    start, _ = env.reset(seed=0)
    assert vi.values[start] == pytest.approx(-13.0) and pi.values[start] == pytest.approx(-13.0)
    np.testing.assert_allclose(pi.values, vi.values, atol=1e-8)
    assert vi.policy.shape == (48, 4) and set(np.unique(vi.policy)) == {0.0, 1.0}
    mean, std = evaluate_policy(vi, env, n_eval_episodes=3, warn=False)
    assert (mean, std) == (-13.0, 0.0)
    actions, _ = vi.predict(np.array([start, start]))
    assert actions.tolist() == [0, 0]  # up: the first step of the 13-step path along the edge

    vi.save(tmp_path / "vi.npz")
    loaded = agents.ValueIteration.load(tmp_path / "vi.npz", env=env)
    np.testing.assert_array_equal(loaded.values, vi.values)
    np.testing.assert_array_equal(loaded.policy, vi.policy)
    assert loaded.config == vi.config
    assert "train/iterations" in vi.logger.history


def test_dp_agent_config_errors_name_field_and_value():
    with pytest.raises(ValueError, match=r"gamma must lie in \[0, 1\], got 1.2"):
        agents.ValueIteration("mimicgym/CliffWalking-v0", gamma=1.2)
    with pytest.raises(ValueError, match=r"tol must be > 0, got -1"):
        agents.PolicyIteration("mimicgym/CliffWalking-v0", tol=-1)
    with pytest.raises(ValueError, match=r"max_iterations must be a positive int, got 0"):
        agents.ValueIteration("mimicgym/CliffWalking-v0", max_iterations=0)
    with pytest.raises(TypeError, match="Discrete observation"):
        agents.ValueIteration("CartPole-v1")
