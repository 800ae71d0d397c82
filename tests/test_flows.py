"""Normalizing flows: invertibility, log-dets against autograd Jacobians, ActNorm's initialisation,
the LU and full 1x1 convolutions, the bases against torch.distributions, normalisation by
quadrature, the dequantisation bound, seeding, a short fit, and configuration errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.autograd.functional import jacobian

from mimicgym.errors import ConfigError
from mimicgym.generative.data import grey_digits, toy2d
from mimicgym.generative.flow_bases import DiagonalGaussian, GaussianMixture, StandardNormal
from mimicgym.generative.flow_layers import ActNorm, InvertibleConv1x1, LogitTransform, Split, Squeeze
from mimicgym.generative.flow_models import Glow, RealNVP
from mimicgym.generative.flows import (
    AffineCoupling,
    AffineInjector,
    Flow,
    FlowLayer,
    channel_mask,
    checkerboard_mask,
)
from mimicgym.generative.train import fit

D64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape, seed=0, scale=1.0):
    return scale * torch.randn(*shape, generator=_gen(seed), dtype=D64)


def _perturb(module: nn.Module, scale: float, seed: int = 0) -> nn.Module:
    """Random parameters: zero-initialised heads would make every coupling the identity."""
    generator = _gen(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return module


def _check_layer(layer, x: torch.Tensor, context=None) -> None:
    """Round trip within 1e-5, inverse log-det = -forward log-det, and both log-dets equal
    log |det| of the autograd Jacobian at each example (float64)."""
    z, log_det = layer(x, context)
    x_back, log_det_inverse = layer.inverse(z, context)
    assert log_det.shape == (len(x),) and log_det_inverse.shape == (len(x),)
    torch.testing.assert_close(x_back, x, atol=1e-5, rtol=0)
    torch.testing.assert_close(log_det_inverse, -log_det, atol=1e-9, rtol=1e-9)
    assert not torch.allclose(log_det, torch.zeros_like(log_det)) or isinstance(layer, Squeeze)
    for b in range(len(x)):
        ctx = None if context is None else context[b:b + 1]

        def f(v, ctx=ctx):
            return layer(v.view(1, *x.shape[1:]), ctx)[0].flatten()

        def g(v, ctx=ctx):
            return layer.inverse(v.view(1, *z.shape[1:]), ctx)[0].flatten()

        J = jacobian(f, x[b].flatten())
        assert J.shape[0] == J.shape[1]
        torch.testing.assert_close(torch.linalg.slogdet(J)[1], log_det[b], atol=1e-8, rtol=1e-8)
        J_inverse = jacobian(g, z[b].flatten())
        torch.testing.assert_close(torch.linalg.slogdet(J_inverse)[1], log_det_inverse[b], atol=1e-8, rtol=1e-8)


# -- layers ----------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", ["softclamp", "tanh", "sigmoid"])
@pytest.mark.parametrize("context_dim", [0, 3])
def test_affine_coupling_vectors(scale, context_dim):
    torch.manual_seed(0)
    layer = _perturb(AffineCoupling(checkerboard_mask((4,), 1), hidden=(8, 8), context_dim=context_dim,
                                    scale=scale), 0.5).double()
    _check_layer(layer, _randn(3, 4), _randn(3, 3, seed=1) if context_dim else None)


@pytest.mark.parametrize("mask", ["checkerboard", "channel"])
@pytest.mark.parametrize("context", [None, "vector", "map"])
def test_affine_coupling_images(mask, context):
    torch.manual_seed(0)
    shape = (2, 2, 2)
    m = checkerboard_mask(shape, 0) if mask == "checkerboard" else channel_mask(shape, 1)
    layer = _perturb(AffineCoupling(m, hidden=(6,), context_dim=0 if context is None else 3), 0.5).double()
    ctx = {None: None, "vector": _randn(2, 3, seed=1), "map": _randn(2, 3, 2, 2, seed=1)}[context]
    _check_layer(layer, _randn(2, *shape), ctx)


def test_masks():
    assert checkerboard_mask((4,), 0).tolist() == [1, 0, 1, 0]
    assert checkerboard_mask((4,), 1).tolist() == [0, 1, 0, 1]
    board = checkerboard_mask((2, 3, 3), 1)
    assert board[0].tolist() == [[0, 1, 0], [1, 0, 1], [0, 1, 0]] and torch.equal(board[0], board[1])
    assert channel_mask((4, 2, 2), 0)[:, 0, 0].tolist() == [1, 1, 0, 0]
    assert channel_mask((3,), 1).tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match="both 0 and 1"):
        AffineCoupling(torch.ones(4))


def test_coupling_with_any_conditioner():
    """A hand-written conditioner (here a linear map of masked x and context) works as well."""
    torch.manual_seed(0)
    layer = _perturb(AffineCoupling(checkerboard_mask((4,), 0), nn.Linear(6, 8), context_dim=2), 0.5).double()
    _check_layer(layer, _randn(2, 4), _randn(2, 2, seed=3))
    bad = AffineCoupling(checkerboard_mask((4,), 0), nn.Linear(4, 5)).double()
    with pytest.raises(ValueError, match="conditioner returned shape"):
        bad(_randn(2, 4))
    with pytest.raises(ValueError, match="conditional"):
        layer(_randn(2, 4))


@pytest.mark.parametrize("spatial", [False, True])
def test_affine_injector(spatial):
    torch.manual_seed(0)
    layer = _perturb(AffineInjector(2, 3, hidden=(5,), spatial=spatial), 0.5).double()
    context = _randn(2, 3, 2, 2, seed=1) if spatial else _randn(2, 3, seed=1)
    _check_layer(layer, _randn(2, 2, 2, 2), context)


@pytest.mark.parametrize("shape", [(4,), (2, 2, 2)])
def test_actnorm_initialises_once_and_is_a_correct_layer(shape):
    layer = ActNorm(shape[0]).double()
    batch = 3 + 2 * _randn(64, *shape)
    z, _ = layer(batch)
    dims = [0, *range(2, z.dim())]
    torch.testing.assert_close(z.mean(dims), torch.zeros(shape[0], dtype=D64), atol=1e-10, rtol=0)
    torch.testing.assert_close(z.var(dims, unbiased=False), torch.ones(shape[0], dtype=D64), atol=1e-5, rtol=0)
    assert bool(layer.initialized)
    state = {k: v.clone() for k, v in layer.state_dict().items()}
    layer(-5 + 0.1 * _randn(64, *shape, seed=9))  # a second batch must not re-initialise
    for key, value in layer.state_dict().items():
        assert torch.equal(value, state[key])
    restored = ActNorm(shape[0]).double()
    restored.load_state_dict(state)
    other = _randn(8, *shape, seed=5)
    assert torch.equal(restored(other)[0], layer(other)[0])  # loaded: no initialisation on its first batch
    _check_layer(layer, _randn(2, *shape, seed=7))


@pytest.mark.parametrize("lu", [True, False])
@pytest.mark.parametrize("shape", [(3,), (3, 2, 2)])
def test_invertible_conv(lu, shape):
    torch.manual_seed(0)
    layer = _perturb(InvertibleConv1x1(3, lu=lu), 0.3).double()
    _check_layer(layer, _randn(2, *shape))
    if len(shape) == 3:  # it is a 1x1 convolution
        x = _randn(2, *shape, seed=4)
        torch.testing.assert_close(layer(x)[0], nn.functional.conv2d(x, layer.weight_matrix()[:, :, None, None]))


def test_lu_and_full_convolutions_agree():
    torch.manual_seed(0)
    fresh = InvertibleConv1x1(4, lu=True).double()
    W = fresh.weight_matrix()
    torch.testing.assert_close(W @ W.T, torch.eye(4, dtype=D64), atol=1e-6, rtol=0)  # a rotation (float32)
    lu = _perturb(fresh, 0.3)
    full = InvertibleConv1x1(4, lu=False).double()
    with torch.no_grad():
        full.weight.copy_(lu.weight_matrix())
    for x in (_randn(5, 4, 3, 3), _randn(5, 4)):
        z_lu, ld_lu = lu(x)
        z_full, ld_full = full(x)
        torch.testing.assert_close(z_lu, z_full)
        torch.testing.assert_close(ld_lu, ld_full)
        torch.testing.assert_close(ld_full, math.prod(x.shape[2:]) * torch.linalg.slogdet(full.weight)[1].expand(5))
        torch.testing.assert_close(lu.inverse(z_lu)[0], full.inverse(z_full)[0])
    assert all(name in dict(lu.named_buffers()) for name in ("permutation", "sign_s"))
    assert not lu.log_s.dtype.is_complex and lu.log_s.requires_grad


def test_squeeze_and_logit():
    x = torch.arange(16, dtype=D64).view(1, 1, 4, 4)
    z, _ = Squeeze()(x)
    assert z.shape == (1, 4, 2, 2) and z[0, :, 0, 0].tolist() == [0, 1, 4, 5]  # one 2x2 block
    _check_layer(Squeeze(), _randn(2, 1, 4, 4))
    _check_layer(LogitTransform(0.05), torch.rand(3, 4, generator=_gen(0), dtype=D64))


@pytest.mark.parametrize("learned_prior", [True, False])
def test_split(learned_prior):
    torch.manual_seed(0)
    inner = Flow([Squeeze(), AffineCoupling(channel_mask((8, 1, 1), 0), hidden=(4,), context_dim=2)])
    layer = _perturb(Split(4, inner, learned_prior=learned_prior), 0.4).double()
    _check_layer(layer, _randn(2, 4, 2, 2), _randn(2, 2, seed=1))
    vector = _perturb(Split(4, AffineCoupling(checkerboard_mask((2,), 0), hidden=(4,))), 0.4).double()
    _check_layer(vector, _randn(3, 4))


def test_flow_container_composes():
    torch.manual_seed(0)
    layers = [ActNorm(4), InvertibleConv1x1(4), AffineCoupling(checkerboard_mask((4,), 0), hidden=(8,), context_dim=2)]
    flow = Flow(layers, StandardNormal(4)).double()
    flow(_randn(32, 4, seed=3), _randn(32, 2, seed=4))  # ActNorm's initialisation
    _perturb(flow, 0.3)
    x, c = _randn(3, 4), _randn(3, 2, seed=1)
    assert isinstance(flow, FlowLayer)
    _check_layer(flow, x, c)
    z, log_det = flow(x, c)
    total, h = torch.zeros(3, dtype=D64), x
    for layer in layers:
        h, ld = layer(h, c)
        total = total + ld
    torch.testing.assert_close(log_det, total)
    torch.testing.assert_close(flow.log_prob(x, c), StandardNormal(4).log_prob(z) + log_det)
    with pytest.raises(ValueError, match="no base"):
        Flow(layers).log_prob(x, c)


def test_c_flow_conditions_one_flow_on_another_flows_latent():
    """C-Flow: flow_b reads flow_a's latent as its context; sampling and scoring agree."""
    torch.manual_seed(0)
    flow_a = _perturb(Flow([AffineCoupling(checkerboard_mask((2,), p), hidden=(8,)) for p in (0, 1)],
                           StandardNormal(2)), 0.3).double()
    flow_b = _perturb(Flow([AffineCoupling(checkerboard_mask((2,), p), hidden=(8,), context_dim=2) for p in (0, 1)],
                           StandardNormal(2)), 0.3).double()
    x_a = _randn(5, 2)
    z_a = flow_a(x_a)[0]
    x_b = flow_b.sample(5, _gen(1), context=z_a)
    torch.testing.assert_close(flow_b(x_b, z_a)[0], torch.randn(5, 2, generator=_gen(1), dtype=D64))
    _check_layer(flow_b, x_b, z_a)
    other = flow_b.log_prob(x_b, flow_a(x_a + 1)[0])
    assert not torch.allclose(flow_b.log_prob(x_b, z_a), other)  # the coupling really reads the latent


