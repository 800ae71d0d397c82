"""GANs: the game's mathematics, the training round, DCGAN's rules, unrolling, conditioning, inversion, seeds."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from mimicgym.errors import ConfigError
from mimicgym.generative.data import grey_digits, toy2d
from mimicgym.generative.gan import DCGAN, GAN, WGANGP
from mimicgym.generative.gan_networks import generator_loss_from_logits, gradient_penalty, minimax_value
from mimicgym.generative.metrics import eight_gaussians_modes, energy_distance
from mimicgym.generative.train import fit


@pytest.fixture
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


# -- the game's mathematics ------------------------------------------------------------------
def _replicated(logits: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Per-point logits repeated by integer counts: sample means become expectations under counts / sum."""
    return logits.repeat_interleave(counts)


def test_optimal_discriminator_gives_minus_log_4_plus_twice_the_jsd(float64):
    p_data, p_g = torch.tensor([0.1, 0.2, 0.3, 0.4]), torch.tensor([0.4, 0.4, 0.1, 0.1])
    n_data, n_g = (10 * p_data).round().long(), (10 * p_g).round().long()
    d_star = p_data / (p_data + p_g)
    logits = torch.log(d_star / (1 - d_star))
    value = minimax_value(_replicated(logits, n_data), _replicated(logits, n_g))
    m = (p_data + p_g) / 2
    jsd = 0.5 * (p_data * (p_data / m).log()).sum() + 0.5 * (p_g * (p_g / m).log()).sum()
    assert value.item() == pytest.approx(-math.log(4) + 2 * jsd.item(), abs=1e-12)
    # V(D, G) = E_data log D + E_g log(1 - D), written out with probabilities.
    by_hand = (p_data * d_star.log()).sum() + (p_g * (1 - d_star).log()).sum()
    assert value.item() == pytest.approx(by_hand.item(), abs=1e-12)
    # D* is the maximiser: free logits trained on -V converge to log(p_data / p_g).
    free = torch.zeros(4, requires_grad=True)
    optimizer = torch.optim.LBFGS([free], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = -minimax_value(_replicated(free, n_data), _replicated(free, n_g))
        loss.backward()
        return loss

    optimizer.step(closure)
    assert torch.allclose(free.detach(), (p_data / p_g).log(), atol=1e-6)
    # p_g = p_data: D* = 1/2 everywhere and V = -log 4, the game's value.
    assert minimax_value(torch.zeros(7), torch.zeros(5)).item() == pytest.approx(-math.log(4), abs=1e-7)


def test_non_saturating_and_minimax_generator_gradients():
    logits = torch.tensor([-10.0, -4.0, 0.0, 3.0], requires_grad=True)
    grads = {}
    for kind in ("minimax", "non_saturating"):
        (grad,) = torch.autograd.grad(generator_loss_from_logits(logits, kind) * len(logits), logits)
        grads[kind] = grad
    d = torch.sigmoid(logits.detach())
    assert torch.allclose(grads["minimax"], -d, atol=1e-7)  # d/dl log(1 - sigmoid(l))
    assert torch.allclose(grads["non_saturating"], d - 1, atol=1e-7)  # d/dl -log sigmoid(l)
    # Where D rejects the fakes (D(G(z)) ~ 0) the minimax loss saturates, the other does not;
    # both push the logit up.
    assert abs(grads["non_saturating"][0]) > 0.9999 and abs(grads["minimax"][0]) < 1e-4
    assert bool((grads["minimax"] < 0).all() and (grads["non_saturating"] < 0).all())
    values = {kind: generator_loss_from_logits(logits.detach(), kind).item() for kind in ("minimax", "non_saturating")}
    assert values["minimax"] == pytest.approx(torch.log(1 - d).mean().item(), rel=1e-5)
    assert values["non_saturating"] == pytest.approx(-torch.log(d).mean().item(), rel=1e-5)


@pytest.mark.parametrize("kind", ["minimax", "non_saturating"])
def test_model_losses_follow_the_formulas_on_its_own_noise(kind):
    model = GAN((2,), hidden=(16,), generator_loss=kind, seed=2)
    x = toy2d("eight_gaussians", 32, seed=1)
    z = torch.randn(32, model.config.latent_dim, generator=torch.Generator().manual_seed(5))
    fake = model.generate(z)
    expected_g = generator_loss_from_logits(model.discriminate(fake), kind)
    assert torch.equal(model.generator_loss(x, generator=torch.Generator().manual_seed(5)), expected_g)
    expected_d = -minimax_value(model.discriminate(x), model.discriminate(fake))
    assert torch.equal(model.discriminator_loss(x, generator=torch.Generator().manual_seed(5)), expected_d)
    model.generator.manual_seed(5)  # loss(x) draws from the model's own generator
    assert torch.equal(model.loss(x), expected_d)


def test_gradient_penalty_equals_a_hand_computed_gradient():
    model = WGANGP((3,), hidden=(4,), latent_dim=2, seed=1)
    g = torch.Generator().manual_seed(0)
    real, fake, mix = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g), torch.rand(6, generator=g)
    first, last = model.D.features[0], model.D.head
    x_hat = mix[:, None] * real + (1 - mix[:, None]) * fake
    h = x_hat @ first.weight.T + first.bias  # (6, 4)
    slope = torch.where(h > 0, 1.0, 0.2)  # LeakyReLU(0.2)'
    grad = (slope * last.weight) @ first.weight  # (6, 3): d C / d x_hat
    expected = (grad.norm(dim=1) - 1) ** 2
    penalty = gradient_penalty(lambda x: model.D(x), real, fake, mix)
    assert torch.allclose(penalty, expected, atol=1e-6)
    # The critic's loss: E C(G(z)) - E C(x) + 10 GP, z then mix drawn from the generator passed.
    draws = torch.Generator().manual_seed(3)
    z = torch.randn(6, 2, generator=draws)
    mix = torch.rand(6, generator=draws)
    generated = model.generate(z)
    with torch.no_grad():
        penalty = gradient_penalty(lambda x: model.D(x), real, generated, mix).mean()
        expected_loss = model.D(generated).mean() - model.D(real).mean() + 10 * penalty
    loss = model.discriminator_loss(real, generator=torch.Generator().manual_seed(3))
    assert loss.item() == pytest.approx(expected_loss.item(), abs=1e-6)
    assert penalty.item() > 0.01  # the check compared something


