"""MuJoCo humanoid built from the body model: compiles, masses, FK against the body model,
kinematic clip playback, and a PD-held T-pose under gravity."""

import mujoco
import numpy as np
import pytest
import torch

from mimicgym.motion.body_geometry import body_skeleton, part_volumes
from mimicgym.motion.body_model import SMPL_JOINT_NAMES, BodyModel
from mimicgym.motion.clip import MotionClip
from mimicgym.motion.humanoid import body_positions, build_humanoid_mjcf, play_clip_kinematic, pose_to_qpos
from mimicgym.motion.rotations import axis_angle_to_quat

GRAVITY = 9.81


@pytest.fixture(scope="module")
def bm():
    return BodyModel.default(dtype=torch.float64)


@pytest.fixture(scope="module")
def models(bm):
    return {jt: mujoco.MjModel.from_xml_string(build_humanoid_mjcf(bm, joint_type=jt)) for jt in ("ball", "hinge")}


def _mesh_volume(verts, faces):
    return np.einsum("ij,ij->i", verts[faces[:, 0]], np.cross(verts[faces[:, 1]], verts[faces[:, 2]])).sum() / 6.0


def _random_pose(T, seed, scale=0.5):
    g = torch.Generator().manual_seed(seed)
    go = torch.randn(T, 3, generator=g, dtype=torch.float64)
    bp = scale * torch.randn(T, 69, generator=g, dtype=torch.float64)
    tr = torch.randn(T, 3, generator=g, dtype=torch.float64)
    return go, bp, tr


def test_structure_names_and_sizes(models):
    ball, hinge = models["ball"], models["hinge"]
    for m in models.values():
        names = [m.body(i).name for i in range(1, m.nbody)]
        assert sorted(names) == sorted(SMPL_JOINT_NAMES)
        assert m.nu == 69 and m.nsensor == 4  # 23 joints x 3 DoF servos; 4 foot touch sensors
        assert np.allclose(m.actuator_forcerange, [-500, 500])
        assert m.joint("root").type == mujoco.mjtJoint.mjJNT_FREE
    assert ball.nq == 7 + 23 * 4 and hinge.nq == 7 + 23 * 3
    # PD gains from SMPLSim: knee 800/80, spine 1000/100, wrist 300/30.
    for m, act in ((ball, "left_knee_x"), (hinge, "left_knee_x")):
        assert m.actuator(act).gainprm[0] == 800 and m.actuator(act).biasprm[2] == -80
    assert ball.actuator("spine2_y").gainprm[0] == 1000 and ball.actuator("right_wrist_z").gainprm[0] == 300
    # Limits: knee cone 145 deg; hinge knee flexion 0..145 deg about x; elbows mirrored.
    assert np.isclose(ball.joint("left_knee").range[1], np.deg2rad(145))
    assert np.allclose(hinge.joint("left_knee_x").range, np.deg2rad([0, 145]))
    assert np.allclose(hinge.joint("left_elbow_y").range, np.deg2rad([-150, 0]))
    assert np.allclose(hinge.joint("right_elbow_y").range, np.deg2rad([0, 150]))


def test_masses_are_mesh_volume_times_density(bm, models):
    m = models["ball"]
    verts = bm().vertices[0].numpy()
    total = 1000.0 * _mesh_volume(verts, bm.faces.numpy())
    assert np.isclose(m.body_mass.sum(), total, rtol=1e-5)
    assert 55.0 < total < 90.0  # an adult of the default model's 1.8 m
    mass = {m.body(i).name: m.body_mass[i] for i in range(1, m.nbody)}
    # Segment fractions close to anthropometric tables (Winter: thigh 10 %, shank 4.65 %, head+neck 8.1 %).
    assert 0.06 < mass["left_hip"] / total < 0.15 and 0.025 < mass["left_knee"] / total < 0.07
    assert 0.05 < (mass["head"] + mass["neck"]) / total < 0.12
    assert np.isclose(mass["left_hip"], mass["right_hip"], rtol=0.02)
    # A taller shape (beta 0 = 2) is heavier, by its mesh volume.
    betas = torch.tensor([[2.0]], dtype=torch.float64)
    tall = mujoco.MjModel.from_xml_string(build_humanoid_mjcf(bm, betas=betas))
    tall_total = 1000.0 * _mesh_volume(bm(betas=betas).vertices[0].numpy(), bm.faces.numpy())
    assert np.isclose(tall.body_mass.sum(), tall_total, rtol=1e-5) and tall_total > 1.2 * total


