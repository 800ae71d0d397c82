"""REINFORCE: learns a bandit, bootstraps truncated episodes, is reproducible and resumable."""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.evaluation import evaluate_policy

from mimicgym.agents.reinforce import Reinforce


class TwoArmedBandit(gym.Env):
    """One-step episodes; arm ``a`` pays 1 with probability ``P[a]``, else 0."""

    P = (0.3, 0.7)
    observation_space = gym.spaces.Box(0.0, 0.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action):
        reward = float(self.np_random.random() < self.P[int(action)])
        return np.zeros(1, np.float32), reward, True, False, {}


class ConstantReward(gym.Env):
    """Reward 1 forever from one state, cut by a time limit: the true value is 1 / (1 - gamma)."""

    observation_space = gym.spaces.Box(0.0, 0.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, limit: int = 5):
        self.limit, self.t = limit, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.zeros(1, np.float32), 1.0, False, self.t >= self.limit, {}


class NaNReward(TwoArmedBandit):
    def step(self, action):
        obs, _, terminated, truncated, info = super().step(action)
        return obs, float("nan"), terminated, truncated, info


def arm_probabilities(agent: Reinforce) -> torch.Tensor:
    with torch.no_grad():
        return torch.softmax(agent.policy.actor(torch.zeros(1, 1)), dim=-1)[0]


def test_bandit_prefers_the_better_arm():
    agent = Reinforce(TwoArmedBandit(), seed=0, device="cpu", learning_rate=1e-2, n_episodes=16)
    uniform = torch.tensor([0.5, 0.5])
    torch.testing.assert_close(arm_probabilities(agent), uniform, atol=0.02, rtol=0)
    agent.learn(1_500)
    assert arm_probabilities(agent)[1] > 0.95
    action, _ = agent.predict(np.zeros(1, np.float32))
    assert action == 1
    # the baseline learned the mean payoff of the (now mostly greedy) policy, about 0.7
    value = agent.policy.value(torch.zeros(1, 1)).item()
    assert 0.55 < value < 0.8


@pytest.mark.parametrize("bootstrap, expected", [(True, 10.0), (False, None)])
def test_truncated_episodes_bootstrap_from_the_final_value(bootstrap, expected):
    gamma = 0.9
    agent = Reinforce(ConstantReward(limit=5), seed=0, device="cpu", gamma=gamma,
                      learning_rate=1e-2, vf_coef=1.0, max_grad_norm=100.0, n_episodes=4,
                      bootstrap_truncated=bootstrap)
    agent.learn(8_000)
    value = agent.policy.value(torch.zeros(1, 1)).item()
    if bootstrap:  # fixed point of V = 1 + gamma * V
        assert value == pytest.approx(expected, rel=0.1)
    else:  # mean of the 5 truncated Monte Carlo returns (1 - 0.9^k) / 0.1, k = 5..1
        mc_mean = np.mean([(1 - gamma**k) / (1 - gamma) for k in range(1, 6)])
        assert value == pytest.approx(mc_mean, rel=0.1)


def test_gaussian_policy_on_a_continuous_bandit():
    class Target(gym.Env):
        observation_space = gym.spaces.Box(0.0, 0.0, (1,), np.float32)
        action_space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            return np.zeros(1, np.float32), {}

        def step(self, action):
            return np.zeros(1, np.float32), -float((action[0] - 0.8) ** 2), True, False, {}

    agent = Reinforce(Target(), seed=1, device="cpu", learning_rate=1e-2, n_episodes=16)
    agent.learn(4_000)
    action, _ = agent.predict(np.zeros(1, np.float32))
    assert action.shape == (1,) and action[0] == pytest.approx(0.8, abs=0.1)
    assert agent.policy.distribution.log_std.item() < -0.3  # exploration shrank from std 1


def test_same_seed_same_run_and_parameters():
    def run(seed):
        agent = Reinforce("CartPole-v1", seed=seed, device="cpu")
        agent.learn(3_000, log_interval=1)
        history = {k: v for k, v in agent.logger.history.items() if not k.startswith("time/")}
        return history, [p.detach().clone() for p in agent.policy.parameters()]

    (h1, p1), (h2, p2), (h3, _) = run(3), run(3), run(4)
    assert h1 == h2 and len(h1["train/loss"]) > 10
    for a, b in zip(p1, p2):
        assert torch.equal(a, b)
    assert h1 != h3


def test_save_load_round_trip_and_resume(tmp_path):
    agent = Reinforce("CartPole-v1", seed=0, device="cpu")
    agent.learn(2_000)
    path = agent.save(tmp_path / "reinforce.pt")
    loaded = Reinforce.load(path)
    assert loaded.num_timesteps == agent.num_timesteps and loaded.num_episodes == agent.num_episodes
    for a, b in zip(agent.policy.state_dict().values(), loaded.policy.state_dict().values()):
        assert torch.equal(a, b)
    step = agent.optimizer.state_dict()["state"][0]["step"]
    assert loaded.optimizer.state_dict()["state"][0]["step"] == step
    obs = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    np.testing.assert_array_equal(agent.predict(obs)[0], loaded.predict(obs)[0])
    # resuming continues the counters; both copies then train identically
    for a in (agent, loaded):
        a.learn(1_000, reset_num_timesteps=False)
    assert loaded.num_timesteps == agent.num_timesteps > 3_000
    for a, b in zip(agent.policy.parameters(), loaded.policy.parameters()):
        assert torch.equal(a, b)
    (tmp_path / "bad.pt").write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="bad.pt"):
        Reinforce.load(tmp_path / "bad.pt")


def test_evaluate_policy_accepts_the_agent():
    agent = Reinforce("CartPole-v1", seed=0, device="cpu")
    agent.learn(5_000)
    mean, _ = evaluate_policy(agent, gym.make("CartPole-v1"), n_eval_episodes=3, warn=False)
    assert mean > 25  # a uniformly random policy averages about 22


def test_nan_in_the_loss_stops_training_naming_step_and_tensor():
    agent = Reinforce(NaNReward(), seed=0, device="cpu", n_episodes=2)
    agent.check_finite_inputs = False  # the env-step check would stop it first: test the loss's
    with pytest.raises(FloatingPointError, match=r"non-finite policy_loss .* at step 2\b"):
        agent.learn(100)


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="n_episodes"):
        Reinforce("CartPole-v1", n_episodes=0)
    with pytest.raises(ValueError, match="gamma"):
        Reinforce("CartPole-v1", gamma=1.5)
    with pytest.raises(ValueError, match="activation"):
        Reinforce("CartPole-v1", activation="swish")
    with pytest.raises(ValueError, match="observation of shape"):
        Reinforce("CartPole-v1").predict(np.zeros(3))
    assert math.isclose(Reinforce("CartPole-v1").config.gamma, 0.99)
