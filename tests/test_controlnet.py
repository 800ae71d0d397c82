"""ControlNet: exactly the frozen model at initialisation, a frozen DDPM that stays frozen, zero
convolutions that learn, samples that follow the sketch after training, seeds, errors."""

from __future__ import annotations

import copy

import pytest
import torch

from mimicgym.errors import ConfigError
from mimicgym.generative.controlnet import ControlNet, sketch, sketch_error
from mimicgym.generative.data import digit_labels, grey_digits
from mimicgym.generative.diffusion import DDPM
from mimicgym.generative.train import fit

TINY = {"widths": (8, 16), "timesteps": 50, "embedding_dim": 32, "clip_sample": 1.0}


def _ddpm(seed: int = 0, **kw) -> DDPM:
    return DDPM((1, 8, 8), seed=seed, **{**TINY, **kw})


def _perturb(model: torch.nn.Module, seed: int = 0) -> None:
    """Random weights everywhere: the U-Net's zero-initialised convolutions would hide its inputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=g))


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


@pytest.fixture(scope="module")
def trained():
    """A tiny DDPM fitted briefly on the digits, then a ControlNet on it; the DDPM's weights before."""
    x = grey_digits("train")
    ddpm = _ddpm()
    fit(ddpm, x, epochs=3, lr=3e-3, batch_size=64)
    before = _state(ddpm)
    net = ControlNet(ddpm, hint_widths=(8,))
    history = fit(net, x, grey_digits("valid"), epochs=5, lr=3e-3, batch_size=64, restore_best=False)
    return net, before, history


def test_sketch_is_the_block_mean():
    x = torch.arange(2 * 64, dtype=torch.float32).view(2, 1, 8, 8)
    s = sketch(x)
    assert s.shape == (2, 1, 4, 4)
    assert s[1, 0, 2, 3] == x[1, 0, 4:6, 6:8].mean()
    assert torch.equal(sketch(x, 1), x.mean((2, 3), keepdim=True)) and torch.equal(sketch(x, 8), x)
    assert torch.equal(sketch_error(x, s), torch.zeros(2))
    assert torch.equal(sketch_error(x, s + 0.25), torch.full((2,), 0.25))
    with pytest.raises(ValueError, match="size must be a positive int dividing the image size 8x8, got 3"):
        sketch(x, 3)


@pytest.mark.parametrize("num_classes", [None, 3])
def test_at_initialisation_the_branch_leaves_the_frozen_model_exactly_unchanged(num_classes):
    ddpm = _ddpm(num_classes=num_classes)
    _perturb(ddpm)
    net = ControlNet(ddpm, seed=1)
    g = torch.Generator().manual_seed(0)
    x_t, hint = torch.randn(6, 1, 8, 8, generator=g), torch.rand(6, 1, 4, 4, generator=g) * 2 - 1
    t = torch.randint(0, 50, (6,), generator=g)
    labels = None if num_classes is None else torch.arange(6) % 3
    guidance = 0.0 if num_classes is None else 2.0
    residuals = net.residuals(x_t, t.float(), None, hint)
    assert len(residuals) == len(ddpm.network.skip_channels) + 1 and not any(r.any() for r in residuals)
    assert torch.equal(net.predict_noise(x_t, t, hint, labels, guidance), ddpm.predict_noise(x_t, t, labels, guidance))
    # The branch is not idle: a nonzero zero-conv changes the prediction.
    bumped = copy.deepcopy(net)
    torch.nn.init.constant_(bumped.zero_convs[0].weight, 0.1)
    assert not torch.equal(bumped.predict_noise(x_t, t, hint, labels), ddpm.predict_noise(x_t, t, labels))
    # Samples: the same draws, the same steps, the same images.
    for sampler, steps in (("ddpm", None), ("ddim", 10)):
        ours = net.sample(6, torch.Generator().manual_seed(3), hint, sampler, steps, guidance, labels=labels)
        theirs = ddpm.sample(6, torch.Generator().manual_seed(3), labels, sampler, steps, guidance)
        assert torch.equal(ours, theirs), sampler
    assert torch.equal(net.sample(6, torch.Generator().manual_seed(3), None, labels=labels),
                       ddpm.sample(6, torch.Generator().manual_seed(3), labels))


