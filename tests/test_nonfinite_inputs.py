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
