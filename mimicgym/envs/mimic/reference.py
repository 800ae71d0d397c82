"""Reference motion on the simulated character: a clip tabulated at the physics rate.

A :class:`~mimicgym.motion.clip.MotionClip` (e.g. a DeepMimic clip read by
:mod:`mimicgym.motion.deepmimic`, already z-up) is put on the character once, at construction:
keyframes become MuJoCo ``qpos`` vectors and are resampled on the physics grid
(``k * timestep``) with MuJoCo's own position calculus (``mj_differentiatePos`` /
``mj_integratePos``: slerp for ball joints and the root orientation, lerp for hinges and the
root position). Velocities are the finite differences DeepMimic uses. Forward kinematics of
every grid point is stored too, so a policy step only indexes arrays. A looping clip continues
past its end by adding the per-cycle root displacement (horizontal only, as DeepMimic does), so
an episode can follow a walk for any number of cycles.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import mujoco
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from mimicgym.envs.mimic.characters import Character
from mimicgym.envs.mimic.observation import end_effectors_in_heading, heading_matrices
from mimicgym.motion.clip import MotionClip
from mimicgym.motion.deepmimic import deepmimic_clip_path, load_deepmimic

DEEPMIMIC_CLIPS = (
    "walk", "run", "jump", "kick", "punch", "spinkick", "backflip", "cartwheel", "crawl", "roll",
    "spin", "dance_a", "dance_b", "getup_faceup", "getup_facedown",
)


def clip_to_qpos(character: Character, clip: MotionClip) -> np.ndarray:
    """(T, nq) character qpos of a clip on the same skeleton (matched by body/joint name).

    Hinge angles are read off the local quaternions as rotations about the joint's z axis.
    """
    m, sk = character.model, clip.skeleton
    qpos = np.tile(m.qpos0, (len(clip.rotations), 1))
    for j, adr in zip(character.joints, character.qpos_adr):
        if j.kind == "fixed":
            continue
        if j.name not in sk.joint_names:
            raise ValueError(f"clip {clip.name!r} (skeleton {sk.name!r}) has no joint {j.name!r}")
        q = clip.rotations[:, sk.index(j.name)]  # (T, 4)
        if j.kind == "free":
            qpos[:, adr:adr + 3] = clip.root_trans
            qpos[:, adr + 3:adr + 7] = q
        elif j.kind == "ball":
            qpos[:, adr:adr + 4] = q
        else:
            qpos[:, adr] = 2.0 * np.arctan2(q[:, 3], q[:, 0])
    return qpos


class ReferenceMotion:
    """A clip on a character, indexed by physics step ``k`` (time ``k * timestep``).

    Arrays per grid point ``i`` in ``[0, n]`` (``n`` = clip length in physics steps):
    ``qpos (n+1, nq)``, ``qvel (n+1, nv)``, ``body_pos (n+1, B, 3)`` world body origins,
    ``com (n+1, 3)`` whole-body centre of mass, ``end_effectors (n+1, E, 3)`` hands and feet
    relative to the root in the reference's heading frame (unchanged from cycle to cycle),
    ``pd_target (n+1, A)`` the PD actuators' targets of the pose (joint-local, so also
    unchanged from cycle to cycle).
    """

    def __init__(self, character: Character, keyframes: np.ndarray, frame_durations: np.ndarray,
                 loop: bool, name: str = "clip") -> None:
        m = character.model
        if keyframes.ndim != 2 or keyframes.shape[1] != m.nq:
            raise ValueError(f"keyframes must be (T, {m.nq}), got {keyframes.shape}")
        self.name, self.loop, self.character = name, loop, character
        self.timestep = float(m.opt.timestep)
        key_times = np.concatenate([[0.0], np.cumsum(frame_durations[: len(keyframes) - 1])])
        self.duration = float(key_times[-1])
        self.n = int(round(self.duration / self.timestep))
        self.qpos = self._resample(m, keyframes, key_times)
        self.qvel = np.zeros((self.n + 1, m.nv))
        for i in range(self.n):
            mujoco.mj_differentiatePos(m, self.qvel[i], self.timestep, self.qpos[i],
                                       self.qpos[i + 1])
        self.qvel[self.n] = self.qvel[0] if loop else self.qvel[self.n - 1]
        self.body_pos, self.com, self.end_effectors = self._kinematics(character)
        self.pd_target = character.pd_targets(self.qpos)  # (n+1, A) actuator targets
        # Per-cycle horizontal root displacement; zero for clips that don't loop.
        self.cycle_offset = np.zeros(3)
        if loop:
            self.cycle_offset[:2] = self.qpos[self.n, :2] - self.qpos[0, :2]

    @classmethod
    def from_clip(cls, character: Character, clip: MotionClip) -> ReferenceMotion:
        """A reference from a clip on the character's skeleton (uniform frame rate)."""
        durations = np.full(len(clip.rotations) - 1, 1.0 / clip.fps)
        return cls(character, clip_to_qpos(character, clip), durations, clip.loop, clip.name)

    @classmethod
    def from_deepmimic(cls, character: Character, clip: str | Path) -> ReferenceMotion:
        """A DeepMimic clip by name (shipped with pybullet) or by file path, retargeted onto the
        character when it is not humanoid3d."""
        path = deepmimic_clip_path(clip) if clip in DEEPMIMIC_CLIPS else Path(clip)
        return cls.from_clip(character, _on_skeleton(load_deepmimic(path), character))

    def _resample(self, m: mujoco.MjModel, keyframes: np.ndarray,
                  key_times: np.ndarray) -> np.ndarray:
        times = np.arange(self.n + 1) * self.timestep  # (n+1,)
        seg = np.clip(np.searchsorted(key_times, times, side="right") - 1, 0, len(key_times) - 2)
        alpha = np.clip((times - key_times[seg]) / np.diff(key_times)[seg], 0.0, 1.0)
        qpos = np.empty((self.n + 1, m.nq))
        dq = np.zeros(m.nv)
        for i, (s, a) in enumerate(zip(seg, alpha)):
            # Geodesic interpolation: q_s "+" a * (q_{s+1} "-" q_s).
            mujoco.mj_differentiatePos(m, dq, 1.0, keyframes[s], keyframes[s + 1])
            qpos[i] = keyframes[s]
            mujoco.mj_integratePos(m, qpos[i], dq, a)
        return qpos

    def _kinematics(self, character: Character) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        m = character.model
        d = mujoco.MjData(m)
        root = character.body_ids[0]
        body_pos = np.empty((self.n + 1, character.n_bodies, 3))
        root_xmat = np.empty((self.n + 1, 9))
        com = np.empty((self.n + 1, 3))
        for i in range(self.n + 1):
            d.qpos[:] = self.qpos[i]
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            body_pos[i], root_xmat[i], com[i] = d.xpos[character.body_ids], d.xmat[root], d.subtree_com[root]
        # The env's own end-effector function, so the reference and the character agree exactly.
        ee = end_effectors_in_heading(body_pos[:, character.end_effector_index], body_pos[:, 0],
                                      heading_matrices(root_xmat))
        return body_pos, com, ee

    # ------------------------------------------------------------------ lookup by physics step
    # Each takes a step ``k`` (an int) or steps (an int array, a batch of characters).
    def index(self, k):
        """(grid index, completed cycles) of physics step ``k``; non-looping clips hold the end."""
        if not self.loop:
            return np.minimum(k, self.n), np.zeros_like(k)
        cycles, i = np.divmod(k, self.n)
        return i, cycles

    def phase(self, k):
        """Clip phase in [0, 1)."""
        return self.index(k)[0] / self.n

    def _shift(self, cycles) -> np.ndarray:
        """The root displacement after ``cycles`` (shape of ``cycles`` + (3,))."""
        return np.multiply.outer(cycles, self.cycle_offset)

    def state(self, k) -> tuple[np.ndarray, np.ndarray]:
        """(qpos, qvel) of the reference at step ``k`` (fresh arrays)."""
        i, c = self.index(k)
        qpos = self.qpos.take(i, axis=0)
        qpos[..., :3] += self._shift(c)
        return qpos, self.qvel.take(i, axis=0)

    def frame(self, k) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(qpos, qvel, end effectors, com) at steps ``k`` (N,), one lookup for the reward."""
        i, c = self.index(k)
        shift = self._shift(c)
        qpos = self.qpos[i]
        qpos[:, :3] += shift
        return qpos, self.qvel[i], self.end_effectors[i], self.com[i] + shift

    def com_at(self, k) -> np.ndarray:
        i, c = self.index(k)
        return self.com.take(i, axis=0) + self._shift(c)

    def end_effectors_at(self, k) -> np.ndarray:
        return self.end_effectors[self.index(k)[0]]

    def body_pos_at(self, k) -> np.ndarray:
        i, c = self.index(k)
        return self.body_pos.take(i, axis=0) + self._shift(c)[..., None, :]

    def finished(self, k):
        """True once a non-looping clip has played to its end."""
        return np.logical_and(not self.loop, np.greater_equal(k, self.n))


def load_reference(character: Character, clip: str | Path | MotionClip) -> ReferenceMotion:
    """A reference from a DeepMimic clip name or file, a generated clip name
    (:mod:`mimicgym.motion.clip_library`), or a ``MotionClip`` on any skeleton (retargeted).

    Without ``pybullet`` a DeepMimic name falls back, with a warning, to the generated clip of
    the same name (``walk``, ``run``) or to the generated walk.
    """
    from mimicgym.motion.clip_library import LIBRARY, make_clip

    if isinstance(clip, MotionClip):
        return ReferenceMotion.from_clip(character, _on_skeleton(clip, character))
    if isinstance(clip, str) and clip in DEEPMIMIC_CLIPS:
        try:
            import pybullet_data  # noqa: F401
        except ImportError:
            fallback = clip if clip in LIBRARY else "walk"
            warnings.warn(f"pybullet is not installed, so DeepMimic's {clip!r} clip is not "
                          f"available; using the project's generated {fallback!r} clip instead "
                          "(pip install 'mimicgym[mocap]' for DeepMimic's clips)", stacklevel=3)
            clip = fallback
        else:
            return ReferenceMotion.from_deepmimic(character, clip)
    if isinstance(clip, str) and clip in LIBRARY:
        return ReferenceMotion.from_clip(character, _on_skeleton(make_clip(clip), character))
    if Path(clip).is_file():
        return ReferenceMotion.from_deepmimic(character, Path(clip))
    raise ValueError(f"unknown clip {clip!r}: expected a DeepMimic clip {DEEPMIMIC_CLIPS}, a "
                     f"generated clip {tuple(sorted(LIBRARY))}, a DeepMimic file or a MotionClip")


def lowest_geom_points(model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
    """(ngeom,) height of each geom's lowest point (spheres, capsules, boxes; planes: +inf)."""
    size, t = model.geom_size, model.geom_type  # (G, 3), (G,)
    zrow = data.geom_xmat[:, 6:9]  # (G, 3) row z of each geom's rotation: local axes' heights
    drop = np.full(model.ngeom, np.inf)
    sphere, capsule, box = (t == mujoco.mjtGeom.mjGEOM_SPHERE, t == mujoco.mjtGeom.mjGEOM_CAPSULE,
                            t == mujoco.mjtGeom.mjGEOM_BOX)
    drop[sphere] = size[sphere, 0]
    drop[capsule] = size[capsule, 0] + np.abs(zrow[capsule, 2]) * size[capsule, 1]
    drop[box] = (np.abs(zrow[box]) * size[box]).sum(1)
    return data.geom_xpos[:, 2] - drop


