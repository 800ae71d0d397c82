"""mimicgym: Gymnasium environments, RL agents, generative priors and a parametric body model.

Importing the package registers the ``mimicgym/*`` Gymnasium ids (Gymnasium 1.x has no
plugin entry points, so registration happens at import, as minigrid and ale-py do).
Heavy dependencies (torch, mujoco) load only when a module that needs them is used.
"""

__version__ = "0.1.0"

from mimicgym import envs as envs  # noqa: E402  (registers the environment ids)

__all__ = ["__version__", "envs"]