def test_part_volumes_of_a_split_box():
    # Closed 2 x 1 x 1 box, outward triangles; vertices with x < 1 belong to part 0.
    xs, ys, zs = np.meshgrid([0.0, 1.0, 2.0], [0.0, 1.0], [0.0, 1.0], indexing="ij")
    verts = np.stack([xs.ravel(), ys.ravel(), zs.ravel()], 1)
    idx = {tuple(v): i for i, v in enumerate(verts)}

    def quad(a, b, c, d):  # counter-clockwise seen from outside
        return [[idx[a], idx[b], idx[c]], [idx[a], idx[c], idx[d]]]

    faces = []
    for x0 in (0.0, 1.0):
        x1 = x0 + 1
        faces += quad((x0, 0, 0), (x1, 0, 0), (x1, 0, 1), (x0, 0, 1))  # y = 0
        faces += quad((x0, 1, 0), (x0, 1, 1), (x1, 1, 1), (x1, 1, 0))  # y = 1
        faces += quad((x0, 0, 0), (x0, 1, 0), (x1, 1, 0), (x1, 0, 0))  # z = 0
        faces += quad((x0, 0, 1), (x1, 0, 1), (x1, 1, 1), (x0, 1, 1))  # z = 1
    faces += quad((0, 0, 0), (0, 0, 1), (0, 1, 1), (0, 1, 0))  # x = 0
    faces += quad((2, 0, 0), (2, 1, 0), (2, 1, 1), (2, 0, 1))  # x = 2
    faces = np.array(faces)
    owner = (verts[:, 0] > 0.5).astype(np.int64) + (verts[:, 0] > 1.5)  # 0 | 1 | 2 at x = 0, 1, 2
    vols = part_volumes(verts, faces, owner, num_parts=3)
    assert np.isclose(vols.sum(), 2.0) and _mesh_volume(verts, faces) == pytest.approx(2.0)
    assert np.all(vols > 0)
    with pytest.raises(ValueError, match="not closed"):
        part_volumes(verts, faces[:-1], owner, num_parts=3)


@pytest.mark.parametrize("joint_type", ["ball", "hinge"])
def test_forward_kinematics_matches_body_model(bm, models, joint_type):
    m = models[joint_type]
    go, bp, tr = _random_pose(16, seed=3)
    qpos = pose_to_qpos(m, go, bp, tr)
    C = m.numeric("model_to_world").data.reshape(3, 3)
    ref = bm(global_orient=go, body_pose=bp, transl=tr).joints.numpy() @ C.T
    pos = body_positions(m, qpos)
    assert np.abs(pos - ref).max() < 1e-3  # within 1 mm (it is exact up to rounding)
    assert np.abs(pos - ref).max() < 1e-8  # MJCF numbers carry 12 digits


