"""PixelCNN: masks, raster/channel causality, receptive field against gradients, exact normalisation,
class conditioning, seeds, errors."""

from __future__ import annotations

import itertools

import pytest
import torch
from _binarization import expected_over_binarizations

from mimicgym.errors import ConfigError
from mimicgym.generative.pixelcnn import PixelCNN, raster_mask

SMALL = {"channels": 12, "layers": 2, "first_kernel_size": 3}


def _image(shape, levels, seed=0):
    return torch.randint(0, levels, (2, *shape), generator=torch.Generator().manual_seed(seed)).float()


def _order(shape):
    """Every sub-pixel (c, i, j) in the model's order: raster over (i, j), channels within."""
    C, H, W = shape
    return [(c, i, j) for i in range(H) for j in range(W) for c in range(C)]


def test_mask_a_and_b_with_colour_groups():
    a = raster_mask(6, 3, (3, 3), 3, "A")
    b = raster_mask(6, 3, (3, 3), 3, "B")
    assert a[:, :, 0].eq(1).all() and a[:, :, 1, 0].eq(1).all()  # the row above and the pixel left
    assert a[:, :, 1, 2].eq(0).all() and a[:, :, 2].eq(0).all()  # right of and below the centre
    # At the centre, output groups (R, R, G, G, B, B) read input channels R < G < B strictly (A) or not (B).
    assert a[:, :, 1, 1].tolist() == [[0, 0, 0], [0, 0, 0], [1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 0]]
    assert b[:, :, 1, 1].tolist() == [[1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 0], [1, 1, 1], [1, 1, 1]]
    assert raster_mask(4, 4, (1, 1), 1, "B").eq(1).all() and raster_mask(4, 4, (1, 1), 1, "A").eq(0).all()


@pytest.mark.parametrize("gated", [True, False])
@pytest.mark.parametrize("shape, levels", [((1, 4, 4), 2), ((3, 3, 3), 4)])
def test_each_output_sees_exactly_what_precedes_it(gated, shape, levels):
    model = PixelCNN(shape, levels=levels, gated=gated, **SMALL)
    x = _image(shape, levels)
    logits = model.logits(x)
    assert logits.shape == ((2, *shape) if levels == 2 else (2, *shape, levels))
    order = _order(shape)
    for n, (c, i, j) in enumerate(order):
        later = x.clone()
        for cc, ii, jj in order[n:]:  # the sub-pixel itself and everything after it
            later[:, cc, ii, jj] = (x[:, cc, ii, jj] + 1) % levels
        assert torch.equal(model.logits(later)[:, c, i, j], logits[:, c, i, j]), (c, i, j)
        # The sub-pixel just before; for the raster stack only within the row (its blind spot can
        # hide the previous row's end).
        if n > 0 and (gated or c > 0 or j > 0):
            cc, ii, jj = order[n - 1]
            before = x.clone()
            before[:, cc, ii, jj] = (x[:, cc, ii, jj] + 1) % levels
            assert not torch.equal(model.logits(before)[:, c, i, j], logits[:, c, i, j]), (c, i, j)


@pytest.mark.parametrize("gated", [True, False])
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 5, 5)])
def test_receptive_field_equals_gradient_support(gated, shape):
    model = PixelCNN(shape, gated=gated, channels=12, layers=3, num_classes=2)
    C, H, W = shape
    # A few images, since a ReLU off at one pixel of one image can cut a path the mask allows.
    inputs = model._features(torch.cat([_image(shape, 2, seed) for seed in range(2)])).requires_grad_()
    out = model._network(inputs, torch.tensor([1, 0, 1, 0]))
    for c, i, j in [(0, 4, 4), (C - 1, 2, 3), (C - 1, H - 1, W - 1)]:
        (grad,) = torch.autograd.grad(out[:, c, i, j].sum(), inputs, retain_graph=True)
        field = model.receptive_field(c, i, j)
        assert torch.equal(field, (grad != 0).any(0)), (c, i, j)
        past = torch.zeros(C, H, W, dtype=torch.bool)
        for cc, ii, jj in _order(shape)[: _order(shape).index((c, i, j))]:
            past[cc, ii, jj] = True
        assert not (field & ~past).any()  # never the present or the future


def test_gated_stacks_remove_the_blind_spot():
    # Four 3x3 layers: pixel (4, 4) could reach everything before it.
    past = torch.zeros(1, 8, 8, dtype=torch.bool)
    past[0, :4] = True
    past[0, 4, :4] = True
    hp = {"channels": 4, "layers": 3, "first_kernel_size": 3}
    gated = PixelCNN((1, 8, 8), gated=True, **hp).receptive_field(0, 4, 4)
    plain = PixelCNN((1, 8, 8), gated=False, **hp).receptive_field(0, 4, 4)
    assert torch.equal(gated, past)
    blind = torch.zeros(1, 8, 8, dtype=torch.bool)
    blind[0, 3, 6:] = blind[0, 2, 7] = True  # the raster stack's blind spot, above and right
    assert torch.equal(plain, past & ~blind)


