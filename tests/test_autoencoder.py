"""Autoencoders: the linear one finds PCA's subspace, denoising helps, inpainting beats the mean, seeds, errors."""

from __future__ import annotations

import pytest
import torch

from mimicgym.errors import ConfigError
from mimicgym.generative.autoencoder import Autoencoder
from mimicgym.generative.data import digits
from mimicgym.generative.train import fit


def _projection(basis: torch.Tensor) -> torch.Tensor:
    """The orthogonal projection onto the column space of basis (D, k)."""
    q, _ = torch.linalg.qr(basis)
    return q @ q.T


def _low_rank_data(n=400, d=10, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    # Distinct spectrum (3, 2, 1) so that the top-k subspace is unique, plus a little isotropic noise.
    factors = torch.randn(n, k, generator=g) * torch.tensor([3.0, 2.0, 1.0])
    mixing = torch.linalg.qr(torch.randn(d, d, generator=g))[0][:, :k]
    return factors @ mixing.T + 0.05 * torch.randn(n, d, generator=g) + 2.0


def test_linear_autoencoder_spans_the_principal_subspace():
    x = _low_rank_data()
    model = Autoencoder((10,), latent_dim=3, linear=True)
    assert len(model.encoder) == 1 and len(model.decoder) == 1  # no hidden layers, no nonlinearity
    untrained = model.decoder[0].weight.detach().clone()
    fit(model, x, epochs=400, lr=0.1, batch_size=len(x))
    v = torch.linalg.svd(x - x.mean(0), full_matrices=False).Vh[:3].T  # (D, k): principal directions
    decoder_basis = model.decoder[0].weight.detach()  # (D, k): its columns span the reconstructions
    gap = torch.linalg.matrix_norm(_projection(decoder_basis) - _projection(v), ord=2)
    assert gap < 0.01
    # Principal angles: the cosines of all three are ~1.
    cosines = torch.linalg.svdvals(torch.linalg.qr(decoder_basis)[0].T @ v)
    assert cosines.min() > 0.9999
    # The initial decoder spans some other subspace: the check can fail.
    assert torch.linalg.matrix_norm(_projection(untrained) - _projection(v), ord=2) > 0.5


def test_denoising_overcomplete_autoencoder_removes_noise_on_held_out_digits():
    train, test = digits("train", binarize=False), digits("test", binarize=False)
    model = Autoencoder((1, 8, 8), latent_dim=128, hidden=(128,), noise=0.3)  # overcomplete: 128 > 64
    fit(model, train, epochs=15, lr=2e-3)
    model.eval()
    noisy = test + 0.3 * torch.randn(test.shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        denoised = model.reconstruct(noisy)
    before = (noisy - test).pow(2).flatten(1).sum(1).mean()
    after = (denoised - test).pow(2).flatten(1).sum(1).mean()
    assert after < 0.5 * before, (float(before), float(after))


def test_inpainting_beats_the_mean_on_masked_pixels():
    train, test = digits("train", binarize=False), digits("test", binarize=False)
    model = Autoencoder((1, 8, 8), latent_dim=32, hidden=(128,), reconstruction="bce", noise=0.3,
                        noise_type="masking")
    fit(model, train, epochs=20, lr=2e-3)
    model.eval()
    mask = torch.rand(test.shape, generator=torch.Generator().manual_seed(2)) < 0.3
    corrupted = test.masked_fill(mask, float("nan"))  # missing entries may hold anything
    filled = model.inpaint(corrupted, mask, steps=10)
    assert torch.equal(filled[~mask], test[~mask])  # known pixels kept exactly
    inpaint_error = (filled - test)[mask].pow(2).mean()
    mean_error = (train.mean(0, keepdim=True).expand_as(test) - test)[mask].pow(2).mean()
    assert inpaint_error < 0.7 * mean_error, (float(inpaint_error), float(mean_error))


def test_shapes_codes_and_gaussian_code_sampling():
    model = Autoencoder((1, 8, 8), latent_dim=80, hidden=(32,), reconstruction="bce")  # overcomplete
    x = digits("valid", binarize=False)
    z = model.encode(x)
    assert z.shape == (180, 80)
    out = model.decode(z)
    assert out.shape == (180, 1, 8, 8) and torch.equal(out, model.reconstruct(x))
    assert bool(((out > 0) & (out < 1)).all())  # "bce": probabilities
    with torch.no_grad():
        assert model.validation_loss(x).shape == (180,)
        assert float(model.validation_loss(x).mean()) == pytest.approx(float(model.loss(x)), rel=1e-6)  # no noise
        with pytest.raises(NotImplementedError, match="no exact log-likelihood"):
            model.nll(x)
    with pytest.raises(NotImplementedError, match="fit_code_distribution"):
        model.sample(4)
    model.fit_code_distribution(x)
    samples = model.sample(7, torch.Generator().manual_seed(0))
    assert samples.shape == (7, 1, 8, 8)
    assert torch.equal(samples, model.sample(7, torch.Generator().manual_seed(0)))
    # The fitted Gaussian has the codes' mean and covariance.
    codes = model.encode(x).detach()
    scale = model.code_scale_tril
    assert torch.allclose(model.code_mean, codes.mean(0), atol=1e-5)
    assert torch.allclose(scale @ scale.T, torch.cov(codes.T), atol=1e-4)


def test_seeds_fix_parameters_and_corruption_bit_exactly():
    x = digits("valid", binarize=False)
    a, b, c = (Autoencoder((1, 8, 8), noise=0.2, seed=s) for s in (3, 3, 4))
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert not torch.equal(a.encoder[0].weight, c.encoder[0].weight)
    assert torch.equal(a.loss(x), b.loss(x))  # same corruption from the same model generator
    assert not torch.equal(a.loss(x), a.loss(x))  # the generator advances: fresh noise each call
    assert torch.equal(a.corrupt(x, torch.Generator().manual_seed(0)), b.corrupt(x, torch.Generator().manual_seed(0)))
    masked = Autoencoder((1, 8, 8), noise=0.5, noise_type="masking").corrupt(torch.ones(1000, 1, 8, 8))
    assert set(masked.unique().tolist()) == {0.0, 1.0} and abs(float(masked.mean()) - 0.5) < 0.02
    ha = fit(Autoencoder((1, 8, 8), noise=0.2), x, epochs=2, seed=5)
    hb = fit(Autoencoder((1, 8, 8), noise=0.2), x, epochs=2, seed=5)
    assert [r.train_loss for r in ha] == [r.train_loss for r in hb]


@pytest.mark.parametrize("kwargs, match", [
    ({"latent_dim": 0}, "latent_dim must be a positive int, got 0"),
    ({"hidden": (64, -1)}, "hidden entries must be a positive int, got -1"),
    ({"reconstruction": "l1"}, "reconstruction must be one of .*got 'l1'"),
    ({"noise": -0.1}, "noise must be >= 0, got -0.1"),
    ({"noise": 1.0, "noise_type": "masking"}, "must be < 1, got 1.0"),
    ({"linear": True, "reconstruction": "bce"}, "reconstruction='bce'"),
])
def test_bad_hyperparameters_name_field_and_value(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Autoencoder((1, 8, 8), **kwargs)


def test_bad_data_names_the_value():
    bce = Autoencoder((1, 8, 8), reconstruction="bce")
    x = torch.zeros(2, 1, 8, 8)
    x[1, 0, 3, 4] = 1.5
    with pytest.raises(ValueError, match=r"x\[1, 0, 3, 4\] is 1.5; expected a value in \[0, 1\]"):
        bce.loss(x)
    with pytest.raises(ValueError, match="expects"):
        bce.encode(torch.zeros(2, 64))
    with pytest.raises(ValueError, match=r"z has shape \(2, 3\)"):
        bce.decode(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="mask must be a bool tensor"):
        bce.inpaint(torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8))