# -- the training round ----------------------------------------------------------------------
def _snapshot(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("model", [GAN((2,), hidden=(16,), discriminator_steps=3), WGANGP((2,), hidden=(16,)),
                                   GAN((2,), hidden=(16,), discriminator_steps=2, unrolled_steps=2)],
                         ids=["gan-k3", "wgangp-k5", "unrolled"])
def test_k_discriminator_steps_per_generator_step_each_player_frozen_in_turn(model):
    k = model.discriminator_steps
    optimizers = model.make_optimizers(1e-3)
    log: list[str] = []

    def spy(name: str, mover: nn.Module, other: nn.Module):
        optimizer = optimizers[name]
        step = optimizer.step

        def wrapped(*args, **kwargs):
            other_before, mover_before = _snapshot(other), _snapshot(mover)
            assert not any(p.requires_grad for p in other.parameters()) or name == "discriminator"
            result = step(*args, **kwargs)
            assert _same(other_before, _snapshot(other)), f"the {name} step moved the other player"
            assert not _same(mover_before, _snapshot(mover)), f"the {name} step did not move its player"
            log.append(name)
            return result

        optimizer.step = wrapped

    spy("discriminator", model.D, model.G)
    spy("generator", model.G, model.D)
    x = toy2d("eight_gaussians", 64)
    g_start = _snapshot(model.G)
    terms = model.training_step(x, optimizers)
    assert log == ["discriminator"] * k + ["generator"]
    assert list(terms)[:2] == ["loss", "discriminator_loss"] and all(not t.requires_grad for t in terms.values())
    if isinstance(model, WGANGP):
        assert k == 5 and {"wasserstein_estimate", "gradient_penalty"} <= set(terms)
    assert not _same(g_start, _snapshot(model.G))
    assert all(p.requires_grad for p in model.parameters())  # freezing undone
    model.training_step(x, optimizers)
    assert [optimizers["discriminator"].state[p]["step"].item() for p in model.D.parameters()] == \
        [2 * k] * len(list(model.D.parameters()))
    assert all(optimizers["generator"].state[p]["step"].item() == 2 for p in model.G.parameters())


def test_optimizers_follow_each_papers_betas_and_the_critic_lr_scale():
    dcgan = DCGAN((1, 8, 8), width=8).make_optimizers(2e-4)
    assert dcgan["generator"].defaults["betas"] == (0.5, 0.999) and dcgan["discriminator"].defaults["lr"] == 2e-4
    wgan = WGANGP((2,), discriminator_lr_scale=2.0)
    optimizers = wgan.make_optimizers(1e-4)
    assert optimizers["discriminator"].defaults["betas"] == (0.5, 0.9)
    assert optimizers["discriminator"].defaults["lr"] == pytest.approx(2e-4)
    ids = {name: {id(p) for group in o.param_groups for p in group["params"]} for name, o in optimizers.items()}
    assert not ids["generator"] & ids["discriminator"]
    assert ids["generator"] | ids["discriminator"] == {id(p) for p in wgan.parameters()}


# -- unrolled GAN ----------------------------------------------------------------------------
def test_unrolled_loss_is_the_loss_against_d_advanced_k_sgd_steps(float64):
    plain = GAN((2,), hidden=(8,), latent_dim=2, seed=3)
    unrolled = GAN((2,), hidden=(8,), latent_dim=2, seed=3, unrolled_steps=3, unroll_lr=0.3)
    x = toy2d("eight_gaussians", 16).double()
    # unrolled_steps=0: the plain loss against D itself.
    z = torch.randn(16, 2, generator=torch.Generator().manual_seed(1))
    plain_loss = generator_loss_from_logits(plain.discriminate(plain.generate(z)))
    assert torch.equal(plain.generator_loss(x, generator=torch.Generator().manual_seed(1)), plain_loss)
    # k = 3: D copied and stepped by hand with SGD on fresh fakes (the same draws, in order).
    d = copy.deepcopy(unrolled.D)
    sgd = torch.optim.SGD(d.parameters(), lr=0.3)
    draws = torch.Generator().manual_seed(1)
    for _ in range(3):
        fake = unrolled.generate(torch.randn(16, 2, generator=draws)).detach()
        sgd.zero_grad()
        (-minimax_value(d(x), d(fake))).backward()
        sgd.step()
    by_hand = generator_loss_from_logits(d(unrolled.generate(torch.randn(16, 2, generator=draws))))
    loss = unrolled.generator_loss(x, generator=torch.Generator().manual_seed(1))
    assert loss.item() == pytest.approx(by_hand.item(), abs=1e-12)
    assert abs(loss.item() - plain.generator_loss(x, generator=torch.Generator().manual_seed(1)).item()) > 1e-3


def test_unrolled_gradient_flows_through_the_unrolled_steps(float64):
    model = GAN((2,), hidden=(8,), latent_dim=2, seed=0, unrolled_steps=2, unroll_lr=1.0)
    x = toy2d("eight_gaussians", 16).double()
    params = list(model.G.parameters())

    def loss() -> torch.Tensor:
        return model.generator_loss(x, generator=torch.Generator().manual_seed(4))

    grads = torch.autograd.grad(loss(), params)
    direction = [torch.randn(p.shape, generator=torch.Generator().manual_seed(i)) for i, p in enumerate(params)]
    eps = 1e-6
    with torch.no_grad():
        values = []
        for sign in (1, -1):
            for p, v in zip(params, direction):
                p.add_(sign * eps * v)
            values.append(loss().item())
            for p, v in zip(params, direction):
                p.sub_(sign * eps * v)
    finite_difference = (values[0] - values[1]) / (2 * eps)
    analytic = sum((g * v).sum() for g, v in zip(grads, direction)).item()
    assert analytic == pytest.approx(finite_difference, rel=1e-5)
    # Without the path through D's unrolled steps the gradient would be another one.
    model.config.unrolled_steps = 0
    plain = torch.autograd.grad(loss(), params)
    assert abs(sum((g * v).sum() for g, v in zip(plain, direction)).item() - analytic) > 1e-3


# -- DCGAN's rules ---------------------------------------------------------------------------
def test_dcgan_follows_the_architecture_rules():
    model = DCGAN((1, 8, 8))
    for player in (model.G, model.D):
        kinds = {type(m) for m in player.modules()}
        assert nn.Linear not in kinds, "no fully connected layers"
        assert not any(issubclass(k, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)) for k in kinds)
        assert nn.BatchNorm2d in kinds
    g_layers = list(model.G.net)
    transposed = [m for m in g_layers if isinstance(m, nn.ConvTranspose2d)]
    assert all(m.stride == (2, 2) for m in transposed[1:]) and len(transposed) == 3  # 1x1 -> 2x2 -> 4x4 -> 8x8
    assert isinstance(g_layers[-1], nn.Tanh) and not isinstance(g_layers[-2], nn.BatchNorm2d)
    assert {type(m) for m in g_layers} == {nn.ConvTranspose2d, nn.BatchNorm2d, nn.ReLU, nn.Tanh}
    d_layers = list(model.D.features)
    assert {type(m) for m in model.D.modules()} - {type(model.D), nn.Sequential} == {nn.Conv2d, nn.BatchNorm2d,
                                                                                     nn.LeakyReLU}
    assert all(m.negative_slope == 0.2 for m in d_layers if isinstance(m, nn.LeakyReLU))
    assert all(m.stride == (2, 2) for m in d_layers if isinstance(m, nn.Conv2d))
    assert isinstance(d_layers[1], nn.LeakyReLU)  # no batch norm on D's input layer
    weights = torch.cat([m.weight.flatten() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
    assert weights.std().item() == pytest.approx(0.02, rel=0.1)  # DCGAN's initialisation
    samples = model.sample(16)
    assert samples.shape == (16, 1, 8, 8) and samples.abs().max() <= 1
    assert model.discriminate(grey_digits("valid")[:5]).shape == (5,)
    critic = WGANGP((1, 8, 8), width=8)
    assert isinstance(critic.D.features[0], nn.Conv2d)
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.Linear)) for m in critic.D.modules())


