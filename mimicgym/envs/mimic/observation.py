"""The imitation env's observation (DeepMimic's state features) and the heading frame, for a
batch of characters: every array carries a leading batch axis N, so the single env (N = 1, on
views of its ``MjData``) and the batched env (N characters stacked) run the same code.

The layout is documented in :class:`~mimicgym.envs.mimic.env.MimicEnv` (Observation Space).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import mujoco
import numpy as np

from mimicgym.envs.mimic.characters import Character


@dataclass
class Kinematics:
    """What the observation and the reward read from MuJoCo, stacked over N characters.

    Valid after ``mj_forward`` or the env's control step (:meth:`MimicEnv.advance`, which ends
    with the position and velocity stage of the new state).
    """

    qpos: np.ndarray  # (N, nq)
    qvel: np.ndarray  # (N, nv)
    xpos: np.ndarray  # (N, nbody, 3) body origins, world
    xmat: np.ndarray  # (N, nbody, 9) body orientations, world
    cvel: np.ndarray  # (N, nbody, 6) [angular, linear] velocities at the root subtree's CoM
    com: np.ndarray  # (N, 3) the character's centre of mass (subtree_com of the root)
    com_vel: np.ndarray  # (N, 3) its linear velocity (subtree_linvel, after mj_subtreeVel)
    actuator_length: np.ndarray  # (N, nu) joint coordinates the PD targets are in

    @classmethod
    def of(cls, data: mujoco.MjData, root: int) -> Kinematics:
        """Views of one ``MjData`` with a batch axis of 1: no copies, and MuJoCo's buffers never
        move, so the views stay current for the life of ``data``."""
        return cls(data.qpos[None], data.qvel[None], data.xpos[None], data.xmat[None],
                   data.cvel[None], data.subtree_com[root:root + 1],
                   data.subtree_linvel[root:root + 1], data.actuator_length[None])

    @classmethod
    def zeros(cls, model: mujoco.MjModel, n: int) -> Kinematics:
        return cls(np.zeros((n, model.nq)), np.zeros((n, model.nv)), np.zeros((n, model.nbody, 3)),
                   np.zeros((n, model.nbody, 9)), np.zeros((n, model.nbody, 6)), np.zeros((n, 3)),
                   np.zeros((n, 3)), np.zeros((n, model.nu)))

    def write(self, j: int, data: mujoco.MjData, root: int) -> None:
        """Copy one character's ``data`` into row ``j``."""
        self.qpos[j], self.qvel[j], self.xpos[j] = data.qpos, data.qvel, data.xpos
        self.xmat[j], self.cvel[j], self.com[j] = data.xmat, data.cvel, data.subtree_com[root]
        self.com_vel[j], self.actuator_length[j] = data.subtree_linvel[root], data.actuator_length

    def rows(self, index: np.ndarray) -> Kinematics:
        """The characters at ``index`` (copies)."""
        return Kinematics(*(getattr(self, f.name)[index] for f in fields(self)))


def heading_matrices(root_xmat: np.ndarray) -> np.ndarray:
    """(N, 3, 3) world -> heading frame of N characters, from their roots' (N, 9) world
    orientations: the yaw that turns the root's forward axis (local x) onto +x; rows are the
    heading frame's axes. The frame turns with the body about the vertical only, so
    observations and end-effector targets do not depend on which way the character faces
    (DeepMimic's convention). A root pointing straight up or down gets the world frame."""
    norm = np.hypot(root_xmat[:, 0], root_xmat[:, 3])  # the root's local x, horizontal part
    if norm.min() <= 1e-9:  # rare: no horizontal forward direction
        flat = norm <= 1e-9
        root_xmat, norm = root_xmat.copy(), norm.copy()
        root_xmat[flat, 0], root_xmat[flat, 3], norm[flat] = 1.0, 0.0, 1.0
    # [[fx, fy, 0], [-fy, fx, 0], [0, 0, 0]] / |f|, plus the vertical's 1: three array operations
    heading = root_xmat[:, _HEADING_TAKE] * _HEADING_SIGN
    heading /= norm[:, None]
    heading += _HEADING_Z
    return heading.reshape(-1, 3, 3)


_HEADING_TAKE = np.array([0, 3, 0, 3, 0, 0, 0, 0, 0])
_HEADING_SIGN = np.array([1.0, 1.0, 0.0, -1.0, 1.0, 0.0, 0.0, 0.0, 0.0])
_HEADING_Z = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0])


def end_effectors_in_heading(ends: np.ndarray, root: np.ndarray, heading: np.ndarray) -> np.ndarray:
    """(N, E, 3) world end-effector positions -> relative to the root (N, 3), heading frame."""
    return (ends - root[:, None]) @ heading.transpose(0, 2, 1)


_CROSS_A, _CROSS_B = np.array([1, 2, 0, 2, 0, 1]), np.array([2, 0, 1, 1, 2, 0])


