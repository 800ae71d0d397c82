"""Generative models on tensors: learned priors and reward shapers, and models to study on their own.

Every model is built from the shape of one example, ``Model(data_shape, **hyperparameters)``,
and has ``loss(x)``, ``sample(n, generator=None)`` and, where exact, ``log_prob(x)`` (see
:mod:`mimicgym.generative.base`). Models know nothing of RL or bodies; the training harness
and the CLI (``mimicgym gen``) live in the run layer.
"""

from mimicgym.generative.base import GenerativeModel
from mimicgym.generative.baselines import BernoulliMixture, FactorizedBernoulli

# The models the training harness can fit by gradient (``mimicgym gen train MODEL``).
MODELS: dict[str, type[GenerativeModel]] = {cls.__name__: cls for cls in (FactorizedBernoulli,)}

__all__ = ["GenerativeModel", "BernoulliMixture", "FactorizedBernoulli", "MODELS"]