def test_sampling_uses_running_statistics_and_restores_the_mode():
    model = DCGAN((1, 8, 8), width=8, latent_dim=4)
    model.training_step(grey_digits("train")[:32], model.make_optimizers(2e-4))
    model.train()
    samples = model.sample(6, generator=torch.Generator().manual_seed(2))
    assert model.training and model.G.training
    z = torch.randn(6, 4, generator=torch.Generator().manual_seed(2))
    model.eval()
    one_by_one = torch.cat([model.generate(z[i: i + 1]) for i in range(6)])
    assert torch.allclose(samples, one_by_one, atol=1e-6)  # each sample depends on its own z alone


# -- conditional GANs ------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [GAN, DCGAN, WGANGP])
def test_conditional_sampling_and_label_checks(cls):
    model = cls((1, 8, 8), num_classes=10, **({"hidden": (32,)} if cls is GAN else {"width": 8}))
    assert model.sample(5, condition=3).shape == (5, 1, 8, 8)
    labels = torch.tensor([0, 1, 2, 3, 9])
    same_z = [model.sample(5, generator=torch.Generator().manual_seed(0), condition=c) for c in (labels, 7)]
    assert same_z[0].shape == (5, 1, 8, 8) and not torch.allclose(same_z[0], same_z[1])
    with pytest.raises(ValueError, match=r"condition\[1\] is 10; expected a class in \[0, 10\)"):
        model.sample(2, condition=torch.tensor([1, 10]))
    with pytest.raises(ValueError, match="class-conditional"):
        model.sample(2)
    with pytest.raises(ValueError, match="unconditional"):
        cls((1, 8, 8), width=8).sample(2, condition=1) if cls is not GAN else GAN((3,)).sample(2, condition=1)
    x = grey_digits("train")[:16]
    before = model.D.projection.weight.detach().clone()
    terms = model.training_step(x, model.make_optimizers(1e-3), condition=torch.arange(16) % 10)
    assert math.isfinite(terms["loss"].item()) and not torch.equal(before, model.D.projection.weight)


