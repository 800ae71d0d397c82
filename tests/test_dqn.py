"""DQN: hand-computed TD targets and schedules, target-network updates, learning on
gridworlds (one-hot and RGB images), NaN detection, determinism, exact resume."""

import os
import signal

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.utils import LinearSchedule

import mimicgym.envs  # noqa: F401  (registers the gridworld ids)
from mimicgym.agents.dp import value_iteration
from mimicgym.agents.dqn import DQN, linear_epsilon, td_target
from mimicgym.envs.wrappers import ImageObservation, OneHotObservation
from mimicgym.utils.torch_utils import clip_grad_norm, denormals_flushed, flush_denormals

# 3x4 maze: wall '#', trap 'T' (-10, terminal), -1 per step. The shortest path from S to G
# is down, down, right, right, right: 5 steps, so the optimal return is -5.
MAZE = ["S...", ".#T.", "...G"]
OPTIMAL_RETURN = -5.0
SMALL = dict(learning_rate=1e-3, buffer_size=5_000, learning_starts=200, batch_size=32,
             train_freq=4, gradient_steps=1, target_update_interval=100,
             exploration_fraction=0.5, exploration_final_eps=0.05, net_arch=(64,))


def maze(wrapper, **kwargs) -> gym.Env:
    return wrapper(gym.make("mimicgym/GridWorld-v0", map=MAZE, max_episode_steps=50), **kwargs)


def params(agent: DQN) -> list[torch.Tensor]:
    return [p.detach().clone() for p in agent.q_net.parameters()]


def test_td_target_masks_termination_but_not_truncation():
    # transitions: ordinary step, termination, time-limit truncation (stored as not terminated)
    rewards = torch.tensor([1.0, 1.0, 1.0])
    terminated = torch.tensor([0.0, 1.0, 0.0])
    next_q = torch.tensor([2.0, 2.0, 2.0])
    torch.testing.assert_close(td_target(rewards, terminated, next_q, 0.5),
                               torch.tensor([2.0, 1.0, 2.0]))


def test_replay_stores_truncation_as_bootstrapping():
    env = OneHotObservation(gym.make("mimicgym/GridWorld-v0", map=["S..G"], max_episode_steps=3))
    agent = DQN(env, learning_starts=10_000, buffer_size=1_000)
    agent.learn(300)
    buf = agent.replay_buffer
    goal = buf.next_observations[: len(buf), 3] == 1.0
    assert goal.any() and (~goal).any()
    # reaching G terminates; every other transition (the 3-step truncations included) bootstraps
    np.testing.assert_array_equal(buf.terminations[: len(buf)], goal.astype(np.float32))


def test_epsilon_schedule_matches_sb3():
    sb3 = LinearSchedule(1.0, 0.04, 0.16)  # SB3 takes progress_remaining = 1 - progress
    for progress in (0.0, 0.05, 0.08, 0.16, 0.5, 1.0):
        assert linear_epsilon(progress, 1.0, 0.04, 0.16) == pytest.approx(sb3(1 - progress))
    assert linear_epsilon(0.08, 1.0, 0.04, 0.16) == pytest.approx(0.52)


def test_exploration_rate_during_learning():
    agent = DQN("CartPole-v1", learning_starts=10_000, exploration_fraction=0.5,
                exploration_initial_eps=1.0, exploration_final_eps=0.2)
    rates = {}
    agent.learn(100, callback=lambda locals_, _: not rates.__setitem__(
        locals_["self"].num_timesteps, locals_["self"].exploration_rate))
    assert rates[25] == pytest.approx(0.6) and rates[50] == pytest.approx(0.2)
    assert rates[100] == pytest.approx(0.2)


def test_hard_target_update_every_interval_env_steps(monkeypatch):
    agent = DQN("CartPole-v1", learning_starts=20, train_freq=5, gradient_steps=2,
                target_update_interval=7, batch_size=8)
    calls = []
    original = agent.update_target
    monkeypatch.setattr(agent, "update_target",
                        lambda tau: (calls.append(agent.num_timesteps), original(tau)))
    in_sync = {}
    # SB3's callable protocol: (locals, globals) after every step; anything falsy stops
    agent.learn(50, callback=lambda locals_, _: not in_sync.__setitem__(agent.num_timesteps, all(
        torch.equal(p, q) for p, q in zip(agent.q_net.parameters(), agent.q_target.parameters()))))
    assert calls == [7, 14, 21, 28, 35, 42, 49]
    # training rounds run at steps 25, 30, 35...: the copy at step 28 syncs the nets until
    # the round at step 30 moves the online net away again
    assert [in_sync[t] for t in (27, 28, 29, 30)] == [False, True, True, False]


