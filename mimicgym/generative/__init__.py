"""Generative models used as learned priors and reward shapers (VAE, autoregressive models,
flows, GANs, diffusion). Models take tensors and know nothing about RL or bodies.

No model is implemented yet: this subpackage reserves the namespace of the suite's layout.
"""
