"""Rotation conversions: textbook values, float64 round trips, gradients at zero, slerp, Euler."""

import math

import pytest
import torch

from mimicgym.motion import rotations as rot

F64 = torch.float64


def _random_axis_angle(n: int, seed: int, max_angle: float = 3.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    axis = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=F64), dim=-1)
    angle = torch.rand(n, 1, generator=g, dtype=F64) * max_angle
    return axis * angle


def test_quarter_turns_match_textbook_matrices():
    half_pi = math.pi / 2
    aa = torch.tensor([[half_pi, 0, 0], [0, half_pi, 0], [0, 0, half_pi]], dtype=F64)
    expected = torch.tensor([
        [[1, 0, 0], [0, 0, -1], [0, 1, 0]],  # Rx(90): y -> z
        [[0, 0, 1], [0, 1, 0], [-1, 0, 0]],  # Ry(90): z -> x
        [[0, -1, 0], [1, 0, 0], [0, 0, 1]],  # Rz(90): x -> y
    ], dtype=F64)
    torch.testing.assert_close(rot.axis_angle_to_matrix(aa), expected, atol=1e-15, rtol=0)
    q = rot.axis_angle_to_quat(aa)
    s = math.sqrt(0.5)
    torch.testing.assert_close(q, torch.tensor([[s, s, 0, 0], [s, 0, s, 0], [s, 0, 0, s]], dtype=F64))
    torch.testing.assert_close(rot.quat_to_matrix(q), expected, atol=1e-15, rtol=0)
    # Rz(90) takes x to y.
    x = torch.tensor([1.0, 0, 0], dtype=F64)
    torch.testing.assert_close(rot.quat_apply(q[2], x), torch.tensor([0, 1.0, 0], dtype=F64))
    torch.testing.assert_close(rot.euler_to_matrix(torch.full((3,), half_pi, dtype=F64), "XYZ"),
                               expected[0] @ expected[1] @ expected[2],
                               atol=1e-15, rtol=0)


def test_round_trips_float64():
    aa = _random_axis_angle(2000, seed=0)
    R = rot.axis_angle_to_matrix(aa)
    eye = torch.eye(3, dtype=F64)
    torch.testing.assert_close(R @ R.transpose(-1, -2), eye.expand_as(R), atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(2000, dtype=F64), atol=1e-12, rtol=0)
    torch.testing.assert_close(rot.matrix_to_axis_angle(R), aa, atol=1e-10, rtol=0)
    q = rot.axis_angle_to_quat(aa)
    torch.testing.assert_close(rot.quat_to_axis_angle(q), aa, atol=1e-10, rtol=0)
    torch.testing.assert_close(rot.quat_to_axis_angle(-q), aa, atol=1e-10, rtol=0)  # sign-free
    torch.testing.assert_close(rot.quat_to_matrix(q), R, atol=1e-12, rtol=0)
    torch.testing.assert_close(rot.matrix_to_quat(R), q, atol=1e-10, rtol=0)
    torch.testing.assert_close(rot.rotation_6d_to_matrix(rot.matrix_to_rotation_6d(R)), R, atol=1e-12, rtol=0)


def test_matrix_to_quat_near_half_turn_and_identity():
    # Trace ~ -1: only the x/y/z branches of Shepperd's method are well conditioned.
    aa = torch.tensor([[math.pi, 0, 0], [0, 0, math.pi - 1e-9], [1e-9, 0, 0], [0, 0, 0]], dtype=F64)
    R = rot.axis_angle_to_matrix(aa)
    q = rot.matrix_to_quat(R)
    torch.testing.assert_close(rot.quat_to_matrix(q), R, atol=1e-12, rtol=0)
    torch.testing.assert_close(rot.matrix_to_axis_angle(R), aa, atol=1e-8, rtol=0)
    assert (q[:, 0] >= 0).all()


def test_gradients_finite_and_correct_at_zero_angle():
    zero = torch.zeros(3, dtype=F64, requires_grad=True)
    # dR/dr at r = 0 is the cross-product generator: R ~ I + [r]_x.
    jac = torch.autograd.functional.jacobian(rot.axis_angle_to_matrix, zero)  # (3, 3, 3)
    for k in range(3):
        e = torch.zeros(3, dtype=F64)
        e[k] = 1
        torch.testing.assert_close(jac[..., k], rot.skew(e))
    jq = torch.autograd.functional.jacobian(rot.axis_angle_to_quat, zero)  # (4, 3)
    torch.testing.assert_close(jq, torch.cat([torch.zeros(1, 3, dtype=F64), 0.5 * torch.eye(3, dtype=F64)]))
    identity = torch.tensor([1.0, 0, 0, 0], dtype=F64, requires_grad=True)
    ja = torch.autograd.functional.jacobian(rot.quat_to_axis_angle, identity)
    assert torch.isfinite(ja).all()
    torch.testing.assert_close(ja[:, 1:], 2 * torch.eye(3, dtype=F64))
    # Just above the Taylor switch the two branches agree.
    for angle in (0.999e-3, 1.001e-3):
        aa = torch.tensor([angle, 0, 0], dtype=F64)
        expected = torch.tensor([[1, 0, 0], [0, math.cos(angle), -math.sin(angle)],
                                 [0, math.sin(angle), math.cos(angle)]], dtype=F64)
        torch.testing.assert_close(rot.axis_angle_to_matrix(aa), expected, atol=1e-16, rtol=0)


