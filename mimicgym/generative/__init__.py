"""Generative models on tensors: learned priors and reward shapers, and models to study on their own.

Every model is built from the shape of one example, ``Model(data_shape, **hyperparameters)``,
and has ``loss(x)``, ``sample(n, generator=None)`` and, where exact, ``log_prob(x)`` (see
:mod:`mimicgym.generative.base`); autoregressive models also give ``logits(x)``, every
conditional in one pass, aligned with ``x``. Models know nothing of RL or bodies; the training
harness and the CLI (``mimicgym gen``) live in the run layer.

- latent-variable models: :class:`Autoencoder`, :class:`VAE`, :class:`BetaVAE`, :class:`VQVAE`
- Markov-chain models: :class:`RBM`
- autoregressive models: :class:`FVSBN`, :class:`NADE`, :class:`MADE`, :class:`PixelCNN`,
  :class:`WaveNet`, :class:`CausalTransformer`
- normalizing flows: :class:`RealNVP`, :class:`Glow`, built from :class:`FlowLayer` s
  (:class:`AffineCoupling`, :class:`ActNorm`, :class:`InvertibleConv1x1`, :class:`Squeeze`,
  :class:`Split`) composed by :class:`Flow`
- adversarial models: :class:`GAN`, :class:`DCGAN`, :class:`WGANGP` (unrolled and
  class-conditional variants, inversion)
- diffusion: :class:`DDPM` (DDPM and DDIM samplers, classifier-free guidance), and on trained
  models :class:`LatentDiffusion` (a DDPM over a VAE's codes) and :class:`ControlNet` (a
  trainable branch steering a frozen DDPM by a new condition)
- baselines: :class:`FactorizedBernoulli`, :class:`BernoulliMixture` (fitted by EM)
"""

from mimicgym.generative.attention import CausalTransformer, MultiHeadAttention, scaled_dot_product_attention
from mimicgym.generative.autoencoder import Autoencoder
from mimicgym.generative.autoregressive import FVSBN, MADE, NADE, MaskedLinear
from mimicgym.generative.base import GenerativeModel
from mimicgym.generative.baselines import BernoulliMixture, FactorizedBernoulli
from mimicgym.generative.controlnet import ControlNet, sketch, sketch_error
from mimicgym.generative.diffusion import DDPM, NoiseSchedule, beta_schedule
from mimicgym.generative.flow_bases import DiagonalGaussian, GaussianMixture, StandardNormal
from mimicgym.generative.flow_layers import ActNorm, InvertibleConv1x1, LogitTransform, Split, Squeeze
from mimicgym.generative.flow_models import Glow, RealNVP
from mimicgym.generative.flows import AffineCoupling, AffineInjector, Flow, FlowLayer, channel_mask, checkerboard_mask
from mimicgym.generative.gan import DCGAN, GAN, WGANGP
from mimicgym.generative.latent_diffusion import LatentDiffusion
from mimicgym.generative.pixelcnn import MaskedConv2d, PixelCNN
from mimicgym.generative.rbm import RBM
from mimicgym.generative.vae import VAE, BetaVAE
from mimicgym.generative.vqvae import VQVAE, VectorQuantizer
from mimicgym.generative.wavenet import WaveNet, mu_law_decode, mu_law_encode

# The models the training harness fits by gradient (``mimicgym gen train MODEL``); LatentDiffusion
# and ControlNet are built on a trained VAE / DDPM (``--base-run``), the others from the data shape.
MODELS: dict[str, type[GenerativeModel]] = {cls.__name__: cls for cls in (
    FactorizedBernoulli, FVSBN, NADE, MADE, RBM, PixelCNN, WaveNet, CausalTransformer, Autoencoder, VAE,
    BetaVAE, VQVAE, RealNVP, Glow, GAN, DCGAN, WGANGP, DDPM, LatentDiffusion, ControlNet)}

__all__ = [
    "GenerativeModel", "MODELS", "Autoencoder", "VAE", "BetaVAE", "VQVAE", "VectorQuantizer", "RBM", "FVSBN",
    "NADE", "MADE", "MaskedLinear", "PixelCNN", "MaskedConv2d", "WaveNet", "CausalTransformer",
    "MultiHeadAttention", "scaled_dot_product_attention", "mu_law_encode", "mu_law_decode",
    "BernoulliMixture", "FactorizedBernoulli", "RealNVP", "Glow", "Flow", "FlowLayer", "AffineCoupling",
    "AffineInjector", "ActNorm", "InvertibleConv1x1", "Squeeze", "Split", "LogitTransform", "StandardNormal",
    "DiagonalGaussian", "GaussianMixture", "checkerboard_mask", "channel_mask", "DDPM",
    "NoiseSchedule", "beta_schedule", "GAN", "DCGAN", "WGANGP",
    "LatentDiffusion", "ControlNet", "sketch", "sketch_error",
]
