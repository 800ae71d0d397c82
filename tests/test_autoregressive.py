"""FVSBN, NADE and MADE: normalisation, autoregressive structure, NADE's recurrence, seeds, errors, training."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from _binarization import expected_over_binarizations

from mimicgym.errors import ConfigError
from mimicgym.generative.autoregressive import FVSBN, MADE, NADE, MaskedLinear
from mimicgym.generative.data import digits
from mimicgym.generative.train import fit

D = 10
ALL_BINARY = torch.tensor(list(itertools.product([0.0, 1.0], repeat=D)))  # (1024, 10)

MODELS = {
    "fvsbn": lambda seed=0: FVSBN((D,), seed=seed),
    "nade": lambda seed=0: NADE((D,), hidden=16, seed=seed),
    "made": lambda seed=0: MADE((D,), hidden_sizes=(32, 32), seed=seed),
    "made_random": lambda seed=0: MADE((D,), hidden_sizes=(32, 32), ordering="random", seed=seed),
    "made_masks": lambda seed=0: MADE((D,), hidden_sizes=(32,), num_masks=3, seed=seed),
    "made_random_masks": lambda seed=0: MADE((D,), hidden_sizes=(64, 64), ordering="random", num_masks=4,
                                             direct=False, seed=seed),
}


def _randomise(model: torch.nn.Module, scale: float = 1.0) -> None:
    """Large random parameters, so that the conditionals differ visibly from the initial ones."""
    gen = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=gen))


def _orders(model) -> torch.Tensor:
    """(K, D) rank of each dimension per mask set; the natural order for FVSBN and NADE."""
    return model.orders if isinstance(model, MADE) else torch.arange(D)[None]


@pytest.mark.parametrize("name", MODELS)
def test_probabilities_of_all_inputs_sum_to_one(name):
    model = MODELS[name]()
    _randomise(model, 0.5)
    with torch.no_grad():
        total = model.log_prob(ALL_BINARY).double().exp().sum().item()
    assert total == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("name", ["fvsbn", "nade", "made", "made_random"])
def test_binarized_loss_has_the_expectation_of_the_loss_over_binarizations(name):
    """Rao-Blackwellisation: averaging each conditional over its own pixel's draw in closed form
    changes the loss of a binarised batch but not its expectation."""
    model = MODELS[name]()
    _randomise(model, 0.5)
    grey = torch.rand(D, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        sampled = expected_over_binarizations(model.loss, ALL_BINARY, grey)
        averaged = expected_over_binarizations(lambda x: model.binarized_loss(x, grey[None]), ALL_BINARY, grey)
        assert averaged == pytest.approx(sampled, rel=1e-5)
        # ... while a single binarisation's two losses differ
        x = ALL_BINARY[5:6]
        assert abs(model.binarized_loss(x, grey[None]).item() - model.loss(x).item()) > 1e-3


@pytest.mark.parametrize("name", MODELS)
def test_each_conditional_sees_exactly_the_earlier_dimensions(name):
    model = MODELS[name]()
    _randomise(model)
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 2, (64, D), generator=gen).float()
    orders = _orders(model)
    for k in range(len(orders)):
        base = model.logits(x, k) if isinstance(model, MADE) else model.logits(x)
        assert base.shape == x.shape
        for d in range(D):
            later = orders[k] >= orders[k, d]  # d itself and everything after it
            flipped = x.clone()
            flipped[:, later] = 1 - flipped[:, later]
            after = model.logits(flipped, k) if isinstance(model, MADE) else model.logits(flipped)
            assert torch.equal(after[:, d], base[:, d]), f"logit {d} (mask {k}) sees a later input"
            if orders[k, d] > 0:  # some earlier input must matter, or the test above proves nothing
                earlier = ~later
                flipped = x.clone()
                flipped[:, earlier] = 1 - flipped[:, earlier]
                after = model.logits(flipped, k) if isinstance(model, MADE) else model.logits(flipped)
                assert not torch.allclose(after[:, d], base[:, d]), f"logit {d} (mask {k}) ignores its past"


def test_logits_are_aligned_with_the_log_likelihood():
    model = MODELS["nade"]()
    x = ALL_BINARY[::37]
    logits = model.logits(x)
    expected = torch.distributions.Bernoulli(logits=logits).log_prob(x).sum(1)
    assert torch.allclose(model.log_prob(x), expected, atol=1e-5)


def test_nade_cumsum_matches_the_naive_recurrence():
    model = NADE((2, 3, 4), hidden=7)
    _randomise(model, 0.7)
    x = torch.randint(0, 2, (5, 2, 3, 4), generator=torch.Generator().manual_seed(1)).float()
    flat = x.flatten(1)
    naive = torch.empty(5, 24)
    for d in range(24):
        a = model.c + flat[:, :d] @ model.W[:, :d].T  # (B, H)
        naive[:, d] = model.b[d] + torch.sigmoid(a) @ model.V[d]
    assert torch.allclose(model.logits(x).flatten(1), naive, atol=1e-5)
    assert model.logits(x).shape == x.shape


def test_fvsbn_is_logistic_regression_on_the_past():
    model = FVSBN((D,))
    _randomise(model)
    x = ALL_BINARY[::51]
    expected = model.bias + x @ torch.tril(model.weight, diagonal=-1).T
    assert torch.allclose(model.logits(x), expected, atol=1e-6)


def test_masked_linear_applies_the_chosen_mask():
    masks = torch.stack([torch.eye(3), torch.ones(3, 3)])
    layer = MaskedLinear(3, 3, masks)
    x = torch.randn(4, 3)
    assert torch.allclose(layer(x, 0), x * layer.weight.diagonal() + layer.bias)
    assert torch.allclose(layer(x, 1), torch.nn.functional.linear(x, layer.weight, layer.bias))
    with pytest.raises(ValueError, match=r"\(2, 3, 3\)"):
        MaskedLinear(3, 2, masks)


def test_random_orderings_differ_between_mask_sets():
    model = MODELS["made_random_masks"]()
    assert all(sorted(order.tolist()) == list(range(D)) for order in model.orders)
    assert len({tuple(order.tolist()) for order in model.orders}) > 1
    assert torch.equal(MODELS["made_masks"]().orders, torch.arange(D).expand(3, D))


@pytest.mark.parametrize("name", MODELS)
def test_same_seed_is_bit_identical_and_another_seed_differs(name):
    x = ALL_BINARY[::9]
    a, b, c = MODELS[name](0), MODELS[name](0), MODELS[name](1)
    for (na, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(pa, pb), na
    assert torch.equal(a.loss(x), b.loss(x))
    samples = a.sample(20)
    assert torch.equal(samples, b.sample(20))
    assert samples.shape == (20, D) and set(samples.unique().tolist()) <= {0.0, 1.0}
    assert not torch.equal(samples, a.sample(20))  # the model's generator moved on
    assert torch.equal(a.sample(20, torch.Generator().manual_seed(5)), b.sample(20, torch.Generator().manual_seed(5)))
    assert not torch.equal(a.loss(x), c.loss(x))


def test_sampling_follows_the_model():
    # Sample frequencies of all 2^3 outcomes against the exact probabilities.
    model = MADE((3,), hidden_sizes=(8,), ordering="random", num_masks=2)
    _randomise(model)
    samples = model.sample(20000)
    index = (samples * torch.tensor([4.0, 2.0, 1.0])).sum(1).long()
    frequencies = torch.bincount(index, minlength=8).float() / len(samples)
    states = torch.tensor(list(itertools.product([0.0, 1.0], repeat=3)))
    assert torch.allclose(frequencies, model.log_prob(states).exp(), atol=0.015)


def test_bad_inputs_name_the_value():
    model = NADE((D,), hidden=4)
    x = torch.zeros(2, D)
    x[1, 3] = 0.5
    with pytest.raises(ValueError, match=r"x\[1, 3\] is 0.5; expected 0 or 1"):
        model.log_prob(x)
    with pytest.raises(ValueError, match=r"shape \(2, 9\)"):
        FVSBN((D,)).logits(torch.zeros(2, 9))
    with pytest.raises(ValueError, match="mask_index"):
        MADE((D,), num_masks=2).logits(torch.zeros(1, D), 2)


@pytest.mark.parametrize("cls, kwargs, match", [
    (NADE, {"hidden": 0}, "hidden must be a positive int, got 0"),
    (MADE, {"hidden_sizes": (64, -1)}, r"hidden_sizes\[1\] must be a positive int, got -1"),
    (MADE, {"hidden_sizes": 64}, "hidden_sizes must be a tuple"),
    (MADE, {"ordering": "reverse"}, "ordering must be one of .* got 'reverse'"),
    (MADE, {"num_masks": 0}, "num_masks must be a positive int, got 0"),
    (MADE, {"direct": 1}, "direct must be a bool, got 1"),
    (FVSBN, {"hidden": 3}, "FVSBN has no hyperparameter 'hidden'"),
])
def test_bad_hyperparameters_name_the_field(cls, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        cls((D,), **kwargs)


@pytest.mark.parametrize("model", [FVSBN((1, 8, 8)), NADE((1, 8, 8), hidden=64),
                                   MADE((1, 8, 8), hidden_sizes=(128, 128))], ids=["fvsbn", "nade", "made"])
def test_a_few_epochs_on_digits_beat_independent_uniform_pixels(model):
    fit(model, digits("train", binarize=False), epochs=4, lr=0.01)
    with torch.no_grad():
        test_nll = model.nll(digits("test")).mean().item()
    assert test_nll < 64 * math.log(2) - 14  # 44.36 nats for p = 1/2 everywhere
    assert model.sample(3).shape == (3, 1, 8, 8)


def test_training_on_grey_digits_uses_their_probabilities_unless_told_not_to():
    grey = digits("train", binarize=False)[:128]
    runs = {}
    for rao_blackwell in (True, False):
        model = FVSBN((1, 8, 8))
        history = fit(model, grey, epochs=2, lr=0.01, rao_blackwell=rao_blackwell)
        runs[rao_blackwell] = (history[-1].train_loss, model.weight.detach().clone())
    # The same binarisations and minibatches (one generator), different targets.
    assert runs[True][0] != pytest.approx(runs[False][0], rel=1e-4)
    assert not torch.allclose(runs[True][1], runs[False][1])
    with pytest.raises(ConfigError, match="rao_blackwell must be a bool, got 'yes'"):
        fit(FVSBN((1, 8, 8)), grey, epochs=1, rao_blackwell="yes")
