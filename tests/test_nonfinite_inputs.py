"""``predict`` refuses NaN and inf observations, naming the argument and the first bad entry."""

from __future__ import annotations

import numpy as np
import pytest

from mimicgym import agents


@pytest.mark.parametrize("make", [
    lambda: agents.DQN("CartPole-v1", seed=0, net_arch=(8,)),
    lambda: agents.A2C("CartPole-v1", seed=0, n_envs=2),
    lambda: agents.Reinforce("CartPole-v1", seed=0),
])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_predict_refuses_non_finite_observations(make, bad):
    agent = make()
    obs = np.zeros(4, dtype=np.float32)
    agent.predict(obs)  # finite: fine
    obs[2] = bad
    with pytest.raises(ValueError, match=r"observation\[2\] is (nan|inf|-inf)"):
        agent.predict(obs)
    batch = np.zeros((3, 4), dtype=np.float32)
    batch[1, 3] = bad
    with pytest.raises(ValueError, match=r"observation\[1, 3\]"):
        agent.predict(batch)
    agent.check_finite_inputs = False  # the documented switch
    agent.predict(batch)


def test_tabular_predict_refuses_nan_states():
    q = agents.QLearning("mimicgym/CliffWalking-v0", seed=0)
    with pytest.raises(ValueError, match="state indices"):
        q.predict(np.nan)


@pytest.fixture(scope="module")
def body_model():
    from mimicgym.motion.body_model import BodyModel
    from tests._body_fixtures import random_smpl_arrays

    return BodyModel(arrays=random_smpl_arrays(0, num_vertices=300))


# Poses are named per joint: body_pose[1, 16] is joint 5's y component, global_orient the joint 0.
@pytest.mark.parametrize("argument, shape, at, index", [
    ("body_pose", (2, 69), (1, 16), [1, 5, 1]), ("global_orient", (2, 3), (0, 2), [0, 0, 2]),
    ("betas", (2, 10), (1, 7), [1, 7]), ("transl", (2, 3), (0, 1), [0, 1]),
])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_body_model_refuses_non_finite_arguments(body_model, argument, shape, at, index, bad):
    import torch

    value = torch.zeros(shape)
    value[at] = bad
    with pytest.raises(ValueError, match=rf"{argument}\[{', '.join(map(str, index))}\] is (nan|inf)"):
        body_model(**{argument: value})
    body_model.check_finite_inputs = False  # the documented switch: NaN flows through
    try:
        assert not torch.isfinite(body_model(**{argument: value}).vertices).all()
    finally:
        body_model.check_finite_inputs = True
    assert torch.isfinite(body_model(**{argument: torch.zeros(shape)}).vertices).all()


def test_fitting_refuses_non_finite_keypoints_and_confidence(body_model):
    import torch

    from mimicgym.motion.fitting import fit_to_keypoints

    joints = torch.zeros(1, 24, 3)
    joints[0, 4, 1] = np.nan
    with pytest.raises(ValueError, match=r"joints3d\[0, 4, 1\] is nan.*zero confidence"):
        fit_to_keypoints(body_model, joints3d=joints)
    confidence = torch.ones(1, 24)
    confidence[0, 3] = np.inf
    with pytest.raises(ValueError, match=r"confidence\[0, 3\] is inf"):
        fit_to_keypoints(body_model, joints3d=torch.zeros(1, 24, 3), confidence=confidence)


class _NaNAfter:
    """CartPole whose 30th step returns a NaN observation (or reward): a broken env or sensor."""

    def __new__(cls, what: str):
        import gymnasium as gym

        class Broken(gym.Wrapper):
            steps = 0

            def step(self, action):
                obs, reward, terminated, truncated, info = self.env.step(action)
                Broken.steps += 1
                if Broken.steps == 30:
                    if what == "observation":
                        obs = obs.copy()
                        obs[1] = np.nan
                    else:
                        reward = float("inf")
                return obs, reward, terminated, truncated, info

        return Broken(gym.make("CartPole-v1"))


def _a2c(env):
    import gymnasium as gym

    return agents.A2C(gym.vector.SyncVectorEnv([lambda: env]), seed=0, n_envs=1)


def _dqn(env):
    return agents.DQN(env, seed=0, net_arch=(8,), learning_starts=10)


def _reinforce(env):
    return agents.Reinforce(env, seed=0)


# The 30th env step is the bad one; A2C's count of timesteps includes its first reset, and its
# observations and rewards have a leading env axis.
@pytest.mark.parametrize("make, what, match", [
    (_dqn, "observation", r"timestep 30: observation\[1\] is nan"),
    (_dqn, "reward", r"timestep 30: reward\[\] is inf"),
    (_reinforce, "observation", r"timestep 30: observation\[1\] is nan"),
    (_reinforce, "reward", r"timestep 30: reward\[\] is inf"),
    (_a2c, "observation", r"timestep 31: observation\[0, 1\] is nan"),
    (_a2c, "reward", r"timestep 31: reward\[0\] is inf"),
])
def test_learn_stops_at_a_non_finite_env_step_naming_it(make, what, match):
    with pytest.raises(ValueError, match="env.step at " + match):
        make(_NaNAfter(what)).learn(200)
    quiet = make(_NaNAfter(what))
    quiet.check_finite_inputs = False  # the documented switch
    try:
        quiet.learn(60)
    except FloatingPointError:  # the NaN reaches a loss instead, named by step
        pass
