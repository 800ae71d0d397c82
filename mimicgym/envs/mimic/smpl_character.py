"""The SMPL humanoid as an imitation character, from :func:`mimicgym.motion.build_humanoid_mjcf`.

The builder's body tree (24 bodies named after the SMPL joints, a free root joint ``root`` on
``pelvis``, 23 ball joints, shape-dependent offsets, masses and geoms) is taken as it is and
put into the shared scene (:func:`~mimicgym.envs.mimic.characters.scene_mjcf`), with the same
control scheme as humanoid3d so that the env has one path:

* PD by position actuators with the builder's own
  :data:`~mimicgym.motion.humanoid.PD_GAINS` (SMPLSim/ProtoMotions: hip, knee, ankle 800/80;
  toe 500/50; spine1-3 1000/100; neck, head 500/50; collar, shoulder, elbow 500/50; wrist,
  hand 300/30) and :data:`~mimicgym.motion.humanoid.TORQUE_LIMIT` (500 N m) as every
  actuator's force range, written by :func:`~mimicgym.envs.mimic.characters.pd_actuators_xml`
  (three per ball joint; the builder's own servos are dropped).
* Contacts: geoms collide with the floor only (the builder's choice and DeepMimic's), friction
  from the builder; the builder's touch sensors are dropped (the env reads contacts directly);
  ball-joint cone limits and armature stay.

Pose-reward weights carry DeepMimic's humanoid3d weights over by anatomy: a joint with a
humanoid3d counterpart keeps its weight (pelvis 1, hip 0.5, knee 0.3, ankle 0.2, shoulder
0.3, elbow 0.2); the spine (chest 0.5) and neck (0.3) weights are split evenly over SMPL's
three spine and two neck joints; the extra distal joints (toe, collar, wrist 0.1; hand 0.05)
get small weights so that toe and finger-base noise barely moves the pose term.
End effectors are the ankles and wrists -- the same anatomical points as humanoid3d's
(DeepMimic's), so the end-effector scale (40) means the same on both bodies.

The heading frame (:func:`~mimicgym.envs.mimic.observation.heading_matrices`) follows the root's
local x axis, which for SMPL is the pelvis' left-right axis rather than its forward axis: a
constant 90-degree yaw of the frame, harmless because observations and end-effector errors only
need a frame that turns with the body (and the lateral pelvis axis stays level when bending).
"""

from __future__ import annotations

import copy
import functools
import xml.etree.ElementTree as ET

import mujoco
import numpy as np

from mimicgym.envs.mimic.characters import (
    GHOST_RGBA,
    SIM_TIMESTEP,
    Character,
    JointSpec,
    pd_actuators_xml,
    scene_mjcf,
    tracking_camera_xml,
)

# Pose weight per SMPL joint group (left/right share a group); see the module docstring.
SMPL_POSE_WEIGHTS: dict[str, float] = {
    "pelvis": 1.0, "hip": 0.5, "knee": 0.3, "ankle": 0.2, "foot": 0.1,
    "spine1": 0.5 / 3, "spine2": 0.5 / 3, "spine3": 0.5 / 3, "neck": 0.15, "head": 0.15,
    "collar": 0.1, "shoulder": 0.3, "elbow": 0.2, "wrist": 0.1, "hand": 0.05,
}  # fmt: skip
SMPL_END_EFFECTORS = ("left_ankle", "right_ankle", "left_wrist", "right_wrist")
SMPL_BODY_GROUPS: dict[str, tuple[str, ...]] = {
    "feet": ("left_ankle", "right_ankle", "left_foot", "right_foot"),
    "hands": ("left_wrist", "right_wrist", "left_hand", "right_hand", "left_elbow", "right_elbow"),
    "knees": ("left_knee", "right_knee"),
}
_RGBA = "0.8 0.6 0.4 1"


def _group(name: str) -> str:
    return name.removeprefix("left_").removeprefix("right_")


@functools.cache
def _body_model():
    from mimicgym.motion.body_model import BodyModel

    return BodyModel.default()


def _check_betas(betas) -> np.ndarray | None:
    """``None``, or the betas as a float array padded with zeros to the body model's count."""
    if betas is None:
        return None
    b = np.asarray(betas, dtype=np.float64)
    n = int(_body_model().shapedirs.shape[-1])
    if b.ndim != 1 or len(b) > n or not np.isfinite(b).all():
        raise ValueError(f"betas must be a finite 1-D array of at most {n} numbers, got {betas!r}")
    return np.pad(b, (0, n - len(b)))


