"""mimicgym: Gymnasium environments, RL agents, generative priors and a parametric body model.

Importing the package registers the ``mimicgym/*`` Gymnasium ids (Gymnasium 1.x has no
plugin entry points, so registration happens at import, as minigrid and ale-py do).
Heavy dependencies (torch, mujoco) load only when a module that needs them is used.
"""

import os

__version__ = "0.1.0"

# MuJoCo picks its OpenGL backend when it is first imported. On a machine without a display
# only EGL (or OSMesa) can render, so make that the default there; a user's setting wins.
if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    os.environ.setdefault("MUJOCO_GL", "egl")

from mimicgym import envs as envs  # noqa: E402  (registers the environment ids)

__all__ = ["__version__", "envs"]