# -- inversion -------------------------------------------------------------------------------
def test_inversion_recovers_a_generated_target_and_inpaints_the_rest():
    model = GAN((16,), hidden=(32,), latent_dim=3, tanh_output=True, seed=1)
    z_star = torch.randn(5, 3, generator=torch.Generator().manual_seed(9))
    target = model.generate(z_star).detach()
    state = copy.deepcopy(model.state_dict())
    z, x = model.invert(target, steps=400, generator=torch.Generator().manual_seed(0))
    assert z.shape == (5, 3) and x.shape == (5, 16)
    assert (x - target).pow(2).mean().item() < 1e-5 * target.var().item() + 1e-7
    mask = torch.zeros(16)
    mask[:9] = 1  # observe 9 of 16 entries
    _, filled = model.invert(target, mask=mask, steps=400, generator=torch.Generator().manual_seed(0))
    unseen = mask == 0
    random_guess = model.sample(5, generator=torch.Generator().manual_seed(1))
    error = (filled - target)[:, unseen].pow(2).mean().item()
    assert error < 1e-4 and error < 1e-3 * (random_guess - target)[:, unseen].pow(2).mean().item()
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())  # weights untouched
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match=r"mask\[0, 3\] is 0.5; expected 0 or 1"):
        model.invert(target, mask=torch.tensor([1.0, 1, 1, 0.5] + [0] * 12), steps=1)
    with pytest.raises(ValueError, match="does not broadcast"):
        model.invert(target, mask=torch.ones(15), steps=1)


