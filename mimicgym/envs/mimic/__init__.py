"""DeepMimic-style motion imitation: characters, reference motion, reward, env and rendering.

``MUJOCO_GL`` must be chosen before MuJoCo is first imported: ``import mimicgym`` makes
headless ``egl`` the default on machines without a display (see :mod:`mimicgym`).
"""
