"""VAE and beta-VAE: the bounds against torch's distributions and exact integration, seeds, uses, errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

import mimicgym.generative.vae as vae_module
from mimicgym.errors import ConfigError
from mimicgym.generative.data import digits
from mimicgym.generative.images import image_grid
from mimicgym.generative.train import fit
from mimicgym.generative.vae import VAE, BetaVAE, diagonal_normal_log_prob, gaussian_kl


@pytest.fixture(scope="module")
def trained():
    """A small VAE fitted briefly on the digits, and the validation split."""
    model = VAE((1, 8, 8), latent_dim=8, hidden=(64,))
    fit(model, digits("train", binarize=False), epochs=8, lr=3e-3)
    model.eval()
    return model, digits("valid")


def test_closed_form_kl_matches_torch_and_a_monte_carlo_estimate():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    std = torch.exp(0.5 * logvar)
    reference = kl_divergence(Normal(mu, std), Normal(0.0, 1.0)).sum(-1)
    assert torch.allclose(gaussian_kl(mu, logvar), reference, atol=1e-5)
    z = mu + std * torch.randn(200_000, 4, 3, generator=g)
    monte_carlo = (diagonal_normal_log_prob(z, mu, logvar)
                   - diagonal_normal_log_prob(z, torch.zeros_like(z), torch.zeros_like(z))).mean(0)
    assert torch.allclose(monte_carlo, gaussian_kl(mu, logvar), atol=0.03)
    assert torch.allclose(diagonal_normal_log_prob(z[:5], mu, logvar), Normal(mu, std).log_prob(z[:5]).sum(-1),
                          atol=1e-5)


@pytest.mark.parametrize("decoder", ["bernoulli", "gaussian"])
def test_elbo_equals_a_reference_built_from_torch_distributions(decoder):
    model = VAE((1, 8, 8), latent_dim=4, hidden=(32,), decoder=decoder, beta=2.5, seed=1)
    x = digits("valid")[:10] if decoder == "bernoulli" else torch.randn(10, 1, 8, 8)
    if decoder == "gaussian":
        with torch.no_grad():
            model.log_std.copy_(torch.linspace(-1, 1, 64))
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=torch.Generator().manual_seed(7))
    out = model.decode(z)
    if decoder == "bernoulli":
        log_lik = Bernoulli(logits=out).log_prob(x).flatten(1).sum(1)
    else:
        log_lik = Normal(out, model.log_std.exp().view(1, 8, 8)).log_prob(x).flatten(1).sum(1)
    kl = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(1)
    elbo = model.elbo(x, torch.Generator().manual_seed(7))
    assert torch.allclose(elbo, log_lik - 2.5 * kl, atol=1e-4)
    assert torch.allclose(model.elbo(x, torch.Generator().manual_seed(7), beta=1.0), log_lik - kl, atol=1e-4)
    model.generator.manual_seed(7)  # loss draws from the model's own generator
    assert model.loss(x).item() == pytest.approx(-(log_lik - 2.5 * kl).mean().item(), rel=1e-5)


def test_iwae_with_one_sample_is_the_elbo_with_the_sampled_kl(trained):
    model, x = trained
    with torch.no_grad():
        iwae = model.iwae(x, 1, torch.Generator().manual_seed(3))
        elbo = model.elbo(x, torch.Generator().manual_seed(3), analytic_kl=False)
        analytic = model.elbo(x, torch.Generator().manual_seed(3))
    assert torch.allclose(iwae, elbo, atol=1e-5)
    assert not torch.allclose(iwae, analytic, atol=1e-3)  # same expectation, other estimator


def test_iwae_matches_a_reference_and_chunks_alike(trained, monkeypatch):
    model, x = trained
    x = x[:16]
    k = 5
    with torch.no_grad():
        mu, logvar = model.encode(x)
        q = Normal(mu, torch.exp(0.5 * logvar))

        def reference(eps):  # eps (k, B, L)
            z = mu + torch.exp(0.5 * logvar) * eps
            log_w = (Bernoulli(logits=model.decoder(z)).log_prob(x.flatten(1)).sum(-1)
                     + Normal(0.0, 1.0).log_prob(z).sum(-1) - q.log_prob(z).sum(-1))
            return torch.logsumexp(log_w, 0) - math.log(k)

        g = torch.Generator().manual_seed(4)
        one_draw = reference(torch.randn(k, *mu.shape, generator=g))
        assert torch.allclose(model.iwae(x, k, torch.Generator().manual_seed(4)), one_draw, atol=1e-4)
        monkeypatch.setattr(vae_module, "_IWAE_ROWS", len(x))  # one sample per chunk
        g = torch.Generator().manual_seed(4)
        chunked = reference(torch.cat([torch.randn(1, *mu.shape, generator=g) for _ in range(k)]))
        assert torch.allclose(model.iwae(x, k, torch.Generator().manual_seed(4)), chunked, atol=1e-4)


def test_iwae_exceeds_the_elbo_and_grows_with_k(trained):
    model, x = trained
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        elbo = torch.stack([model.elbo(x, g) for _ in range(20)]).mean()
        bounds = [float(model.iwae(x, k, g).mean()) for k in (1, 3, 30, 300)]
    assert bounds[0] == pytest.approx(float(elbo), abs=0.1)  # k = 1: the ELBO, estimated otherwise
    assert float(elbo) + 0.1 < bounds[1] and bounds[1] + 0.05 < bounds[2], (float(elbo), bounds)
    assert bounds[3] > bounds[2] - 0.01  # the gains shrink as q's draws cover the posterior


def test_iwae_approaches_log_px_by_numerical_integration_over_a_one_dimensional_latent():
    model = VAE((4,), latent_dim=1, hidden=(8,), seed=2)  # untrained: q is far from the posterior
    x = torch.tensor([[float(b) for b in f"{i:04b}"] for i in range(16)])  # all 16 binary vectors
    with torch.no_grad():
        z = torch.linspace(-10, 10, 20001, dtype=torch.float64)[:, None]
        logits = model.decoder(z.float()).double()  # (Z, 4)
        log_joint = (Bernoulli(logits=logits[:, None]).log_prob(x.double()).sum(-1)
                     + Normal(0.0, 1.0).log_prob(z))  # (Z, 16)
        exact = torch.logsumexp(log_joint, 0) + math.log(float(z[1] - z[0]))  # trapezoid-free Riemann sum
        assert float(exact.exp().sum()) == pytest.approx(1.0, abs=1e-4)  # p is normalised over {0,1}^4
        iwae = model.iwae(x, 20000, torch.Generator().manual_seed(0)).double()
        elbo = torch.stack([model.elbo(x, torch.Generator().manual_seed(s)) for s in range(200)]).mean(0).double()
    assert torch.allclose(iwae, exact, atol=0.02), (iwae - exact).abs().max()
    assert bool((elbo < exact).all()) and float((exact - elbo).mean()) > 0.05  # a strict lower bound


def test_seeds_fix_parameters_training_and_samples():
    x = digits("valid", binarize=False)
    a, b, c = (VAE((1, 8, 8), latent_dim=4, hidden=(32,), seed=s) for s in (5, 5, 6))
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert not torch.equal(a.encoder[0].weight, c.encoder[0].weight)
    ha = fit(a, x, epochs=2, seed=1)
    hb = fit(b, x, epochs=2, seed=1)
    assert [r.train_loss for r in ha] == [r.train_loss for r in hb]
    assert torch.equal(a.sample(6), b.sample(6))
    assert torch.equal(a.sample(6, torch.Generator().manual_seed(0)), a.sample(6, torch.Generator().manual_seed(0)))
    assert not torch.equal(a.sample(6), a.sample(6))  # the model generator advances
    binary = digits("valid")
    assert torch.equal(a.nll(binary), a.nll(binary))  # validation: a fresh generator from the seed
    assert torch.equal(a.nll(binary), -a.iwae(binary, 50, torch.Generator().manual_seed(5)))


def test_samples_means_traversals_and_interpolations(trained):
    model, x = trained
    samples = model.sample(12, torch.Generator().manual_seed(0))
    assert samples.shape == (12, 1, 8, 8) and set(samples.unique().tolist()) <= {0.0, 1.0}
    means = model.sample(12, torch.Generator().manual_seed(0), mean=True)
    assert bool(((means > 0) & (means < 1)).all())
    values = [-2.0, 0.0, 2.0]
    grid = model.traverse(x[:2], 3, values)
    assert grid.shape == (6, 1, 8, 8)
    mu, _ = model.encode(x[:2])
    z = mu[1].clone()
    z[3] = 2.0
    assert torch.allclose(grid[5], model.mean(z[None])[0], atol=1e-6)  # example 1, value 2.0
    line = model.interpolate(x[:2], x[2:4], steps=5)
    assert line.shape == (10, 1, 8, 8)
    ends = model.mean(torch.cat([mu, model.encode(x[2:4])[0]]))
    assert torch.allclose(line[[0, 5]], ends[:2], atol=1e-6) and torch.allclose(line[[4, 9]], ends[2:], atol=1e-6)
    assert image_grid(line, nrow=5).shape == (1, 2 * 9 + 1, 5 * 9 + 1)


def test_beta_vae_weights_the_kl_by_four():
    model = BetaVAE((1, 8, 8), latent_dim=4, hidden=(32,))
    assert model.config.beta == 4.0 and VAE((1, 8, 8)).config.beta == 1.0
    x = digits("valid")[:20]
    with torch.no_grad():
        mu, logvar = model.encode(x)
        difference = model.elbo(x, torch.Generator().manual_seed(0), beta=1.0) - model.elbo(
            x, torch.Generator().manual_seed(0))
    assert torch.allclose(difference, 3 * gaussian_kl(mu, logvar), atol=1e-4)


def test_gaussian_decoder_takes_real_data_and_learns_its_std():
    model = VAE((3,), latent_dim=2, hidden=(16,), decoder="gaussian")
    assert model.support == "real" and VAE((3,)).support == "binary"
    x = torch.randn(256, 3, generator=torch.Generator().manual_seed(0)) * torch.tensor([0.1, 1.0, 3.0])
    fit(model, x, epochs=60, lr=1e-2)
    assert model.log_std.exp()[2] > 1.0 > model.log_std.exp()[0]  # per-dimension noise, learned
    fixed = VAE((3,), latent_dim=2, decoder="gaussian", observation_std=0.5)
    assert not hasattr(fixed, "log_std") and fixed.sample(4).shape == (4, 3)


@pytest.mark.parametrize("kwargs, match", [
    ({"beta": -1.0}, "beta must be >= 0, got -1.0"),
    ({"beta": "4"}, "beta must be a number, got '4'"),
    ({"latent_dim": 0}, "latent_dim must be a positive int, got 0"),
    ({"hidden": [0]}, "hidden entries must be a positive int, got 0"),
    ({"decoder": "poisson"}, "decoder must be one of .*got 'poisson'"),
    ({"nll_samples": 0}, "nll_samples must be a positive int, got 0"),
    ({"observation_std": 0.5}, "decoder='bernoulli' has none, got observation_std=0.5"),
])
def test_bad_hyperparameters_name_field_and_value(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        VAE((1, 8, 8), **kwargs)


def test_bad_data_and_arguments_name_the_value():
    model = VAE((1, 8, 8), latent_dim=4, hidden=(16,))
    x = torch.zeros(3, 1, 8, 8)
    x[2, 0, 1, 5] = 0.5
    with pytest.raises(ValueError, match=r"x\[2, 0, 1, 5\] is 0.5; expected 0 or 1"):
        model.loss(x)
    with pytest.raises(ValueError, match=r"x\[2, 0, 1, 5\] is 0.5"):
        model.iwae(x, 10)
    with pytest.raises(ConfigError, match="k must be a positive int, got 0"):
        model.iwae(x.round(), 0)
    with pytest.raises(ValueError, match=r"z has shape \(2, 3\); expected \(batch, 4\)"):
        model.decode(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"dim must be an int in \[0, 4\), got 4"):
        model.traverse(x.round(), 4, [0.0])
