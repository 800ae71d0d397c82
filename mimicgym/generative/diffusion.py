"""Denoising diffusion (Ho et al. 2020, DDPM), its deterministic sampler (Song et al. 2021, DDIM)
and classifier-free guidance (Ho & Salimans 2021).

The forward process adds Gaussian noise in T steps, q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1},
beta_t I), so that with alpha_t = 1 - beta_t and abar_t = prod_{s<=t} alpha_s it has the closed form

    q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I),   x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps.

A network eps_theta(x_t, t) learns to predict eps with the simple loss E ||eps - eps_theta||^2
(mean over the example's entries). Sampling starts from x_T ~ N(0, I) and steps back with the
posterior q(x_{t-1} | x_t, x_0) at x_0's prediction x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t):

    DDPM:  x_{t-1} = mu~_t(x_t, x0_hat) + sigma_t z,  sigma_t^2 = beta_t  (the "large" variance)
    DDIM:  x_{t'}  = sqrt(abar_t') x0_hat + sqrt(1 - abar_t') eps       (eta = 0: deterministic)

both over any decreasing subsequence of timesteps (t' the next one; beta becomes 1 - abar_t / abar_t').
Timesteps are 0-based, t = 0 .. T-1, and abar_{-1} = 1 (the clean data), as in ``diffusers``.

Schedules: "linear" (Ho et al.; beta_1..beta_T evenly spaced, by default 1e-4 and 0.02 scaled
by 1000 / T so that any T ends at the same noise level) and "cosine" (Nichol & Dhariwal 2021:
abar(u) = f(u) / f(0), f(u) = cos^2((u + 0.008) / 1.008 * pi / 2), beta clipped at 0.999).
With ``continuous_time=True`` training draws u ~ U(0, 1) instead of an integer step and reads
abar(u) off the schedule with log abar interpolated linearly between the grid points
u = (t + 1) / T (abar(0) = 1): a continuous schedule that agrees with the discrete one on
the grid, so the same samplers apply.

Classifier-free guidance: a conditional model (``num_classes``) sees a null label instead of
the true one with probability ``condition_dropout`` in training, so one network gives both
eps(x, y) and eps(x); sampling with weight w uses (1 + w) eps(x, y) - w eps(x).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import torch
from torch import nn

from mimicgym.errors import ConfigError
from mimicgym.generative.autoencoder import check_widths
from mimicgym.generative.base import GenerativeModel
from mimicgym.generative.denoisers import MLPDenoiser, TemporalConvNet, UNet
from mimicgym.utils.checks import check_choice, check_positive, check_positive_int, check_probability

SCHEDULES = ("linear", "cosine")
NETWORKS = ("auto", "mlp", "unet", "temporal")
SAMPLERS = ("ddpm", "ddim")
DEFAULT_WIDTHS = {"mlp": (256, 256, 256), "unet": (32, 64), "temporal": (64, 64, 64, 64)}
COSINE_OFFSET = 0.008  # s of Nichol & Dhariwal: keeps beta_1 from vanishing
# eps_theta(x_t, time, labels): the network a loss or a sampler calls (DDPM._eps or a ControlNet's).
NoisePredictor = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


# -- schedules -------------------------------------------------------------------------------
def linear_beta_range(timesteps: int) -> tuple[float, float]:
    """Ho et al.'s beta_1 = 1e-4 and beta_T = 0.02 at T = 1000, scaled by 1000 / T."""
    return 1e-4 * 1000 / timesteps, 0.02 * 1000 / timesteps


def beta_schedule(name: str, timesteps: int, beta_start: float | None = None, beta_end: float | None = None,
                  max_beta: float = 0.999) -> torch.Tensor:
    """beta_1 .. beta_T (T,) float64. ``"linear"``: evenly spaced from ``beta_start`` to ``beta_end``
    (None: :func:`linear_beta_range`); ``"cosine"``: beta_t = min(1 - abar(t/T) / abar((t-1)/T), max_beta)."""
    check_choice("schedule", name, SCHEDULES)
    check_positive_int("timesteps", timesteps)
    if name == "linear":
        default_start, default_end = linear_beta_range(timesteps)
        start = default_start if beta_start is None else beta_start
        end = default_end if beta_end is None else beta_end
        return torch.linspace(start, end, timesteps, dtype=torch.float64)
    u = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    f = torch.cos((u + COSINE_OFFSET) / (1 + COSINE_OFFSET) * math.pi / 2) ** 2  # (T+1,), abar up to f(0)
    return (1 - f[1:] / f[:-1]).clamp(max=max_beta)


