"""ReplayBuffer: ring wrap-around, uniform sampling, checkpoint round trip."""

import numpy as np
import pytest

from mimicgym.agents.buffers import ReplayBuffer


def filled(capacity: int, n: int) -> ReplayBuffer:
    """Transition i: obs (i, -i), action i % 3, reward i / 10, next obs (i + 1, -i - 1),
    terminated when i is a multiple of 4."""
    buf = ReplayBuffer(capacity, (2,), np.float32)
    for i in range(n):
        buf.add(np.array([i, -i]), i % 3, i / 10, np.array([i + 1, -i - 1]), i % 4 == 0)
    return buf


def test_wrap_around_overwrites_oldest_rows():
    buf = filled(5, 7)  # transitions 0..6 into 5 rows: 5 and 6 overwrite rows 0 and 1
    assert len(buf) == 5 and buf.pos == 2
    np.testing.assert_array_equal(buf.observations[:, 0], [5, 6, 2, 3, 4])
    np.testing.assert_array_equal(buf.next_observations[:, 0], [6, 7, 3, 4, 5])
    np.testing.assert_array_equal(buf.actions, [2, 0, 2, 0, 1])
    np.testing.assert_allclose(buf.rewards, [0.5, 0.6, 0.2, 0.3, 0.4], rtol=1e-6)
    np.testing.assert_array_equal(buf.terminations, [0, 0, 0, 0, 1])


def test_sample_draws_only_filled_rows_and_keeps_fields_aligned():
    buf = filled(100, 3)
    batch = buf.sample(np.random.default_rng(0), batch_size=8, n_batches=5)
    assert batch["observations"].shape == (5, 8, 2) and batch["actions"].shape == (5, 8)
    ids = batch["observations"][..., 0].astype(int)
    assert set(np.unique(ids)) <= {0, 1, 2}
    # every field of a sampled row belongs to the same transition
    np.testing.assert_array_equal(batch["next_observations"][..., 0], ids + 1)
    np.testing.assert_array_equal(batch["actions"], ids % 3)
    np.testing.assert_array_equal(batch["terminations"], (ids % 4 == 0).astype(np.float32))


def test_sampling_is_uniform_chi_square():
    buf = filled(10, 13)  # full and wrapped: all 10 rows are live
    idx = buf.sample_indices(np.random.default_rng(123), batch_size=1000, n_batches=20)
    counts = np.bincount(idx.ravel(), minlength=10)
    expected = idx.size / 10
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 27.88  # chi-square critical value, 9 degrees of freedom, p = 0.001
    # and the same seed draws the same indices
    np.testing.assert_array_equal(idx, buf.sample_indices(np.random.default_rng(123), 1000, 20))


def test_state_dict_round_trip_of_a_wrapped_buffer():
    buf = filled(5, 7)
    other = ReplayBuffer(5, (2,), np.float32)
    other.load_state_dict(buf.state_dict())
    assert (other.pos, other.size) == (2, 5)
    for name in ("observations", "next_observations", "actions", "rewards", "terminations"):
        np.testing.assert_array_equal(getattr(other, name), getattr(buf, name))


def test_partial_state_dict_stores_only_filled_rows():
    state = filled(50, 3).state_dict()
    assert state["observations"].shape == (3, 2)
    other = ReplayBuffer(50, (2,), np.float32)
    other.load_state_dict(state)
    assert len(other) == 3 and other.pos == 3


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="capacity must be > 0, got 0"):
        ReplayBuffer(0, (2,), np.float32)
    with pytest.raises(ValueError, match="empty replay buffer"):
        ReplayBuffer(4, (2,), np.float32).sample(np.random.default_rng(0), 2)
    with pytest.raises(ValueError, match="capacity 5 in the checkpoint, this buffer has 6"):
        ReplayBuffer(6, (2,), np.float32).load_state_dict(filled(5, 2).state_dict())
    bad = filled(5, 2).state_dict()
    bad["rewards"] = bad["rewards"][:1]
    with pytest.raises(ValueError, match="'rewards' has shape"):
        ReplayBuffer(5, (2,), np.float32).load_state_dict(bad)
