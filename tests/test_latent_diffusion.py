"""Latent diffusion: a frozen VAE, standardised codes, samples decoded from the DDPM's, checkpoints,
training that lowers the denoising loss, guidance, seeds and errors."""

from __future__ import annotations

import pytest
import torch

from mimicgym.errors import ConfigError
from mimicgym.generative.data import digit_labels, grey_digits
from mimicgym.generative.diffusion import DDPM
from mimicgym.generative.latent_diffusion import LatentDiffusion
from mimicgym.generative.train import fit
from mimicgym.generative.vae import VAE

TINY = {"widths": (32, 32), "timesteps": 50, "embedding_dim": 32}


def _vae(seed: int = 0) -> VAE:
    return VAE((1, 8, 8), latent_dim=4, hidden=(32,), decoder="gaussian", seed=seed)


@pytest.fixture(scope="module")
def data():
    return grey_digits("train"), grey_digits("valid")


@pytest.fixture(scope="module")
def vae(data):
    """A small Gaussian-decoder VAE fitted briefly on the grey digits."""
    model = _vae()
    fit(model, data[0], epochs=5, lr=3e-3, batch_size=64)
    return model


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_codes_are_standardised_on_the_training_data(vae, data):
    x = data[0]
    model = LatentDiffusion(vae, **TINY)
    with pytest.raises(RuntimeError, match="call model.fit_latent_scale\\(train_data\\)"):
        model.loss(x[:4])
    with pytest.raises(RuntimeError, match="fit_latent_scale"):
        model.sample(2)
    assert model.fit_latent_scale(x, batch_size=100) is model
    z = model.encode(x)
    assert z.shape == (len(x), 4)
    torch.testing.assert_close(z.mean(0), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.std(0, unbiased=False), torch.ones(4), atol=1e-4, rtol=0)
    mu, _ = vae.encode(x)
    assert not torch.allclose(mu.std(0), torch.ones(4), atol=0.05)  # the raw codes are not standard
    torch.testing.assert_close(model.decode(z), vae.mean(mu), atol=1e-5, rtol=1e-5)


def test_the_vae_is_frozen_and_training_lowers_the_denoising_loss(vae, data):
    x, valid = data
    before = _state(vae)
    vae.zero_grad(set_to_none=True)  # drop the gradients left by the VAE's own training
    model = LatentDiffusion(vae, **TINY).fit_latent_scale(x)
    assert all(not p.requires_grad for p in vae.parameters())
    optimised = model.make_optimizers(1e-3)["model"].param_groups[0]["params"]
    assert {id(p) for p in optimised} == {id(p) for p in model.ddpm.parameters()}
    assert not {id(p) for p in optimised} & {id(p) for p in vae.parameters()}
    initial = model.validation_loss(valid).mean().item()
    ddpm_generator = model.ddpm.generator.get_state()
    history = fit(model, x, valid, epochs=4, lr=3e-3, batch_size=64)
    assert history[-1].valid_nll < 0.8 * initial, (initial, [r.valid_nll for r in history])
    assert all(torch.equal(v, vae.state_dict()[k]) for k, v in before.items())
    assert all(p.grad is None for p in vae.parameters())
    assert not vae.training and model.train().training and not vae.training
    # Training draws came from the model's own (checkpointed) generator, not the inner DDPM's.
    assert torch.equal(ddpm_generator, model.ddpm.generator.get_state())


def test_samples_are_the_decoded_ddpm_samples(vae, data):
    model = LatentDiffusion(vae, seed=3, **TINY).fit_latent_scale(data[0])
    for sampler, steps in (("ddpm", None), ("ddim", 10)):
        x = model.sample(16, torch.Generator().manual_seed(1), sampler=sampler, steps=steps)
        z = model.ddpm.sample(16, torch.Generator().manual_seed(1), sampler=sampler, steps=steps)
        assert x.shape == (16, 1, 8, 8) and torch.isfinite(x).all()
        assert torch.equal(x, vae.mean(z * model.latent_scale + model.latent_shift))
        assert x.abs().max() < 3  # decoder means near the data's [-1, 1]
        assert torch.equal(x, model.sample(16, torch.Generator().manual_seed(1), sampler=sampler, steps=steps))
        assert not torch.equal(x, model.sample(16, torch.Generator().manual_seed(2), sampler=sampler, steps=steps))