# -- bases -----------------------------------------------------------------------------------
def test_bases_against_torch_distributions():
    torch.manual_seed(0)
    z = _randn(6, 3, 2)
    D = torch.distributions
    torch.testing.assert_close(StandardNormal((3, 2)).double().log_prob(z),
                               D.Normal(0.0, 1.0).log_prob(z).flatten(1).sum(1))
    diagonal = _perturb(DiagonalGaussian((3, 2)), 0.5).double()
    reference = D.Independent(D.Normal(diagonal.loc, diagonal.log_scale.exp()), 2)
    torch.testing.assert_close(diagonal.log_prob(z), reference.log_prob(z))
    mixture = _perturb(GaussianMixture((3, 2), components=4), 0.5).double()
    reference = D.MixtureSameFamily(D.Categorical(logits=mixture.logits),
                                    D.Independent(D.Normal(mixture.loc, mixture.log_scale.exp()), 1))
    torch.testing.assert_close(mixture.log_prob(z), reference.log_prob(z.flatten(1)))
    for base in (StandardNormal((3, 2)).double(), diagonal, mixture):
        draws = base.sample(4, _gen(3))
        assert draws.shape == (4, 3, 2) and torch.equal(draws, base.sample(4, _gen(3)))
        assert not torch.equal(draws, base.sample(4, _gen(4)))
    many = mixture.sample(40_000, _gen(0)).flatten(1)
    mean = (mixture.logits.softmax(0)[:, None] * mixture.loc).sum(0)
    torch.testing.assert_close(many.mean(0), mean.detach(), atol=0.05, rtol=0)
    with pytest.raises(ValueError, match="expects"):
        mixture.log_prob(_randn(2, 6))