# -- training --------------------------------------------------------------------------------
def _mean_distance_to_nearest_mode(samples: torch.Tensor) -> float:
    centres, _ = eight_gaussians_modes()
    return torch.cdist(samples.double(), centres).min(1).values.mean().item()


def test_a_short_training_moves_samples_onto_the_eight_gaussians():
    model = GAN((2,), seed=0)
    data, held_out = toy2d("eight_gaussians", 2048, seed=0), toy2d("eight_gaussians", 1000, seed=1)
    before = model.sample(1000, generator=torch.Generator().manual_seed(0))
    history = fit(model, data, epochs=40, batch_size=64, lr=1e-3)  # 1,280 rounds, about 4 s
    after = model.sample(1000, generator=torch.Generator().manual_seed(0))
    assert len(history) == 40 and history[-1].valid_nll is None and "discriminator_loss" in history[-1].terms
    assert _mean_distance_to_nearest_mode(after) < 0.3 * _mean_distance_to_nearest_mode(before)
    assert energy_distance(after, held_out) < 0.05 * energy_distance(before, held_out)  # 2.0 -> 0.02


@pytest.mark.parametrize("cls,shape,options", [(GAN, (2,), {"hidden": (16,), "unrolled_steps": 1}),
                                               (DCGAN, (1, 8, 8), {"width": 8}), (WGANGP, (2,), {"hidden": (16,)})])