def _betas_tensor(betas: np.ndarray | None):
    import torch

    bm = _body_model()
    return None if betas is None else torch.as_tensor(betas, dtype=bm.shapedirs.dtype)[None]


def _builder_tree(betas: np.ndarray | None) -> ET.Element:
    """The builder's MJCF (ball joints, free root) parsed as an element tree."""
    from mimicgym.motion.humanoid import build_humanoid_mjcf

    return ET.fromstring(build_humanoid_mjcf(_body_model(), _betas_tensor(betas),
                                             joint_type="ball", root="free",
                                             timestep=SIM_TIMESTEP))


def _bodies_xml(tree: ET.Element, prefix: str, ghost: bool) -> str:
    """The builder's body tree as bodies for the shared scene (names prefixed)."""
    pelvis = tree.find("worldbody/body")
    joint_default = tree.find("default/joint").attrib
    geom_default = tree.find("default/geom").attrib
    for body in pelvis.iter("body"):
        for site in body.findall("site"):
            body.remove(site)
    for el in pelvis.iter():
        if el.tag == "joint":  # ball joints, driven by pd_actuators_xml's actuators
            el.set("armature", joint_default["armature"])
        elif el.tag == "geom":
            el.set("friction", geom_default["friction"])
            el.set("condim", geom_default["condim"])
            el.set("contype", "0" if ghost else "1")
            el.set("conaffinity", "0")
            el.set("rgba", GHOST_RGBA if ghost else _RGBA)
        if el.get("name") is not None:
            el.set("name", prefix + el.get("name"))
    if not ghost:
        upright = np.empty(9)
        mujoco.mju_quat2Mat(upright, np.array(pelvis.get("quat").split(), dtype=np.float64))
        pelvis.insert(1, ET.fromstring(tracking_camera_xml(upright.reshape(3, 3))))
    return ET.tostring(pelvis, encoding="unicode")


def smpl_joints(tree: ET.Element) -> tuple[JointSpec, ...]:
    """Joint specs (SMPL joint order, pelvis first) with the builder's offsets and gains."""
    from mimicgym.motion.body_model import SMPL_JOINT_NAMES
    from mimicgym.motion.humanoid import PD_GAINS, TORQUE_LIMIT

    parent_of = {}
    bodies = {}
    for body in tree.find("worldbody").iter("body"):
        bodies[body.get("name")] = body
        for child in body.findall("body"):
            parent_of[child.get("name")] = body.get("name")
    specs = []
    for name in SMPL_JOINT_NAMES:
        pos = tuple(float(v) for v in bodies[name].get("pos").split())
        if name == "pelvis":
            specs.append(JointSpec(name, None, "free", pos, pose_weight=SMPL_POSE_WEIGHTS[name]))
            continue
        kp, kd = PD_GAINS[_group(name)]
        specs.append(JointSpec(name, parent_of[name], "ball", pos, kp, kd, TORQUE_LIMIT,
                               SMPL_POSE_WEIGHTS[_group(name)],
                               end_effector=name in SMPL_END_EFFECTORS))
    return tuple(specs)


def make_smpl_character(betas=None, ghost: bool = False) -> Character:
    """The SMPL humanoid shaped by ``betas`` (default body when ``None``), PD by actuators;
    ``ghost`` adds a translucent, contact-free copy named ``ghost_*`` for rendering."""
    from mimicgym.motion.body_geometry import body_skeleton

    betas = _check_betas(betas)
    tree = _builder_tree(betas)
    joints = smpl_joints(tree)  # before _bodies_xml edits the tree in place
    ghost_xml = "\n" + _bodies_xml(copy.deepcopy(tree), "ghost_", ghost=True) if ghost else ""
    bodies = _bodies_xml(tree, "", ghost=False) + ghost_xml
    model = mujoco.MjModel.from_xml_string(scene_mjcf("smpl_humanoid", bodies,
                                                      pd_actuators_xml(joints)))
    skeleton = body_skeleton(_body_model(), _betas_tensor(betas))
    return Character("smpl", model, joints, skeleton, SMPL_BODY_GROUPS, betas)
