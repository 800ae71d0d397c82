"""WaveNet: causality, receptive field against gradients, exact normalisation, mu-law, seeds, errors."""

from __future__ import annotations

import itertools

import pytest
import torch

from mimicgym.errors import ConfigError
from mimicgym.generative.wavenet import WaveNet, mu_law_decode, mu_law_encode


def _model(T=12, **kw):
    return WaveNet((T,), **{"vocab_size": 4, "channels": 8, "skip_channels": 8, "layers_per_stack": 3,
                            "stacks": 1, **kw})


def test_logits_are_aligned_and_causal():
    model = _model()
    x = torch.randint(0, 4, (3, 12), generator=torch.Generator().manual_seed(0))
    logits = model.logits(x)
    assert logits.shape == (3, 12, 4)
    for t in range(12):
        perturbed = x.clone()
        perturbed[:, t:] = (x[:, t:] + 1) % 4
        assert torch.equal(model.logits(perturbed)[:, t], logits[:, t])  # x_t.. unseen
        if t > 0:
            changed = x.clone()
            changed[:, t - 1] = (x[:, t - 1] + 1) % 4
            assert not torch.allclose(model.logits(changed)[:, t], logits[:, t])  # x_{t-1} seen


@pytest.mark.parametrize("kernel_size, layers, stacks", [(2, 3, 1), (3, 2, 2), (2, 4, 1)])
def test_receptive_field_matches_formula_and_gradients(kernel_size, layers, stacks):
    T = 40
    model = _model(T, kernel_size=kernel_size, layers_per_stack=layers, stacks=stacks)
    dilations = [2**i for _ in range(stacks) for i in range(layers)]
    assert model.receptive_field == 1 + (kernel_size - 1) * sum(dilations)
    x = torch.randint(0, 4, (1, T), generator=torch.Generator().manual_seed(1))
    t = T - 1
    embedded = model.embedding(x).detach().requires_grad_()
    model._logits_from_embedded(embedded)[0, t].sum().backward()
    seen = torch.nonzero(embedded.grad[0].abs().sum(1)).squeeze(1).tolist()
    assert seen == list(range(t - model.receptive_field, t))  # x_{t-R} .. x_{t-1}, nothing else


def test_probabilities_sum_to_one_over_all_sequences():
    model = WaveNet((3,), vocab_size=3, channels=4, skip_channels=4, layers_per_stack=2, stacks=1, seed=2)
    every = torch.tensor(list(itertools.product(range(3), repeat=3)))  # the 27 sequences
    log_p = model.log_prob(every)
    assert log_p.shape == (27,)
    assert torch.logsumexp(log_p.double(), 0).exp().item() == pytest.approx(1.0, abs=1e-5)
    assert model.loss(every).item() == pytest.approx(-log_p.mean().item(), rel=1e-6)


def test_windowed_sampling_equals_full_prefix_sampling():
    model = _model(30)  # receptive field 8, far shorter than the sequence
    windowed = model.sample(6, torch.Generator().manual_seed(5))
    model.receptive_field = 1000  # the window then covers the whole prefix
    assert torch.equal(model.sample(6, torch.Generator().manual_seed(5)), windowed)


def test_determinism_and_seeds():
    x = torch.randint(0, 4, (5, 12), generator=torch.Generator().manual_seed(2))
    a, b, c = _model(seed=1), _model(seed=1), _model(seed=2)
    assert a.loss(x).item() == b.loss(x).item() != c.loss(x).item()
    sa = a.sample(16)
    assert sa.dtype == torch.long and sa.shape == (16, 12) and ((sa >= 0) & (sa < 4)).all()
    assert torch.equal(sa, b.sample(16)) and not torch.equal(sa, c.sample(16))
    assert not torch.equal(a.sample(16), sa)  # the model's generator moved on


def test_mu_law_round_trip_and_monotone():
    x = torch.linspace(-1, 1, 20001)
    tokens = mu_law_encode(x)
    assert tokens.dtype == torch.long and tokens.min() == 0 and tokens.max() == 255
    assert (tokens.diff() >= 0).all() and (mu_law_decode(torch.arange(256), 256).diff() > 0).all()
    error = (mu_law_decode(tokens, 256) - x).abs()
    # Half a level in the companded domain, times the expansion's slope ln(1 + mu)(1 + mu|x|) / mu.
    slope = torch.log1p(torch.tensor(255.0)) * (1 + 255 * x.abs().clamp(max=1)) / 255
    assert (error <= slope * 1.0 / 255 + 1e-3 * slope).all()
    assert error[x.abs() < 0.001].max() < 1e-4 < error[x.abs() > 0.9].max()  # quiet signals get fine levels
    assert torch.equal(mu_law_encode(mu_law_decode(torch.arange(16), 16), 16), torch.arange(16))
    assert mu_law_encode(torch.tensor([-1.0, 0.0, 1.0]), 8).tolist() == [0, 4, 7]


def test_mu_law_errors():
    with pytest.raises(ValueError, match=r"x\[1\] is 1.5"):
        mu_law_encode(torch.tensor([0.0, 1.5]))
    with pytest.raises(ConfigError, match="levels must be an int >= 2, got 1"):
        mu_law_encode(torch.zeros(2), levels=1)
    with pytest.raises(ConfigError, match="mu must be a positive number, got -2"):
        mu_law_decode(torch.zeros(2, dtype=torch.long), 4, mu=-2)


def test_bad_input_and_hyperparameters():
    model = _model()
    with pytest.raises(ValueError, match=r"shape \(2, 11\)"):
        model.log_prob(torch.zeros(2, 11, dtype=torch.long))
    with pytest.raises(ValueError, match=r"x\[0, 3\] is 4; expected a token in \[0, 4\)"):
        model.log_prob(torch.tensor([[0, 0, 0, 4] + [0] * 8]))
    with pytest.raises(ValueError, match=r"is 0.5; expected an integer token"):
        model.log_prob(torch.full((1, 12), 0.5))
    with pytest.raises(ConfigError, match="vocab_size must be a positive int, got None"):
        WaveNet((12,))
    with pytest.raises(ConfigError, match="kernel_size must be >= 2.*got 1"):
        _model(kernel_size=1)
    with pytest.raises(ConfigError, match="stacks must be a positive int, got 0"):
        _model(stacks=0)
    with pytest.raises(ConfigError, match=r"data_shape must be \(T,\), got \(2, 3\)"):
        WaveNet((2, 3), vocab_size=4)