def test_binarized_loss_has_the_expectation_of_the_loss_over_binarizations():
    model = PixelCNN((1, 2, 3), **SMALL)
    every = torch.tensor(list(itertools.product([0.0, 1.0], repeat=6))).view(64, 1, 2, 3)
    grey = torch.rand(1, 1, 2, 3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        sampled = expected_over_binarizations(model.loss, every, grey)
        averaged = expected_over_binarizations(lambda x: model.binarized_loss(x, grey), every, grey)
    assert averaged == pytest.approx(sampled, rel=1e-5)
    with pytest.raises(ValueError, match=r"probabilities have shape \(1, 1, 3, 2\), x \(1, 1, 2, 3\)"):
        model.binarized_loss(every[:1], grey.view(1, 1, 3, 2))
    with pytest.raises(ValueError, match="probabilities"):
        model.binarized_loss(every[:1], grey + 1.0)


@pytest.mark.parametrize("gated", [True, False])
def test_binary_probabilities_sum_to_one(gated):
    model = PixelCNN((1, 2, 2), gated=gated, **SMALL)
    every = torch.tensor(list(itertools.product([0.0, 1.0], repeat=4))).view(16, 1, 2, 2)  # the 16 images
    log_p = model.log_prob(every)
    assert log_p.shape == (16,)
    assert torch.logsumexp(log_p.double(), 0).exp().item() == pytest.approx(1.0, abs=1e-5)
    logits = model.logits(every)
    reference = torch.distributions.Bernoulli(logits=logits).log_prob(every).flatten(1).sum(1)
    assert torch.allclose(log_p, reference, atol=1e-5)
    assert model.loss(every).item() == pytest.approx(-log_p.mean().item(), rel=1e-6)


def test_categorical_colour_probabilities_sum_to_one():
    model = PixelCNN((2, 1, 2), levels=3, **SMALL)  # 2 channels x 2 pixels x 3 levels = 81 images
    every = torch.tensor(list(itertools.product(range(3), repeat=4))).view(81, 2, 1, 2)
    log_p = model.log_prob(every)
    assert torch.logsumexp(log_p.double(), 0).exp().item() == pytest.approx(1.0, abs=1e-5)
    assert model.logits(every).shape == (81, 2, 1, 2, 3)


def test_class_condition_is_used():
    model = PixelCNN((1, 4, 4), num_classes=3, **SMALL)
    x = _image((1, 4, 4), 2)
    zero, two = model.log_prob(x, torch.tensor([0, 0])), model.log_prob(x, torch.tensor([2, 2]))
    assert not torch.allclose(zero, two)
    mixed = model.log_prob(x, torch.tensor([0, 2]))
    assert mixed[0] == zero[0] and mixed[1] == two[1]
    # Samples of different classes differ, and a class given as an int broadcasts.
    assert not torch.equal(model.sample(8, torch.Generator().manual_seed(0), condition=0),
                           model.sample(8, torch.Generator().manual_seed(0), condition=torch.full((8,), 2)))
    with pytest.raises(ValueError, match="class-conditional"):
        model.log_prob(x)
    with pytest.raises(ValueError, match=r"condition\[1\] is 3; expected a class in \[0, 3\)"):
        model.log_prob(x, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="unconditional"):
        PixelCNN((1, 4, 4), **SMALL).log_prob(x, torch.tensor([0, 0]))


@pytest.mark.parametrize("levels", [2, 4])
def test_determinism_and_seeds(levels):
    shape = (3, 3, 3) if levels > 2 else (1, 4, 4)
    x = _image(shape, levels)
    a, b, c = (PixelCNN(shape, levels=levels, seed=s, dropout=0.2, **SMALL) for s in (1, 1, 2))
    assert a.loss(x).item() == b.loss(x).item() != c.loss(x).item()  # training mode: seeded dropout
    sa = a.sample(6)
    assert sa.shape == (6, *shape) and torch.equal(sa, b.sample(6)) and not torch.equal(sa, c.sample(6))
    if levels == 2:
        assert sa.dtype == torch.get_default_dtype() and ((sa == 0) | (sa == 1)).all()
    else:
        assert sa.dtype == torch.long and ((sa >= 0) & (sa < levels)).all()
    g = torch.Generator().manual_seed(7)
    assert torch.equal(a.sample(3, g), b.sample(3, torch.Generator().manual_seed(7)))
    assert a.training  # sampling left the mode as it was


def test_sampling_follows_the_conditionals():
    # A model whose logits ignore the pixels: samples then are Bernoulli(sigmoid(bias)) per pixel.
    model = PixelCNN((1, 2, 2), **SMALL)
    with torch.no_grad():
        model.head[-1].weight.zero_()
        model.head[-1].bias.fill_(2.0)
    frequency = model.sample(4000).mean().item()
    assert frequency == pytest.approx(torch.sigmoid(torch.tensor(2.0)).item(), abs=0.02)


def test_bad_input_and_hyperparameters():
    model = PixelCNN((1, 4, 4), **SMALL)
    with pytest.raises(ValueError, match=r"shape \(2, 4, 4\)"):
        model.log_prob(torch.zeros(2, 4, 4))
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 1, 2] = 0.5
    with pytest.raises(ValueError, match=r"x\[0, 0, 1, 2\] is 0.5; expected 0 or 1"):
        model.loss(x)
    tokens = PixelCNN((3, 2, 2), levels=4, **SMALL)
    with pytest.raises(ValueError, match=r"is 4; expected a token in \[0, 4\)"):
        tokens.log_prob(torch.full((1, 3, 2, 2), 4))
    with pytest.raises(ConfigError, match="channels must be divisible by the image's 3 channels, got 8"):
        PixelCNN((3, 4, 4), channels=8)
    with pytest.raises(ConfigError, match="kernel_size must be odd.*got 4"):
        PixelCNN((1, 4, 4), kernel_size=4)
    with pytest.raises(ConfigError, match="levels must be an int >= 2, got 1"):
        PixelCNN((1, 4, 4), levels=1)
    with pytest.raises(ConfigError, match="gated must be a bool, got 'yes'"):
        PixelCNN((1, 4, 4), gated="yes")
    with pytest.raises(ConfigError, match=r"data_shape must be \(C, H, W\), got \(16,\)"):
        PixelCNN((16,))