def cross(a: np.ndarray, b: np.ndarray, axis: int) -> np.ndarray:
    """Cross products along ``axis`` (of length 3): the six products ``a_j b_k`` in one multiply
    and one subtraction (``np.cross`` costs several times more at these sizes)."""
    products = a.take(_CROSS_A, axis=axis) * b.take(_CROSS_B, axis=axis)
    lead = (slice(None),) * (axis % a.ndim)
    return products[(*lead, slice(0, 3))] - products[(*lead, slice(3, 6))]


class ImitationObservation:
    """The observation of N characters at physics steps ``k`` (N,), as :class:`MimicEnv`
    documents it; ``size`` is its length. ``reference``: the
    :class:`~mimicgym.envs.mimic.reference.ReferenceMotion` (not imported: it imports this
    module's heading frame)."""

    def __init__(self, character: Character, reference, substeps: int,
                 reference_targets: bool, task: bool, target_speed: float) -> None:
        self.ref, self.substeps = reference, substeps
        self.reference_targets, self.task, self.target_speed = reference_targets, task, target_speed
        # Observation order is the model's body order (root first); contiguous -> a slice,
        # so the per-step gathers are views instead of fancy-index copies.
        order = np.sort(character.body_ids)
        contiguous = order[0] == character.body_ids[0] and (np.diff(order) == 1).all()
        self.bodies = slice(order[0], order[-1] + 1) if contiguous else order
        self.n_bodies = b = character.n_bodies
        self.n_kinematic = 1 + 3 * (5 * b - 1)  # height, then 5B - 1 heading-frame vectors
        n_targets = character.model.nu + 3 if reference_targets else 0
        self.phase_index = self.n_kinematic + n_targets
        self.size = self.phase_index + 1 + (3 if task else 0)

    def __call__(self, kin: Kinematics, k: np.ndarray, heading: np.ndarray, phase: np.ndarray,
                 target_dir: np.ndarray) -> np.ndarray:
        """(N, size) float32 (a new array); ``heading`` (N, 3, 3) from :func:`heading_matrices`; ``phase``:
        the clip phase at ``k``; ``target_dir`` (N, 2): the task's world direction (read only
        with ``task``)."""
        n, b = len(k), self.n_bodies
        # Components first (N, 3, body): the heading rotation is then one matrix product per
        # character, several times faster than over (N, body, 3) rows of three.
        xpos = kin.xpos[:, self.bodies].transpose(0, 2, 1)  # (N, 3, B), the root first
        cvel = kin.cvel[:, self.bodies].transpose(0, 2, 1)  # (N, 6, B): [angular, linear] at the CoM
        # World vectors, 5B - 1 of them: positions relative to the root, each body's x (tangent)
        # and y (normal) axes (columns 0 and 1 of its rotation matrix), linear velocities at
        # the body origins, angular velocities; then the root's target (see _targets).
        world = np.empty((n, 3, 5 * b))
        np.subtract(xpos[:, :, 1:], xpos[:, :, :1], out=world[:, :, :b - 1])
        np.copyto(world[:, :, b - 1:3 * b - 1].reshape(n, 3, b, 2),
                  kin.xmat[:, self.bodies].reshape(n, b, 3, 3)[..., :2].transpose(0, 2, 1, 3))
        ang, lin = cvel[:, :3], world[:, :, 3 * b - 1:4 * b - 1]
        # cvel's linear part is at the CoM; the velocity at an origin adds w x (origin - CoM).
        np.subtract(xpos, kin.com[:, :, None], out=lin)
        np.add(cvel[:, 3:], cross(ang, lin, axis=1), out=lin)
        world[:, :, 4 * b - 1:5 * b - 1] = ang
        obs = np.empty((n, self.size), dtype=np.float32)  # each entry computed in float64, then cast
        obs[:, 0] = kin.qpos[:, 2]  # root height
        if self.reference_targets:
            world[:, :, -1] = self._targets(kin, k, obs[:, self.n_kinematic:self.phase_index - 3])
        local = heading @ world  # (N, 3, 5B)
        np.copyto(obs[:, 1:self.n_kinematic].reshape(n, 5 * b - 1, 3), local[..., :-1].transpose(0, 2, 1))
        if self.reference_targets:
            obs[:, self.phase_index - 3:self.phase_index] = local[..., -1]
        obs[:, self.phase_index] = phase
        if self.task:
            obs[:, -3:-1] = (heading[:, :2, :2] @ target_dir[..., None])[..., 0]
            obs[:, -1] = self.target_speed
        return obs

    def _targets(self, kin: Kinematics, k: np.ndarray, out: np.ndarray) -> np.ndarray:
        """The next control step's reference, so the policy reads its tracking error instead of
        recalling the clip from the phase: PD targets minus the current actuator lengths (joint
        coordinates, the actions' units) into ``out`` (N, A); returns the world vector from the
        root to the reference's root (N, 3), which the observation turns into the heading frame."""
        ref = self.ref
        i, cycles = ref.index(k + self.substeps)
        np.subtract(ref.pd_target[i], kin.actuator_length, out=out)
        root = ref.qpos[i, :3] - kin.qpos[:, :3]
        root += np.multiply.outer(cycles, ref.cycle_offset)
        return root