def test_the_copy_starts_from_the_frozen_weights_and_only_the_branch_is_optimised():
    ddpm = _ddpm()
    _perturb(ddpm)
    net = ControlNet(ddpm)
    unet = ddpm.network
    for name in ("time", "stem", "encoder_blocks", "middle"):
        ours, theirs = getattr(net, name), getattr(unet, name)
        assert all(torch.equal(p, q) and p.data_ptr() != q.data_ptr()
                   for p, q in zip(ours.parameters(), theirs.parameters())), name
    frozen = {id(p) for p in ddpm.parameters()}
    assert all(not p.requires_grad for p in ddpm.parameters())
    optimised = net.make_optimizers(1e-3)["model"].param_groups[0]["params"]
    assert {id(p) for p in optimised} == {id(p) for p in net.trainable_parameters()}
    assert not frozen & {id(p) for p in optimised}
    assert len(optimised) == len(list(net.parameters())) - len(frozen)
    # The checkpoint holds both, and restores both.
    assert any(k.startswith("ddpm.") for k in net.state_dict()) and "zero_convs.0.weight" in net.state_dict()
    with torch.no_grad():
        torch.nn.init.normal_(net.zero_convs[1].weight)  # a branch that does something
    other = ControlNet(_ddpm(seed=5), seed=5)
    other.load_state_dict(net.state_dict())
    x_t, hint = torch.randn(3, 1, 8, 8), torch.rand(3, 1, 4, 4)
    assert torch.equal(other.predict_noise(x_t, 7, hint), net.predict_noise(x_t, 7, hint))
    net.train()
    assert net.training and not ddpm.training  # a trainer's model.train() leaves the frozen model in eval


def test_one_step_trains_the_zero_convolutions_and_nothing_of_the_frozen_model():
    ddpm = _ddpm()
    _perturb(ddpm)
    before = _state(ddpm)
    net = ControlNet(ddpm)
    optimizers = net.make_optimizers(1e-2)
    x = grey_digits("train")[:32]
    net.training_step(x, optimizers)
    assert all(p.grad is None for p in ddpm.parameters())
    for zero in net.zero_convs:
        assert zero.weight.grad.abs().sum() > 0 and zero.weight.abs().sum() > 0
    # Behind the zero convs at zero, the copy and the hint encoder got no gradient; after one step they do.
    for p in (net.stem.weight, net.hint_encoder[-1].weight):
        assert p.grad is None or not p.grad.any()
    net.training_step(x, optimizers)
    for p in (net.stem.weight, net.hint_encoder[-1].weight):
        assert p.grad.abs().sum() > 0
    assert all(torch.equal(v, ddpm.state_dict()[k]) for k, v in before.items())


def test_training_makes_samples_follow_the_sketch(trained):
    net, before, history = trained
    assert history[-1].valid_nll < history[0].valid_nll
    assert all(torch.equal(v, net.ddpm.state_dict()[k]) for k, v in before.items())
    test = grey_digits("test")[:200]
    hint = sketch(test)
    frozen = net.sample(200, torch.Generator().manual_seed(0), None, sampler="ddim", steps=20)
    controlled = net.sample(200, torch.Generator().manual_seed(0), hint, sampler="ddim", steps=20)
    frozen_error, controlled_error = sketch_error(frozen, hint).mean(), sketch_error(controlled, hint).mean()
    assert controlled_error < 0.85 * frozen_error, (controlled_error, frozen_error)
    # control_scale = 0 switches the trained branch off: the frozen model's samples again.
    assert torch.equal(net.sample(5, torch.Generator().manual_seed(1), hint[:5], "ddim", 5, control_scale=0.0),
                       net.ddpm.sample(5, torch.Generator().manual_seed(1), None, "ddim", 5))


