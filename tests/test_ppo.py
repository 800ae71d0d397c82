"""PPO: its update equals stable-baselines3's given the same weights, rollout and minibatch order;
it bootstraps truncations from the final observation under both autoreset modes and keeps reset
steps out of its minibatches; it resumes bit-exactly; it learns CartPole with rl-zoo's settings."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from _sb3_parity import copy_sb3_weights
from stable_baselines3.common.callbacks import BaseCallback

from mimicgym.agents import AGENTS, PPO, get_agent_class

ZOO_CARTPOLE = dict(n_envs=8, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
                    ent_coef=0.0, learning_rate="lin_1e-3", clip_range="lin_0.2")


# ----------------------------------------------------------------------------- SB3 parity
def _linear(start):
    return lambda progress: progress * start


PARITY_CASES = {
    # discrete actions, linear schedules, an entropy bonus, an uneven last minibatch (64 = 24+24+16)
    "cartpole": ("CartPole-v1", dict(batch_size=24, n_epochs=4, ent_coef=0.01),
                 dict(learning_rate="lin_1e-3", clip_range="lin_0.2"),
                 dict(learning_rate=_linear(1e-3), clip_range=_linear(0.2))),
    # Gaussian actions, the value clipped around V_old, raw advantages
    "pendulum_clip_vf": ("Pendulum-v1", dict(batch_size=16, n_epochs=3, ent_coef=0.01, clip_range_vf=0.05,
                                             normalize_advantage=False, learning_rate=3e-3),
                         dict(policy_kwargs={"log_std_init": -0.5}), dict(policy_kwargs={"log_std_init": -0.5})),
    # KL early stop: the epochs stop part-way, at the same minibatch as SB3's
    "cartpole_target_kl": ("CartPole-v1", dict(batch_size=16, n_epochs=10, learning_rate=3e-3, target_kl=0.002),
                           {}, {}),
}
SB3_KEYS = ("policy_gradient_loss", "value_loss", "entropy_loss", "approx_kl", "clip_fraction", "loss",
            "explained_variance", "clip_range", "learning_rate")


@pytest.mark.filterwarnings("ignore:You have specified a mini-batch size")
@pytest.mark.parametrize("case", PARITY_CASES)
def test_updates_equal_sb3s_given_the_same_weights_rollout_and_minibatch_order(case, monkeypatch):
    """Three updates of ours and of SB3's ``PPO.train`` on identical 16x4 rollouts, each ending
    with a termination (env 0) and a time-limit truncation (env 1, which SB3 bootstraps by adding
    ``gamma * V(final obs)`` to the reward), SB3's minibatches forced into our order: same weights,
    Adam state and logged values after every update, to 1e-5."""
    from stable_baselines3 import PPO as SB3PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.logger import configure

    env_id, shared, ours_only, sb3_only = PARITY_CASES[case]
    T, N = 16, 4
    sb3 = SB3PPO("MlpPolicy", make_vec_env(env_id, n_envs=N, seed=0), n_steps=T, seed=0, device="cpu",
                 **shared, **sb3_only)
    sb3.set_logger(configure(None, []))
    ours = PPO(env_id, seed=0, device="cpu", n_envs=N, n_steps=T, **shared, **ours_only)
    pairs = copy_sb3_weights(ours, sb3)
    continuous = isinstance(ours.action_space, gym.spaces.Box)
    if continuous:
        assert sb3.policy.log_std.detach().eq(-0.5).all()
        ours.policy.distribution.log_std.data.copy_(sb3.policy.log_std.data)
    initial = [p.detach().clone() for p in ours.policy.parameters()]

    # Our minibatch order comes from our rng, one permutation per epoch begun: SB3 draws the same
    # ones from a replica, mapped from our flat index t * N + n to its env-major n * T + t.
    replica = np.random.default_rng()
    replica.bit_generator.state = ours.rng.bit_generator.state
    monkeypatch.setattr(np.random, "permutation", lambda n: _env_major(replica.permutation(n), T, N))

    rng = np.random.default_rng(1)
    obs_dim = ours.observation_space.shape[0]
    for update in range(3):
        obs = (rng.normal(size=(T + 1, N, obs_dim)) * 0.5).astype(np.float32)
        actions = (rng.normal(size=(T, N, 1)).astype(np.float32) if continuous
                   else rng.integers(2, size=(T, N)))
        rewards = rng.normal(size=(T, N)).astype(np.float32)
        terminated, truncated = np.zeros((T, N), bool), np.zeros((T, N), bool)
        terminated[-1, 0] = truncated[-1, 1] = True
        ours._obs[:], ours._actions[:], ours._rewards[:] = obs, actions, rewards
        ours._terminated[:], ours._truncated[:], ours._valid[:] = terminated, truncated, True
        # progress_remaining 1 - num_timesteps / total: 0.75, 0.5, 0.25
        ours.num_timesteps, ours._total_timesteps = (update + 1) * T * N, 4 * T * N
        sb3._current_progress_remaining = 1.0 - (update + 1) / 4

        buffer = sb3.rollout_buffer
        buffer.reset()
        with torch.no_grad():
            sb3_rewards = rewards.copy()
            value = lambda o: sb3.policy.predict_values(torch.as_tensor(o)).flatten()  # noqa: E731
            sb3_rewards[-1, 1] += sb3.gamma * value(obs[-1, 1:2]).item()
            for t in range(T):
                act = torch.as_tensor(actions[t])
                values, log_prob, _ = sb3.policy.evaluate_actions(torch.as_tensor(obs[t]), act)
                buffer.add(obs[t], actions[t].reshape(N, -1), sb3_rewards[t], np.zeros(N), values, log_prob)
            last = obs[-1].copy()
            last[:2] = rng.normal(size=(2, obs_dim))  # SB3's vec env returns reset obs there
            buffer.compute_returns_and_advantage(value(last), terminated[-1] | truncated[-1])
        sb3_updates, our_updates = sb3._n_updates, ours._n_updates
        sb3.train()
        ours._train()

        for mine, theirs in pairs:
            for p, q in zip(mine.parameters(), theirs.parameters()):
                torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
        if continuous:
            torch.testing.assert_close(ours.policy.distribution.log_std, sb3.policy.log_std, rtol=1e-5, atol=1e-6)
        for p, q in zip(ours.optimizer.state_dict()["state"].values(),
                        [sb3.policy.optimizer.state[p] for p in _sb3_params_in_our_order(sb3, continuous)]):
            torch.testing.assert_close(p["exp_avg_sq"], q["exp_avg_sq"], rtol=1e-5, atol=1e-9)
        logged = sb3.logger.name_to_value
        for key in SB3_KEYS:
            assert ours.logger._pending[f"train/{key}"][-1] == pytest.approx(
                float(logged[f"train/{key}"]), rel=1e-5, abs=1e-6 if key == "explained_variance" else 1e-7), key
        if continuous:
            assert ours.logger._pending["train/std"][-1] == pytest.approx(logged["train/std"], rel=1e-5)
            assert ours.logger._pending["train/clip_range_vf"][-1] == logged["train/clip_range_vf"] == 0.05
        assert ours._n_updates - our_updates == sb3._n_updates - sb3_updates  # epochs run
    moved = max((p - q).abs().max().item() for p, q in zip(ours.policy.parameters(), initial))
    assert moved > 1e-3
    if case == "cartpole_target_kl":
        assert ours._n_updates < 3 * 10, "the KL limit should have stopped some epochs early"


def _env_major(order, T, N):
    return (order % N) * T + order // N


def _sb3_params_in_our_order(sb3, continuous):
    """SB3's parameters in the order of ours: actor MLP, critic MLP, heads, log_std last."""
    policy = sb3.policy
    ordered = [*policy.mlp_extractor.policy_net.parameters(), *policy.mlp_extractor.value_net.parameters(),
               *policy.action_net.parameters(), *policy.value_net.parameters()]
    return [policy.log_std, *ordered] if continuous else ordered