def diffuse(x0: torch.Tensor, alpha_bar: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(abar) x_0 + sqrt(1 - abar) eps, with abar per example (B,) or one value."""
    a = _per_example(alpha_bar, x0)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def _per_example(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) or scalar float64 coefficients cast to ``like``'s dtype and shaped to broadcast over it."""
    values = values.to(like.dtype)
    return values.view(-1, *(1,) * (like.dim() - 1)) if values.dim() else values


class NoiseSchedule(nn.Module):
    """The forward process of one beta schedule and the update steps that reverse it.

    Holds betas and abar (float64 buffers, not saved: they follow from the hyperparameters).
    Timesteps t are ints (one for the whole batch) or long tensors (B,), 0-based; t = -1 means
    the clean data (abar = 1). Coefficients are computed in float64 and cast to the data's dtype.
    """

    def __init__(self, betas: torch.Tensor):
        super().__init__()
        betas = torch.as_tensor(betas, dtype=torch.float64)
        if betas.dim() != 1 or not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError(f"betas must be a 1-D tensor of values in (0, 1), got {betas}")
        self.register_buffer("betas", betas, persistent=False)
        self.register_buffer("alphas_cumprod", torch.cumprod(1 - betas, 0), persistent=False)
        # abar at t + 1 for t = -1 .. T-1: index -1 is the clean data.
        self.register_buffer("_alpha_bar", torch.cat([betas.new_ones(1), self.alphas_cumprod]), persistent=False)

    @property
    def timesteps(self) -> int:
        return len(self.betas)

    def alpha_bar(self, t: int | torch.Tensor) -> torch.Tensor:
        """abar_t for integer t in [-1, T) (abar_{-1} = 1): shaped like t, float64."""
        if isinstance(t, int):
            if not -1 <= t < self.timesteps:
                raise ValueError(f"timestep {t} is outside [-1, {self.timesteps})")
            return self._alpha_bar[t + 1]
        return self._alpha_bar[torch.as_tensor(t, device=self._alpha_bar.device) + 1]

    def alpha_bar_continuous(self, u: torch.Tensor) -> torch.Tensor:
        """abar(u) for u in [0, 1]: log abar interpolated linearly between abar(0) = 1 and the grid
        abar((t + 1) / T) = abar_t. Shaped like u, float64."""
        position = u.to(torch.float64).clamp(0, 1) * self.timesteps  # (B,), in [0, T]
        lower = position.floor().clamp(max=self.timesteps - 1).long()
        weight = position - lower
        log_alpha_bar = self._alpha_bar.log()
        return torch.exp((1 - weight) * log_alpha_bar[lower] + weight * log_alpha_bar[lower + 1])

    # -- the forward process -----------------------------------------------------------------
    def q_mean_variance(self, x0: torch.Tensor, t: int | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean sqrt(abar_t) x_0 and variance 1 - abar_t (broadcast to x_0's shape) of q(x_t | x_0)."""
        a = _per_example(self.alpha_bar(t), x0)
        return a.sqrt() * x0, (1 - a).expand_as(x0)

    def q_sample(self, x0: torch.Tensor, t: int | torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """A draw of q(x_t | x_0) in closed form: sqrt(abar_t) x_0 + sqrt(1 - abar_t) noise."""
        return diffuse(x0, self.alpha_bar(t), noise)

    def q_posterior(self, x0: torch.Tensor, x_t: torch.Tensor, t: int, prev_t: int | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance (a float64 scalar) of q(x_{t'} | x_t, x_0), t' = prev_t (default t - 1):

        mu~ = sqrt(abar_t') b / (1 - abar_t) x_0 + sqrt(abar_t / abar_t') (1 - abar_t') / (1 - abar_t) x_t,
        var~ = (1 - abar_t') / (1 - abar_t) b, with b = 1 - abar_t / abar_t' (beta_t when t' = t - 1).
        """
        prev_t = t - 1 if prev_t is None else prev_t
        a_t, a_prev = self.alpha_bar(t), self.alpha_bar(prev_t)
        b = 1 - a_t / a_prev
        coef_x0 = a_prev.sqrt() * b / (1 - a_t)
        coef_xt = (a_t / a_prev).sqrt() * (1 - a_prev) / (1 - a_t)
        return _per_example(coef_x0, x0) * x0 + _per_example(coef_xt, x_t) * x_t, (1 - a_prev) / (1 - a_t) * b

    def predict_x0(self, x_t: torch.Tensor, t: int | torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x_0 from x_t and its noise: (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)."""
        a = self.alpha_bar(t)
        return (x_t - _per_example((1 - a).sqrt(), x_t) * eps) / _per_example(a.sqrt(), x_t)

    # -- the reverse process -----------------------------------------------------------------
    def ddpm_step(self, eps: torch.Tensor, t: int, x_t: torch.Tensor, noise: torch.Tensor | None = None,
                  prev_t: int | None = None, clip: float | None = None) -> torch.Tensor:
        """One ancestral step x_t -> x_{t'} (t' = prev_t, default t - 1): the posterior mean at
        x0_hat (clamped to [-clip, clip] if ``clip``) plus sigma_t ``noise``, sigma_t^2 =
        1 - abar_t / abar_t' (= beta_t). ``noise`` None: the mean alone (the last step)."""
        prev_t = t - 1 if prev_t is None else prev_t
        x0 = self.predict_x0(x_t, t, eps)
        if clip is not None:
            x0 = x0.clamp(-clip, clip)
        mean, _ = self.q_posterior(x0, x_t, t, prev_t)
        if noise is None:
            return mean
        variance = 1 - self.alpha_bar(t) / self.alpha_bar(prev_t)
        return mean + _per_example(variance.sqrt(), x_t) * noise

    def ddim_step(self, eps: torch.Tensor, t: int, prev_t: int, x_t: torch.Tensor, eta: float = 0.0,
                  noise: torch.Tensor | None = None, clip: float | None = None) -> torch.Tensor:
        """One DDIM step x_t -> x_{t'} (t' = prev_t, -1 for the data):
        sqrt(abar_t') x0_hat + sqrt(1 - abar_t' - sigma^2) eps + sigma noise, with
        sigma = eta sqrt((1 - abar_t') / (1 - abar_t) (1 - abar_t / abar_t')); eta = 0: deterministic.
        With ``clip``, x0_hat is clamped and eps re-derived from it, so the two stay consistent."""
        a_t, a_prev = self.alpha_bar(t), self.alpha_bar(prev_t)
        x0 = self.predict_x0(x_t, t, eps)
        if clip is not None:
            x0 = x0.clamp(-clip, clip)
            eps = (x_t - _per_example(a_t.sqrt(), x_t) * x0) / _per_example((1 - a_t).sqrt(), x_t)
        sigma = eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)).sqrt()
        x_prev = _per_example(a_prev.sqrt(), x0) * x0 + _per_example((1 - a_prev - sigma**2).sqrt(), eps) * eps
        if eta > 0:
            if noise is None:
                raise ValueError("ddim_step with eta > 0 needs noise")
            x_prev = x_prev + _per_example(sigma, x_t) * noise
        return x_prev

    def sampling_timesteps(self, steps: int | None = None) -> list[int]:
        """``steps`` decreasing timesteps floor(i T / steps), i = steps-1 .. 0 (None: all T).

        The DDIM paper's uniform spacing, ``diffusers``' "leading" when steps divides T: the
        last step lands on t = 0, and the first is not T - 1 unless steps = T. Skipping the
        cosine schedule's last step (beta clipped to 0.999, abar ~ 1e-7) matters for DDIM: a
        step from there, x_{t'} = sqrt(abar_t' / abar_t) (x_t - sqrt(1 - abar_t) eps) + ...,
        multiplies the network's error in eps by tens (it biased the modes of a 1-D mixture).
        """
        T = self.timesteps
        steps = T if steps is None else steps
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= T:
            raise ValueError(f"steps must be an int in [1, {T}] (the model's timesteps), got {steps!r}")
        return [i * T // steps for i in range(steps - 1, -1, -1)]


# -- the model -------------------------------------------------------------------------------
@dataclasses.dataclass
class DDPMConfig:
    timesteps: int = 200  # T
    schedule: str = "cosine"  # "linear" (Ho et al.) or "cosine" (Nichol & Dhariwal)
    beta_start: float | None = None  # linear schedule's beta_1; None: 1e-4 * 1000 / timesteps
    beta_end: float | None = None  # linear schedule's beta_T; None: 0.02 * 1000 / timesteps
    network: str = "auto"  # "mlp", "unet" (C, H, W), "temporal" (C, T); auto: picked by the data's rank
    widths: tuple[int, ...] | None = None  # per block (mlp, temporal) or per resolution (unet); None: DEFAULT_WIDTHS
    blocks: int = 1  # U-Net residual blocks per resolution
    embedding_dim: int = 128  # width of the timestep (and class) embedding
    num_classes: int | None = None  # class-conditional when set (classifier-free guidance)
    condition_dropout: float = 0.1  # training: probability of the null label instead of the true one
    continuous_time: bool = False  # train on u ~ U(0, 1) with a continuous abar(u)
    clip_sample: float | None = None  # sampling: clamp x0_hat to [-c, c] (1.0 for data in [-1, 1])

    def __post_init__(self):
        check_positive_int("timesteps", self.timesteps)
        check_choice("schedule", self.schedule, SCHEDULES)
        start, end = linear_beta_range(self.timesteps)
        for name, default in (("beta_start", start), ("beta_end", end)):
            value = getattr(self, name)
            if value is None:
                if self.schedule == "linear" and default >= 1:
                    raise ConfigError(f"beta_end defaults to 0.02 * 1000 / timesteps = {default:g}, not < 1: "
                                      f"use timesteps >= 21 or set beta_end, got timesteps={self.timesteps!r}")
                continue
            check_positive(name, value)
            if value >= 1:
                raise ConfigError(f"{name} must be < 1, got {value!r}")
        if self.beta_start is not None and self.beta_end is not None and self.beta_start > self.beta_end:
            raise ConfigError(f"beta_start must be <= beta_end, got beta_start={self.beta_start!r}, "
                              f"beta_end={self.beta_end!r}")
        check_choice("network", self.network, NETWORKS)
        if self.widths is not None:
            self.widths = check_widths("widths", self.widths)
            if not self.widths:
                raise ConfigError(f"widths must hold at least one width, got {self.widths!r}")
        check_positive_int("blocks", self.blocks)
        check_positive_int("embedding_dim", self.embedding_dim)
        if self.num_classes is not None:
            check_positive_int("num_classes", self.num_classes)
        check_probability("condition_dropout", self.condition_dropout)
        if self.condition_dropout == 1.0:
            raise ConfigError("condition_dropout must be < 1 (the model must see labels), got 1.0")
        if not isinstance(self.continuous_time, bool):
            raise ConfigError(f"continuous_time must be a bool, got {self.continuous_time!r}")
        if self.clip_sample is not None:
            check_positive("clip_sample", self.clip_sample)


class DDPM(GenerativeModel):
    """A denoising diffusion model on examples of any shape: ``DDPM((1, 8, 8))`` on grey digits
    in [-1, 1], ``DDPM((2,))`` on 2-D points, ``DDPM((C, T))`` on motion windows.

    ``loss`` is the simple loss (epsilon prediction), ``validation_loss`` the same per example
    with noise and timesteps fixed by the seed; there is no likelihood. ``sample(n,
    sampler="ddpm" | "ddim", steps=None, guidance=0.0, condition=None)``; the single updates
    are :meth:`NoiseSchedule.ddpm_step` and :meth:`NoiseSchedule.ddim_step` of ``schedule``.
    """

    Config = DDPMConfig
    has_likelihood = False
    validation_metric = "denoising_loss"

    def build(self) -> None:
        c, shape = self.config, self.data_shape
        self.schedule = NoiseSchedule(beta_schedule(c.schedule, c.timesteps, c.beta_start, c.beta_end))
        kind = c.network if c.network != "auto" else {3: "unet", 2: "temporal"}.get(len(shape), "mlp")
        widths = c.widths or DEFAULT_WIDTHS[kind]
        if kind == "unet":
            if len(shape) != 3:
                raise ConfigError(f"network='unet' models images: data_shape must be (C, H, W), got {shape}")
            factor = 2 ** (len(widths) - 1)
            if shape[1] % factor or shape[2] % factor:
                raise ConfigError(f"a U-Net with {len(widths)} resolutions halves the image {len(widths) - 1} "
                                  f"times: H and W must be divisible by {factor}, got data_shape={shape} "
                                  f"and widths={widths}")
            self.network = UNet(shape[0], widths, c.embedding_dim, c.blocks)
        elif kind == "temporal":
            if len(shape) != 2:
                raise ConfigError(f"network='temporal' models windows: data_shape must be (C, T), got {shape}")
            self.network = TemporalConvNet(shape[0], widths, c.embedding_dim)
        else:
            self.network = MLPDenoiser(math.prod(shape), widths, c.embedding_dim)
        self.network_kind = kind
        # Row num_classes is the null label of classifier-free guidance.
        self.class_embedding = None if c.num_classes is None else nn.Embedding(c.num_classes + 1, c.embedding_dim)

    # -- the network -------------------------------------------------------------------------
    def _eps(self, x_t: torch.Tensor, time: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """eps_theta(x_t, time, labels): time (B,) float on the timestep scale, labels (B,) or None."""
        condition = None if labels is None else self.class_embedding(labels)  # (B, E)
        if self.network_kind == "mlp":
            return self.network(x_t.flatten(1), time, condition).view_as(x_t)
        return self.network(x_t, time, condition)

    def _guided_eps(self, x_t: torch.Tensor, time: torch.Tensor, labels: torch.Tensor | None,
                    guidance: float, predict: NoisePredictor | None = None) -> torch.Tensor:
        """``predict`` (default ``_eps``; a ControlNet passes its own) sees one batch of 2B when
        guiding: the conditional half first, then the same x_t with the null label."""
        predict = self._eps if predict is None else predict
        if guidance == 0.0:
            return predict(x_t, time, labels)
        null = torch.full_like(labels, self.config.num_classes)
        # Both predictions in one batch: (2B, ...) -> conditional, unconditional.
        conditional, unconditional = predict(torch.cat([x_t, x_t]), torch.cat([time, time]),
                                             torch.cat([labels, null])).chunk(2)
        return (1 + guidance) * conditional - guidance * unconditional

    def predict_noise(self, x_t: torch.Tensor, t: int | torch.Tensor, condition: torch.Tensor | int | None = None,
                      guidance: float = 0.0) -> torch.Tensor:
        """eps_theta(x_t, t, y), guided with weight w = ``guidance``: (1 + w) eps(x, y) - w eps(x).
        t: an int or (B,) integer timesteps."""
        x_t = self.check_input(x_t, "x_t")
        labels = self.check_condition(condition, len(x_t))
        self._check_guidance(guidance)
        time = torch.as_tensor(t, device=self.device).expand(len(x_t)).to(torch.get_default_dtype())
        return self._guided_eps(x_t, time, labels, guidance)

    def _check_guidance(self, guidance: float) -> None:
        check_positive("guidance", guidance, allow_zero=True)
        if guidance != 0.0 and self.config.num_classes is None:
            raise ValueError(f"guidance={guidance!r} needs a class-conditional model (num_classes); "
                             f"this DDPM is unconditional")

    # -- training ----------------------------------------------------------------------------
    def _denoising_losses(self, x0: torch.Tensor, labels: torch.Tensor | None, generator: torch.Generator,
                          condition_dropout: float, predict: NoisePredictor | None = None) -> torch.Tensor:
        """||eps - eps_theta(x_t, t)||^2, mean over entries, per example (B,); t, eps (and the
        dropped labels) drawn from ``generator``; eps_theta is ``predict`` (default ``_eps``)."""
        B, T = len(x0), self.config.timesteps
        if self.config.continuous_time:
            u = torch.rand(B, generator=generator, device=self.device, dtype=torch.float64)
            alpha_bar, time = self.schedule.alpha_bar_continuous(u), u * T - 1  # grid u = (t + 1) / T reads as t
        else:
            t = torch.randint(0, T, (B,), generator=generator, device=self.device)
            alpha_bar, time = self.schedule.alpha_bar(t), t
        noise = torch.randn(x0.shape, generator=generator, device=self.device, dtype=x0.dtype)
        if labels is not None and condition_dropout > 0:
            drop = torch.rand(B, generator=generator, device=self.device) < condition_dropout
            labels = labels.masked_fill(drop, self.config.num_classes)
        x_t = diffuse(x0, alpha_bar, noise)
        eps = (self._eps if predict is None else predict)(x_t, time.to(x0.dtype), labels)
        return (eps - noise).pow(2).flatten(1).mean(1)

    def loss(self, x: torch.Tensor, condition: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """The simple loss, its draws from ``generator`` (default: the model's; a model that
        holds this one, such as latent diffusion, passes its own checkpointed generator)."""
        x = self.check_input(x)
        labels = self.check_condition(condition, len(x))
        return self._denoising_losses(x, labels, self.rng(generator), self.config.condition_dropout).mean()

    def validation_loss(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """The simple loss per example (B,), no label dropped, with timesteps and noise from a
        generator seeded afresh from ``seed``: the same batch always gets the same draws."""
        x = self.check_input(x)
        labels = self.check_condition(condition, len(x))
        generator = torch.Generator(device=self.device).manual_seed(self.seed)
        return self._denoising_losses(x, labels, generator, 0.0)

    # -- sampling ----------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, condition: torch.Tensor | int | None = None,
               sampler: str = "ddpm", steps: int | None = None, guidance: float = 0.0, eta: float = 0.0
               ) -> torch.Tensor:
        """n examples (n, *data_shape) from x_T ~ N(0, I) by ``sampler`` over ``steps`` timesteps
        (:meth:`NoiseSchedule.sampling_timesteps`; None: all T for "ddpm", min(50, T) for "ddim").
        ``guidance``: the classifier-free weight w (needs ``condition``); ``eta``: DDIM's noise
        scale (0: deterministic given x_T)."""
        check_positive_int("n", n)
        self._check_guidance(guidance)
        labels = self.check_condition(condition, n)
        return self.reverse_process(n, lambda x, time: self._guided_eps(x, time, labels, guidance), generator,
                                    sampler, steps, eta)

    @torch.no_grad()
    def reverse_process(self, n: int, predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                        generator: torch.Generator | None = None, sampler: str = "ddpm", steps: int | None = None,
                        eta: float = 0.0) -> torch.Tensor:
        """The sampler loop of :meth:`sample` around any noise prediction ``predict(x_t, time)``
        (time (n,) float): a model that steers this one (a ControlNet) samples through it."""
        check_positive_int("n", n)
        check_choice("sampler", sampler, SAMPLERS)
        check_positive("eta", eta, allow_zero=True)
        rng = self.rng(generator)
        if steps is None and sampler == "ddim":
            steps = min(50, self.config.timesteps)
        timesteps = self.schedule.sampling_timesteps(steps)
        clip = self.config.clip_sample
        was_training = self.training
        self.eval()
        x = torch.randn((n, *self.data_shape), generator=rng, device=self.device)
        for i, t in enumerate(timesteps):
            prev_t = timesteps[i + 1] if i + 1 < len(timesteps) else -1
            time = torch.full((n,), float(t), device=self.device)
            eps = predict(x, time)
            if sampler == "ddpm":
                noise = torch.randn(x.shape, generator=rng, device=self.device) if prev_t >= 0 else None
                x = self.schedule.ddpm_step(eps, t, x, noise, prev_t, clip)
            else:
                noise = torch.randn(x.shape, generator=rng, device=self.device) if eta > 0 else None
                x = self.schedule.ddim_step(eps, t, prev_t, x, eta, noise, clip)
        self.train(was_training)
        return x
