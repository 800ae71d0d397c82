"""Attention against torch's reference, positional encodings, and the CausalTransformer's contract."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch.nn import functional as F

from mimicgym.errors import ConfigError
from mimicgym.generative.attention import (
    CausalTransformer,
    MultiHeadAttention,
    attention_weights,
    causal_mask,
    scaled_dot_product_attention,
    sinusoidal_positional_encoding,
)


def _qkv(seed=0, B=2, H=3, Tq=5, Tk=5, d=8):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, H, Tq, d, generator=g), torch.randn(B, H, Tk, d, generator=g),
            torch.randn(B, H, Tk, 6, generator=g))


@pytest.mark.parametrize("causal", [False, True])
def test_written_out_attention_equals_torch(causal):
    q, k, v = _qkv()
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    assert torch.allclose(scaled_dot_product_attention(q, k, v, causal=causal), expected, atol=1e-6)


def test_explicit_masks_equal_torch():
    q, k, v = _qkv(Tq=4, Tk=7)
    g = torch.Generator().manual_seed(1)
    boolean = torch.rand(4, 7, generator=g) < 0.6
    boolean[:, 0] = True  # every query keeps a key
    additive = torch.randn(2, 1, 4, 7, generator=g)
    for mask in (boolean, additive):
        expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        assert torch.allclose(scaled_dot_product_attention(q, k, v, mask=mask), expected, atol=1e-6)
    # A causal flag and a mask together: the same as their conjunction.
    both = scaled_dot_product_attention(q, k, v, mask=boolean, causal=True)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=boolean & causal_mask(4, 7))
    assert torch.allclose(both, expected, atol=1e-6)


def test_attention_weights_are_distributions_over_allowed_keys():
    q, k, _ = _qkv()
    w = attention_weights(q, k, causal=True)
    assert torch.allclose(w.sum(-1), torch.ones(w.shape[:-1]), atol=1e-6)
    assert (w[..., ~causal_mask(5, 5)] == 0).all()


@pytest.mark.parametrize("fused", [False, True])
def test_multi_head_attention_equals_torch_module(fused):
    torch.manual_seed(0)
    d, heads = 12, 3
    reference = torch.nn.MultiheadAttention(d, heads, batch_first=True)
    ours = MultiHeadAttention(d, heads, fused=fused)
    with torch.no_grad():
        for proj, w, b in zip((ours.q_proj, ours.k_proj, ours.v_proj), reference.in_proj_weight.chunk(3),
                              reference.in_proj_bias.chunk(3)):
            proj.weight.copy_(w)
            proj.bias.copy_(b)
        ours.out_proj.weight.copy_(reference.out_proj.weight)
        ours.out_proj.bias.copy_(reference.out_proj.bias)
    x, context = torch.randn(2, 6, d), torch.randn(2, 4, d)
    expected, _ = reference(x, x, x, attn_mask=~causal_mask(6, 6), need_weights=False)  # torch: True = blocked
    assert torch.allclose(ours(x, causal=True), expected, atol=1e-6)
    expected, _ = reference(x, context, context, need_weights=False)
    assert torch.allclose(ours(x, context), expected, atol=1e-6)


def test_sinusoidal_encoding_matches_the_formula():
    pe = sinusoidal_positional_encoding(10, 7)
    assert pe.shape == (10, 7)
    t, i = 6, 2
    assert pe[t, 2 * i].item() == pytest.approx(math.sin(t / 10000 ** (2 * i / 7)), abs=1e-6)
    assert pe[t, 2 * i + 1].item() == pytest.approx(math.cos(t / 10000 ** (2 * i / 7)), abs=1e-6)
    assert torch.equal(pe[0, 1::2], torch.ones(3))


def _model(**kw):
    return CausalTransformer((6,), **{"vocab_size": 5, "d_model": 16, "heads": 2, "layers": 2, **kw})


@pytest.mark.parametrize("positional", ["learned", "sinusoidal"])
def test_logits_are_aligned_and_causal(positional):
    model = _model(positional=positional)
    x = torch.randint(0, 5, (3, 6), generator=torch.Generator().manual_seed(0))
    logits = model.logits(x)
    assert logits.shape == (3, 6, 5)
    for t in range(6):
        perturbed = x.clone()
        perturbed[:, t:] = (x[:, t:] + 1) % 5
        assert torch.allclose(model.logits(perturbed)[:, t], logits[:, t], atol=1e-6)  # x_t.. unseen
        if t > 0:
            changed = x.clone()
            changed[:, t - 1] = (x[:, t - 1] + 1) % 5
            assert not torch.allclose(model.logits(changed)[:, t], logits[:, t])  # x_{t-1} seen


def test_fused_and_written_out_models_agree():
    x = torch.randint(0, 5, (4, 6), generator=torch.Generator().manual_seed(1))
    assert torch.allclose(_model(fused=True).log_prob(x), _model(fused=False).log_prob(x), atol=1e-5)


def test_probabilities_sum_to_one_over_all_sequences():
    model = CausalTransformer((3,), vocab_size=3, d_model=8, heads=2, layers=1, seed=4)
    every = torch.tensor(list(itertools.product(range(3), repeat=3)))  # the 27 sequences
    log_p = model.log_prob(every)
    assert log_p.shape == (27,)
    assert torch.logsumexp(log_p.double(), 0).exp().item() == pytest.approx(1.0, abs=1e-5)
    assert model.loss(every).item() == pytest.approx(-log_p.mean().item(), rel=1e-6)


def test_determinism_and_seeds():
    x = torch.randint(0, 5, (8, 6), generator=torch.Generator().manual_seed(2))
    a, b, c = _model(seed=3, dropout=0.1), _model(seed=3, dropout=0.1), _model(seed=4, dropout=0.1)
    assert a.loss(x).item() == b.loss(x).item() != c.loss(x).item()  # training mode: seeded dropout
    sa, sb, sc = a.sample(16), b.sample(16), c.sample(16)
    assert sa.dtype == torch.long and sa.shape == (16, 6) and ((sa >= 0) & (sa < 5)).all()
    assert torch.equal(sa, sb) and not torch.equal(sa, sc)
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    assert not torch.equal(a.sample(5, g1), c.sample(5, g2))  # same draws, different models
    assert torch.equal(a.sample(5, torch.Generator().manual_seed(9)), b.sample(5, torch.Generator().manual_seed(9)))


def test_training_learns_a_deterministic_sequence():
    torch.manual_seed(0)
    model = _model()
    data = torch.tensor([[0, 1, 2, 3, 4, 0]]).repeat(32, 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(250):
        opt.zero_grad()
        model.loss(data).backward()
        opt.step()
    assert model.eval().loss(data).item() < 0.05  # x_0 is always 0 here, so every token is predictable
    assert torch.equal(model.sample(4)[:, 1:], data[:4, 1:])


def test_bad_input_and_hyperparameters():
    model = _model()
    with pytest.raises(ValueError, match=r"shape \(2, 5\)"):
        model.log_prob(torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"x\[1, 2\] is 7; expected a token in \[0, 5\)"):
        model.log_prob(torch.tensor([[0] * 6, [0, 0, 7, 0, 0, 0]]))
    with pytest.raises(ValueError, match="is -1"):
        model.loss(torch.full((1, 6), -1))
    with pytest.raises(ConfigError, match="vocab_size must be a positive int, got None"):
        CausalTransformer((6,))
    with pytest.raises(ConfigError, match="heads=3"):
        _model(d_model=16, heads=3)
    with pytest.raises(ConfigError, match="positional must be one of .* got 'rotary'"):
        _model(positional="rotary")
    with pytest.raises(ConfigError, match="dropout must lie in \\[0, 1\\], got 1.5"):
        _model(dropout=1.5)
    with pytest.raises(ConfigError, match=r"data_shape must be \(T,\), got \(2, 3\)"):
        CausalTransformer((2, 3), vocab_size=4)