# -- whole models ----------------------------------------------------------------------------
MODEL_CASES = [
    (RealNVP, (4,), {}),
    (Glow, (4,), {}),
    (RealNVP, (1, 4, 4), {}),
    (Glow, (2, 4, 4), {}),
    (RealNVP, (4,), {"num_classes": 3}),
    (Glow, (1, 4, 4), {"num_classes": 3, "lu": False}),
    (RealNVP, (1, 4, 4), {"levels": 5}),
]


@pytest.mark.parametrize("cls, shape, options", MODEL_CASES)
def test_models_are_invertible_flows_with_exact_log_dets(cls, shape, options):
    model = cls(shape, hidden=6, depth=1, seed=3, **options).double()
    assert isinstance(model, Flow)
    levels = options.get("levels", 0)
    x = torch.rand(2, *shape, generator=_gen(0), dtype=D64) if levels else _randn(2, *shape)
    labels = torch.tensor([0, 2]) if "num_classes" in options else None
    model(torch.rand(64, *shape, generator=_gen(1), dtype=D64) if levels else _randn(64, *shape, seed=1),
          None if labels is None else torch.arange(64) % 3)  # ActNorm's initialisation
    _perturb(model, 0.1)  # larger makes Glow's unbounded split priors overflow float64 round trips
    _check_layer(model, x, labels)
    z, log_det = model(x, labels)
    torch.testing.assert_close(model.continuous_log_prob(x, labels), model.base.log_prob(z) + log_det)
    if labels is not None:  # the class really conditions the density
        assert not torch.allclose(model.continuous_log_prob(x, labels), model.continuous_log_prob(x, (labels + 1) % 3))