def test_polyak_update_values():
    agent = DQN("CartPole-v1", net_arch=(4,))
    with torch.no_grad():
        for p, q in zip(agent.q_net.parameters(), agent.q_target.parameters()):
            p.fill_(1.0)
            q.fill_(0.0)
    agent.update_target(0.1)  # 0.1 * 1 + 0.9 * 0
    assert all(torch.allclose(q, torch.full_like(q, 0.1)) for q in agent.q_target.parameters())
    agent.update_target(0.1)  # 0.1 * 1 + 0.9 * 0.1
    assert all(torch.allclose(q, torch.full_like(q, 0.19)) for q in agent.q_target.parameters())
    agent.update_target(1.0)
    assert all(torch.equal(q, torch.ones_like(q)) for q in agent.q_target.parameters())


def optimal_q(env: gym.Env) -> tuple[np.ndarray, np.ndarray]:
    """Q* of the wrapped gridworld (value iteration on its exact model) and the mask of
    non-terminal states (the only ones DQN ever acts in)."""
    model = env.unwrapped.model()
    return value_iteration(model, gamma=0.99).q_values, ~model.terminal


def test_learns_one_hot_gridworld_to_the_optimal_return():
    env = maze(OneHotObservation)
    agent = DQN(env, seed=0, **SMALL).learn(2_500)
    returns, _ = evaluate_policy(agent, Monitor(env), n_eval_episodes=3, deterministic=True,
                                 return_episode_rewards=True)
    assert returns == [OPTIMAL_RETURN] * 3


@pytest.mark.slow
def test_learns_gridworld_from_rgb_images_with_the_cnn():
    # S . T      2x3 map at 2 pixels per cell: 4x6x3 frames. The trap next to the start
    # . . G      makes "right" from S's neighbour worth -10 and "down" -1.99.
    env = ImageObservation(gym.make("mimicgym/GridWorld-v0", map=["S.T", "..G"],
                                    max_episode_steps=20), cell_size=2)
    assert env.observation_space.shape == (4, 6, 3)
    agent = DQN(env, seed=0, features_dim=64, **SMALL).learn(3_000)
    assert type(agent.q_net.encoder).__name__ == "ImageEncoder"
    returns, _ = evaluate_policy(agent, Monitor(env), n_eval_episodes=2, deterministic=True,
                                 return_episode_rewards=True)
    assert returns == [-3.0, -3.0]
    q_star, live = optimal_q(env)
    frames = np.stack([env.painter.draw(s) for s in range(6)])
    with torch.no_grad():
        q = agent.q_net(torch.from_numpy(frames)).numpy()
    np.testing.assert_allclose(q[live], q_star[live], atol=0.5)


def test_predict_single_and_batched_observations():
    agent = DQN("CartPole-v1", net_arch=(16,))
    obs = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    batched, state = agent.predict(obs)
    assert batched.shape == (5,) and state is None
    with torch.no_grad():
        expected = agent.q_net(torch.from_numpy(obs)).argmax(1).numpy()
    np.testing.assert_array_equal(batched, expected)
    single, _ = agent.predict(obs[2])
    assert single.shape == () and single == expected[2]
    with pytest.raises(ValueError, match=r"observation of shape \(3,\)"):
        agent.predict(np.zeros(3))


