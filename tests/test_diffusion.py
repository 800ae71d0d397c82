"""DDPM / DDIM: the forward process in closed form, update steps equal to diffusers', guidance,
a 1-D mixture learned with the right mode weights, determinism, the denoisers and config errors."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler
from diffusers.schedulers.scheduling_ddpm import betas_for_alpha_bar

from mimicgym.errors import ConfigError
from mimicgym.generative.data import digit_labels, grey_digits
from mimicgym.generative.denoisers import MLPDenoiser, TemporalConvNet, UNet, timestep_embedding
from mimicgym.generative.diffusion import DDPM, NoiseSchedule, beta_schedule
from mimicgym.generative.train import fit

SCHEDULES = ["linear", "cosine"]


def _schedule(name: str, T: int = 1000) -> NoiseSchedule:
    return NoiseSchedule(beta_schedule(name, T))


# -- schedules and the forward process --------------------------------------------------------
def test_beta_schedules_equal_the_published_ones():
    T = 1000
    assert torch.equal(beta_schedule("linear", T), torch.linspace(1e-4, 0.02, T, dtype=torch.float64))
    torch.testing.assert_close(beta_schedule("linear", 100), torch.linspace(1e-3, 0.2, 100, dtype=torch.float64))
    # diffusers' "squaredcos_cap_v2" is Nichol & Dhariwal's cosine schedule, computed in float32.
    torch.testing.assert_close(beta_schedule("cosine", T).float(), betas_for_alpha_bar(T), rtol=1e-6, atol=0)


@pytest.mark.parametrize("name", SCHEDULES)
def test_closed_form_q_matches_the_iterated_forward_process(name):
    schedule = _schedule(name)
    x0 = torch.tensor([1.5, -0.7], dtype=torch.float64)
    # Exact recursions of x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps: mean and variance.
    mean, variance = x0.clone(), torch.zeros(2, dtype=torch.float64)
    for t, beta in enumerate(schedule.betas):
        mean, variance = (1 - beta).sqrt() * mean, (1 - beta) * variance + beta
        closed_mean, closed_variance = schedule.q_mean_variance(x0, t)
        torch.testing.assert_close(closed_mean, mean, rtol=1e-10, atol=1e-14)
        torch.testing.assert_close(closed_variance, variance, rtol=1e-10, atol=0)
    # Monte Carlo: iterate the chain on many draws and compare with q_sample's closed form.
    schedule = _schedule(name, 50)
    g = torch.Generator().manual_seed(0)
    n = 100_000
    x = x0.expand(n, 2).clone()
    for t, beta in enumerate(schedule.betas):
        x = (1 - beta).sqrt() * x + beta.sqrt() * torch.randn(x.shape, generator=g, dtype=torch.float64)
        if t in (0, 10, 30, 49):
            direct = schedule.q_sample(x0.expand(n, 2), torch.full((n,), t),
                                       torch.randn(x.shape, generator=g, dtype=torch.float64))
            mean, variance = schedule.q_mean_variance(x0, t)
            for draws in (x, direct):
                assert (draws.mean(0) - mean).abs().max() < 5 * math.sqrt(variance.max() / n)
                assert ((draws.var(0) / variance - 1).abs().max()) < 5 * math.sqrt(2 / n)


def test_q_sample_and_the_simple_loss():
    schedule = _schedule("cosine", 100)
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(2, 6, 3, dtype=torch.float64, generator=g)
    t = torch.tensor([0, 5, 50, 98, 99, 7])
    mean, variance = schedule.q_mean_variance(x0, t)
    torch.testing.assert_close(schedule.q_sample(x0, t, noise), mean + variance.sqrt() * noise, rtol=1e-12, atol=0)
    # validation_loss: t ~ U{0..T-1} then eps ~ N(0, I) from a generator seeded with the model's seed.
    model = DDPM((3,), timesteps=100, widths=(8,), seed=7)
    x = torch.randn(6, 3, generator=g)
    draws = torch.Generator().manual_seed(7)
    t = torch.randint(0, 100, (6,), generator=draws)
    eps = torch.randn(6, 3, generator=draws)
    a = schedule.alpha_bar(t).float()[:, None]
    expected = (model.network(a.sqrt() * x + (1 - a).sqrt() * eps, t.float()) - eps).pow(2).mean(1)
    torch.testing.assert_close(model.validation_loss(x), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", SCHEDULES)
def test_posterior_is_the_bayes_product_of_the_two_gaussians(name):
    schedule = _schedule(name, 100)
    g = torch.Generator().manual_seed(1)
    x0, x_t = torch.randn(2, 5, dtype=torch.float64, generator=g)
    mean, variance = schedule.q_posterior(x0, x_t, 30, -1)  # onto the data: a point mass at x0
    torch.testing.assert_close(mean, x0, rtol=1e-12, atol=1e-12)
    assert variance == 0
    for t, prev in ((50, 49), (99, 98), (1, 0), (60, 40)):
        a_t, a_prev = schedule.alpha_bar(t), schedule.alpha_bar(prev)
        alpha = a_t / a_prev  # of the step prev -> t
        # q(x_prev | x_t, x0) oc N(x_t; sqrt(alpha) x_prev, 1 - alpha) N(x_prev; sqrt(a_prev) x0, 1 - a_prev).
        precision = alpha / (1 - alpha) + 1 / (1 - a_prev)
        expected_mean = (alpha.sqrt() * x_t / (1 - alpha) + a_prev.sqrt() * x0 / (1 - a_prev)) / precision
        mean, variance = schedule.q_posterior(x0, x_t, t, prev)
        torch.testing.assert_close(mean, expected_mean, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(variance, 1 / precision, rtol=1e-10, atol=1e-14)


def test_ddpm_step_is_algorithm_2_of_ho_et_al():
    schedule = _schedule("linear", 100)
    g = torch.Generator().manual_seed(2)
    x_t, eps, z = torch.randn(3, 4, 2, dtype=torch.float64, generator=g)
    for t in (99, 50, 1):
        beta, a_t = schedule.betas[t], schedule.alpha_bar(t)
        expected = (x_t - beta / (1 - a_t).sqrt() * eps) / (1 - beta).sqrt() + beta.sqrt() * z
        torch.testing.assert_close(schedule.ddpm_step(eps, t, x_t, z), expected, rtol=1e-10, atol=1e-12)


def test_ddim_with_eta_one_is_ancestral_sampling_with_the_posterior_variance():
    schedule = _schedule("cosine", 100)
    g = torch.Generator().manual_seed(3)
    x_t, eps, z = torch.randn(3, 6, dtype=torch.float64, generator=g)
    for t, prev in ((80, 79), (80, 60), (5, -1)):
        mean, variance = schedule.q_posterior(schedule.predict_x0(x_t, t, eps), x_t, t, prev)
        torch.testing.assert_close(schedule.ddim_step(eps, t, prev, x_t, eta=1.0, noise=z),
                                   mean + variance.sqrt() * z, rtol=1e-9, atol=1e-12)


# -- parity with diffusers ----------------------------------------------------------------------
def _check_step(ours: dict, theirs: dict, exact: torch.Tensor, errors: dict, t: int) -> None:
    """float64: ours equals diffusers' to rtol 1e-6. float32: ours is the ``exact`` (float64)
    step rounded (rtol 1e-5 of the data's unit scale), and no further from it than diffusers'
    float32 step, which loses digits computing 1 - abar_t / abar_t' and x0_hat in float32."""
    torch.testing.assert_close(ours[64], theirs[64], rtol=1e-6, atol=1e-9, msg=lambda m: f"t={t}: {m}")
    torch.testing.assert_close(ours[32].double(), exact, rtol=1e-5, atol=1e-5, msg=lambda m: f"t={t}: {m}")
    for who, step in (("ours", ours[32]), ("theirs", theirs[32])):
        errors[who] = max(errors[who], (step.double() - exact).abs().max().item())


def _schedulers(cls, schedule: NoiseSchedule, **config) -> dict:
    """One diffusers scheduler per precision, with our abar in it (it keeps float32 tables of its own)."""
    schedulers = {}
    for bits, dtype in ((64, torch.float64), (32, torch.float32)):
        scheduler = cls(num_train_timesteps=schedule.timesteps, trained_betas=schedule.betas.float().numpy(),
                        clip_sample=False, prediction_type="epsilon", **config)
        scheduler.betas, scheduler.alphas = schedule.betas.to(dtype), (1 - schedule.betas).to(dtype)
        scheduler.alphas_cumprod = schedule.alphas_cumprod.to(dtype)
        scheduler.one = scheduler.final_alpha_cumprod = torch.tensor(1.0, dtype=dtype)
        schedulers[bits] = scheduler
    return schedulers


def _model_output(schedule: NoiseSchedule, x0: torch.Tensor, x_t: torch.Tensor, t: int, g: torch.Generator):
    """The noise that takes x0 to x_t, give or take 0.1: what a fair model predicts, so the chain
    stays on the data's scale."""
    a = schedule.alpha_bar(t)
    return (x_t - a.sqrt() * x0) / (1 - a).sqrt() + 0.1 * torch.randn(x_t.shape, generator=g, dtype=x_t.dtype)


@pytest.mark.parametrize("name", SCHEDULES)
def test_ddpm_step_equals_diffusers(name):
    schedule = _schedule(name, 1000)
    schedulers = _schedulers(DDPMScheduler, schedule, variance_type="fixed_large")
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(8, 1, 4, 4, generator=g, dtype=torch.float64) * 2 - 1
    x = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    errors = {"ours": 0.0, "theirs": 0.0}
    for t in range(schedule.timesteps - 1, -1, -1):
        eps = _model_output(schedule, x0, x, t, g)
        ours, theirs, noise = {}, {}, {}
        for bits, dtype in ((64, torch.float64), (32, torch.float32)):
            # diffusers draws its noise (for t > 0) from the generator it is given: we draw from a twin.
            theirs[bits] = schedulers[bits].step(eps.to(dtype), t, x.to(dtype),
                                                 generator=torch.Generator().manual_seed(t)).prev_sample
            noise[bits] = torch.randn(x.shape, generator=torch.Generator().manual_seed(t), dtype=dtype) if t else None
            ours[bits] = schedule.ddpm_step(eps.to(dtype), t, x.to(dtype), noise[bits])
            assert ours[bits].dtype == dtype
        exact = schedule.ddpm_step(eps, t, x, None if noise[32] is None else noise[32].double())
        _check_step(ours, theirs, exact, errors, t)
        x = ours[64]
    assert (x - x0).abs().max() < 0.5  # the chain landed near the data: the comparison was not vacuous
    assert errors["ours"] <= errors["theirs"], errors


@pytest.mark.parametrize("T, steps", [(1000, 50), (100, 20), (100, 100)])
def test_ddim_step_equals_diffusers_over_a_whole_schedule(T, steps):
    schedule = _schedule("cosine", T)
    schedulers = _schedulers(DDIMScheduler, schedule, set_alpha_to_one=True, steps_offset=0,
                             timestep_spacing="leading")
    timesteps = schedule.sampling_timesteps(steps)
    for scheduler in schedulers.values():
        scheduler.set_timesteps(steps)
        assert timesteps == scheduler.timesteps.tolist()
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(8, 3, generator=g, dtype=torch.float64) * 2 - 1
    x = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    errors = {"ours": 0.0, "theirs": 0.0}
    for i, t in enumerate(timesteps):
        prev = timesteps[i + 1] if i + 1 < steps else -1
        eps = _model_output(schedule, x0, x, t, g)
        ours = {bits: schedule.ddim_step(eps.to(dtype), t, prev, x.to(dtype))
                for bits, dtype in ((64, torch.float64), (32, torch.float32))}
        theirs = {bits: schedulers[bits].step(eps.to(dtype), t, x.to(dtype), eta=0.0).prev_sample
                  for bits, dtype in ((64, torch.float64), (32, torch.float32))}
        _check_step(ours, theirs, ours[64], errors, t)
        x = ours[64]
    assert (x - x0).abs().max() < 0.5
    assert errors["ours"] <= errors["theirs"], errors


def test_sampling_timesteps_are_evenly_spaced_and_end_at_zero():
    schedule = _schedule("linear", 100)
    assert schedule.sampling_timesteps() == list(range(99, -1, -1))
    assert schedule.sampling_timesteps(100) == list(range(99, -1, -1))
    assert schedule.sampling_timesteps(4) == [75, 50, 25, 0]
    spaced = schedule.sampling_timesteps(60)  # 60 does not divide 100: still strictly decreasing, 0 last
    assert len(spaced) == 60 and spaced[-1] == 0 and all(a > b for a, b in zip(spaced, spaced[1:]))
    for steps in (0, 101, 2.5):
        with pytest.raises(ValueError, match=f"steps must be an int in \\[1, 100\\].*{steps}"):
            schedule.sampling_timesteps(steps)


def test_continuous_schedule_agrees_with_the_discrete_one_on_the_grid():
    for name in SCHEDULES:
        schedule = _schedule(name, 100)
        t = torch.arange(100)
        torch.testing.assert_close(schedule.alpha_bar_continuous((t + 1) / torch.tensor(100.0, dtype=torch.float64)),
                                   schedule.alpha_bar(t),
                                   rtol=1e-12, atol=0)
        fine = schedule.alpha_bar_continuous(torch.linspace(0, 1, 10_001, dtype=torch.float64))
        assert fine[0] == 1 and bool((fine[1:] < fine[:-1]).all())


# -- the model ----------------------------------------------------------------------------------
def _mixture(n: int, g: torch.Generator) -> torch.Tensor:
    left = torch.rand(n, generator=g) < 0.3
    return (torch.where(left, -2.0, 2.0) + 0.3 * torch.randn(n, generator=g))[:, None]


def test_a_trained_model_reproduces_both_modes_of_a_1d_mixture():
    torch.manual_seed(0)  # the global RNG is not used: this only guards against a hidden dependence
    model = DDPM((1,), timesteps=100, schedule="linear", widths=(64, 64), embedding_dim=32)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    steps = 2000
    annealing = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 1 - i / steps)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        loss = model.loss(_mixture(256, g))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        annealing.step()
    for sampler, steps in (("ddpm", None), ("ddim", 50)):
        x = model.sample(4000, torch.Generator().manual_seed(1), sampler=sampler, steps=steps)[:, 0]
        left = x < 0
        assert abs(left.float().mean().item() - 0.3) < 0.05, sampler
        assert abs(x[left].mean().item() + 2) < 0.1 and abs(x[~left].mean().item() - 2) < 0.1, sampler
        assert abs(x[~left].std().item() - 0.3) < 0.1, sampler