def test_same_seed_is_bit_identical_and_another_seed_differs(cls, shape, options):
    x = toy2d("eight_gaussians", 32) if shape == (2,) else grey_digits("train")[:32]

    def run(seed: int):
        model = cls(shape, seed=seed, **options)
        optimizers = model.make_optimizers(1e-3)
        terms = [model.training_step(x, optimizers) for _ in range(2)]
        return model, terms, model.sample(8)

    (a, terms_a, samples_a), (b, terms_b, samples_b), (c, _, samples_c) = run(5), run(5), run(6)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    assert all(torch.equal(t, u) for r, s in zip(terms_a, terms_b) for t, u in zip(r.values(), s.values()))
    assert torch.equal(samples_a, samples_b) and not torch.allclose(samples_a, samples_c)
    assert not torch.equal(a.G.net[0].weight, c.G.net[0].weight)  # another seed, another initialisation
    assert not torch.equal(a.sample(8), samples_a)  # the model's generator moved on


@pytest.mark.parametrize("cls,shape,options,message", [
    (GAN, (2,), {"generator_loss": "wasserstein"}, r"generator_loss must be one of .*'wasserstein'"),
    (GAN, (2,), {"discriminator_steps": 0}, "discriminator_steps must be a positive int, got 0"),
    (GAN, (2,), {"unrolled_steps": -1}, "unrolled_steps must be an int >= 0, got -1"),
    (GAN, (2,), {"unroll_lr": 0.0}, "unroll_lr must be > 0, got 0.0"),
    (GAN, (2,), {"betas": (0.5, 1.0)}, r"betas must be two numbers in \[0, 1\), got \(0.5, 1.0\)"),
    (GAN, (2,), {"hidden": (16, 0)}, "hidden entries must be a positive int, got 0"),
    (GAN, (2,), {"critic_steps": 5}, "GAN has no hyperparameter 'critic_steps'"),
    (WGANGP, (2,), {"critic_steps": 0}, "critic_steps must be a positive int, got 0"),
    (WGANGP, (2,), {"gradient_penalty": -1.0}, "gradient_penalty must be >= 0, got -1.0"),
    (WGANGP, (2,), {"architecture": "resnet"}, "architecture must be one of .*'resnet'"),
    (WGANGP, (2,), {"architecture": "conv"}, r"data_shape must be \(C, H, W\), got \(2,\)"),
    (DCGAN, (2,), {}, r"data_shape must be \(C, H, W\), got \(2,\)"),
    (DCGAN, (1, 6, 6), {}, "upsamplings must halve the 6x6 image exactly .*got upsamplings=2"),
    (DCGAN, (1, 8, 8), {"num_classes": 0}, "num_classes must be a positive int, got 0"),
    (DCGAN, (1, 8, 8), {"width": 2.5}, "width must be a positive int, got 2.5"),
])
def test_bad_hyperparameters_name_the_field_and_value(cls, shape, options, message):
    with pytest.raises(ConfigError, match=message):
        cls(shape, **options)


def test_bad_inputs_are_refused():
    model = GAN((2,), hidden=(8,))
    with pytest.raises(ValueError, match=r"x has shape \(4, 3\)"):
        model.training_step(torch.zeros(4, 3), model.make_optimizers(1e-3))
    with pytest.raises(ValueError, match=r"target\[1, 0\] is nan"):
        model.invert(torch.tensor([[0.0, 0.0], [math.nan, 0.0]]))
    with pytest.raises(ValueError, match=r"z must be a tensor of shape \(batch, 8\)"):
        model.generate(torch.zeros(3, 2))
    with pytest.raises(ConfigError, match="n must be a positive int, got 0"):
        model.sample(0)