class NaNRewardEnv(gym.Env):
    """Box observations, two actions, and a NaN reward on every step."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), float("nan"), False, False, {}


def test_nan_reward_stops_training_naming_tensor_and_step():
    agent = DQN(NaNRewardEnv(), learning_starts=50, train_freq=10, batch_size=8)
    agent.check_finite_inputs = False  # the env-step check would stop it first: test the loss's
    with pytest.raises(FloatingPointError, match=r"non-finite TD loss \(nan\) at step 60"):
        agent.learn(500)
    assert all(torch.isfinite(p).all() for p in agent.q_net.parameters())


def test_config_errors_name_field_and_value():
    with pytest.raises(ValueError, match="tau must lie in \\(0, 1\\], got 0.0"):
        DQN("CartPole-v1", tau=0.0)
    with pytest.raises(ValueError, match="loss must be one of \\['huber', 'mse'\\], got 'l1'"):
        DQN("CartPole-v1", loss="l1")
    with pytest.raises(ValueError, match="gradient_steps must be a positive int or -1, got 0"):
        DQN("CartPole-v1", gradient_steps=0)
    with pytest.raises(TypeError, match="Discrete action space"):
        DQN("Pendulum-v1")


def test_same_seed_gives_identical_curves_and_parameters():
    hp = dict(learning_starts=200, train_freq=16, gradient_steps=8, batch_size=32,
              net_arch=(32, 32), exploration_fraction=0.3, double_q=True)
    a = DQN("CartPole-v1", seed=3, **hp).learn(1_500)
    b = DQN("CartPole-v1", seed=3, **hp).learn(1_500)
    c = DQN("CartPole-v1", seed=4, **hp).learn(1_500)
    curves = lambda agent: {k: v for k, v in agent.logger.history.items()  # noqa: E731
                            if not k.startswith("time/fps")}
    assert curves(a) == curves(b) and len(curves(a)["train/loss"]) > 3
    assert all(torch.equal(p, q) for p, q in zip(params(a), params(b)))
    assert curves(a) != curves(c)


def test_interrupted_run_resumes_bit_identically(tmp_path):
    hp = dict(learning_starts=100, train_freq=8, gradient_steps=4, batch_size=16,
              target_update_interval=50, net_arch=(32,), exploration_fraction=0.5)
    total, stop_at = 900, 437  # 437 falls in the middle of an episode
    straight = DQN("CartPole-v1", seed=1, **hp).learn(total)

    ckpt = tmp_path / "dqn.pt"
    first = DQN("CartPole-v1", seed=1, checkpoint_path=ckpt, **hp)

    def ctrl_c(locals_, globals_):
        if locals_["self"].num_timesteps == stop_at:
            os.kill(os.getpid(), signal.SIGINT)  # the real Ctrl-C path
        return True

    with pytest.raises(KeyboardInterrupt, match=f"step {stop_at}; checkpoint saved"):
        first.learn(total, callback=ctrl_c)
    assert first._episode_actions, "the interruption should fall mid-episode"

    resumed = DQN.load(ckpt)
    assert resumed.num_timesteps == stop_at and len(resumed.replay_buffer) == stop_at
    resumed.learn(total - stop_at, reset_num_timesteps=False)
    assert resumed.num_timesteps == total and resumed._n_updates == straight._n_updates
    assert resumed.episode_stats.returns == straight.episode_stats.returns
    assert all(torch.equal(p, q) for p, q in zip(params(resumed), params(straight)))
    assert all(torch.equal(p, q) for p, q in
               zip(resumed.q_target.parameters(), straight.q_target.parameters()))
    np.testing.assert_array_equal(resumed.replay_buffer.observations,
                                  straight.replay_buffer.observations)


def test_save_without_replay_buffer_and_corrupt_files(tmp_path):
    agent = DQN("CartPole-v1", learning_starts=50, train_freq=10, net_arch=(8,)).learn(120)
    path = agent.save(tmp_path / "small.pt", save_replay_buffer=False)
    loaded = DQN.load(path)
    assert len(loaded.replay_buffer) == 0 and loaded.num_timesteps == 120
    obs = np.zeros((3, 4), np.float32)
    np.testing.assert_array_equal(loaded.predict(obs)[0], agent.predict(obs)[0])
    torn = tmp_path / "torn.pt"
    torn.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(ValueError, match="torn.pt"):
        DQN.load(torn)


def test_lean_gradient_clipping_matches_torch():
    gen = torch.Generator().manual_seed(0)
    ours = [torch.nn.Parameter(torch.randn(5, 3, generator=gen)) for _ in range(3)]
    ref = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    for p, q in zip(ours, ref):
        p.grad = torch.randn(p.shape, generator=gen) * 3
        q.grad = p.grad.clone()
    torch.testing.assert_close(clip_grad_norm(ours, 1.0), torch.nn.utils.clip_grad_norm_(ref, 1.0),
                               rtol=0, atol=0)
    assert all(torch.equal(p.grad, q.grad) for p, q in zip(ours, ref))
    assert torch.linalg.vector_norm(torch.cat([p.grad.ravel() for p in ours])) <= 1.0 + 1e-5


def test_training_flushes_subnormals_and_restores_the_setting():
    subnormal = torch.tensor([1e-39], dtype=torch.float32)
    assert not denormals_flushed() and float(subnormal * 1.5) > 0
    seen = []
    with flush_denormals():
        assert float(subnormal * 1.5) == 0.0  # what keeps Adam's tiny moments fast
    assert float(subnormal * 1.5) > 0  # the global setting is back for other code
    agent = DQN("CartPole-v1", seed=0, learning_starts=10, train_freq=10, gradient_steps=1)
    agent.learn(20, callback=lambda locals_, _: not seen.append(denormals_flushed()))
    assert seen == [True] * 20 and not denormals_flushed()


def test_training_rounds_match_sb3_given_the_same_weights_data_and_minibatches():
    """Ours and SB3's ``DQN.train`` on identical replay contents (terminations and time-limit
    truncations included) and identical minibatch indices end with the same weights: the
    batched TD targets, Huber loss, clipping at norm 10 and Adam match SB3's update."""
    from stable_baselines3 import DQN as SB3DQN
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.utils import polyak_update

    hp = dict(learning_rate=2.3e-3, batch_size=32, gamma=0.99, buffer_size=1_000)
    sb3 = SB3DQN("MlpPolicy", "CartPole-v1", seed=0, device="cpu",
                 policy_kwargs=dict(net_arch=[64, 64]), **hp)
    sb3.set_logger(configure(None, []))
    ours = DQN("CartPole-v1", seed=0, device="cpu", net_arch=(64, 64), double_q=False, **hp)
    ours.q_net.head.load_state_dict(sb3.policy.q_net.q_net.state_dict())
    ours.update_target(1.0)
    initial = ours.q_net.head[0].weight.detach().clone()
    env = gym.make("CartPole-v1", max_episode_steps=40)  # a few truncations in 600 steps
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    n_term = n_trunc = 0
    for _ in range(600):
        action = int(rng.integers(2))
        next_obs, reward, terminated, truncated, _ = env.step(action)
        ours.replay_buffer.add(obs, action, reward, next_obs, terminated)
        sb3.replay_buffer.add(obs[None], next_obs[None], np.array([action]), np.array([reward]),
                              np.array([terminated or truncated]),
                              [{"TimeLimit.truncated": truncated and not terminated}])
        n_term, n_trunc = n_term + terminated, n_trunc + (truncated and not terminated)
        obs = env.reset()[0] if terminated or truncated else next_obs
    assert n_term > 0 and n_trunc > 0
    for _ in range(2):  # two rounds with a hard target update in between
        idx = rng.integers(0, 600, size=(16, 32))
        rows = iter(idx)
        sb3.replay_buffer.sample = lambda n, env=None, rows=rows: sb3.replay_buffer._get_samples(next(rows))
        ours.replay_buffer.sample_indices = lambda rng_, n, k, idx=idx: idx
        sb3.train(gradient_steps=16, batch_size=32)
        ours.train(16)
        for p, q in zip(ours.q_net.head.parameters(), sb3.policy.q_net.q_net.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-5)
        polyak_update(sb3.q_net.parameters(), sb3.q_net_target.parameters(), 1.0)
        ours.update_target(1.0)
    moved = (ours.q_net.head[0].weight - initial).abs().max().item()
    assert moved > 1e-3  # the rounds really trained, so the match above is not trivial


def test_auto_device_follows_mimicgym_device(monkeypatch):
    from mimicgym.utils.torch_utils import resolve_device

    monkeypatch.setenv("MIMICGYM_DEVICE", "cpu")
    assert resolve_device("auto") == torch.device("cpu") and resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("MIMICGYM_DEVICE", "auto")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("MIMICGYM_DEVICE", "tpu7")
    with pytest.raises(ValueError, match="MIMICGYM_DEVICE='tpu7': unknown device 'tpu7'"):
        resolve_device("auto")