def _conditional(**kw) -> DDPM:
    return DDPM((2,), timesteps=20, widths=(16, 16), embedding_dim=8, num_classes=3, **kw)


def test_classifier_free_guidance_combines_the_two_predictions():
    model = _conditional()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 2, generator=g), torch.tensor([0, 1, 2, 0, 1, 2])
    time = torch.full((6,), 7.0)
    conditional = model.network(x, time, model.class_embedding(y))
    unconditional = model.network(x, time, model.class_embedding(torch.full((6,), 3)))
    assert torch.equal(model.predict_noise(x, 7, y, guidance=0.0), conditional)
    assert not torch.allclose(conditional, unconditional)
    torch.testing.assert_close(model.predict_noise(x, 7, y, guidance=2.5), 3.5 * conditional - 2.5 * unconditional)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_sample_is_the_composition_of_the_single_steps(sampler):
    model = _conditional(clip_sample=None)
    out = model.sample(5, torch.Generator().manual_seed(4), condition=1, sampler=sampler, steps=7, guidance=1.5)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(5, 2, generator=g)
    timesteps = model.schedule.sampling_timesteps(7)
    assert timesteps == [17, 14, 11, 8, 5, 2, 0]
    for i, t in enumerate(timesteps):
        prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        eps = model.predict_noise(x, t, 1, guidance=1.5)
        if sampler == "ddpm":
            x = model.schedule.ddpm_step(eps, t, x, torch.randn(5, 2, generator=g) if prev >= 0 else None, prev)
        else:
            x = model.schedule.ddim_step(eps, t, prev, x)
    assert torch.equal(out, x)


