"""Observation normalisation inside the policy network: exact running statistics, what A2C
and REINFORCE feed them, checkpoints, and the CLI's ``--normalize`` for our agents."""

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from mimicgym.agents.a2c import A2C
from mimicgym.agents.normalization import RunningObservationNormalizer
from mimicgym.agents.policies import ActorCritic
from mimicgym.agents.reinforce import Reinforce


class RecordObservations(gym.vector.VectorWrapper):
    """Keeps every observation a vector env hands out, resets and steps alike."""

    def __init__(self, env):
        super().__init__(env)
        self.seen = []

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.seen.append(obs.copy())
        return obs, info

    def step(self, actions):
        obs, *rest = self.env.step(actions)
        self.seen.append(obs.copy())
        return obs, *rest


def test_batched_updates_give_the_statistics_of_all_the_data():
    rng = np.random.default_rng(0)
    data = rng.normal([5.0, -3.0, 0.0], [2.0, 0.1, 30.0], size=(1000, 3))
    norm = RunningObservationNormalizer((3,))
    x = torch.tensor(rng.normal(size=(4, 3)) * 50, dtype=torch.float32)
    assert torch.equal(norm(x), x.clamp(-10, 10))  # the identity before any update
    for chunk in np.array_split(data, [1, 7, 300, 301]):  # batches of 1, 6, 293, 1, 699
        norm.update(torch.from_numpy(chunk))
    np.testing.assert_allclose(norm.mean.numpy(), data.mean(0), rtol=1e-12)
    np.testing.assert_allclose(norm.var.numpy(), data.var(0), rtol=1e-10)
    assert norm.count.item() == 1000
    expected = np.clip((data[:5] - data.mean(0)) / np.sqrt(data.var(0) + 1e-8), -10, 10)
    np.testing.assert_allclose(norm(torch.from_numpy(data[:5]).float()).numpy(), expected,
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="clip"):
        RunningObservationNormalizer((3,), clip=0.0)


def test_only_float_box_observations_are_normalised():
    with pytest.raises(ValueError, match="Discrete"):
        ActorCritic(gym.spaces.Discrete(4), gym.spaces.Discrete(2), normalize_observations=True)


def test_a2c_normalises_with_the_statistics_of_the_observations_it_trained_on():
    env = RecordObservations(gym.make_vec("CartPole-v1", num_envs=4, vectorization_mode="sync"))
    agent = A2C(env, seed=0, device="cpu", n_envs=4, n_steps=5, normalize_observations=True)
    agent.learn(400)  # 20 rollouts of 5 x 4 steps
    # Each rollout trains on its first 5 observations per env: the reset and every step's
    # observation except the last one (the start of the next rollout).
    trained_on = np.concatenate(env.seen[:-1]).astype(np.float64)
    norm = agent.policy.obs_normalizer
    assert norm.count.item() == len(trained_on) == 400
    np.testing.assert_allclose(norm.mean.numpy(), trained_on.mean(0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(norm.var.numpy(), trained_on.var(0), rtol=1e-9)


@pytest.mark.parametrize("normalize", [False, True])
def test_a2c_learns_cartpole_with_observations_a_thousand_times_too_large(normalize):
    env = gym.wrappers.vector.TransformObservation(
        gym.make_vec("CartPole-v1", num_envs=8, vectorization_mode="sync"), lambda o: o * 1000.0)
    agent = A2C(env, seed=0, device="cpu", normalize_observations=normalize)
    agent.learn(30_000)
    # Random play lasts about 22 steps; the saturated tanh units learn nothing (41 here);
    # normalised, the run learns as on the raw observations (137; seed 1: 220).
    last = np.mean(agent.episode_stats.returns[-20:])
    assert last > 100 if normalize else last < 60


def test_reinforce_statistics_cover_its_episodes_and_survive_a_checkpoint(tmp_path):
    env = gym.make("CartPole-v1")
    agent = Reinforce(env, seed=0, device="cpu", normalize_observations=True)
    seen = []
    original_step, original_reset = env.step, env.reset

    def step(action):
        out = original_step(action)
        seen.append(out[0])
        return out

    def reset(**kwargs):
        obs, info = original_reset(**kwargs)
        seen.append(obs)
        return obs, info

    env.step, env.reset = step, reset
    agent.learn(1_000)
    norm = agent.policy.obs_normalizer
    # Whole batches of 2 episodes (reset and final observations included) were trained on;
    # learn() stops after the episode that crosses 1,000 steps, possibly mid-batch.
    n = int(norm.count.item())
    assert 0 < n <= len(seen)
    np.testing.assert_allclose(norm.mean.numpy(), np.mean(np.asarray(seen[:n], dtype=np.float64), 0),
                               rtol=1e-9, atol=1e-12)
    path = agent.save(tmp_path / "reinforce.pt")
    loaded = Reinforce.load(path, env=gym.make("CartPole-v1"))
    assert torch.equal(loaded.policy.obs_normalizer.mean, norm.mean)
    obs = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    np.testing.assert_array_equal(agent.predict(obs, deterministic=True)[0],
                                  loaded.predict(obs, deterministic=True)[0])


def test_cli_normalize_switches_on_our_agents_statistics(tmp_path, capsys):
    from mimicgym.cli import main

    base = ["train", "--env", "CartPole-v1", "--timesteps", "400", "--logdir", str(tmp_path),
            "--no-progress", "--eval-episodes", "1", "--normalize"]
    assert main([*base, "--agent", "a2c", "--run-name", "a2c"]) == 0
    used = json.loads((tmp_path / "a2c" / "config.json").read_text())["hyperparameters"]
    assert used["normalize_observations"] is True
    state = torch.load(tmp_path / "a2c" / "model.pt", weights_only=True)
    assert state["modules"]["policy"]["obs_normalizer.count"].item() == 400
    assert main([*base, "--agent", "dqn", "--run-name", "dqn"]) == 2
    assert "agent 'dqn' has no observation normalisation" in capsys.readouterr().err
