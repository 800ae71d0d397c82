"""A2C: learns discrete and continuous toy problems and CartPole, bootstraps truncations from
the final observation, masks NEXT_STEP reset steps, is reproducible and resumable."""

import os
import signal

import gymnasium as gym
import numpy as np
import pytest
import torch
from _sb3_parity import copy_sb3_weights
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from mimicgym.agents.a2c import A2C

GAMMA = 0.9


class ContextualBandit(gym.Env):
    """One-step episodes: the state is 0 or 1 (one-hot encoded by the agent), the action
    equal to the state pays 1, the other 0."""

    observation_space = gym.spaces.Discrete(2)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state = int(self.np_random.integers(2))
        return self.state, {}

    def step(self, action):
        return self.state, float(int(action) == self.state), True, False, {}


class Target(gym.Env):
    """One-step episodes: observe a target in [-1, 1], get ``-(a - target)^2``."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.target = self.np_random.uniform(-1.0, 1.0, size=1).astype(np.float32)
        return self.target, {}

    def step(self, action):
        return self.target, -float((action[0] - self.target[0]) ** 2), True, False, {}


class Countdown(gym.Env):
    """Reward 1 per step for 5 steps, then the episode ends.

    ``end="terminated"``: the obs is the step index (one-hot), V(k) = (1 - g^(5-k)) / (1 - g).
    ``end="truncated"``: the obs is constant, the task goes on forever, V = 1 / (1 - g).
    """

    action_space = gym.spaces.Discrete(2)

    def __init__(self, end: str):
        self.end, self.t = end, 0
        self.observation_space = gym.spaces.Discrete(6 if end == "terminated" else 1)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return 0, {}

    def step(self, action):
        self.t += 1
        obs = self.t if self.end == "terminated" else 0
        done = self.t >= 5
        return obs, 1.0, done and self.end == "terminated", done and self.end == "truncated", {}


class NaNReward(ContextualBandit):
    def step(self, action):
        obs, _, terminated, truncated, info = super().step(action)
        return obs, float("nan"), terminated, truncated, info


def vec(env_cls, n=4, **kwargs):
    return gym.vector.SyncVectorEnv([lambda: env_cls(**kwargs) for _ in range(n)])


@pytest.mark.parametrize("shared", [False, True])
def test_contextual_bandit_one_hot_observations(shared):
    agent = A2C(vec(ContextualBandit), seed=0, device="cpu", n_envs=4, learning_rate=3e-3,
                shared_actor_critic=shared)
    assert (agent.policy.pi_net is agent.policy.vf_net) == shared
    agent.learn(4_000)
    actions, _ = agent.predict(np.array([0, 1, 1, 0]))
    np.testing.assert_array_equal(actions, [0, 1, 1, 0])
    with torch.no_grad():
        probs = torch.softmax(agent.policy.actor(torch.tensor([0, 1])), dim=-1)
    assert probs[0, 0] > 0.9 and probs[1, 1] > 0.9


def test_gaussian_mean_tracks_the_target():
    agent = A2C(vec(Target), seed=0, device="cpu", n_envs=4, learning_rate=3e-3,
                use_rms_prop=False)
    agent.learn(12_000)
    targets = np.array([[-0.6], [0.0], [0.6]], dtype=np.float32)
    actions, _ = agent.predict(targets)
    assert actions.shape == (3, 1)
    np.testing.assert_allclose(actions, targets, atol=0.15)
    assert agent.policy.distribution.log_std.item() < -0.3  # exploration shrank from std 1


@pytest.mark.parametrize("end, estimator", [("terminated", {"gae_lambda": 0.0}),
                                            ("truncated", {"gae_lambda": 0.0}),
                                            ("truncated", {"n_step_return": 3})])
def test_critic_bootstraps_truncation_and_not_termination(end, estimator):
    # Were the reset step (reward 0, final obs -> first obs) learned from, V would be pulled
    # toward 0.9 * V at the episode boundary; were truncation treated as termination, V
    # would be the mean truncated return (about 2.6) instead of 10.
    agent = A2C(vec(Countdown, end=end), seed=0, device="cpu", n_envs=4, gamma=GAMMA,
                n_steps=8, learning_rate=3e-3, use_rms_prop=False, max_grad_norm=100.0,
                **estimator)
    agent.learn(25_000)
    with torch.no_grad():
        if end == "terminated":
            values = agent.policy.value(torch.arange(5))
            expected = torch.tensor([(1 - GAMMA ** (5 - k)) / (1 - GAMMA) for k in range(5)])
        else:
            values = agent.policy.value(torch.zeros(1, dtype=torch.long))
            expected = torch.tensor([1 / (1 - GAMMA)])
    torch.testing.assert_close(values, expected, rtol=0.05, atol=0.0)


def test_cartpole_improves():
    agent = A2C("CartPole-v1", seed=0, device="cpu")
    agent.learn(30_000, log_interval=50)
    ep_rew = agent.logger.history["rollout/ep_rew_mean"]
    assert ep_rew[0][1] < 60  # near random at first (about 22)
    assert np.mean(agent.episode_stats.returns[-20:]) > 150
    for key in ("train/loss", "train/policy_loss", "train/entropy_loss", "train/value_loss",
                "train/explained_variance", "time/fps", "rollout/ep_len_mean"):
        assert key in agent.logger.history


def test_a_run_shorter_than_the_log_interval_still_logs_at_its_end():
    agent = A2C("CartPole-v1", seed=0, device="cpu").learn(400, log_interval=100)  # 10 updates
    assert [step for step, _ in agent.logger.history["train/loss"]] == [400]
    # The interval counts the agent's updates (12, 16, 20); the last one is also the end.
    agent.learn(400, reset_num_timesteps=False, log_interval=4)
    assert [step for step, _ in agent.logger.history["train/loss"]] == [400, 480, 640, 800]


def test_evaluate_policy_single_and_batched():
    agent = A2C("CartPole-v1", seed=0, device="cpu")
    agent.learn(20_000)
    mean_single, _ = evaluate_policy(agent, gym.make("CartPole-v1"), n_eval_episodes=4, warn=False)
    mean_batched, _ = evaluate_policy(agent, make_vec_env("CartPole-v1", n_envs=2, seed=0),
                                      n_eval_episodes=4, warn=False)
    assert mean_single > 60 and mean_batched > 60


def test_same_seed_same_run_and_parameters():
    def run(seed):
        agent = A2C("CartPole-v1", seed=seed, device="cpu")
        agent.learn(4_000, log_interval=5)
        history = {k: v for k, v in agent.logger.history.items() if not k.startswith("time/")}
        return history, [p.detach().clone() for p in agent.policy.parameters()]

    (h1, p1), (h2, p2), (h3, _) = run(5), run(5), run(6)
    assert h1 == h2 and len(h1["train/loss"]) == 4_000 // 40 // 5
    for a, b in zip(p1, p2):
        assert torch.equal(a, b)
    assert h1 != h3


def test_save_load_round_trip_and_resume(tmp_path):
    agent = A2C("CartPole-v1", seed=0, device="cpu", net_arch={"pi": [32], "vf": [16, 16]})
    agent.learn(2_000)
    path = agent.save(tmp_path / "a2c.pt")
    loaded = A2C.load(path)
    assert loaded.config == agent.config and loaded.env.num_envs == 8
    assert loaded.num_timesteps == agent.num_timesteps == 2_000
    for a, b in zip(agent.policy.state_dict().values(), loaded.policy.state_dict().values()):
        assert torch.equal(a, b)
    square_avg = agent.optimizer.state_dict()["state"][0]["square_avg"]
    torch.testing.assert_close(loaded.optimizer.state_dict()["state"][0]["square_avg"], square_avg)
    obs = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    np.testing.assert_array_equal(agent.predict(obs)[0], loaded.predict(obs)[0])
    loaded.learn(400, reset_num_timesteps=False)
    assert loaded.num_timesteps == 2_400 and loaded._n_updates == agent._n_updates + 10
    (tmp_path / "bad.pt").write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="bad.pt"):
        A2C.load(tmp_path / "bad.pt")


def test_nan_in_the_loss_stops_training_naming_step_and_tensor():
    agent = A2C(vec(NaNReward), seed=0, device="cpu", n_envs=4)
    agent.check_finite_inputs = False  # the env-step check would stop it first: test the loss's
    with pytest.raises(FloatingPointError, match=r"non-finite policy_loss .* at step 20\b"):
        agent.learn(100)


def test_env_and_config_errors():
    with pytest.raises(ValueError, match="n_steps"):
        A2C("CartPole-v1", n_steps=0)
    with pytest.raises(ValueError, match="gae_lambda"):
        A2C("CartPole-v1", gae_lambda=-0.1)
    with pytest.raises(ValueError, match="net_arch"):
        A2C("CartPole-v1", net_arch={"pi": [64]})
    with pytest.raises(ValueError, match="num_envs=4"):
        A2C(vec(ContextualBandit), n_envs=8)
    same_step = gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync",
                             vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP})
    with pytest.raises(ValueError, match="NEXT_STEP"):
        A2C(same_step, n_envs=2)
    with pytest.raises(TypeError, match="VectorEnv"):
        A2C(gym.make("CartPole-v1"))


def test_ctrl_c_saves_a_resumable_checkpoint(tmp_path):
    path = tmp_path / "interrupted.pt"
    agent = A2C("CartPole-v1", seed=0, device="cpu", checkpoint_path=path)

    def press_ctrl_c(locals_, globals_):
        if locals_["self"].num_timesteps == 400:
            os.kill(os.getpid(), signal.SIGINT)
        return True

    with pytest.raises(KeyboardInterrupt, match="checkpoint saved"):
        agent.learn(10_000, callback=press_ctrl_c)
    # the flag is acted on at the end of the current rollout, a consistent point
    loaded = A2C.load(path)
    assert loaded.num_timesteps == agent.num_timesteps and 400 <= loaded.num_timesteps < 10_000
    for a, b in zip(agent.policy.parameters(), loaded.policy.parameters()):
        assert torch.equal(a, b)


def test_one_hot_gridworld_reaches_the_optimal_return():
    from mimicgym.agents import dp
    from mimicgym.envs.wrappers import OneHotObservation

    env_id = "mimicgym/SuttonGrid4x4-v0"  # -1 per step; S is 3 moves from either goal corner
    env = gym.make_vec(env_id, num_envs=4, vectorization_mode="sync", wrappers=[OneHotObservation])
    agent = A2C(env, seed=0, device="cpu", n_envs=4, learning_rate=3e-3, gamma=0.95)
    agent.learn(12_000)
    model = gym.make(env_id).unwrapped.model()
    optimal = float(dp.value_iteration(model, gamma=1.0).values @ model.initial)
    assert optimal == -3.0
    eval_env = OneHotObservation(gym.make(env_id))
    obs, _ = eval_env.reset(seed=0)
    episode_return, done = 0.0, False
    while not done:
        obs, reward, terminated, truncated, _ = eval_env.step(agent.predict(obs)[0])
        episode_return += reward
        done = terminated or truncated
    assert episode_return == optimal


def test_one_update_matches_sb3_given_the_same_weights_and_rollout():
    """Ours and SB3's ``A2C.train`` on one identical 5x8 rollout ending with a termination
    (env 0) and a time-limit truncation (env 1, which SB3 bootstraps by adding
    ``gamma * V(final obs)`` to the reward) end with the same weights: advantages, value
    loss, RMSprop settings, clipping at 0.5 and the orthogonal-init layout match SB3's."""
    from stable_baselines3 import A2C as SB3A2C
    from stable_baselines3.common.logger import configure

    sb3 = SB3A2C("MlpPolicy", make_vec_env("CartPole-v1", n_envs=8, seed=0), ent_coef=0.0,
                 seed=0, device="cpu")
    sb3.set_logger(configure(None, []))
    ours = A2C("CartPole-v1", seed=0, device="cpu", n_envs=8, ent_coef=0.0)
    pairs = copy_sb3_weights(ours, sb3)
    initial = ours.policy.action_head.weight.detach().clone()
    rng = np.random.default_rng(0)
    T, N, gamma = 5, 8, sb3.gamma
    value = lambda o: sb3.policy.predict_values(torch.as_tensor(o)).flatten()  # noqa: E731
    for _ in range(3):
        obs = (rng.normal(size=(T + 1, N, 4)) * 0.5).astype(np.float32)
        actions = rng.integers(2, size=(T, N))
        rewards = np.ones((T, N), np.float32)
        terminated, truncated = np.zeros((T, N), bool), np.zeros((T, N), bool)
        terminated[-1, 0] = truncated[-1, 1] = True
        ours._obs[:], ours._actions[:], ours._rewards[:] = obs, actions, rewards
        ours._terminated[:], ours._truncated[:], ours._valid[:] = terminated, truncated, True
        buffer = sb3.rollout_buffer
        buffer.reset()
        with torch.no_grad():
            sb3_rewards = rewards.copy()
            sb3_rewards[-1, 1] += gamma * value(obs[-1, 1:2]).item()
            for t in range(T):
                buffer.add(obs[t], actions[t][:, None], sb3_rewards[t], np.zeros(N), value(obs[t]),
                           torch.zeros(N))
            last = obs[-1].copy()
            last[:2] = rng.normal(size=(2, 4))  # SB3's vec env returns the reset obs there
            buffer.compute_returns_and_advantage(value(last), terminated[-1] | truncated[-1])
        sb3.train()
        ours._train()
        for mine, theirs in pairs:
            for p, q in zip(mine.parameters(), theirs.parameters()):
                torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert (ours.policy.action_head.weight - initial).abs().max().item() > 1e-4
