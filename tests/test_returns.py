"""Return estimators against numbers worked out by hand.

The trajectory below has three two-step episodes: the first terminates at t=1, the second
is truncated at t=3, the third is cut by the end of the data at t=5. gamma = 0.5.
"""

import pytest
import torch

from mimicgym.agents.returns import discounted_returns, gae, nstep_returns

GAMMA = 0.5
REWARDS = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
TERMINATED = torch.tensor([0, 1, 0, 0, 0, 0], dtype=torch.bool)
TRUNCATED = torch.tensor([0, 0, 0, 1, 0, 0], dtype=torch.bool)
VALUES = torch.tensor([5.0, 15.0, 25.0, 35.0, 45.0, 55.0])        # V(s_t)
NEXT_VALUES = torch.tensor([10.0, 20.0, 30.0, 40.0, 50.0, 60.0])  # V(s_{t+1})


def test_discounted_returns_without_bootstrap():
    # G1 = 2, G0 = 1 + .5*2; G3 = 4, G2 = 3 + .5*4; G5 = 6, G4 = 5 + .5*6
    got = discounted_returns(REWARDS, TERMINATED, TRUNCATED, GAMMA)
    torch.testing.assert_close(got, torch.tensor([2.0, 2.0, 5.0, 4.0, 8.0, 6.0]))


def test_discounted_returns_bootstrap_on_truncation_only():
    # terminal: G1 = 2 (V(s_2) ignored); truncated: G3 = 4 + .5*40 = 24, G2 = 3 + .5*24 = 15;
    # end of data: G5 = 6 + .5*60 = 36, G4 = 5 + .5*36 = 23
    got = discounted_returns(REWARDS, TERMINATED, TRUNCATED, GAMMA, next_values=NEXT_VALUES)
    torch.testing.assert_close(got, torch.tensor([2.0, 2.0, 15.0, 24.0, 23.0, 36.0]))


def test_one_step_returns():
    # r_t + .5 * V(s_{t+1}), with V = 0 after the termination at t=1
    got = nstep_returns(REWARDS, NEXT_VALUES, TERMINATED, TRUNCATED, GAMMA, n=1)
    torch.testing.assert_close(got, torch.tensor([6.0, 2.0, 18.0, 24.0, 30.0, 36.0]))


def test_two_step_returns_stop_at_episode_ends():
    # t0: 1 + .5*2 (terminated, no bootstrap) = 2; t2: 3 + .5*4 + .25*40 = 15;
    # t4: 5 + .5*6 + .25*60 = 23; t1, t3, t5 are one step from their episode's end.
    got = nstep_returns(REWARDS, NEXT_VALUES, TERMINATED, TRUNCATED, GAMMA, n=2)
    torch.testing.assert_close(got, torch.tensor([2.0, 2.0, 15.0, 24.0, 23.0, 36.0]))


def test_nstep_horizon_inside_one_episode():
    rewards = torch.ones(4)
    next_values = torch.tensor([2.0, 4.0, 8.0, 16.0])
    flags = torch.zeros(4, dtype=torch.bool)
    # n=2: G0 = 1 + .5 + .25*4 = 2.5, G1 = 1.5 + .25*8 = 3.5, G2 = 1.5 + .25*16 = 5.5,
    #      G3 = 1 + .5*16 = 9 (data ends after one step)
    got = nstep_returns(rewards, next_values, flags, flags, GAMMA, n=2)
    torch.testing.assert_close(got, torch.tensor([2.5, 3.5, 5.5, 9.0]))
    # n=None: every chain runs to t=3 and bootstraps from V(s_4) = 16
    # G0 = 1 + .5 + .25 + .125 + .0625*16 = 2.875, G1 = 1.75 + .125*16 = 3.75
    got = nstep_returns(rewards, next_values, flags, flags, GAMMA, n=None)
    torch.testing.assert_close(got, torch.tensor([2.875, 3.75, 5.5, 9.0]))


def test_gae_hand_computed():
    # deltas: 1 + 5 - 5 = 1, 2 - 15 = -13, 3 + 15 - 25 = -7, 4 + 20 - 35 = -11,
    #         5 + 25 - 45 = -15, 6 + 30 - 55 = -19; gamma*lambda = .25 within episodes
    advantages, returns = gae(REWARDS, VALUES, NEXT_VALUES, TERMINATED, TRUNCATED, GAMMA, 0.5)
    expected = torch.tensor([1 - 0.25 * 13, -13.0, -7 - 0.25 * 11, -11.0, -15 - 0.25 * 19, -19.0])
    torch.testing.assert_close(advantages, expected)
    torch.testing.assert_close(returns, expected + VALUES)


@pytest.mark.parametrize("gae_lambda, n", [(0.0, 1), (1.0, None)])
def test_gae_limits_match_nstep(gae_lambda, n):
    gen = torch.Generator().manual_seed(0)
    shape = (9, 3)
    rewards = torch.randn(shape, generator=gen)
    terminated = torch.rand(shape, generator=gen) < 0.2
    truncated = (torch.rand(shape, generator=gen) < 0.2) & ~terminated
    # Within an episode V(s_{t+1}) is the next row's V(s_t); at an episode end it is the
    # value of the final observation, unrelated to the next episode's first state.
    chain = torch.randn((shape[0] + 1, shape[1]), generator=gen)
    values, next_values = chain[:-1], chain[1:].clone()
    ended = terminated | truncated
    next_values[ended] = torch.randn(int(ended.sum()), generator=gen)
    advantages, _ = gae(rewards, values, next_values, terminated, truncated, 0.9, gae_lambda)
    expected = nstep_returns(rewards, next_values, terminated, truncated, 0.9, n=n) - values
    torch.testing.assert_close(advantages, expected)


def test_batch_columns_are_independent():
    batched_rewards = torch.stack([REWARDS, REWARDS.flip(0)], dim=1)  # (T, 2)
    batched = lambda x: torch.stack([x, x.flip(0)], dim=1)  # noqa: E731
    adv, _ = gae(batched_rewards, batched(VALUES), batched(NEXT_VALUES), batched(TERMINATED),
                 batched(TRUNCATED), GAMMA, 0.5)
    for column in range(2):
        select = (lambda x: x) if column == 0 else (lambda x: x.flip(0))
        single, _ = gae(select(REWARDS), select(VALUES), select(NEXT_VALUES),
                        select(TERMINATED), select(TRUNCATED), GAMMA, 0.5)
        torch.testing.assert_close(adv[:, column], single)


def test_bad_inputs():
    with pytest.raises(ValueError, match="shape"):
        gae(REWARDS, VALUES[:3], NEXT_VALUES, TERMINATED, TRUNCATED, GAMMA, 0.5)
    with pytest.raises(ValueError, match="gae_lambda"):
        gae(REWARDS, VALUES, NEXT_VALUES, TERMINATED, TRUNCATED, GAMMA, 1.5)
    with pytest.raises(ValueError, match="n must be"):
        nstep_returns(REWARDS, NEXT_VALUES, TERMINATED, TRUNCATED, GAMMA, n=0)
