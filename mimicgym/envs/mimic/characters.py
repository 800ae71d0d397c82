"""Simulated characters for motion imitation: DeepMimic's ``humanoid3d`` as the project's own MJCF
(the SMPL humanoid is in :mod:`mimicgym.envs.mimic.smpl_character`; both share
:class:`Character`, :func:`scene_mjcf` and the PD scheme described here).

The numbers below are the published character (pybullet's ``humanoid/humanoid.urdf``, which
pybullet loads with ``globalScaling=0.25``; the values here are already scaled to metres):
15 bodies, a free root, 8 ball joints, 4 hinges (knees and elbows about the local z axis),
45 kg. Bodies keep DeepMimic's y-up local frames so that the clips' joint-local quaternions
apply unchanged; only the root orientation carries the y-up -> z-up turn (+90 degrees about x).

PD control (a documented choice): MuJoCo position actuators, ``kp`` and ``kv = kd`` per joint,
``forcerange`` = the joint's torque limit, so DeepMimic's torque limits are enforced by the
simulator. A hinge has one actuator; a ball joint has three, one per local axis (``gear`` the
unit axis), whose length MuJoCo defines as that component of the joint rotation's exponential
map. Targets (``ctrl``) are therefore exponential-map coordinates for ball joints and angles for
hinges, exactly the action space; each axis is clipped at the limit separately (a box, where
DeepMimic clips the torque vector's norm). For small tracking errors the law equals a PD on
the quaternion difference; it differs only when the target and the pose are far apart or near
a half turn, where the exponential map wraps. The whole 600 Hz loop runs in C inside one
``mj_step(model, data, nstep)`` call, and the ``implicitfast`` integrator treats the actuators'
velocity gains implicitly, so DeepMimic's stiff gains are stable at 600 Hz.

Joint limits: knees and elbows keep DeepMimic's hinge ranges; ball joints are unlimited, since
DeepMimic's per-axis Euler limits have no exact MuJoCo counterpart (a cone limit would be a
different constraint). Bodies do not collide with each other (DeepMimic's single collision
group), only with the floor; ground friction 0.9.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mujoco
import numpy as np

from mimicgym.motion.skeleton import Skeleton

# Physics at 600 Hz: DeepMimic uses >= 450 Hz for its stiff gains; 30 Hz control divides it.
SIM_TIMESTEP = 1.0 / 600.0


@dataclass(frozen=True)
class JointSpec:
    """One DeepMimic joint: its body, parent, offset in the parent frame and control numbers."""

    name: str
    parent: str | None
    kind: str  # "free", "ball", "hinge" or "fixed"
    pos: tuple[float, float, float]
    kp: float = 0.0
    kd: float = 0.0
    torque_limit: float = 0.0
    pose_weight: float = 0.0  # DeepMimic's per-joint "DiffWeight" in the pose error
    end_effector: bool = False
    hinge_range: tuple[float, float] | None = None


@dataclass(frozen=True)
class GeomSpec:
    """A collision/visual shape: sphere (radius), capsule (radius, cylinder length along local y)
    or box (half sizes), centred at ``pos`` in the body frame, carrying ``mass`` kg."""

    body: str
    shape: str
    size: tuple[float, ...]
    pos: tuple[float, float, float]
    mass: float


# Joint order is DeepMimic's: it is the column order of the clip files (after the root).
HUMANOID3D_JOINTS: tuple[JointSpec, ...] = (
    JointSpec("root", None, "free", (0.0, 0.0, 0.0), pose_weight=1.0),
    JointSpec("chest", "root", "ball", (0.0, 0.236151, 0.0), 1000, 100, 200, 0.5),
    JointSpec("neck", "chest", "ball", (0.0, 0.223894, 0.0), 100, 10, 50, 0.3),
    JointSpec("right_hip", "root", "ball", (0.0, 0.0, 0.084887), 500, 50, 200, 0.5),
    JointSpec("right_knee", "right_hip", "hinge", (0.0, -0.421546, 0.0), 500, 50, 150, 0.3,
              hinge_range=(-3.14, 0.0)),
    JointSpec("right_ankle", "right_knee", "ball", (0.0, -0.40987, 0.0), 400, 40, 90, 0.2,
              end_effector=True),
    JointSpec("right_shoulder", "chest", "ball", (-0.02405, 0.2435, 0.18311), 400, 40, 100, 0.3),
    JointSpec("right_elbow", "right_shoulder", "hinge", (0.0, -0.274788, 0.0), 300, 30, 60, 0.2,
              hinge_range=(0.0, 3.14)),
    JointSpec("right_wrist", "right_elbow", "fixed", (0.0, -0.258947, 0.0), end_effector=True),
    JointSpec("left_hip", "root", "ball", (0.0, 0.0, -0.084887), 500, 50, 200, 0.5),
    JointSpec("left_knee", "left_hip", "hinge", (0.0, -0.421546, 0.0), 500, 50, 150, 0.3,
              hinge_range=(-3.14, 0.0)),
    JointSpec("left_ankle", "left_knee", "ball", (0.0, -0.40987, 0.0), 400, 40, 90, 0.2,
              end_effector=True),
    JointSpec("left_shoulder", "chest", "ball", (-0.02405, 0.2435, -0.18311), 400, 40, 100, 0.3),
    JointSpec("left_elbow", "left_shoulder", "hinge", (0.0, -0.274788, 0.0), 300, 30, 60, 0.2,
              hinge_range=(0.0, 3.14)),
    JointSpec("left_wrist", "left_elbow", "fixed", (0.0, -0.258947, 0.0), end_effector=True),
)

_FOOT = (0.0885, 0.0275, 0.045)  # box half sizes
HUMANOID3D_GEOMS: tuple[GeomSpec, ...] = (
    GeomSpec("root", "sphere", (0.09,), (0.0, 0.07, 0.0), 6.0),
    GeomSpec("chest", "sphere", (0.11,), (0.0, 0.12, 0.0), 14.0),
    GeomSpec("neck", "sphere", (0.1025,), (0.0, 0.175, 0.0), 2.0),
    GeomSpec("right_hip", "capsule", (0.055, 0.3), (0.0, -0.21, 0.0), 4.5),
    GeomSpec("right_knee", "capsule", (0.05, 0.31), (0.0, -0.2, 0.0), 3.0),
    GeomSpec("right_ankle", "box", _FOOT, (0.045, -0.0225, 0.0), 1.0),
    GeomSpec("right_shoulder", "capsule", (0.045, 0.18), (0.0, -0.14, 0.0), 1.5),
    GeomSpec("right_elbow", "capsule", (0.04, 0.135), (0.0, -0.12, 0.0), 1.0),
    GeomSpec("right_wrist", "sphere", (0.04,), (0.0, 0.0, 0.0), 0.5),
    GeomSpec("left_hip", "capsule", (0.055, 0.3), (0.0, -0.21, 0.0), 4.5),
    GeomSpec("left_knee", "capsule", (0.05, 0.31), (0.0, -0.2, 0.0), 3.0),
    GeomSpec("left_ankle", "box", _FOOT, (0.045, -0.0225, 0.0), 1.0),
    GeomSpec("left_shoulder", "capsule", (0.045, 0.18), (0.0, -0.14, 0.0), 1.5),
    GeomSpec("left_elbow", "capsule", (0.04, 0.135), (0.0, -0.12, 0.0), 1.0),
    GeomSpec("left_wrist", "sphere", (0.04,), (0.0, 0.0, 0.0), 0.5),
)

# Standing height of the root (pelvis) when the feet rest on the floor.
HUMANOID3D_ROOT_HEIGHT = 0.9


def _fmt(values) -> str:
    return " ".join(f"{v:.6g}" for v in values)


def _geom_xml(g: GeomSpec, prefix: str, contact: str, rgba: str) -> str:
    if g.shape == "capsule":
        radius, length = g.size
        x, y, z = g.pos
        ends = (x, y - length / 2, z, x, y + length / 2, z)
        shape = f'type="capsule" size="{radius:.6g}" fromto="{_fmt(ends)}"'
    else:
        shape = f'type="{g.shape}" size="{_fmt(g.size)}" pos="{_fmt(g.pos)}"'
    return (f'<geom name="{prefix}{g.body}" {shape} mass="{g.mass:.6g}" {contact} '
            f'rgba="{rgba}"/>')


def tracking_camera_xml(root_rotation: np.ndarray, offset=(1.6, -2.9, 0.4),
                        look_at=(0.0, 0.5, -0.1)) -> str:
    """A ``trackcom`` camera, given in world terms (z-up) and written in the root body's frame,
    whose rest orientation in the world is ``root_rotation`` (3, 3).

    It looks obliquely from the front-right at a point between the body and the ghost (which the
    renderer places :data:`GHOST_OFFSET` away), so both stay in view.
    """
    forward = np.subtract(look_at, offset)
    right = np.cross(forward, (0.0, 0.0, 1.0))
    up = np.cross(right, forward)
    right, up = right / np.linalg.norm(right), up / np.linalg.norm(up)
    to_local = np.asarray(root_rotation).T  # world -> root frame at rest
    return (f'<camera name="track" mode="trackcom" pos="{_fmt(to_local @ offset)}" '
            f'xyaxes="{_fmt(to_local @ right)} {_fmt(to_local @ up)}" fovy="45"/>')


# humanoid3d's root at rest: its y-up body frame turned +90 degrees about x.
_H3D_UPRIGHT = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])

# Where the reference ghost stands relative to the simulated body when rendering (world, m).
GHOST_OFFSET = (0.0, 1.0, 0.0)
GHOST_RGBA = "0.35 0.75 0.45 0.35"  # the ghost's colour: translucent green


def _character_xml(prefix: str, ghost: bool) -> str:
    """Nested ``<body>`` tree of one copy of the character (``ghost``: no contacts, see-through)."""
    contact = 'contype="0" conaffinity="0"' if ghost else 'contype="1" conaffinity="0"'
    rgba = GHOST_RGBA if ghost else "0.47 0.55 0.69 1"
    children: dict[str | None, list[JointSpec]] = {}
    for j in HUMANOID3D_JOINTS:
        children.setdefault(j.parent, []).append(j)
    geoms = {g.body: g for g in HUMANOID3D_GEOMS}

    def body(j: JointSpec, depth: int) -> str:
        pad = "  " * depth
        if j.kind == "free":
            # Standing upright in the z-up world: the y-up body frame turned +90 deg about x.
            head = (f'{pad}<body name="{prefix}{j.name}" pos="0 0 {HUMANOID3D_ROOT_HEIGHT}" '
                    f'quat="0.70710678 0.70710678 0 0">'
                    f'\n{pad}  <freejoint name="{prefix}{j.name}"/>')
            if not ghost:
                head += f"\n{pad}  {tracking_camera_xml(_H3D_UPRIGHT)}"
        else:
            head = f'{pad}<body name="{prefix}{j.name}" pos="{_fmt(j.pos)}">'
            if j.kind == "ball":
                head += f'\n{pad}  <joint name="{prefix}{j.name}" type="ball"/>'
            elif j.kind == "hinge":
                lo, hi = j.hinge_range
                head += (f'\n{pad}  <joint name="{prefix}{j.name}" type="hinge" axis="0 0 1" '
                         f'range="{lo:g} {hi:g}"/>')
        lines = [head, f"{pad}  {_geom_xml(geoms[j.name], prefix, contact, rgba)}"]
        lines += [body(c, depth + 1) for c in children.get(j.name, [])]
        lines.append(f"{pad}</body>")
        return "\n".join(lines)

    return body(children[None][0], 2)


def humanoid3d_mjcf(ghost: bool = False, timestep: float = SIM_TIMESTEP) -> str:
    """MJCF text of the humanoid3d character on a floor (``ghost``: add a translucent,
    contact-free second copy named ``ghost_*`` for showing the reference while rendering)."""
    ghost_xml = _character_xml("ghost_", ghost=True) if ghost else ""
    return scene_mjcf("humanoid3d", _character_xml("", ghost=False) + "\n" + ghost_xml,
                      pd_actuators_xml(HUMANOID3D_JOINTS), timestep)


def pd_actuators_xml(joints: tuple[JointSpec, ...]) -> str:
    """Position actuators for the PD law, in joint-spec order: one per hinge, three per ball
    joint (local x, y, z), each with the joint's ``kp``, ``kv = kd`` and torque limit.

    Actuator ``a`` drives the ``a``-th entry of :attr:`Character.actuated_dofs`, so a policy
    action maps onto ``data.ctrl`` without reordering.
    """
    axes = {"ball": ("1 0 0", "0 1 0", "0 0 1"), "hinge": ("1",)}
    lines = []
    for j in joints:
        for axis, gear in enumerate(axes.get(j.kind, ())):
            lines.append(f'    <position name="{j.name}_{axis}" joint="{j.name}" gear="{gear}" '
                         f'kp="{j.kp:g}" kv="{j.kd:g}" '
                         f'forcerange="{-j.torque_limit:g} {j.torque_limit:g}"/>')
    return "\n".join(lines)


def scene_mjcf(model_name: str, bodies_xml: str, actuators_xml: str = "",
               timestep: float = SIM_TIMESTEP) -> str:
    """The shared scene (floor, light, sky, fast-render settings) around characters' bodies
    and their actuators.

    The floor collides with geoms of ``contype="1"`` (``conaffinity="1"``, ``contype="0"``);
    character geoms take ``contype="1" conaffinity="0"`` so bodies never collide with each
    other, and ghosts take 0 and 0.
    """
    return f"""<mujoco model="{model_name}">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{timestep:.9g}" integrator="implicitfast"/>
  <visual>
    <quality shadowsize="0" offsamples="0"/>
    <global offwidth="1280" offheight="720"/>
  </visual>
  <asset>
    <texture name="sky" type="skybox" builtin="gradient" rgb1="0.62 0.72 0.82" rgb2="0.2 0.25 0.3"
             width="32" height="32"/>
    <texture name="grid" type="2d" builtin="checker" rgb1="0.78 0.80 0.82" rgb2="0.66 0.69 0.72"
             width="256" height="256"/>
    <material name="grid" texture="grid" texrepeat="1 1" texuniform="true" reflectance="0"/>
  </asset>
  <default>
    <geom friction="0.9 0.005 0.0001" condim="3"/>
  </default>
  <worldbody>
    <light name="sun" pos="0 0 6" dir="0 0 -1" directional="true" castshadow="false"/>
    <geom name="floor" type="plane" size="0 0 0.05" material="grid" contype="0" conaffinity="1"/>
{bodies_xml}
  </worldbody>
  <actuator>
{actuators_xml}
  </actuator>
