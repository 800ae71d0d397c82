"""Skeleton definitions (SMPL, DeepMimic humanoid3d) and forward kinematics."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mimicgym.motion.rotations import axis_angle_to_quat
from mimicgym.motion.skeleton import (
    HUMANOID3D_SKELETON,
    SMPL_SKELETON,
    Skeleton,
    forward_kinematics,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _chain() -> Skeleton:
    return Skeleton("chain", ("a", "b", "c"), (-1, 0, 1),
                    np.array([[0, 0, 0], [1.0, 0, 0], [0, 2.0, 0]]), ("free", "spherical", "spherical"))


def test_humanoid3d_matches_deepmimic_character_file():
    joints = json.loads((SHARED / "deepmimic" / "humanoid3d.txt").read_text())["Skeleton"]["Joints"]
    sk = HUMANOID3D_SKELETON
    assert sk.joint_names == tuple(j["Name"] for j in joints)
    assert sk.parents == tuple(j["Parent"] for j in joints)
    types = {"none": "free", "spherical": "spherical", "revolute": "revolute", "fixed": "fixed"}
    assert sk.joint_types == tuple(types[j["Type"]] for j in joints)
    expected = np.array([[j["AttachX"], j["AttachY"], j["AttachZ"]] for j in joints])
    np.testing.assert_array_equal(sk.offsets, expected)


def test_smpl_skeleton_layout_and_rest_pose():
    sk = SMPL_SKELETON
    assert sk.joint_names[:4] == ("pelvis", "left_hip", "right_hip", "spine1")
    assert sk.joint_names[-2:] == ("left_hand", "right_hand") and sk.num_joints == 24
    assert sk.parents == (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
    assert sk.is_symmetric()
    p = {n: x for n, x in zip(sk.joint_names, sk.rest_positions())}
    # Upright in the z-up world, facing +x, left at +y, feet above the floor.
    assert p["head"][2] > p["neck"][2] > p["pelvis"][2] > p["left_knee"][2] > p["left_ankle"][2] > 0
    assert p["left_hip"][1] > 0 > p["right_hip"][1]
    assert p["left_foot"][0] > p["left_ankle"][0]  # toes point forward
    assert p["left_foot"][2] == pytest.approx(0.02, abs=1e-9)
    assert 1.5 < p["head"][2] < 1.7  # an adult
    assert 0.48 < np.linalg.norm(p["left_wrist"] - p["left_shoulder"]) < 0.55


def test_mirror_indices_swap_left_and_right():
    sk = SMPL_SKELETON
    m = sk.mirror_indices()
    assert m[sk.index("left_elbow")] == sk.index("right_elbow")
    assert m[sk.index("right_foot")] == sk.index("left_foot")
    assert m[sk.index("spine2")] == sk.index("spine2")
    np.testing.assert_array_equal(m[m], np.arange(24))


def test_forward_kinematics_hand_computed():
    sk = _chain()
    # root at (1, 2, 3) turned 90 degrees about z; joint b bends 90 degrees about x.
    q = torch.stack([axis_angle_to_quat(torch.tensor([0, 0, np.pi / 2], dtype=torch.float64)),
                     axis_angle_to_quat(torch.tensor([np.pi / 2, 0, 0], dtype=torch.float64)),
                     torch.tensor([1.0, 0, 0, 0], dtype=torch.float64)])
    pos, rot = forward_kinematics(sk, q, torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    # b = root + Rz(90) (1, 0, 0) = (1, 3, 3); c = b + Rz(90) Rx(90) (0, 2, 0) = b + (0, 0, 2)
    np.testing.assert_allclose(pos.numpy(), [[1, 2, 3], [1, 3, 3], [1, 3, 5]], atol=1e-12)
    np.testing.assert_allclose(rot[2].numpy(), rot[1].numpy(), atol=1e-12)


def test_forward_kinematics_batched_equals_per_pose():
    rng = np.random.default_rng(0)
    sk = SMPL_SKELETON
    q = axis_angle_to_quat(torch.from_numpy(rng.normal(0, 0.5, (5, 7, 24, 3))))
    trans = torch.from_numpy(rng.normal(size=(5, 7, 3)))
    pos, rot = forward_kinematics(sk, q, trans)
    assert pos.shape == (5, 7, 24, 3) and rot.shape == (5, 7, 24, 3, 3)
    p1, r1 = forward_kinematics(sk, q[3, 4], trans[3, 4])
    torch.testing.assert_close(pos[3, 4], p1)
    torch.testing.assert_close(rot[3, 4], r1)
    # Bone lengths survive any pose.
    bone = (pos[..., 1:, :] - pos[..., list(sk.parents[1:]), :]).norm(dim=-1)
    torch.testing.assert_close(bone, torch.from_numpy(np.linalg.norm(sk.offsets[1:], axis=-1)).expand_as(bone))


@pytest.mark.parametrize("kwargs, message", [
    (dict(parents=(-1, 2, 0)), "parents must come before"),
    (dict(joint_names=("a", "b", "a")), "unique"),
    (dict(joint_types=("free", "ball", "spherical")), "joint types"),
    (dict(offsets=np.zeros((2, 3))), "offsets"),
    (dict(upright=np.array([1.0, 1.0, 0, 0])), "upright"),
])
def test_skeleton_validation(kwargs, message):
    base = dict(name="x", joint_names=("a", "b", "c"), parents=(-1, 0, 1), offsets=np.zeros((3, 3)),
                joint_types=("free", "spherical", "spherical"))
    with pytest.raises(ValueError, match=message):
        Skeleton(**{**base, **kwargs})


def test_unknown_joint_name_lists_joints():
    with pytest.raises(KeyError, match="left_hip"):
        HUMANOID3D_SKELETON.index("left_thigh")