def ground_clip(character: Character, clip: MotionClip, window: int = 1) -> MotionClip:
    """The clip moved vertically so that its feet stand on the floor and never sink into it.

    Retargeting scales the root height by the standing-height ratio, which is exact only for
    proportional legs; a shaped SMPL body walking a clip made for other proportions would
    otherwise sink its feet a few cm into the floor (or float), and RSI would start it in a
    ground collision. Two steps: the median frame's lowest body point goes to the floor (the
    stance level: most frames of a clip have a foot down), then frames still below it are
    lifted out, by a smooth upper envelope of the lift (``window`` frames either side) so the
    root's height stays smooth. One global shift to the very lowest point (as PHC/ProtoMotions
    ground) would float every other frame: DeepMimic's run dips a heel 6 cm below its stance
    level at heel strike, and the SMPL run stood 7 cm above the floor (median frame). With one
    frame either side it stands 2 cm above it and the root's vertical velocity stays within
    DeepMimic's own run (-1.1..0.9 m/s against -1.3..0.9); lifting frame by frame grounds
    every frame but jerks the root at 2 m/s.
    """
    m = character.model
    data = mujoco.MjData(m)
    body = m.geom_bodyid > 0  # the character's geoms, not the floor
    qpos = clip_to_qpos(character, clip)
    low = np.empty(len(qpos))  # (T,) lowest body point of each frame
    for t, q in enumerate(qpos):
        data.qpos[:] = q
        mujoco.mj_kinematics(m, data)
        low[t] = lowest_geom_points(m, data)[body].min()
    stance = np.median(low)
    lift = upper_envelope(np.maximum(stance - low, 0.0), window, wrap=clip.loop)
    root_trans = np.array(clip.root_trans, dtype=np.float64)
    root_trans[:, 2] += lift - stance
    return MotionClip(clip.skeleton, clip.fps, root_trans, clip.rotations, clip.loop,
                      betas=clip.betas, name=clip.name)


def upper_envelope(x: np.ndarray, window: int, wrap: bool = False) -> np.ndarray:
    """(T,) a smooth curve >= ``x``: a moving maximum, then a moving mean, both over
    ``2 * window + 1`` samples (each mean's window holds a maximum taken over ``x[t]``).
    ``wrap``: the signal loops (a looping clip's last frame meets its first)."""
    if window <= 0:
        return x.copy()
    mode = "wrap" if wrap else "edge"
    width = 2 * window + 1
    peaks = sliding_window_view(np.pad(x, window, mode=mode), width).max(1)
    return sliding_window_view(np.pad(peaks, window, mode=mode), width).mean(1)


def _on_skeleton(clip: MotionClip, character: Character) -> MotionClip:
    """The clip itself if it is on the character's skeleton, else retargeted onto it and
    grounded (:func:`ground_clip`); a clip on the SMPL template goes this way onto a shaped
    SMPL body too, which gets bone-aligned rotations and a root height fitted to its legs."""
    if clip.skeleton == character.skeleton or (
            character.name == "humanoid3d" and clip.skeleton.name == "humanoid3d"):
        return clip
    from mimicgym.motion.retargeting import retarget

    return ground_clip(character, retarget(clip, character.skeleton))
