"""Generative adversarial networks: the minimax game, DCGAN, WGAN-GP, unrolled GANs, inversion.

A generator G maps noise z ~ N(0, I) to examples; a discriminator D scores them. The game
(Goodfellow et al. 2014)

    min_G max_D V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))]

has, for a fixed G, the optimal discriminator D*(x) = p_data(x) / (p_data(x) + p_g(x)), where
V = -log 4 + 2 JSD(p_data || p_g): against D*, G minimises the Jensen-Shannon divergence.
D outputs a logit l (D = sigmoid(l)), so -V is a binary cross-entropy with logits, computed
stably through log-sigmoids. G's minimax loss E[log(1 - D(G(z)))] saturates where D rejects the
fakes confidently, as early in training (its gradient in l, -sigmoid(l), vanishes); the
non-saturating loss -E[log D(G(z))] has the same fixed points and the gradient sigmoid(l) - 1,
near -1 there (``generator_loss``).

Training alternates k steps of D (``discriminator_steps``: the same minibatch, fresh noise)
with one step of G; each player is frozen while the other moves.

- :class:`GAN`: MLP players for vectors (2-D toy sets, flattened images).
- :class:`DCGAN` (Radford et al. 2016): the convolutional players of :mod:`.gan_networks`.
- :class:`WGANGP` (Gulrajani et al. 2017): a critic C without batch norm whose
  E C(x) - E C(G(z)) estimates the Wasserstein-1 distance while C is kept near 1-Lipschitz by
  the gradient penalty lambda E[(||grad C(x_hat)|| - 1)^2] at random interpolates x_hat.
- Unrolled GAN (Metz et al. 2017; ``unrolled_steps`` k > 0): G's loss is taken against a copy
  of D advanced k plain gradient steps (``unroll_lr``) and differentiated through them, so G
  sees how D would answer its move and collapsing onto a few modes stops paying. The real D
  takes only its normal steps.
- Class-conditional players (``num_classes``): see :mod:`.gan_networks`; fakes are drawn with
  the labels of the real minibatch.
- GAN inversion (:meth:`GAN.invert`): optimise z, every weight frozen, so that G(z) matches a
  target where a mask observes it; G(z) then fills in the rest (inpainting).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn
from torch.func import functional_call

from mimicgym.errors import ConfigError
from mimicgym.generative.autoencoder import check_widths
from mimicgym.generative.base import GenerativeModel, gradient_step
from mimicgym.generative.gan_networks import (
    GENERATOR_LOSSES,
    ConvDiscriminator,
    ConvGenerator,
    MLPDiscriminator,
    MLPGenerator,
    dcgan_init,
    evaluating,
    frozen,
    generator_loss_from_logits,
    gradient_penalty,
    minimax_value,
)
from mimicgym.utils.checks import check_choice, check_positive, check_positive_int

ARCHITECTURES = ("auto", "mlp", "conv")


# -- hyperparameters -------------------------------------------------------------------------
@dataclasses.dataclass
class _GameConfig:
    """What every GAN here shares."""

    latent_dim: int = 8
    num_classes: int | None = None  # class-conditional when set
    embedding_dim: int = 16  # width of the label embedding G reads beside z
    unrolled_steps: int = 0  # k > 0: the unrolled GAN; G plays against D advanced k steps
    unroll_lr: float = 0.05  # step size of the unrolled (plain gradient) steps of D; 0.2 diverged on 2-D data
    betas: tuple[float, float] = (0.5, 0.999)  # Adam's, for both players
    discriminator_lr_scale: float = 1.0  # D's learning rate is this times the trainer's lr

    def __post_init__(self):
        check_positive_int("latent_dim", self.latent_dim)
        if self.num_classes is not None:
            check_positive_int("num_classes", self.num_classes)
        check_positive_int("embedding_dim", self.embedding_dim)
        if isinstance(self.unrolled_steps, bool) or not isinstance(self.unrolled_steps, int) \
                or self.unrolled_steps < 0:
            raise ConfigError(f"unrolled_steps must be an int >= 0, got {self.unrolled_steps!r}")
        check_positive("unroll_lr", self.unroll_lr)
        betas = tuple(self.betas) if isinstance(self.betas, (tuple, list)) else ()
        if len(betas) != 2 or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1
                                      for b in betas):
            raise ConfigError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        self.betas = tuple(float(b) for b in betas)
        check_positive("discriminator_lr_scale", self.discriminator_lr_scale)


@dataclasses.dataclass
class _MinimaxConfig(_GameConfig):
    generator_loss: str = "non_saturating"  # or "minimax"
    discriminator_steps: int = 1  # k D steps per G step

    def __post_init__(self):
        super().__post_init__()
        check_choice("generator_loss", self.generator_loss, GENERATOR_LOSSES)
        check_positive_int("discriminator_steps", self.discriminator_steps)


def _check_players(config) -> None:
    """The fields of the MLP and convolutional players (WGAN-GP has both)."""
    if hasattr(config, "hidden"):
        config.hidden = check_widths("hidden", config.hidden)
        if not isinstance(config.tanh_output, bool):
            raise ConfigError(f"tanh_output must be a bool, got {config.tanh_output!r}")
    if hasattr(config, "width"):
        check_positive_int("width", config.width)
        check_positive_int("upsamplings", config.upsamplings)


@dataclasses.dataclass
class GANConfig(_MinimaxConfig):
    hidden: tuple[int, ...] = (128, 128, 128)  # widths of both players' MLPs
    tanh_output: bool = False  # G's output squashed to [-1, 1] (images scaled so); False: unbounded

    def __post_init__(self):
        super().__post_init__()
        _check_players(self)


@dataclasses.dataclass
class DCGANConfig(_MinimaxConfig):
    latent_dim: int = 32
    width: int = 64  # channels of D's first layer and G's last hidden one; doubled per size halving
    upsamplings: int = 2  # stride-2 layers of each player; the image is (H, W) / 2^this at the bottom

    def __post_init__(self):
        super().__post_init__()
        _check_players(self)


@dataclasses.dataclass
class WGANGPConfig(_GameConfig):
    critic_steps: int = 5  # n_critic: critic steps per generator step
    gradient_penalty: float = 10.0  # lambda
    betas: tuple[float, float] = (0.5, 0.9)
    architecture: str = "auto"  # "mlp" or "conv" players; "auto": conv for images (C, H, W), else mlp
    hidden: tuple[int, ...] = (128, 128, 128)  # mlp widths
    tanh_output: bool = False  # mlp generator's output squashed to [-1, 1]
    width: int = 64  # conv channels, as DCGAN's
    upsamplings: int = 2  # conv stride-2 layers, as DCGAN's

    def __post_init__(self):
        super().__post_init__()
        check_positive_int("critic_steps", self.critic_steps)
        check_positive("gradient_penalty", self.gradient_penalty, allow_zero=True)
        check_choice("architecture", self.architecture, ARCHITECTURES)
        _check_players(self)


# -- the models ------------------------------------------------------------------------------
class GAN(GenerativeModel):
    """A GAN with MLP players on examples of any shape, flattened: ``GAN((2,))`` on 2-D toy data.

    G: z (latent_dim) -> ``hidden`` (ReLU) -> data; D: data -> ``hidden`` (LeakyReLU 0.2) -> logit.
    ``loss(x)`` is D's loss -V(D, G) on x and fresh fakes; ``training_step`` plays one round
    of the game. No likelihood, no validation loss: the trainer keeps the last epoch. With lr
    1e-3 and batch 256 the defaults cover the eight Gaussians' modes in about 1,000 rounds.
    """

    Config = GANConfig
    support = "real"
    has_likelihood = False
    validation_metric = None

    def build(self) -> None:
        self.G, self.D = self._players()

    def _players(self) -> tuple[nn.Module, nn.Module]:
        c = self.config
        return (MLPGenerator(c.latent_dim, c.hidden, self.data_shape, c.num_classes, c.embedding_dim, c.tanh_output),
                MLPDiscriminator(self.data_shape, c.hidden, c.num_classes))

    @property
    def discriminator_steps(self) -> int:
        """k: D steps per G step."""
        return self.config.discriminator_steps

    # -- the players -----------------------------------------------------------------------
    def _noise(self, n: int, rng: torch.Generator) -> torch.Tensor:
        return torch.randn(n, self.config.latent_dim, generator=rng, device=self.device)

    def generate(self, z: torch.Tensor, condition: torch.Tensor | int | None = None) -> torch.Tensor:
        """G(z) (B, *data_shape) for codes z (B, latent_dim), differentiable, in G's current mode."""
        if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != self.config.latent_dim:
            raise ValueError(f"z must be a tensor of shape (batch, {self.config.latent_dim}), "
                             f"got {getattr(z, 'shape', z)!r}")
        return self.G(z.to(self.device, torch.get_default_dtype()), self.check_condition(condition, len(z)))

    def discriminate(self, x: torch.Tensor, condition: torch.Tensor | int | None = None) -> torch.Tensor:
        """D's score per example (B,): a logit (GAN, DCGAN) or a critic value (WGAN-GP)."""
        x = self.check_input(x)
        return self.D(x, self.check_condition(condition, len(x)))

    def _score(self, x: torch.Tensor, condition: torch.Tensor | None,
               params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """D(x) (B,), with ``params`` (name -> tensor) in place of D's own parameters when given;
        D's buffers are then copies, so batch norm's running statistics are left alone."""
        if params is None:
            return self.D(x, condition)
        buffers = {name: b.clone() for name, b in self.D.named_buffers()}
        return functional_call(self.D, {**params, **buffers}, (x, condition))

    # -- the game's losses (overridden by WGAN-GP) -------------------------------------------
    def _discriminator_terms(self, real: torch.Tensor, fake: torch.Tensor, condition: torch.Tensor | None,
                             rng: torch.Generator, params: dict[str, torch.Tensor] | None = None
                             ) -> dict[str, torch.Tensor]:
        """D's loss (``"discriminator_loss"``, first) and what else to log. Real and fake
        examples pass through D separately, as in DCGAN, so batch norm never mixes them."""
        return {"discriminator_loss": -minimax_value(self._score(real, condition, params),
                                                     self._score(fake, condition, params))}

    def _generator_loss(self, fake: torch.Tensor, condition: torch.Tensor | None,
                        params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        return generator_loss_from_logits(self._score(fake, condition, params), self.config.generator_loss)

    def discriminator_loss(self, x: torch.Tensor, condition: torch.Tensor | int | None = None,
                           generator: torch.Generator | None = None) -> torch.Tensor:
        """D's training loss on the real minibatch x and as many fresh fakes, a scalar."""
        x = self.check_input(x)
        condition, rng = self.check_condition(condition, len(x)), self.rng(generator)
        fake = self.G(self._noise(len(x), rng), condition)
        return self._discriminator_terms(x, fake, condition, rng)["discriminator_loss"]

    def loss(self, x: torch.Tensor, condition: torch.Tensor | int | None = None) -> torch.Tensor:
        """D's loss on x against fresh fakes (the model's generator): -V(D, G) for the minimax game."""
        return self.discriminator_loss(x, condition)

    def generator_loss(self, x: torch.Tensor, condition: torch.Tensor | int | None = None,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """G's training loss, a scalar, on len(x) fresh fakes: against D itself, or, with
        ``unrolled_steps`` k > 0, against D advanced k gradient steps (step ``unroll_lr``) on x
        and fresh fakes, differentiated through those steps (Metz et al. 2017)."""
        x = self.check_input(x)
        return self._generator_objective(x, self.check_condition(condition, len(x)), self.rng(generator))

    def _generator_objective(self, x: torch.Tensor, condition: torch.Tensor | None,
                             rng: torch.Generator) -> torch.Tensor:
        params = None
        if self.config.unrolled_steps:
            # A differentiable copy of D's parameters: theta_{i+1} = theta_i - eta grad L_D(theta_i),
            # whose fakes keep G's graph, so the final loss sees how D's answer depends on G.
            params = {name: p.detach().requires_grad_(True) for name, p in self.D.named_parameters()}
            with torch.enable_grad():  # D's steps are gradient steps, even where only the value is wanted
                for _ in range(self.config.unrolled_steps):
                    fake = self.G(self._noise(len(x), rng), condition)
                    d_loss = self._discriminator_terms(x, fake, condition, rng, params)["discriminator_loss"]
                    grads = torch.autograd.grad(d_loss, list(params.values()), create_graph=True)
                    params = {name: p - self.config.unroll_lr * g for (name, p), g in zip(params.items(), grads)}
        return self._generator_loss(self.G(self._noise(len(x), rng), condition), condition, params)

    # -- training --------------------------------------------------------------------------
    def make_optimizers(self, lr: float, weight_decay: float = 0.0) -> dict[str, torch.optim.Optimizer]:
        """Adam for each player (``betas``), D's step ``discriminator_lr_scale`` times G's."""
        c = self.config
        return {"generator": torch.optim.Adam(self.G.parameters(), lr=lr, betas=c.betas, weight_decay=weight_decay),
                "discriminator": torch.optim.Adam(self.D.parameters(), lr=lr * c.discriminator_lr_scale,
                                                  betas=c.betas, weight_decay=weight_decay)}

    def training_step(self, x: torch.Tensor, optimizers: dict[str, torch.optim.Optimizer], where: str = "",
                      max_grad_norm: float | None = None, condition: torch.Tensor | None = None
                      ) -> dict[str, torch.Tensor]:
        """One round: k D steps on x, each against fresh fakes drawn under no_grad (G frozen),
        then one G step with D frozen. Returns G's loss as ``"loss"`` and the means over the k
        D steps of D's terms, detached. All noise comes from the model's generator."""
        x = self.check_input(x)
        condition, rng = self.check_condition(condition, len(x)), self.generator
        at = f" ({where})" if where else ""
        sums: dict[str, torch.Tensor] = {}
        for _ in range(self.discriminator_steps):
            with torch.no_grad():
                fake = self.G(self._noise(len(x), rng), condition)
            terms = self._discriminator_terms(x, fake, condition, rng)
            gradient_step(optimizers["discriminator"], terms["discriminator_loss"], "discriminator loss" + at,
                          max_grad_norm)
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + value.detach()
        with frozen(self.D):
            loss = self._generator_objective(x, condition, rng)
            gradient_step(optimizers["generator"], loss, "generator loss" + at, max_grad_norm)
        return {"loss": loss.detach(), **{name: total / self.discriminator_steps for name, total in sums.items()}}

    # -- generation ------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None,
               condition: torch.Tensor | int | None = None) -> torch.Tensor:
        """n examples G(z), z ~ N(0, I) from ``generator`` (default: the model's), (n, *data_shape);
        ``condition``: labels (n,) or one class for all. G runs in eval mode (batch norm on its
        running statistics), so each sample depends on its own z alone, not on n."""
        check_positive_int("n", n)
        rng, condition = self.rng(generator), self.check_condition(condition, n)
        with evaluating(self.G):
            return self.G(self._noise(n, rng), condition)

    def invert(self, target: torch.Tensor, mask: torch.Tensor | None = None, steps: int = 500, lr: float = 0.05,
               generator: torch.Generator | None = None, restarts: int = 4,
               condition: torch.Tensor | int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """GAN inversion: codes z (B, latent_dim) minimising sum mask (G(z) - target)^2 per example,
        and G(z) (B, *data_shape), whose unobserved entries (mask 0) inpaint the target.

        ``mask``: 1 where the target is observed, 0 elsewhere, shaped like ``target`` or
        broadcastable to it (None: all observed). Every weight is frozen and G runs in eval
        mode; Adam (``lr``) runs ``steps`` steps from ``restarts`` starts z ~ N(0, I) per example
        (drawn from ``generator``), all in one batch, and the best start is kept per example.
        """
        target = self.check_input(target, "target")
        check_positive_int("steps", steps)
        check_positive("lr", lr)
        check_positive_int("restarts", restarts)
        B = len(target)
        mask = self._check_mask(mask, target)
        condition, rng = self.check_condition(condition, B), self.rng(generator)
        labels = None if condition is None else condition.repeat(restarts)
        goal, seen = (t.repeat(restarts, *[1] * len(self.data_shape)) for t in (target, mask))  # (R B, ...)
        z = torch.randn(restarts * B, self.config.latent_dim, generator=rng, device=self.device).requires_grad_(True)
        optimizer = torch.optim.Adam([z], lr=lr)

        def error(z: torch.Tensor) -> torch.Tensor:  # (R B,): each start's own error, so starts never interact
            return (seen * (self.G(z, labels) - goal).pow(2)).flatten(1).sum(1)

        with frozen(self), evaluating(self.G), torch.enable_grad():  # z's gradient, even under no_grad
            for _ in range(steps):
                optimizer.zero_grad(set_to_none=True)
                error(z).sum().backward()
                optimizer.step()
            with torch.no_grad():
                best = error(z).view(restarts, B).argmin(0)  # (B,)
                z = z.detach().view(restarts, B, -1)[best, torch.arange(B, device=self.device)]
                return z, self.G(z, condition)

    def _check_mask(self, mask: torch.Tensor | None, target: torch.Tensor) -> torch.Tensor:
        if mask is None:
            return torch.ones_like(target)
        if not isinstance(mask, torch.Tensor):
            raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
        mask = mask.to(self.device, target.dtype)
        try:
            mask = mask.expand_as(target)
        except RuntimeError:
            raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast to the target's "
                             f"{tuple(target.shape)}") from None
        bad = (mask != 0) & (mask != 1)
        if bool(bad.any()):
            index = tuple(int(i) for i in torch.nonzero(bad)[0])
            raise ValueError(f"mask{list(index)} is {mask[index].item()!r}; expected 0 or 1")
        return mask


class DCGAN(GAN):
    """DCGAN (Radford et al. 2016) for images (C, H, W): ``DCGAN((1, 8, 8))`` on the grey digits
    in [-1, 1]. The players of :mod:`.gan_networks` (strided convolutions, batch norm, ReLU and
    tanh in G, LeakyReLU in D, no fully connected hidden layers), DCGAN's initialisation, Adam
    with betas (0.5, 0.999); train with lr about 2e-4 (DCGAN's).
    """

    Config = DCGANConfig

    def _players(self) -> tuple[nn.Module, nn.Module]:
        c = self.config
        players = (ConvGenerator(c.latent_dim, self.data_shape, c.width, c.upsamplings, c.num_classes,
                                 c.embedding_dim),
                   ConvDiscriminator(self.data_shape, c.width, c.upsamplings, c.num_classes, batch_norm=True))
        for player in players:
            player.apply(dcgan_init)
        return players


class WGANGP(GAN):
    """WGAN-GP (Gulrajani et al. 2017): ``WGANGP((2,))`` on vectors, ``WGANGP((1, 8, 8))`` on images.

    The critic's loss is E C(G(z)) - E C(x) + lambda E[(||grad C(x_hat)|| - 1)^2], x_hat on the
    segment between a real and a fake example at a uniform point; G's loss is -E C(G(z)).
    ``critic_steps`` (5) critic steps per G step, Adam betas (0.5, 0.9), no batch norm in
    the critic (the penalty is per example). Logs ``wasserstein_estimate`` E C(x) - E C(G(z))
    and ``gradient_penalty``. Players: MLPs for vectors, DCGAN's for images (``architecture``).
    On the eight Gaussians lr 3e-4 covers all modes within a minute (1e-3 oscillated, 1e-4 is slower).
    """

    Config = WGANGPConfig

    def _players(self) -> tuple[nn.Module, nn.Module]:
        c = self.config
        architecture = c.architecture
        if architecture == "auto":
            architecture = "conv" if len(self.data_shape) == 3 else "mlp"
        if architecture == "mlp":
            return super()._players()
        return (ConvGenerator(c.latent_dim, self.data_shape, c.width, c.upsamplings, c.num_classes, c.embedding_dim),
                ConvDiscriminator(self.data_shape, c.width, c.upsamplings, c.num_classes, batch_norm=False))

    @property
    def discriminator_steps(self) -> int:
        return self.config.critic_steps

    def _discriminator_terms(self, real: torch.Tensor, fake: torch.Tensor, condition: torch.Tensor | None,
                             rng: torch.Generator, params: dict[str, torch.Tensor] | None = None
                             ) -> dict[str, torch.Tensor]:
        mix = torch.rand(len(real), generator=rng, device=self.device)

        def critic(x: torch.Tensor) -> torch.Tensor:
            return self._score(x, condition, params)

        estimate = critic(real).mean() - critic(fake).mean()
        penalty = gradient_penalty(critic, real, fake, mix).mean()
        return {"discriminator_loss": -estimate + self.config.gradient_penalty * penalty,
                "wasserstein_estimate": estimate, "gradient_penalty": penalty}

    def _generator_loss(self, fake: torch.Tensor, condition: torch.Tensor | None,
                        params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        return -self._score(fake, condition, params).mean()