</mujoco>
"""


# Body groups of humanoid3d for per-clip contact rules (hands: the forearm capsule too).
HUMANOID3D_BODY_GROUPS: dict[str, tuple[str, ...]] = {
    "feet": ("right_ankle", "left_ankle"),
    "hands": ("right_wrist", "left_wrist", "right_elbow", "left_elbow"),
    "knees": ("right_knee", "left_knee"),
}


@dataclass
class Character:
    """A compiled character: the MuJoCo model plus index maps the env and reward use.

    ``joints`` name the bodies (root first); each body's joint is found through the model's
    ``body_jntadr``, so a root body may carry a free joint of another name. ``skeleton`` is the
    kinematic skeleton clips are retargeted onto; ``body_groups`` names sets of bodies
    (``"feet"``, ``"hands"``, ``"knees"``) for per-clip contact rules; ``betas`` are the shape
    parameters a body-model character was built with (to rebuild it, e.g. with a ghost).
    """

    name: str
    model: mujoco.MjModel
    joints: tuple[JointSpec, ...]
    skeleton: Skeleton
    body_groups: dict[str, tuple[str, ...]]
    betas: np.ndarray | None = None
    body_ids: np.ndarray = field(init=False)  # (B,) character bodies in joint-spec order
    end_effector_index: np.ndarray = field(init=False)  # (E,) positions within body_ids
    dof_pose_weight: np.ndarray = field(init=False)  # (nv,) joint weight per dof, sums per joint
    actuated_dofs: np.ndarray = field(init=False)  # (A,) dofs the policy sets targets for
    qpos_adr: np.ndarray = field(init=False)  # (B,) qpos address of each body's joint (-1: none)
    kp: np.ndarray = field(init=False)  # (A,)
    kd: np.ndarray = field(init=False)  # (A,)
    torque_limit: np.ndarray = field(init=False)  # (A,)

    def __post_init__(self) -> None:
        m = self.model
        self.body_ids = np.array([mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, j.name)
                                  for j in self.joints])
        if (self.body_ids < 0).any():
            missing = [j.name for j, b in zip(self.joints, self.body_ids) if b < 0]
            raise ValueError(f"character {self.name!r}: the model has no bodies {missing}")
        self.end_effector_index = np.array([i for i, j in enumerate(self.joints) if j.end_effector])
        jnt = m.body_jntadr[self.body_ids]  # (B,) -1 for fixed bodies
        self.qpos_adr = np.where(jnt >= 0, m.jnt_qposadr[jnt], -1)
        total_w = sum(j.pose_weight for j in self.joints if j.kind != "fixed")
        w = np.zeros(m.nv)
        actuated, kp, kd, lim = [], [], [], []
        for j, jid in zip(self.joints, jnt):
            if j.kind == "fixed":
                continue
            dadr = m.jnt_dofadr[jid]
            nv = {"free": 6, "ball": 3, "hinge": 1}[j.kind]
            # Only rotational dofs enter the pose error (a free joint's first 3 are translation).
            rot = slice(dadr + 3, dadr + 6) if j.kind == "free" else slice(dadr, dadr + nv)
            w[rot] = j.pose_weight / total_w
            if j.kind != "free":
                actuated += list(range(dadr, dadr + nv))
                kp += [j.kp] * nv
                kd += [j.kd] * nv
                lim += [j.torque_limit] * nv
        self.dof_pose_weight = w
        self.actuated_dofs = np.array(actuated)
        self.kp, self.kd, self.torque_limit = np.array(kp), np.array(kd), np.array(lim)
        if m.nu != len(actuated):  # one PD actuator per actuated dof (pd_actuators_xml)
            raise ValueError(f"character {self.name!r}: {m.nu} actuators for "
                             f"{len(actuated)} actuated dofs")

    @property
    def n_bodies(self) -> int:
        return len(self.body_ids)

    def bodies_in(self, group: str) -> tuple[str, ...]:
        """Body names of a group (``"feet"``, ``"hands"``, ``"knees"``)."""
        if group not in self.body_groups:
            raise ValueError(f"character {self.name!r} has no body group {group!r}; "
                             f"expected one of {sorted(self.body_groups)}")
        return self.body_groups[group]

    def pd_targets(self, qpos: np.ndarray) -> np.ndarray:
        """(N, nq) poses -> (N, A) actuator targets that hold them: per actuated joint, the
        exponential map of a ball joint's quaternion (angle in [0, pi], as MuJoCo's actuator
        length) or a hinge angle, in actuator order."""
        import torch

        from mimicgym.motion.rotations import quat_to_axis_angle

        qpos = np.atleast_2d(qpos)
        columns = []
        for j, adr in zip(self.joints, self.qpos_adr):
            if j.kind == "ball":
                columns.append(quat_to_axis_angle(torch.from_numpy(qpos[:, adr:adr + 4])).numpy())
            elif j.kind == "hinge":
                columns.append(qpos[:, adr:adr + 1])
        return np.concatenate(columns, axis=1)