# ----------------------------------------------------------------------------- behaviour
class Alternating(gym.Env):
    """A task that goes on forever, cut by a time limit after 3 steps: observations alternate A, B,
    A, (B); acting from A pays 1, from B 2. With gamma 0.5, V(A) = 8/3 and V(B) = 10/3. The cut
    step's value target needs V(final obs B): bootstrapping from the reset obs A instead gives
    V(A) = 2.4, learning from NEXT_STEP's reset steps (B -> A, reward 0) V(A) = 2, and treating
    the cut as a termination V(A) = 12/7."""

    observation_space = gym.spaces.Box(0.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([1.0, 0.0], np.float32), {}

    def step(self, action):
        reward = 1.0 if self.t % 2 == 0 else 2.0
        self.t += 1
        obs = np.array([1.0, 0.0] if self.t % 2 == 0 else [0.0, 1.0], np.float32)
        return obs, reward, False, self.t == 3, {}


@pytest.mark.parametrize("mode", [gym.vector.AutoresetMode.NEXT_STEP, gym.vector.AutoresetMode.SAME_STEP])
def test_critic_bootstraps_truncation_from_the_final_observation(mode):
    env = gym.vector.SyncVectorEnv([Alternating] * 4, autoreset_mode=mode)
    agent = PPO(env, seed=0, device="cpu", n_envs=4, n_steps=16, batch_size=32, gamma=0.5, gae_lambda=0.0,
                learning_rate=3e-3, max_grad_norm=10.0)
    agent.learn(3_000)
    with torch.no_grad():
        values = agent.policy.value(torch.eye(2))
    torch.testing.assert_close(values, torch.tensor([8 / 3, 10 / 3]), rtol=0.04, atol=0.0)
    assert agent._valid.all() == (mode == gym.vector.AutoresetMode.SAME_STEP)  # reset steps only in NEXT_STEP


def test_cartpole_with_rl_zoo_settings_learns():
    agent = PPO("CartPole-v1", seed=0, device="cpu", **ZOO_CARTPOLE)
    agent.learn(40_000, log_interval=10)
    history = agent.logger.history
    assert history["rollout/ep_rew_mean"][0][1] < 60  # near random at first (about 22)
    assert np.mean(agent.episode_stats.returns[-20:]) > 200  # 500 on seeds 0 and 1
    for key in ("train/policy_gradient_loss", "train/value_loss", "train/entropy_loss", "train/approx_kl",
                "train/clip_fraction", "train/loss", "train/explained_variance", "train/n_updates",
                "train/clip_range", "train/learning_rate", "rollout/ep_len_mean"):
        assert key in history, key
    # SB3's n_updates counts epochs; the schedules decay linearly with progress to 0
    assert history["train/n_updates"][-1][1] == 20 * (40_000 // 256 + 1)
    # (the first dump averages the first 10 iterations' values)
    assert history["train/learning_rate"][0][1] == pytest.approx(1e-3 * (1 - 5.5 * 256 / 40_000))


# ----------------------------------------------------------------------------- exact resume
RESUME_CASES = {
    "cartpole": (lambda: PPO("CartPole-v1", seed=2, device="cpu", n_envs=4, n_steps=64, batch_size=48, n_epochs=3,
                             net_arch=[16], learning_rate="lin_1e-3", target_kl=0.01), 1200, 600),
    "pendulum": (lambda: PPO("Pendulum-v1", seed=2, device="cpu", n_envs=2, n_steps=128, batch_size=64, n_epochs=2,
                             net_arch=[16], normalize_observations=True, normalize_reward=True,
                             clip_range_vf=0.5), 1280, 700),
}


class SaveAt(BaseCallback):
    """At the first step at or past ``at``: save, then stop (``stop=True``) or go on."""

    def __init__(self, at, path, stop):
        super().__init__()
        self.at, self.path, self.stop, self.mid_rollout = at, path, stop, None

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.at and self.mid_rollout is None:
            self.mid_rollout = self.model._rollout_step > 0
            self.model.save(self.path)
            return not self.stop
        return True


def _state(agent) -> dict:
    return {"num_timesteps": agent.num_timesteps, "episodes": agent.episode_stats.returns,
            "curves": {k: v for k, v in agent.logger.history.items() if not k.startswith("time/")},
            "rng": agent.rng.bit_generator.state, "torch_rng": agent.torch_rng.get_state(),
            "env_rngs": [env.unwrapped.np_random.bit_generator.state for env in agent.env.envs],
            "modules": {name: getattr(agent, name).state_dict() for name in agent._modules},
            "adam": agent.optimizer.state_dict()["state"], "n_updates": agent._n_updates,
            "reward_return": agent._reward_return}


def _assert_same(a, b, where="state"):
    if isinstance(a, (torch.Tensor, np.ndarray)):
        assert type(a) is type(b) and a.dtype == b.dtype, where
        assert (torch.equal(a, b) if isinstance(a, torch.Tensor) else np.array_equal(a, b)), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}.{key}")
    else:
        assert a == b, f"{where} differs"


@pytest.mark.parametrize("stop", [True, False], ids=["stop", "checkpoint"])
@pytest.mark.parametrize("case", RESUME_CASES)
def test_stop_mid_rollout_and_resume_equals_the_uninterrupted_run(case, stop, tmp_path):
    make, total, at = RESUME_CASES[case]
    straight = _state(make().learn(total, log_interval=2))
    first, path = make(), tmp_path / "ppo.pt"
    saver = SaveAt(at, path, stop)
    first.learn(total, callback=saver, log_interval=2)
    assert saver.mid_rollout, f"the save at {at} should fall inside a rollout"
    if not stop:  # saving along the way changes nothing
        _assert_same(_state(first), straight, "run that saved")
    resumed = PPO.load(path, env=make().env, device="cpu")
    assert resumed.config == first.config
    resumed.learn(total - resumed.num_timesteps, reset_num_timesteps=False, log_interval=2)
    _assert_same(_state(resumed), straight, "resumed")


# ----------------------------------------------------------------------------- API and errors
def test_registered_for_the_cli_with_the_agent_contract():
    import inspect

    assert AGENTS["ppo"] == "PPO" and get_agent_class("ppo") is PPO
    params = [p for p in inspect.signature(PPO.learn).parameters if p != "self"]
    assert params == ["total_timesteps", "callback", "log_interval", "progress_bar", "reset_num_timesteps"]
    defaults = PPO.Config()  # SB3's
    assert (defaults.n_steps, defaults.batch_size, defaults.n_epochs, defaults.gae_lambda, defaults.clip_range,
            defaults.learning_rate, defaults.target_kl, defaults.max_grad_norm) == (2048, 64, 10, 0.95, 0.2,
                                                                                    3e-4, None, 0.5)


def test_policy_kwargs_fold_into_the_network_options_and_predict_works():
    from torch import nn

    agent = PPO("Pendulum-v1", device="cpu", n_steps=64, policy_kwargs=dict(
        net_arch=dict(pi=[32], vf=[16, 16]), activation_fn=nn.ReLU, log_std_init=-1.0, ortho_init=False))
    cfg = agent.config
    assert (cfg.net_arch, cfg.activation, cfg.log_std_init, cfg.ortho_init, cfg.policy_kwargs) == (
        {"pi": [32], "vf": [16, 16]}, "relu", -1.0, False, None)
    assert agent.policy.distribution.log_std.eq(-1.0).all()
    actions, _ = agent.predict(np.zeros((5, 3), np.float32))
    assert actions.shape == (5, 1) and np.all(np.abs(actions) <= 2.0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(batch_size=300, n_steps=32, n_envs=8), r"batch_size=300 exceeds .* n_steps \* n_envs = 32 \* 8 = 256"),
    (dict(clip_range=0.0), r"clip_range must be > 0, got 0.0"),
    (dict(clip_range="lin_-0.1"), r"clip_range must be > 0, got -0.1"),
    (dict(clip_range_vf=-1.0), r"clip_range_vf must be > 0"),
    (dict(learning_rate="cosine"), r"learning_rate must be a number or 'lin_<number>', got 'cosine'"),
    (dict(target_kl=0.0), r"target_kl must be > 0"),
    (dict(n_epochs=0), r"n_epochs must be a positive int, got 0"),
    (dict(batch_size=1), r"batch_size must be >= 2"),
    (dict(gae_lambda=1.5), r"gae_lambda must lie in \[0, 1\], got 1.5"),
    (dict(use_sde=True), r"use_sde=True: .*not supported"),
    (dict(policy_kwargs={"features_extractor_class": None}), r"policy_kwargs\['features_extractor_class'\]"),
    (dict(nonsense=1), r"PPO has no hyperparameter 'nonsense'"),
])
def test_errors_name_the_field_and_value(kwargs, match):
    from mimicgym.errors import ConfigError

    with pytest.raises(ConfigError, match=match):
        PPO("CartPole-v1", device="cpu", **kwargs)