def test_rest_pose_stands_on_the_ground(models):
    for m in models.values():
        d = mujoco.MjData(m)
        mujoco.mj_kinematics(m, d)
        ankle = d.xpos[m.body("left_ankle").id]
        head = d.xpos[m.body("head").id]
        assert head[2] > 1.4 and 0.03 < ankle[2] < 0.15  # upright, z up
        left_hip = d.xpos[m.body("left_hip").id]
        assert left_hip[1] > d.xpos[m.body("right_hip").id][1]  # +y is the body's left
        toe = d.xpos[m.body("left_foot").id]
        assert toe[0] > ankle[0]  # facing +x
        mujoco.mj_forward(m, d)
        boxes = [g for g in range(m.ngeom) if m.geom_type[g] == mujoco.mjtGeom.mjGEOM_BOX]
        half_height = [np.abs(d.geom_xmat[g].reshape(3, 3)[2]) @ m.geom_size[g] for g in boxes]
        assert min(d.geom_xpos[boxes, 2] - half_height) == pytest.approx(0.0, abs=1e-9)  # soles on z = 0


def test_clip_plays_back_kinematically(bm, models):
    skeleton = body_skeleton(bm)
    T = 12
    go, bp, _ = _random_pose(T, seed=5, scale=0.3)
    quats = axis_angle_to_quat(torch.cat([go, bp], -1).reshape(T, 24, 3)).numpy()
    root = np.stack([np.linspace(0, 1, T), np.zeros(T), np.full(T, skeleton.root_height)], 1)
    clip = MotionClip(skeleton=skeleton, fps=30, root_trans=root, rotations=quats, name="random")
    ref = clip.joint_positions()
    for m in models.values():
        pos = play_clip_kinematic(m, clip)
        assert np.abs(pos - ref).max() < 1e-3


def test_clip_rest_pose_matches_skeleton_rest(bm, models):
    skeleton = body_skeleton(bm)
    d = mujoco.MjData(models["ball"])
    mujoco.mj_kinematics(models["ball"], d)
    ids = [models["ball"].body(n).id for n in SMPL_JOINT_NAMES]
    assert np.abs(d.xpos[ids] - skeleton.rest_positions()).max() < 1e-6


@pytest.mark.parametrize("joint_type", ["ball", "hinge"])
def test_pd_servos_hold_the_t_pose_under_gravity(bm, joint_type):
    m = mujoco.MjModel.from_xml_string(build_humanoid_mjcf(bm, joint_type=joint_type, root="fixed"))
    d = mujoco.MjData(m)
    for _ in range(500):  # 1 s with zero targets = the T-pose
        mujoco.mj_step(m, d)
    assert np.isfinite(d.qpos).all() and np.isfinite(d.qvel).all()
    if joint_type == "ball":  # rotation angle of each ball joint from its quaternion
        quats = d.qpos.reshape(-1, 4)
        dev = 2.0 * np.arctan2(np.linalg.norm(quats[:, 1:], axis=1), np.abs(quats[:, 0]))
    else:
        dev = np.abs(d.qpos)
    assert dev.max() < 0.05 and np.abs(d.qvel).max() < 1e-2  # sags under 3 degrees, settled


def test_standing_feet_carry_the_weight(models):
    m = models["ball"]
    d = mujoco.MjData(m)
    for _ in range(250):
        mujoco.mj_step(m, d)
    assert np.isfinite(d.qpos).all()
    assert d.sensordata.sum() == pytest.approx(m.body_mass.sum() * GRAVITY, rel=0.05)
    assert abs(d.qpos[2] - m.qpos0[2]) < 0.02  # still standing at its rest height


def test_bad_arguments(bm):
    with pytest.raises(ValueError, match="joint_type"):
        build_humanoid_mjcf(bm, joint_type="slider")
    with pytest.raises(ValueError, match="root"):
        build_humanoid_mjcf(bm, root="welded")
    with pytest.raises(ValueError, match="betas"):
        build_humanoid_mjcf(bm, betas=torch.tensor([[float("nan")]]))
    m = mujoco.MjModel.from_xml_string("<mujoco><worldbody><body><freejoint/><geom size='1'/></body>"
                                       "</worldbody></mujoco>")
    with pytest.raises(ValueError, match="model_to_world"):
        pose_to_qpos(m, torch.zeros(1, 3), torch.zeros(1, 69), torch.zeros(1, 3))
