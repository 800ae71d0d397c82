"""VQ-VAE: nearest-code quantisation, straight-through gradient, EMA and restarts, the bound, sampling."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from mimicgym.errors import ConfigError
from mimicgym.generative.data import digits
from mimicgym.generative.train import fit
from mimicgym.generative.vqvae import VQVAE, VectorQuantizer

SMALL = dict(hidden=16, code_dim=4, codebook_size=8, downsample=2, prior_d_model=16, prior_heads=2, prior_layers=1)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_quantizer_picks_the_nearest_code():
    quantizer = VectorQuantizer(32, 5)
    z = torch.randn(7, 3, 5, generator=_generator(1))
    brute = torch.cdist(z.reshape(-1, 5), quantizer.codebook).argmin(1).view(7, 3)
    assert torch.equal(quantizer.nearest(z), brute)
    quantizer.eval()  # no EMA update: the output is exactly the chosen codebook rows
    z_q, codes, _ = quantizer(z)
    assert torch.equal(codes, brute)
    assert torch.allclose(z_q, quantizer.codebook[brute], atol=1e-6)  # z + (e - z): e up to rounding


def test_straight_through_gradient_reaches_the_encoder():
    model = VQVAE((1, 8, 8), commitment=0.0, **SMALL)  # EMA, beta = 0: the loss is the reconstruction alone
    model.loss(digits("valid")[:16]).backward()
    for layer in (model.encoder[0], model.encoder[-1]):
        assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    assert not model.quantizer.codebook.requires_grad  # an EMA codebook is a buffer


def test_codebook_loss_trains_a_learned_codebook():
    model = VQVAE((1, 8, 8), ema=False, **SMALL)
    assert isinstance(model.quantizer.codebook, torch.nn.Parameter)
    model.loss(digits("valid")[:16]).backward()
    assert model.quantizer.codebook.grad.abs().sum() > 0


def test_ema_update_follows_the_formula():
    quantizer = VectorQuantizer(3, 2, decay=0.9, epsilon=0.1)
    quantizer.codebook.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0], [-10.0, 5.0]]))
    quantizer.ema_count.copy_(torch.tensor([2.0, 1.0, 4.0]))
    quantizer.ema_sum.copy_(torch.tensor([[0.2, 0.4], [10.0, 10.0], [-40.0, 20.0]]))
    z = torch.tensor([[[0.5, -0.5], [1.0, 2.0], [9.0, 11.0]]])  # (1, 3, 2): two vectors near code 0, one near 1
    quantizer.train()
    _, codes, _ = quantizer(z)
    assert codes.tolist() == [[0, 0, 1]]
    count = torch.tensor([0.9 * 2 + 0.1 * 2, 0.9 * 1 + 0.1 * 1, 0.9 * 4])
    sums = torch.tensor([[0.9 * 0.2 + 0.1 * 1.5, 0.9 * 0.4 + 0.1 * 1.5], [0.9 * 10 + 0.1 * 9, 0.9 * 10 + 0.1 * 11],
                         [-36.0, 18.0]])
    smoothed = (count + 0.1) / (count.sum() + 3 * 0.1) * count.sum()
    assert torch.allclose(quantizer.ema_count, count)
    assert torch.allclose(quantizer.codebook, sums / smoothed[:, None])
    # Code 0 moved from the origin towards the mean (0.75, 0.75) of its two vectors.
    assert 0 < quantizer.codebook[0, 0] < 0.75


def test_dead_code_restarts_at_an_encoder_output():
    def step(seed):
        quantizer = VectorQuantizer(4, 2, dead_code_threshold=0.5)
        quantizer.codebook.copy_(torch.tensor([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0], [100.0, 100.0]]))
        quantizer.ema_count.fill_(3.0).index_fill_(0, torch.tensor([3]), 0.4)
        quantizer.ema_sum.copy_(quantizer.codebook * quantizer.ema_count[:, None])
        z = torch.randn(2, 6, 2, generator=_generator(0))  # nowhere near code 3
        quantizer(z, _generator(seed))
        return quantizer, z.reshape(-1, 2)

    quantizer, flat = step(seed=0)
    assert (quantizer.codebook[3] == flat).all(1).any()  # re-initialised to one of the batch's vectors
    assert quantizer.ema_count[3] == 0.5 and torch.equal(quantizer.ema_sum[3], 0.5 * quantizer.codebook[3])
    assert (quantizer.ema_count[:3] > 0.5).all()  # used codes are kept
    assert torch.equal(step(seed=0)[0].codebook, quantizer.codebook)  # the draw comes from the generator


def test_first_training_batch_initialises_every_code_from_the_data():
    model = VQVAE((1, 8, 8), **SMALL)  # 2x2 grid, dead_code_threshold 1, decay 0.99
    model.train()
    x = digits("valid")[:32]
    with torch.no_grad():
        flat = model._encode(x).reshape(-1, 4)  # (128, 4)
    alive = 0.01 * torch.bincount(model.quantizer.nearest(flat), minlength=8) >= 1.0  # counts start at 0
    model.loss(x)
    restarted = model.quantizer.ema_count == 1.0
    assert torch.equal(restarted, ~alive) and restarted.sum() >= 7
    assert all((flat == code).all(1).any() for code in model.quantizer.codebook[restarted])


def test_encode_decode_shapes_and_checks():
    model = VQVAE((1, 8, 8), **{**SMALL, "downsample": 1})
    codes = model.encode(digits("valid")[:5])
    assert codes.shape == (5, 4, 4) and codes.dtype == torch.long
    assert model.decode(codes).shape == (5, 1, 8, 8)
    with pytest.raises(ValueError, match=r"\[0, 8\)"):
        model.decode(codes + 8)
    with pytest.raises(ValueError, match=r"\(batch, 4, 4\)"):
        model.decode(codes[:, :2])


def test_nll_is_reconstruction_plus_prior():
    model = VQVAE((1, 8, 8), **SMALL)
    x = digits("valid")[:20]
    model.eval()
    codes = model.encode(x)  # (20, 2, 2)
    assert model.grid == (2, 2)
    recon = F.binary_cross_entropy_with_logits(model.decode(codes), x, reduction="none").sum((1, 2, 3))
    with torch.no_grad():
        assert torch.allclose(model.nll(x), recon + 4 * math.log(8))  # uniform prior before fit_prior
    history = model.fit_prior(digits("train", binarize=False)[:128], epochs=2, batch_size=32)
    assert len(history) == 2 and bool(model.prior_fitted)
    with torch.no_grad():
        prior = -model.prior.log_prob(codes.flatten(1))
        assert torch.allclose(model.nll(x), recon + prior)
        assert torch.allclose(model.elbo(x), -(recon + prior))
    assert model.nll_is_bound and (prior > 0).all()


def test_state_dict_carries_the_prior():
    model = VQVAE((1, 8, 8), **SMALL)
    model.fit_prior(digits("valid"), epochs=1)
    copy = VQVAE((1, 8, 8), seed=5, **SMALL)
    copy.load_state_dict(model.state_dict())
    x = digits("test")[:8]
    assert bool(copy.prior_fitted) and torch.equal(copy.eval().nll(x), model.eval().nll(x))


def test_sampling_end_to_end_is_binary_and_seeded():
    model = VQVAE((1, 8, 8), **SMALL)
    model.fit_prior(digits("valid"), epochs=1)
    samples = model.sample(6, _generator(3))
    assert samples.shape == (6, 1, 8, 8) and ((samples == 0) | (samples == 1)).all()
    assert torch.equal(samples, model.sample(6, _generator(3)))
    assert not torch.equal(samples, model.sample(6, _generator(4)))
    means = model.sample(6, _generator(3), mean=True)
    assert ((means > 0) & (means < 1)).all()
    # Before fit_prior the codes are uniform: sampling still works.
    assert VQVAE((1, 8, 8), **SMALL).sample(3).shape == (3, 1, 8, 8)


def test_training_is_deterministic_per_seed():
    train, valid = digits("train", binarize=False)[:128], digits("valid")[:32]

    def losses(seed):
        model = VQVAE((1, 8, 8), seed=seed, **SMALL)
        history = fit(model, train, valid, epochs=2, batch_size=32, lr=1e-3)
        prior = model.fit_prior(train, epochs=1, batch_size=32)
        return [r.train_loss for r in history] + [r.valid_nll for r in history] + prior

    first = losses(0)
    assert first == losses(0)
    assert first != losses(1)


def test_errors_name_the_value():
    model = VQVAE((1, 8, 8), **SMALL)
    x = digits("valid")[:2].clone()
    x[1, 0, 3, 4] = 0.5
    with pytest.raises(ValueError, match=r"x\[1, 0, 3, 4\] is 0.5"):
        model.loss(x)
    with pytest.raises(ValueError, match="0.5"):
        model.nll(x)
    with pytest.raises(ValueError, match=r"x\[0, 0, 0, 0\] is 2.0"):
        model.fit_prior(torch.full((3, 1, 8, 8), 2.0))


@pytest.mark.parametrize("kwargs, message", [
    (dict(codebook_size=1), "codebook_size must be at least 2, got 1"),
    (dict(code_dim=0), "code_dim must be a positive int, got 0"),
    (dict(decay=1.0), "decay must be < 1"),
    (dict(decay=1.5), r"decay must lie in \[0, 1\], got 1.5"),
    (dict(ema="yes"), "ema must be a bool, got 'yes'"),
    (dict(commitment=-1.0), "commitment must be >= 0, got -1.0"),
    (dict(dead_code_threshold=-0.1), "dead_code_threshold must be >= 0, got -0.1"),
    (dict(downsample=4), "divisible by 16"),
    (dict(prior_d_model=10, prior_heads=4), "prior_d_model=10, prior_heads=4"),
    (dict(nope=1), "no hyperparameter 'nope'"),
])
def test_bad_hyperparameters_name_the_field(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        VQVAE((1, 8, 8), **kwargs)


def test_data_shape_must_be_an_image():
    with pytest.raises(ConfigError, match=r"data_shape must be \(C, H, W\), got \(64,\)"):
        VQVAE((64,))