def test_class_labels_pass_through_training():
    x, y = grey_digits("train")[:64], digit_labels("train")[:64]
    net = ControlNet(_ddpm(num_classes=10))
    history = fit(net, x, condition=y, epochs=1, batch_size=32)
    assert len(history) == 1
    out = net.sample(4, condition=sketch(x[:4]), labels=y[:4], guidance=1.0, sampler="ddim", steps=5)
    assert out.shape == (4, 1, 8, 8) and out.abs().max() <= 1.0 + 1e-5
    with pytest.raises(ValueError, match="class-conditional \\(num_classes=10\\)"):
        net.loss(x)


def test_seeds_and_determinism():
    ddpm = _ddpm()
    x = grey_digits("train")[:16]
    a, b, c = ControlNet(ddpm, seed=2), ControlNet(ddpm, seed=2), ControlNet(ddpm, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.trainable_parameters(), b.trainable_parameters()))
    assert not torch.equal(a.hint_encoder[0].weight, c.hint_encoder[0].weight)
    assert torch.equal(a.loss(x), b.loss(x)) and not torch.equal(a.loss(x), c.loss(x))
    state = a.generator.get_state()
    assert torch.equal(a.validation_loss(x), a.validation_loss(x))
    assert torch.equal(state, a.generator.get_state())
    hint = sketch(x[:4])
    first = a.sample(4, torch.Generator().manual_seed(9), hint, "ddim", 5)
    assert torch.equal(first, a.sample(4, torch.Generator().manual_seed(9), hint, "ddim", 5))
    assert not torch.equal(first, a.sample(4, torch.Generator().manual_seed(8), hint, "ddim", 5))


def test_errors_name_the_network_and_the_value():
    with pytest.raises(ConfigError, match="network must be 'unet', got network='mlp' \\(MLPDenoiser\\)"):
        ControlNet(DDPM((2,), widths=(8,), timesteps=10))
    with pytest.raises(ConfigError, match="got network='temporal' \\(TemporalConvNet\\)"):
        ControlNet(DDPM((2, 16), widths=(8,), timesteps=10))
    with pytest.raises(TypeError, match="ControlNet steers a DDPM, got Linear"):
        ControlNet(torch.nn.Linear(2, 2))
    ddpm = _ddpm()
    with pytest.raises(ConfigError, match="sketch_size must divide the image size 8x8, got sketch_size=3"):
        ControlNet(ddpm, sketch_size=3)
    with pytest.raises(ConfigError, match="hint must be one of .*'edges'"):
        ControlNet(ddpm, hint="edges")
    with pytest.raises(ConfigError, match="hint_widths must hold at least one width"):
        ControlNet(ddpm, hint_widths=())
    with pytest.raises(ConfigError, match="no hyperparameter 'timesteps'"):
        ControlNet(ddpm, timesteps=10)
    net = ControlNet(ddpm)
    with pytest.raises(ValueError, match="condition must be a tensor of shape \\(2, 1, 4, 4\\).*\\(2, 1, 8, 8\\)"):
        net.sample(2, condition=torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match="hint\\[0, 0, 1, 2\\] is nan"):
        bad = torch.zeros(1, 1, 4, 4)
        bad[0, 0, 1, 2] = float("nan")
        net.predict_noise(torch.zeros(1, 1, 8, 8), 3, bad)
    with pytest.raises(ValueError, match="guidance=1.0 needs a class-conditional model"):
        net.sample(2, condition=torch.zeros(2, 1, 4, 4), guidance=1.0)
    with pytest.raises(ValueError, match="control_scale must be >= 0, got -1"):
        net.sample(2, condition=torch.zeros(2, 1, 4, 4), control_scale=-1)
    with pytest.raises(ValueError, match="unconditional"):
        net.loss(torch.zeros(2, 1, 8, 8), torch.tensor([0, 1]))
