"""DeepMimic-style motion imitation: characters, reference motion, reward, env and rendering.

``MUJOCO_GL`` must be chosen before MuJoCo is first imported; headless ``egl`` is the default
here unless the user has set it (see :mod:`mimicgym.envs.mimic.render`).
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