def test_condition_dropout_replaces_labels_by_the_null_label():
    model = _conditional(condition_dropout=0.3)
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(0))
    y = torch.arange(32) % 3

    def losses(labels, p):
        return model._denoising_losses(x, labels, torch.Generator().manual_seed(5), p)

    # Every label dropped: the labels no longer matter, and it is the null label's loss.
    null = torch.full((32,), 3)
    assert torch.equal(losses(y, 1.0), losses(null, 0.0))
    assert not torch.equal(losses(y, 0.0), losses(null, 0.0))


def test_determinism_and_seeds():
    x = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)

    def model(seed):
        return DDPM((1, 8, 8), widths=(8, 16), timesteps=10, seed=seed)

    a, b = model(3), model(3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    first = a.sample(3)
    assert torch.equal(first, b.sample(3)) and not torch.equal(first, model(4).sample(3))
    assert torch.equal(a.loss(x), b.loss(x)) and not torch.equal(model(3).loss(x), model(4).loss(x))
    assert not torch.equal(a.loss(x), a.loss(x))  # training draws advance the model's generator
    for sampler in ("ddpm", "ddim"):
        first = a.sample(3, torch.Generator().manual_seed(9), sampler=sampler, steps=4)
        assert torch.equal(first, a.sample(3, torch.Generator().manual_seed(9), sampler=sampler, steps=4))
        assert not torch.equal(first, a.sample(3, torch.Generator().manual_seed(8), sampler=sampler, steps=4))
    # Validation draws its own noise from the seed: repeatable, and the model's generator untouched.
    state = a.generator.get_state()
    first = a.validation_loss(x)
    assert first.shape == (16,) and torch.equal(first, a.validation_loss(x))
    assert torch.equal(state, a.generator.get_state())


def test_continuous_time_trains_and_samples():
    model = DDPM((2,), timesteps=50, widths=(16,), continuous_time=True, schedule="linear")
    x = torch.randn(64, 2)
    assert torch.isfinite(model.loss(x))
    assert torch.isfinite(model.sample(8, sampler="ddim", steps=5)).all()


def test_fit_trains_a_conditional_unet_on_digits():
    x, y = grey_digits("train")[:96], digit_labels("train")[:96]
    vx, vy = grey_digits("valid")[:32], digit_labels("valid")[:32]
    model = DDPM((1, 8, 8), widths=(8, 16), timesteps=20, num_classes=10, clip_sample=1.0)
    history = fit(model, x, vx, condition=y, valid_condition=vy, epochs=2, batch_size=32, lr=1e-3)
    assert len(history) == 2 and all(math.isfinite(r.valid_nll) for r in history)
    samples = model.sample(4, condition=torch.tensor([0, 1, 2, 3]), guidance=1.0, sampler="ddim", steps=5)
    assert samples.shape == (4, 1, 8, 8) and samples.abs().max() <= 1.0 + 1e-5
    assert model.has_likelihood is False and model.validation_metric == "denoising_loss"


# -- the denoisers ------------------------------------------------------------------------------
def test_timestep_embedding():
    e = timestep_embedding(torch.tensor([0.0, 3.0]), 7)
    assert e.shape == (2, 7)
    assert torch.equal(e[0], torch.tensor([1.0, 1, 1, 0, 0, 0, 0]))
    torch.testing.assert_close(e[1, :3], torch.cos(3 * torch.exp(-math.log(1e4) * torch.arange(3) / 3)))


def test_denoisers_keep_the_shape_and_read_time_and_condition():
    t = torch.tensor([0.0, 5.0, 9.0])
    for net, x in ((MLPDenoiser(4, (16, 8), 8), torch.randn(3, 4)),
                   (UNet(2, (8, 16, 16), 8, blocks=2), torch.randn(3, 2, 8, 8)),
                   (TemporalConvNet(3, (8, 16), 8), torch.randn(3, 3, 11))):
        for p in net.parameters():  # zero-initialised output convolutions would hide the inputs
            torch.nn.init.normal_(p, std=0.2)
        out = net(x, t)
        assert out.shape == x.shape
        assert not torch.equal(out, net(x, t + 1))
        assert not torch.equal(out, net(x, t, torch.randn(3, 8)))


def test_unet_residual_hook_and_copyable_encoder():
    net = UNet(1, (8, 16), 8, blocks=1)
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([1.0, 2.0])
    h, skips = net.encode(x, net.embed(t))
    assert [s.shape[1] for s in skips] == net.skip_channels
    assert h.shape == (2, 16, 4, 4)
    base = net(x, t)
    zeros = [torch.zeros_like(s) for s in skips] + [torch.zeros_like(h)]
    assert torch.equal(net(x, t, residuals=zeros), base)
    assert torch.equal(net(x, t, residuals=[None] * len(zeros)), base)
    for i in range(len(zeros)):
        bumped = list(zeros)
        bumped[i] = torch.ones_like(bumped[i])
        assert not torch.equal(net(x, t, residuals=bumped), base), i
    with pytest.raises(ValueError, match="residuals must hold 5 tensors.*got 2"):
        net(x, t, residuals=zeros[:2])
    copied = copy.deepcopy(net.encoder_blocks)
    assert all(p.data_ptr() != q.data_ptr() for p, q in zip(copied.parameters(), net.encoder_blocks.parameters()))


# -- errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape, kw, match", [
    ((2,), {"schedule": "quadratic"}, "schedule must be one of .*'quadratic'"),
    ((2,), {"timesteps": 0}, "timesteps must be a positive int, got 0"),
    ((2,), {"schedule": "linear", "timesteps": 10}, "timesteps=10"),
    ((2,), {"beta_end": 1.5}, "beta_end must be < 1, got 1.5"),
    ((2,), {"beta_start": 0.1, "beta_end": 0.01}, "beta_start=0.1"),
    ((2,), {"network": "transformer"}, "network must be one of .*'transformer'"),
    ((2,), {"network": "unet"}, "data_shape must be \\(C, H, W\\), got \\(2,\\)"),
    ((1, 8, 8), {"network": "temporal"}, "data_shape must be \\(C, T\\)"),
    ((1, 8, 8), {"widths": (8, 8, 8, 8, 8)}, "divisible by 16.*widths=\\(8, 8, 8, 8, 8\\)"),
    ((2,), {"widths": (8, 0)}, "widths entries must be a positive int, got 0"),
    ((2,), {"condition_dropout": 1.5}, "condition_dropout must lie in \\[0, 1\\], got 1.5"),
    ((2,), {"num_classes": 0}, "num_classes must be a positive int, got 0"),
    ((2,), {"continuous_time": "yes"}, "continuous_time must be a bool, got 'yes'"),
    ((2,), {"clip_sample": -1.0}, "clip_sample must be > 0, got -1.0"),
    ((2,), {"steps": 5}, "no hyperparameter 'steps'"),
])
def test_config_errors_name_the_field(shape, kw, match):
    with pytest.raises(ConfigError, match=match):
        DDPM(shape, **kw)


def test_sampling_and_input_errors():
    model = DDPM((2,), timesteps=10, widths=(8,))
    with pytest.raises(ValueError, match="sampler must be one of .*'euler'"):
        model.sample(2, sampler="euler")
    with pytest.raises(ValueError, match="steps must be an int in \\[1, 10\\].*11"):
        model.sample(2, steps=11)
    with pytest.raises(ValueError, match="guidance=1.0 needs a class-conditional model"):
        model.sample(2, guidance=1.0)
    with pytest.raises(ValueError, match="guidance must be >= 0, got -1"):
        _conditional().sample(2, condition=0, guidance=-1)
    with pytest.raises(ValueError, match="unconditional"):
        model.sample(2, condition=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="condition\\[1\\] is 5"):
        _conditional().loss(torch.zeros(2, 2), torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="x\\[0, 1\\] is nan"):
        model.loss(torch.tensor([[0.0, float("nan")]]))
