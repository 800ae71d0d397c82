"""The RBM: free energy, exact and AIS partition functions, Gibbs sampling, CD/PCD training, seeds, errors."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from mimicgym.errors import ConfigError
from mimicgym.generative.data import digits
from mimicgym.generative.rbm import RBM
from mimicgym.generative.train import fit

D = 10
ALL_VISIBLE = torch.tensor(list(itertools.product([0.0, 1.0], repeat=D)))  # (1024, 10)


def _random_rbm(visible: int = D, hidden: int = 20, scale: float = 0.5, **kwargs) -> RBM:
    model = RBM((visible,), hidden=hidden, **kwargs)
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=gen))
    return model


def _brute_force_log_z(model: RBM) -> float:
    """log sum_{v, h} exp(-E(v, h)) over every joint state, in float64."""
    W, b, c = (p.detach().double() for p in (model.W, model.b, model.c))
    v = torch.tensor(list(itertools.product([0.0, 1.0], repeat=W.shape[1])), dtype=torch.float64)
    h = torch.tensor(list(itertools.product([0.0, 1.0], repeat=W.shape[0])), dtype=torch.float64)
    negative_energy = (v @ b)[:, None] + (h @ c)[None, :] + v @ W.T @ h.T  # (2^D, 2^H)
    return torch.logsumexp(negative_energy.flatten(), 0).item()


@pytest.mark.parametrize("hidden", [20, 6, 13])  # 6: sum out v, enumerate h; 13, 20: the other way round
def test_probabilities_of_all_inputs_sum_to_one(hidden):
    model = _random_rbm(hidden=hidden)
    with torch.no_grad():
        total = model.log_prob(ALL_VISIBLE).double().exp().sum().item()
    assert total == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("visible, hidden", [(5, 4), (4, 7)])
def test_exact_log_partition_matches_brute_force(visible, hidden):
    model = _random_rbm(visible, hidden, scale=0.8)
    assert model.log_partition().item() == pytest.approx(_brute_force_log_z(model), abs=1e-4)


def test_free_energy_marginalises_the_hidden_units():
    model = _random_rbm(4, 3)
    v = torch.tensor(list(itertools.product([0.0, 1.0], repeat=4)))
    h = torch.tensor(list(itertools.product([0.0, 1.0], repeat=3)))
    energy = -(v @ model.b)[:, None] - (h @ model.c)[None, :] - v @ model.W.T @ h.T  # (16, 8)
    assert torch.allclose(model.free_energy(v), -torch.logsumexp(-energy, dim=1), atol=1e-5)


def test_ais_estimate_is_close_to_the_exact_log_partition():
    model = _random_rbm(20, 12, scale=0.5)
    exact = model.log_partition().item()
    estimates = [model.ais_log_partition(100, 1000, torch.Generator().manual_seed(s)).item() for s in range(2)]
    assert all(abs(e - exact) < 0.1 for e in estimates), (estimates, exact)
    # A data-like base rate works too, and the estimate does not depend on luck alone: same seed, same value.
    base = torch.full((20,), 0.3)
    with_base = model.ais_log_partition(100, 1000, torch.Generator().manual_seed(0), base_rate=base).item()
    assert abs(with_base - exact) < 0.1
    assert model.ais_log_partition(100, 1000, torch.Generator().manual_seed(0)).item() == estimates[0]


def test_large_rbm_log_prob_uses_a_fixed_ais_estimate_until_the_parameters_change():
    model = RBM((21,), hidden=21, ais_chains=10, ais_betas=50)
    x = torch.zeros(2, 21)
    first = model.log_prob(x)
    assert torch.equal(model.log_prob(x), first)  # cached: the generator is not drawn again
    with torch.no_grad():
        model.c.add_(1.0)
    assert not torch.equal(model.log_prob(x), first)


def test_cached_log_partition_follows_optimiser_steps_and_loaded_states():
    model = _random_rbm(hidden=8)
    x = ALL_VISIBLE[::50]
    before = model.log_prob(x)
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    model.loss(x).backward()
    optimizer.step()
    with torch.no_grad():
        assert model.log_prob(ALL_VISIBLE).exp().sum().item() == pytest.approx(1.0, abs=1e-5)
    model.load_state_dict(saved)
    assert torch.allclose(model.log_prob(x), before)


def test_cd_loss_gradient_is_the_contrastive_divergence_gradient():
    model = _random_rbm(hidden=5, k=2)
    x = ALL_VISIBLE[::40]
    model.loss(x).backward()
    # Replay the same negative chain with the same generator state.
    replay = _random_rbm(hidden=5, k=2)
    v = x
    with torch.no_grad():
        for _ in range(2):
            v = replay.gibbs_step(v)
    ph_data = torch.sigmoid(x @ replay.W.T + replay.c)
    ph_model = torch.sigmoid(v @ replay.W.T + replay.c)
    expected_dW = -(ph_data.T @ x - ph_model.T @ v) / len(x)
    assert torch.allclose(model.W.grad, expected_dW, atol=1e-6)
    assert torch.allclose(model.b.grad, -(x - v).mean(0), atol=1e-6)


def test_persistent_chains_advance_and_are_saved():
    model = RBM((D,), hidden=4, persistent=True, chains=7)
    start = model.chains.clone()
    model.loss(ALL_VISIBLE[:3])
    assert model.chains.shape == (7, D) and not torch.equal(model.chains, start)
    assert "chains" in model.state_dict() and "chains" not in RBM((D,), hidden=4).state_dict()


def test_gibbs_sampling_reaches_the_model_distribution():
    model = _random_rbm(3, 2, scale=1.0)
    samples = model.sample(20000, steps=20)
    index = (samples * torch.tensor([4.0, 2.0, 1.0])).sum(1).long()
    frequencies = torch.bincount(index, minlength=8).float() / len(samples)
    states = torch.tensor(list(itertools.product([0.0, 1.0], repeat=3)))
    assert torch.allclose(frequencies, model.log_prob(states).exp(), atol=0.015)


@pytest.mark.parametrize("persistent", [False, True])
def test_same_seed_is_bit_identical_and_another_seed_differs(persistent):
    x = ALL_VISIBLE[::9]
    a, b, c = (RBM((D,), hidden=6, persistent=persistent, seed=s) for s in (0, 0, 1))
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.W, c.W)
    losses_a, losses_b = [a.loss(x) for _ in range(3)], [b.loss(x) for _ in range(3)]
    assert all(torch.equal(la, lb) for la, lb in zip(losses_a, losses_b))
    samples = a.sample(16, steps=5)
    assert torch.equal(samples, b.sample(16, steps=5))
    assert samples.shape == (16, D) and set(samples.unique().tolist()) <= {0.0, 1.0}
    assert not torch.equal(samples, c.sample(16, steps=5))
    gen = torch.Generator().manual_seed(3)
    assert torch.equal(a.gibbs_step(x, gen), b.gibbs_step(x, torch.Generator().manual_seed(3)))


def test_bad_inputs_name_the_value():
    model = RBM((D,), hidden=3)
    x = torch.ones(2, D)
    x[0, 4] = 0.5
    with pytest.raises(ValueError, match=r"x\[0, 4\] is 0.5; expected 0 or 1"):
        model.log_prob(x)
    with pytest.raises(ValueError, match=r"shape \(2, 3, 3\)"):
        model.free_energy(torch.zeros(2, 3, 3))
    with pytest.raises(ValueError, match="base_rate has 3 entries"):
        model.ais_log_partition(2, 3, base_rate=torch.full((3,), 0.5))


@pytest.mark.parametrize("kwargs, match", [
    ({"hidden": 0}, "hidden must be a positive int, got 0"),
    ({"k": 1.5}, "k must be a positive int, got 1.5"),
    ({"persistent": "yes"}, "persistent must be a bool, got 'yes'"),
    ({"chains": -2}, "chains must be a positive int, got -2"),
    ({"ais_betas": 1}, "ais_betas must be >= 2"),
    ({"steps": 3}, "RBM has no hyperparameter 'steps'"),
])
def test_bad_hyperparameters_name_the_field(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        RBM((D,), **kwargs)


@pytest.mark.parametrize("persistent", [False, True], ids=["cd", "pcd"])
def test_a_few_epochs_on_digits_beat_independent_uniform_pixels(persistent):
    model = RBM((1, 8, 8), hidden=10, persistent=persistent)
    fit(model, digits("train", binarize=False), epochs=4, lr=0.02)
    with torch.no_grad():
        test_nll = model.nll(digits("test")).mean().item()
    assert test_nll < 64 * math.log(2) - 14  # 44.36 nats for p = 1/2 everywhere