def test_seeds_fix_weights_training_draws_and_samples(vae, data):
    x = data[0][:32]
    a, b, c = (LatentDiffusion(vae, seed=s, **TINY).fit_latent_scale(data[0]) for s in (4, 4, 5))
    assert all(torch.equal(p, q) for p, q in zip(a.ddpm.parameters(), b.ddpm.parameters()))
    assert not torch.equal(a.ddpm.network.input.weight, c.ddpm.network.input.weight)
    first = a.sample(3)  # the model's own generator
    assert torch.equal(first, b.sample(3)) and not torch.equal(first, c.sample(3))
    assert torch.equal(a.loss(x), b.loss(x)) and not torch.equal(a.loss(x), a.loss(x))
    assert torch.equal(a.validation_loss(x), a.validation_loss(x))


def test_state_dict_restores_the_vae_the_ddpm_and_the_code_statistics(vae, data):
    model = LatentDiffusion(vae, **TINY).fit_latent_scale(data[0])
    fit(model, data[0][:128], epochs=1, batch_size=64)
    state = model.state_dict()
    assert {"latent_shift", "latent_scale", "latent_scale_fitted"} <= set(state)
    assert any(k.startswith("vae.") for k in state) and any(k.startswith("ddpm.") for k in state)
    other = LatentDiffusion(_vae(seed=7), seed=7, **TINY)
    other.load_state_dict(state)
    assert all(torch.equal(p, q) for p, q in zip(other.vae.parameters(), vae.parameters()))
    assert torch.equal(other.latent_scale, model.latent_scale) and bool(other.latent_scale_fitted)
    assert torch.equal(other.sample(8, torch.Generator().manual_seed(0)),
                       model.sample(8, torch.Generator().manual_seed(0)))


def test_classifier_free_guidance_over_the_codes(vae, data):
    x, y = data[0][:256], digit_labels("train")[:256]
    model = LatentDiffusion(vae, num_classes=10, condition_dropout=0.2, **TINY).fit_latent_scale(data[0])
    fit(model, x, condition=y, epochs=2, batch_size=64)
    labels = torch.arange(8) % 10
    guided = model.sample(8, torch.Generator().manual_seed(0), labels, "ddim", 10, guidance=3.0)
    z = model.ddpm.sample(8, torch.Generator().manual_seed(0), labels, "ddim", 10, guidance=3.0)
    assert torch.equal(guided, model.decode(z))
    assert not torch.equal(guided, model.sample(8, torch.Generator().manual_seed(0), labels, "ddim", 10))
    with pytest.raises(ValueError, match="class-conditional \\(num_classes=10\\); pass condition"):
        model.loss(x)
    with pytest.raises(ValueError, match="condition\\[1\\] is 12"):
        model.sample(2, condition=torch.tensor([0, 12]))


def test_errors_name_the_value(vae, data):
    with pytest.raises(TypeError, match="needs a trained VAE, got DDPM"):
        LatentDiffusion(DDPM((2,), widths=(8,), timesteps=10))
    with pytest.raises(ConfigError, match="network must be 'mlp' \\(or 'auto'\\), got network='unet'"):
        LatentDiffusion(vae, network="unet")
    with pytest.raises(ConfigError, match="timesteps must be a positive int, got 0"):
        LatentDiffusion(vae, timesteps=0)
    with pytest.raises(ConfigError, match="no hyperparameter 'latent_dim'"):
        LatentDiffusion(vae, latent_dim=3)
    with pytest.raises(ConfigError, match="runs on its VAE's device \\(cpu\\).*device='meta'"):
        LatentDiffusion(vae, device="meta")
    model = LatentDiffusion(vae, **TINY)
    with pytest.raises(ValueError, match="x has shape \\(3, 64\\)"):
        model.fit_latent_scale(torch.zeros(3, 64))
    with pytest.raises(ValueError, match="at least 2 examples.*got 1"):
        model.fit_latent_scale(data[0][:1])
    with pytest.raises(ValueError, match="guidance=1.0 needs a class-conditional model"):
        model.fit_latent_scale(data[0]).sample(2, guidance=1.0)
