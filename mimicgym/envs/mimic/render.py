"""Headless rendering of a character next to a translucent ghost of its reference.

``MUJOCO_GL`` defaults to ``egl`` on machines without a display (set by ``import mimicgym``);
on a CPU-only machine that is Mesa's software EGL (Debian: ``libegl1 libgl1 libgles2``, plus
``libegl-mesa0``); ``MUJOCO_GL=osmesa`` with ``libosmesa6`` is the alternative. The render
model turns off the three costly effects of MuJoCo's software path: 4x multisampling
(``offsamples=0``), shadows and reflections -- about 115 frames/s at 480x480 instead of about 13,
at the price of jagged edges and a flatter look.
"""

from __future__ import annotations

import os
from pathlib import Path

import mujoco
import numpy as np

from mimicgym.envs.mimic.characters import GHOST_OFFSET, Character
from mimicgym.envs.mimic.factory import make_character
from mimicgym.utils.io import atomic_write


class MimicRenderer:
    """Renders ``qpos`` of a character and ``ref_qpos`` as a ghost, with the tracking camera."""

    def __init__(self, character: Character, width: int = 480, height: int = 480) -> None:
        self.scene_char = make_character(character.name, ghost=True, betas=character.betas)
        self.model = self.scene_char.model
        self.data = mujoco.MjData(self.model)
        self.nq = character.model.nq
        try:
            self.renderer = mujoco.Renderer(self.model, height=height, width=width)
        except Exception as err:  # MuJoCo raises FatalError/ImportError/RuntimeError here
            raise RuntimeError(
                f"MuJoCo could not open an OpenGL context ({err}). Headless: set MUJOCO_GL=egl "
                f"(or osmesa) before mujoco is first imported; MUJOCO_GL is now "
                f"{os.environ.get('MUJOCO_GL')!r}") from err
        self.options = mujoco.MjvOption()
        self.renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
        self.renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        self.camera = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, "track")

    def render(self, qpos: np.ndarray, ref_qpos: np.ndarray | None = None) -> np.ndarray:
        """(H, W, 3) uint8 frame; without ``ref_qpos`` the ghost stands far off screen."""
        self.data.qpos[: self.nq] = qpos
        ghost = np.array(qpos if ref_qpos is None else ref_qpos, dtype=np.float64)
        ghost[:3] += np.asarray(GHOST_OFFSET) if ref_qpos is not None else (0.0, 0.0, -100.0)
        self.data.qpos[self.nq:] = ghost
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)
        mujoco.mj_camlight(self.model, self.data)
        self.renderer.update_scene(self.data, camera=self.camera, scene_option=self.options)
        self.renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
        self.renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        return self.renderer.render()

    def close(self) -> None:
        self.renderer.close()



def save_video(frames: list[np.ndarray], path: str | os.PathLike, fps: int = 30) -> Path:
    """Write (H, W, 3) uint8 frames as an H.264 MP4 (needs ``imageio-ffmpeg``), atomically."""
    import imageio.v2 as imageio

    if not frames:
        raise ValueError(f"no frames to write to {path}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        imageio.mimwrite(tmp, frames, fps=fps, codec="libx264", quality=7, macro_block_size=8)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_strip(frames: list[np.ndarray], path: str | os.PathLike, n: int = 6) -> Path:
    """Write ``n`` evenly spaced frames side by side as one PNG, atomically."""
    import imageio.v3 as iio

    if not frames:
        raise ValueError(f"no frames to write to {path}")
    picks = np.linspace(0, len(frames) - 1, min(n, len(frames))).round().astype(int)
    strip = np.concatenate([frames[i] for i in picks], axis=1)  # (H, n W, 3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as f:
        f.write(iio.imwrite("<bytes>", strip, extension=".png"))
    return path