@pytest.mark.parametrize("cls, options, scale", [(RealNVP, {}, 0.3), (Glow, {"steps": 4}, 0.2),
                                                  (RealNVP, {"base": "mixture", "mixture_components": 3}, 0.3)])
def test_density_integrates_to_one(cls, options, scale):
    model = cls((2,), hidden=16, **options).double()
    model(0.5 * _randn(64, 2, seed=1))
    _perturb(model, scale)
    grid = torch.linspace(-8, 8, 401, dtype=D64)
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    with torch.no_grad():
        density = model.log_prob(torch.stack([xx.flatten(), yy.flatten()], 1)).exp()
    mass = float(density.sum()) * float(grid[1] - grid[0]) ** 2
    assert abs(mass - 1) < 2e-3, mass


def test_dequantisation_bound():
    """levels=5 on 2-D data: P(k) = int over the cell of p(y) by quadrature; the model's nll is
    -log p(y) + D log L, its average over u is >= -log P(k) (Jensen), and the cells hold at
    most the whole mass."""
    L, m = 5, 24
    model = _perturb(RealNVP((2,), hidden=8, layers=4, levels=L, seed=1), 0.1).double()
    assert model.nll_is_bound and model.support == "real"
    offsets = (torch.arange(m, dtype=D64) + 0.5) / m  # midpoints of an m x m subgrid of a cell
    u = torch.stack(torch.meshgrid(offsets, offsets, indexing="ij"), -1).view(-1, 2)
    k = torch.stack(torch.meshgrid(torch.arange(L), torch.arange(L), indexing="ij"), -1).view(-1, 2).to(D64)
    y = (k[:, None, :] + u[None]) / L  # (L^2 cells, m^2, 2)
    with torch.no_grad():
        log_p = model.continuous_log_prob(y.view(-1, 2)).view(L * L, m * m)
    log_cell = torch.logsumexp(log_p, 1) - math.log(m * m) - 2 * math.log(L)  # log P(k)
    expected_bound = log_p.mean(1) - 2 * math.log(L)  # E_u log p(y) - D log L
    assert bool((expected_bound <= log_cell).all())
    assert 0.9 < float(log_cell.exp().sum()) <= 1 + 1e-6
    x = k * 2 / (L - 1) - 1
    generator = _gen(5)
    with torch.no_grad():  # Monte Carlo over u agrees with the quadrature within 4 standard errors
        draws = torch.stack([model.log_prob(x, generator=generator) for _ in range(400)])  # (400, 25)
    assert bool(((draws.mean(0) - expected_bound).abs() < 4 * draws.std(0) / 20 + 0.01).all())
    y1 = model.dequantize(x, _gen(2))
    torch.testing.assert_close(model.log_prob(x, generator=_gen(2)),
                               model.continuous_log_prob(y1) - 2 * math.log(L))
    assert torch.equal(model.quantize(y1), x)


