"""Characters by name: ``make_character("humanoid3d")`` (DeepMimic's) or ``"smpl"`` (built from
the body model). The one module that knows both kinds, so neither imports the other."""

from __future__ import annotations

import mujoco
import numpy as np

from mimicgym.envs.mimic.characters import HUMANOID3D_BODY_GROUPS, HUMANOID3D_JOINTS, Character, humanoid3d_mjcf
from mimicgym.envs.mimic.smpl_character import make_smpl_character
from mimicgym.motion.skeleton import HUMANOID3D_SKELETON


def make_character(name: str = "humanoid3d", ghost: bool = False,
                   betas: np.ndarray | None = None) -> Character:
    """Compile a character by name: ``"humanoid3d"`` or ``"smpl"`` (shaped by ``betas``, the
    default body when ``None``); ``ghost`` adds a translucent reference copy for rendering."""
    if name == "humanoid3d":
        if betas is not None:
            raise ValueError("betas only apply to character='smpl', got betas for 'humanoid3d'")
        model = mujoco.MjModel.from_xml_string(humanoid3d_mjcf(ghost=ghost))
        return Character(name, model, HUMANOID3D_JOINTS, HUMANOID3D_SKELETON,
                         HUMANOID3D_BODY_GROUPS)
    if name == "smpl":
        return make_smpl_character(betas, ghost=ghost)
    raise ValueError(f"unknown character {name!r}; expected 'humanoid3d' or 'smpl'")