def test_quat_algebra():
    aa1, aa2 = _random_axis_angle(100, seed=1), _random_axis_angle(100, seed=2)
    q1, q2 = rot.axis_angle_to_quat(aa1), rot.axis_angle_to_quat(aa2)
    R1, R2 = rot.axis_angle_to_matrix(aa1), rot.axis_angle_to_matrix(aa2)
    torch.testing.assert_close(rot.quat_to_matrix(rot.quat_multiply(q1, q2)), R1 @ R2, atol=1e-12, rtol=0)
    identity = torch.tensor([1.0, 0, 0, 0], dtype=F64).expand_as(q1)
    torch.testing.assert_close(rot.quat_multiply(q1, rot.quat_conjugate(q1)), identity, atol=1e-12, rtol=0)
    v = torch.randn(100, 3, dtype=F64, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(rot.quat_apply(q1, v), (R1 @ v[..., None])[..., 0], atol=1e-12, rtol=0)
    torch.testing.assert_close(rot.quat_normalize(3 * q1), q1)
    assert (rot.quat_canonical(-q1)[:, 0] >= 0).all()
    torch.testing.assert_close(rot.quat_canonical(-q1), rot.quat_canonical(q1))


def test_slerp_endpoints_midpoint_and_shortest_arc():
    q0 = rot.axis_angle_to_quat(torch.tensor([0.0, 0, 0.2], dtype=F64))
    q1 = rot.axis_angle_to_quat(torch.tensor([0.0, 0, 1.4], dtype=F64))
    torch.testing.assert_close(rot.quat_slerp(q0, q1, 0.0), q0)
    torch.testing.assert_close(rot.quat_slerp(q0, q1, 1.0), q1)
    mid = rot.quat_slerp(q0, q1, 0.5)
    torch.testing.assert_close(rot.quat_to_axis_angle(mid), torch.tensor([0, 0, 0.8], dtype=F64))
    # -q1 is the same rotation: slerp must still take the 1.2 rad arc, not the long way.
    torch.testing.assert_close(rot.quat_canonical(rot.quat_slerp(q0, -q1, 0.25)),
                               rot.axis_angle_to_quat(torch.tensor([0, 0, 0.5], dtype=F64)))
    # Batched t; constant angular speed.
    t = torch.linspace(0, 1, 7, dtype=F64)
    angles = rot.quat_to_axis_angle(rot.quat_slerp(q0.expand(7, 4), q1.expand(7, 4), t))[:, 2]
    torch.testing.assert_close(angles, 0.2 + 1.2 * t)
    # Nearly equal inputs: no NaN, result between them.
    q2 = rot.axis_angle_to_quat(torch.tensor([0.0, 0, 0.2 + 1e-12], dtype=F64))
    out = rot.quat_slerp(q0, q2, 0.5)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(rot.quat_to_axis_angle(out)[2], torch.tensor(0.2 + 5e-13, dtype=F64),
                               atol=1e-15, rtol=0)


@pytest.mark.parametrize("order", rot.EULER_ORDERS)
def test_euler_round_trip_all_orders(order):
    g = torch.Generator().manual_seed(4)
    angles = (torch.rand(500, 3, generator=g, dtype=F64) * 2 - 1) * math.pi
    if order[0] == order[2]:
        angles[:, 1] = angles[:, 1].abs()  # proper Euler: middle angle in [0, pi]
    else:
        angles[:, 1] = angles[:, 1] / 2  # Tait-Bryan: middle angle in [-pi/2, pi/2]
    R = rot.euler_to_matrix(angles, order)
    back = rot.matrix_to_euler(R, order)
    torch.testing.assert_close(back, angles, atol=1e-10, rtol=0)
    # Definition: product of elementary rotations, first letter outermost.
    single = []
    for idx, c in enumerate(order):
        col = torch.zeros(500, 3, dtype=F64)
        col[:, {"X": 0, "Y": 1, "Z": 2}[c]] = angles[:, idx]
        single.append(rot.axis_angle_to_matrix(col))
    torch.testing.assert_close(R, single[0] @ single[1] @ single[2], atol=1e-12, rtol=0)


@pytest.mark.parametrize("order", ["ZXY", "XYZ", "ZYZ"])
def test_euler_gimbal_lock_reconstructs_matrix(order):
    middle = math.pi / 2 if order[0] != order[2] else 0.0
    angles = torch.tensor([[0.3, middle, -0.7], [1.1, -middle, 0.4]], dtype=F64)
    R = rot.euler_to_matrix(angles, order)
    back = rot.matrix_to_euler(R, order)
    assert torch.isfinite(back).all()
    torch.testing.assert_close(rot.euler_to_matrix(back, order), R, atol=1e-7, rtol=0)


def test_rotation_6d_orthonormalises_and_keeps_device_dtype():
    d6 = torch.tensor([[2.0, 0, 0, 1, 3, 0]])  # not orthonormal
    R = rot.rotation_6d_to_matrix(d6)
    torch.testing.assert_close(R[0], torch.eye(3))
    assert R.dtype == torch.float32
    assert rot.axis_angle_to_matrix(torch.zeros(2, 5, 3)).shape == (2, 5, 3, 3)
    assert rot.matrix_to_euler(torch.eye(3, dtype=torch.float32), "ZXY").dtype == torch.float32


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="axis_angle must have shape"):
        rot.axis_angle_to_matrix(torch.zeros(4))
    with pytest.raises(ValueError, match="Euler order"):
        rot.euler_to_matrix(torch.zeros(3), "XXY")
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, 3\)"):
        rot.matrix_to_quat(torch.zeros(3, 4))