def test_digits_bits_per_dim_and_grid():
    model = RealNVP((1, 8, 8), levels=17, hidden=8)
    x = grey_digits("valid")[:16]
    nll = model.nll(x)
    assert bool(torch.isfinite(nll).all()) and torch.equal(nll, model.nll(x))  # deterministic validation
    torch.testing.assert_close(model.bits_per_dim(x), nll / (64 * math.log(2)))
    assert not torch.equal(model.loss(x), model.loss(x))  # training draws fresh noise
    samples = model.sample(32, _gen(0))
    levels = (samples + 1) * 8
    assert samples.shape == (32, 1, 8, 8) and torch.equal(levels, levels.round())
    assert float(levels.min()) >= 0 and float(levels.max()) <= 16
    with pytest.raises(ValueError, match="grid"):
        model.nll(x + 0.01)


@pytest.mark.parametrize("cls", [RealNVP, Glow])
def test_seeding_and_state(cls):
    a, b, c = (cls((1, 4, 4), levels=5, hidden=4, seed=s) for s in (0, 0, 1))
    x = torch.randint(0, 5, (8, 1, 4, 4), generator=_gen(0)) / 2 - 1
    for model in (a, b, c):
        model.loss(x)  # ActNorm initialises on the first (dequantised) batch
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))
    assert torch.equal(a.sample(6), b.sample(6)) and not torch.equal(a.sample(6), c.sample(6))
    assert torch.equal(a.sample(6, _gen(9)), a.sample(6, _gen(9)))
    restored = cls((1, 4, 4), levels=5, hidden=4, seed=7)
    restored.load_state_dict(a.state_dict())
    assert torch.equal(restored.nll(x, generator=_gen(1)), a.nll(x, generator=_gen(1)))


def test_conditional_sampling():
    model = _perturb(RealNVP((2,), hidden=8, num_classes=3), 0.3)
    twos = model.sample(4, _gen(0), condition=2)
    assert torch.equal(twos, model.sample(4, _gen(0), condition=torch.full((4,), 2)))
    assert not torch.equal(twos, model.sample(4, _gen(0), condition=1))
    with pytest.raises(ValueError, match="class-conditional"):
        model.log_prob(torch.zeros(2, 2))


def test_short_training_on_eight_gaussians():
    torch.manual_seed(0)
    train, test = toy2d("eight_gaussians", 20_000, seed=1), toy2d("eight_gaussians", 2_000, seed=2)
    model = RealNVP((2,))
    with torch.no_grad():
        before = float(model.nll(test).mean())
    fit(model, train, epochs=6, batch_size=256, lr=1e-3, lr_schedule="cosine")
    with torch.no_grad():
        after = float(model.nll(test).mean())
    assert before > 5.0 and after < 3.3, (before, after)  # the entropy of the data is 2.838 nats


@pytest.mark.parametrize("cls, shape, options, field", [
    (RealNVP, (2,), {"layers": 0}, "layers"),
    (Glow, (2,), {"steps": -1}, "steps"),
    (RealNVP, (2,), {"base": "laplace"}, "base"),
    (RealNVP, (2,), {"levels": 1}, "levels"),
    (RealNVP, (2,), {"alpha": 0.5}, "alpha"),
    (Glow, (2,), {"lu": "yes"}, "lu"),
    (RealNVP, (2,), {"coupling_scale": "exp"}, "coupling_scale"),
    (RealNVP, (2,), {"hidden": 0}, "hidden"),
    (RealNVP, (2,), {"num_classes": 0}, "num_classes"),
    (Glow, (1, 6, 6), {"scales": 2}, "scales"),
    (RealNVP, (1,), {}, "at least 2 features"),
    (Glow, (2, 3), {}, "vectors"),
    (RealNVP, (2,), {"width": 3}, "width"),
])
def test_config_errors_name_the_field(cls, shape, options, field):
    with pytest.raises(ConfigError, match=field):
        cls(shape, **options)
