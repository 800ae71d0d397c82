"""MuJoCo humanoid from the body model: MJCF builder, pose -> qpos, kinematic clip playback.

``build_humanoid_mjcf(bm, betas)`` writes a physically simulated humanoid whose bodies are
the 24 SMPL joints (body names = SMPL joint names), placed at the shaped rest joints:

* Frames follow the project's convention (:mod:`mimicgym.motion.skeleton`): body frames are
  the body model's own (SMPL: x left, y up, z forward) and the root's rotation maps that
  frame into MuJoCo's z-up world (x forward, y left); at ``qpos0`` the root holds the
  upright rotation C (:func:`model_to_world_rotation`) and the feet rest on the ground
  plane z = 0. So qpos takes a clip's root position, root quaternion and local joint
  quaternions as they are, and SMPL's axis-angle body pose converts joint by joint.
* Joints: a free root joint ``root`` (none with ``root="fixed"``), then one ball joint per
  SMPL joint named after it, or three hinges ``<joint>_x``, ``<joint>_y``, ``<joint>_z``
  about the body-frame axes, composed ``R = Rx Ry Rz`` (``joint_type="hinge"``).
* Limits (degrees, SMPL axes: x lateral, y vertical, z forward): :data:`BALL_LIMIT_DEG`
  is each ball joint's cone (MuJoCo limits a ball joint by one rotation angle);
  :data:`HINGE_LIMITS_DEG` gives per-axis ranges for the left side, mirrored for the right.
* Masses: density (1000 kg/m^3) x the volume of the mesh part each joint dominates by
  skinning weight (:func:`part_volumes`; they sum to the mesh volume), inertia from the geom.
* Geoms: vertices dominated by a joint's skinning weight give a capsule
  from the joint to its child, its cross-section the area of theirs around that bone; bodies with
  no child or several (pelvis, chest, head, hands) get a capsule along the principal axis of
  their vertices; feet (ankle, toe) get boxes bounding their vertices, with touch sensors
  ``<joint>_touch`` on sites of the same boxes grown by 5 mm.
* Actuators: PD position servos, one per rotational degree of freedom (a ball joint gets three,
  geared on its x, y, z rotation-vector components), gains from SMPLSim/ProtoMotions
  (:data:`PD_GAINS`), torque limit 500 N m. Body geoms collide with the floor only.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from mimicgym.motion.body_geometry import geom_specs, model_to_world_rotation, parents_of, part_volumes, rest_shape
from mimicgym.motion.body_model import SMPL_JOINT_NAMES
from mimicgym.motion.rotations import axis_angle_to_quat, matrix_to_euler, matrix_to_quat, quat_to_matrix

__all__ = [
    "BALL_LIMIT_DEG",
    "HINGE_LIMITS_DEG",
    "PD_GAINS",
    "TORQUE_LIMIT",
    "build_humanoid_mjcf",
    "pose_to_qpos",
    "local_quats_to_qpos",
    "body_positions",
    "play_clip_kinematic",
]


# Cone half-angle of each ball joint (deg): the largest rotation in the joint's range of motion.
BALL_LIMIT_DEG = {
    "hip": 120, "knee": 145, "ankle": 60, "foot": 60, "spine1": 45, "spine2": 45, "spine3": 45,
    "neck": 60, "head": 60, "collar": 30, "shoulder": 170, "elbow": 150, "wrist": 90, "hand": 30,
}  # fmt: skip
# Hinge ranges (deg) of the left side about SMPL's x (lateral), y (vertical), z (forward)
# axes; the right side mirrors y and z. Textbook ranges of motion: hip flexion 120 (-x) /
# extension 30, abduction 45 (+z); knee flexion 0..145 (+x); ankle plantarflexion 50 (+x) /
# dorsiflexion 20; shoulder flexion 130 (-y), abduction up to horizontal-plus-90 (+z);
# elbow flexion 0..150 (-y, SMPLify's sign); spine flexion 45 per segment (+x).
HINGE_LIMITS_DEG = {
    "hip": ((-120, 30), (-45, 45), (-30, 45)),
    "knee": ((0, 145), (-10, 10), (-10, 10)),
    "ankle": ((-20, 50), (-30, 30), (-25, 25)),
    "foot": ((-60, 30), (-10, 10), (-10, 10)),
    "spine1": ((-20, 45), (-30, 30), (-25, 25)),
    "spine2": ((-20, 45), (-30, 30), (-25, 25)),
    "spine3": ((-20, 45), (-30, 30), (-25, 25)),
    "neck": ((-40, 50), (-60, 60), (-30, 30)),
    "head": ((-40, 50), (-45, 45), (-30, 30)),
    "collar": ((-20, 20), (-20, 20), (-20, 20)),
    "shoulder": ((-90, 90), (-130, 45), (-90, 90)),
    "elbow": ((-90, 90), (-150, 0), (-10, 10)),
    "wrist": ((-45, 45), (-80, 80), (-80, 80)),
    "hand": ((-30, 30), (-30, 30), (-30, 30)),
}
_MIRROR = np.array([1.0, -1.0, -1.0])  # reflecting x -> -x flips the y and z rotation components
# (kp [N m / rad], kd [N m s / rad]) per joint group, from SMPLSim/ProtoMotions.
PD_GAINS = {
    "hip": (800, 80), "knee": (800, 80), "ankle": (800, 80), "foot": (500, 50),
    "spine1": (1000, 100), "spine2": (1000, 100), "spine3": (1000, 100), "neck": (500, 50), "head": (500, 50),
    "collar": (500, 50), "shoulder": (500, 50), "elbow": (500, 50), "wrist": (300, 30), "hand": (300, 30),
}  # fmt: skip
TORQUE_LIMIT = 500.0
_AXES = "xyz"


def _group(name: str) -> str:
    return name.removeprefix("left_").removeprefix("right_")


def _fmt(x) -> str:
    return " ".join(f"{float(v):.12g}" for v in np.ravel(x))


def build_humanoid_mjcf(
    bm,
    betas: Tensor | None = None,
    *,
    joint_type: str = "ball",
    root: str = "free",
    density: float = 1000.0,
    timestep: float = 0.002,
    armature: float = 0.02,
) -> str:
    """MJCF text of a simulated humanoid shaped by ``betas`` (see the module docstring)."""
    if joint_type not in ("ball", "hinge"):
        raise ValueError(f"joint_type must be 'ball' or 'hinge', got {joint_type!r}")
    if root not in ("free", "fixed"):
        raise ValueError(f"root must be 'free' or 'fixed', got {root!r}")
    if not density > 0 or not timestep > 0 or not armature >= 0:
        raise ValueError(f"need density > 0, timestep > 0, armature >= 0; got {density}, {timestep}, {armature}")
    parents = parents_of(bm)
    verts_m, joints_m = rest_shape(bm, betas)
    C = model_to_world_rotation(joints_m)
    # Size the geoms upright in the world, then express them in the (model-frame) body frames.
    verts, joints = verts_m @ C.T, joints_m @ C.T
    ground = -verts[:, 2].min()  # lift so the lowest vertex touches z = 0
    weights = np.asarray(bm.weights.detach().double().cpu())
    geoms = geom_specs(verts, joints, weights, parents)
    faces = np.asarray(bm.faces.cpu(), dtype=np.int64)
    masses = density * part_volumes(verts, faces, weights.argmax(1))
    if (masses <= 0).any():
        bad = [SMPL_JOINT_NAMES[k] for k in np.flatnonzero(masses <= 0)]
        raise ValueError(f"mesh parts {bad} enclose no volume; cannot give their bodies a mass")
    upright = matrix_to_quat(torch.as_tensor(C)).numpy()

    lines: list[str] = []
    actuators: list[str] = []
    sensors: list[str] = []

    def body(i: int, depth: int) -> None:
        name = SMPL_JOINT_NAMES[i]
        pad = "  " * depth
        if parents[i] < 0:
            # Standing at the world origin, like Skeleton.rest_positions.
            lines.append(f'{pad}<body name="{name}" pos="0 0 {joints[i][2] + ground:.12g}" quat="{_fmt(upright)}">')
            if root == "free":
                lines.append(f'{pad}  <freejoint name="root"/>')
        else:
            lines.append(f'{pad}<body name="{name}" pos="{_fmt(joints_m[i] - joints_m[parents[i]])}">')
            group = _group(name)
            kp, kd = PD_GAINS[group]
            common = f'kp="{kp}" kv="{kd}" forcerange="{-TORQUE_LIMIT:g} {TORQUE_LIMIT:g}"'
            if joint_type == "ball":
                limit = np.deg2rad(BALL_LIMIT_DEG[group])
                lines.append(f'{pad}  <joint name="{name}" type="ball" range="0 {limit:.6g}"/>')
                for k, axis in enumerate(_AXES):
                    actuators.append(f'    <position name="{name}_{axis}" joint="{name}" '
                                     f'gear="{_fmt(np.eye(3)[k])}" {common}/>')
            else:
                mirror = _MIRROR if name.startswith("right_") else np.ones(3)
                for k, axis in enumerate(_AXES):
                    lo, hi = sorted(mirror[k] * np.deg2rad(HINGE_LIMITS_DEG[group][k]))
                    lines.append(f'{pad}  <joint name="{name}_{axis}" type="hinge" axis="{_fmt(np.eye(3)[k])}" '
                                 f'range="{lo:.6g} {hi:.6g}"/>')
                    actuators.append(f'    <position name="{name}_{axis}" joint="{name}_{axis}" '
                                     f'ctrlrange="{lo:.6g} {hi:.6g}" {common}/>')
        g = geoms[i]
        if g["type"] == "box":
            pos, size = C.T @ (g["pos"] - joints[i]), np.abs(C.T) @ g["size"]
            lines.append(f'{pad}  <geom name="{name}" type="box" pos="{_fmt(pos)}" size="{_fmt(size)}" '
                         f'mass="{masses[i]:.6g}"/>')
            lines.append(f'{pad}  <site name="{name}_touch" type="box" pos="{_fmt(pos)}" size="{_fmt(size + 0.005)}"/>')
            sensors.append(f'    <touch name="{name}_touch" site="{name}_touch"/>')
        else:
            ends = (g["fromto"].reshape(2, 3) - joints[i]) @ C  # world -> model frame: C^T x
            lines.append(f'{pad}  <geom name="{name}" type="capsule" fromto="{_fmt(ends)}" '
                         f'size="{_fmt(g["size"])}" mass="{masses[i]:.6g}"/>')
        for c in range(24):
            if parents[c] == i:
                body(c, depth + 1)
        lines.append(f"{pad}</body>")

    header = f"""<mujoco model="smpl_humanoid">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{timestep:g}" integrator="implicitfast"/>
  <custom>
    <!-- world = C @ body-model coordinates; the rest pelvis J0 in model coordinates. -->
    <numeric name="model_to_world" data="{_fmt(C.reshape(-1))}"/>
    <numeric name="rest_pelvis" data="{_fmt(joints_m[0])}"/>
  </custom>
  <default>
    <joint armature="{armature:g}"/>
    <!-- Body geoms touch the floor only (contype 2 / conaffinity 1 against the floor's 1 / 2). -->
    <geom contype="2" conaffinity="1" condim="3" friction="1 0.005 0.0001" rgba="0.8 0.6 0.4 1"/>
    <site rgba="0 0 0 0"/>
  </default>
  <worldbody>
    <light name="sun" pos="0 0 4" dir="0 0 -1" directional="true"/>
    <geom name="floor" type="plane" size="0 0 0.05" contype="1" conaffinity="2" rgba="0.5 0.5 0.5 1"/>"""
    body(0, 2)
    footer = ["  </worldbody>", "  <actuator>", *actuators, "  </actuator>", "  <sensor>", *sensors, "  </sensor>",
              "</mujoco>"]
    return "\n".join([header, *lines, *footer])


# ---------------------------------------------------------------------------- poses -> qpos
def _numeric(model, name: str) -> np.ndarray:
    import mujoco

    idx = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_NUMERIC, name)
    if idx < 0:
        raise ValueError(f"MuJoCo model lacks custom numeric {name!r}: was it built by build_humanoid_mjcf?")
    start, size = model.numeric_adr[idx], model.numeric_size[idx]
    return np.array(model.numeric_data[start : start + size])


def _joint_adr(model, name: str) -> int:
    import mujoco

    jid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
    return -1 if jid < 0 else int(model.jnt_qposadr[jid])


def local_quats_to_qpos(model, root_pos: np.ndarray, local_quats: Tensor) -> np.ndarray:
    """Root world positions (T, 3) and local joint quaternions (T, 24, 4) -> qpos (T, nq).

    The quaternions follow :mod:`mimicgym.motion.skeleton`: joint 0's is the root's world
    orientation, the others rotate each body in its parent's (body-model) frame.
    """
    local_quats = torch.as_tensor(np.asarray(local_quats), dtype=torch.float64)
    root_pos = np.asarray(root_pos, dtype=np.float64)
    T = local_quats.shape[0]
    if local_quats.shape != (T, 24, 4) or root_pos.shape != (T, 3):
        raise ValueError(f"need local_quats (T, 24, 4) and root_pos (T, 3), "
                         f"got {tuple(local_quats.shape)} and {root_pos.shape}")
    quats = local_quats.numpy()
    qpos = np.tile(model.qpos0, (T, 1))
    adr = _joint_adr(model, "root")
    if adr >= 0:
        qpos[:, adr : adr + 3] = root_pos
        qpos[:, adr + 3 : adr + 7] = quats[:, 0]
    euler = None
    for i, name in enumerate(SMPL_JOINT_NAMES[1:], start=1):
        adr = _joint_adr(model, name)
        if adr >= 0:
            qpos[:, adr : adr + 4] = quats[:, i]
            continue
        if euler is None:  # hinges compose as Rx Ry Rz: intrinsic XYZ Euler angles
            euler = matrix_to_euler(quat_to_matrix(local_quats), "XYZ").numpy()
        for k, axis in enumerate(_AXES):
            adr = _joint_adr(model, f"{name}_{axis}")
            if adr < 0:
                raise ValueError(f"MuJoCo model has neither joint {name!r} nor {name}_{axis!r}")
            qpos[:, adr] = euler[:, i, k]
    return qpos


def pose_to_qpos(model, global_orient: Tensor, body_pose: Tensor, transl: Tensor) -> np.ndarray:
    """Body-model parameters (T, 3), (T, 69), (T, 3) -> qpos (T, nq).

    MuJoCo's bodies then sit at ``C @ bm(...).joints`` (world = C x model coordinates, with
    C and the rest pelvis stored in the model by :func:`build_humanoid_mjcf`).
    """
    C = torch.as_tensor(_numeric(model, "model_to_world").reshape(3, 3))
    rest_pelvis = torch.as_tensor(_numeric(model, "rest_pelvis"))
    pose = torch.cat([torch.as_tensor(global_orient), torch.as_tensor(body_pose)], dim=-1).double()
    if pose.ndim != 2 or pose.shape[1] != 72:
        raise ValueError(f"need global_orient (T, 3) and body_pose (T, 69), got a pose of shape {tuple(pose.shape)}")
    quats = axis_angle_to_quat(pose.reshape(-1, 24, 3))
    quats[:, 0] = matrix_to_quat(C @ quat_to_matrix(quats[:, 0]))  # root: model frame -> world
    root = (torch.as_tensor(transl).double() + rest_pelvis) @ C.T
    return local_quats_to_qpos(model, root.numpy(), quats)


def body_positions(model, qpos: np.ndarray) -> np.ndarray:
    """``mj_kinematics`` for each row of qpos (T, nq): world positions (T, 24, 3) of the SMPL bodies."""
    import mujoco

    ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, n) for n in SMPL_JOINT_NAMES]
    if min(ids) < 0:
        raise ValueError("MuJoCo model lacks some SMPL body names; was it built by build_humanoid_mjcf?")
    data = mujoco.MjData(model)
    out = np.empty((len(qpos), 24, 3))
    for t, q in enumerate(np.asarray(qpos)):
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        out[t] = data.xpos[ids]
    return out


def play_clip_kinematic(model, clip) -> np.ndarray:
    """Set qpos from each frame of a clip on the SMPL skeleton and run ``mj_kinematics``:
    world positions (T, 24, 3) of the bodies, in SMPL joint order.
    """
    names = tuple(clip.skeleton.joint_names)
    if names != SMPL_JOINT_NAMES:
        raise ValueError(f"clip {clip.name!r} is on skeleton {clip.skeleton.name!r}; retarget it to SMPL first")
    return body_positions(model, local_quats_to_qpos(model, np.asarray(clip.root_trans), clip.rotations))