def test_env_errors():
    envs = gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync")
    with pytest.raises(ValueError, match="n_envs=4 but the given VectorEnv has num_envs=2"):
        PPO(envs, n_envs=4, n_steps=32)
    with pytest.raises(TypeError, match="VectorEnv"):
        PPO(gym.make("CartPole-v1"))


def test_cli_trains_evaluates_and_resumes_ppo(tmp_path):
    import json

    from mimicgym.cli import main

    base = ["train", "--env", "CartPole-v1", "--agent", "ppo", "--logdir", str(tmp_path), "--no-progress",
            "--set", "n_envs=2", "n_steps=64", "batch_size=64", "learning_rate=lin_1e-3", "target_kl=0.02"]
    assert main([*base, "--timesteps", "512", "--run-name", "r", "--eval-episodes", "2"]) == 0
    run = tmp_path / "r"
    assert json.loads((run / "eval.json").read_text())["episodes"] == 2
    used = json.loads((run / "config.json").read_text())["hyperparameters"]
    assert used["learning_rate"] == "lin_1e-3" and used["n_envs"] == 2
    assert main(["train", "--resume", str(run / "model.pt"), "--timesteps", "768", "--eval-episodes", "1",
                 "--no-progress"]) == 0
    assert PPO.load(run / "model.pt", env="CartPole-v1", device="cpu").num_timesteps == 768
