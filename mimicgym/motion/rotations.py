"""Rotation conversions in torch: axis-angle, quaternions, matrices, Euler angles, 6D.

Conventions, shared by every function here:

* Everything is batched over arbitrary leading dimensions ``...`` and keeps the input's
  device and dtype.
* Quaternions are ``(w, x, y, z)`` (scalar first) and rotate column vectors by
  ``q v q*``; ``q`` and ``-q`` are the same rotation (:func:`quat_canonical` picks ``w >= 0``).
* Rotation matrices act on column vectors: ``v' = R @ v``.
* Axis-angle is the rotation vector ``angle * unit_axis`` (SMPL's pose parameters).
* Euler angles follow BVH's intrinsic convention: order ``"ZXY"`` with angles ``(a, b, c)``
  means ``R = Rz(a) @ Rx(b) @ Ry(c)``. All 12 orders (6 Tait-Bryan, 6 proper Euler) work.
* 6D is the continuous representation of Zhou et al. (CVPR 2019): the first two *columns*
  of ``R``, concatenated.

Functions that divide by an angle switch to Taylor series near zero so both values and
gradients stay finite at the identity.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "skew",
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "axis_angle_to_quat",
    "quat_to_axis_angle",
    "quat_to_matrix",
    "matrix_to_quat",
    "quat_multiply",
    "quat_conjugate",
    "quat_normalize",
    "quat_canonical",
    "quat_apply",
    "quat_slerp",
    "euler_to_matrix",
    "matrix_to_euler",
    "rotation_6d_to_matrix",
    "matrix_to_rotation_6d",
    "EULER_ORDERS",
]

# Below this squared angle the closed forms lose precision and their gradients are 0/0.
_SMALL_ANGLE_SQ = 1e-6

EULER_ORDERS = (
    "XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX",  # Tait-Bryan: three distinct axes
    "XYX", "XZX", "YXY", "YZY", "ZXZ", "ZYZ",  # proper Euler: first axis repeated last
)
_AXIS_INDEX = {"X": 0, "Y": 1, "Z": 2}


def _check_last_dim(x: Tensor, size: int, name: str) -> None:
    if x.shape[-1] != size:
        raise ValueError(f"{name} must have shape (..., {size}), got {tuple(x.shape)}")


def _check_matrix(R: Tensor, name: str = "R") -> None:
    if R.ndim < 2 or R.shape[-2:] != (3, 3):
        raise ValueError(f"{name} must have shape (..., 3, 3), got {tuple(R.shape)}")


def skew(v: Tensor) -> Tensor:
    """Cross-product matrix ``[v]_x`` with ``[v]_x @ u == cross(v, u)``: (..., 3) -> (..., 3, 3)."""
    _check_last_dim(v, 3, "v")
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*v.shape, 3)


def _safe_angle(angle_sq: Tensor) -> tuple[Tensor, Tensor]:
    """(small mask, angle) with angle = sqrt(angle_sq) evaluated only where it is not small.

    Substituting 1 inside the sqrt for small angles keeps the discarded branch of
    ``torch.where`` finite, so its gradient is not NaN (0 * inf) at exactly zero.
    """
    small = angle_sq < _SMALL_ANGLE_SQ
    angle = torch.sqrt(torch.where(small, torch.ones_like(angle_sq), angle_sq))
    return small, angle


def axis_angle_to_matrix(axis_angle: Tensor) -> Tensor:
    """Rodrigues' formula ``R = I + a K + b K^2`` with ``K = [r]_x``: (..., 3) -> (..., 3, 3).

    ``a = sin(t)/t`` and ``b = (1 - cos t)/t^2`` use their Taylor series near ``t = 0``.
    """
    _check_last_dim(axis_angle, 3, "axis_angle")
    angle_sq = (axis_angle * axis_angle).sum(-1)  # (...)
    small, angle = _safe_angle(angle_sq)
    a = torch.where(small, 1 - angle_sq / 6 + angle_sq**2 / 120, torch.sin(angle) / angle)
    # 2 sin^2(t/2) avoids the cancellation in 1 - cos(t).
    b = torch.where(small, 0.5 - angle_sq / 24 + angle_sq**2 / 720,
                    2 * torch.sin(angle / 2) ** 2 / torch.where(small, torch.ones_like(angle_sq), angle_sq))
    K = skew(axis_angle)  # (..., 3, 3)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return eye + a[..., None, None] * K + b[..., None, None] * (K @ K)


def axis_angle_to_quat(axis_angle: Tensor) -> Tensor:
    """(..., 3) rotation vector -> (..., 4) unit quaternion ``(cos t/2, sin(t/2) axis)``, w >= 0."""
    _check_last_dim(axis_angle, 3, "axis_angle")
    angle_sq = (axis_angle * axis_angle).sum(-1, keepdim=True)  # (..., 1)
    small, angle = _safe_angle(angle_sq)
    # sin(t/2)/t = 1/2 - t^2/48 + t^4/3840 - ...
    scale = torch.where(small, 0.5 - angle_sq / 48 + angle_sq**2 / 3840, torch.sin(angle / 2) / angle)
    w = torch.where(small, 1 - angle_sq / 8 + angle_sq**2 / 384, torch.cos(angle / 2))
    return torch.cat([w, axis_angle * scale], dim=-1)


def quat_to_axis_angle(quat: Tensor) -> Tensor:
    """(..., 4) quaternion (any norm, either sign) -> (..., 3) rotation vector, angle in [0, pi]."""
    _check_last_dim(quat, 4, "quat")
    q = quat_canonical(quat_normalize(quat))
    w, xyz = q[..., :1], q[..., 1:]
    sin_half_sq = (xyz * xyz).sum(-1, keepdim=True)  # (..., 1)
    small, sin_half = _safe_angle(sin_half_sq)
    # angle / sin(t/2) with angle = 2 atan2(s, w); near s = 0: 2/w (1 - s^2 / (3 w^2)) (w ~ 1 there).
    w_safe = torch.where(small, w, torch.ones_like(w))
    scale = torch.where(small, 2 / w_safe * (1 - sin_half_sq / (3 * w_safe**2)),
                        2 * torch.atan2(sin_half, w) / sin_half)
    return xyz * scale


def quat_to_matrix(quat: Tensor) -> Tensor:
    """(..., 4) quaternion (normalised here) -> (..., 3, 3) rotation matrix."""
    _check_last_dim(quat, 4, "quat")
    w, x, y, z = quat.unbind(-1)
    two_s = 2.0 / (quat * quat).sum(-1)
    R = torch.stack([
        1 - two_s * (y * y + z * z), two_s * (x * y - z * w), two_s * (x * z + y * w),
        two_s * (x * y + z * w), 1 - two_s * (x * x + z * z), two_s * (y * z - x * w),
        two_s * (x * z - y * w), two_s * (y * z + x * w), 1 - two_s * (x * x + y * y),
    ], dim=-1)
    return R.reshape(*quat.shape[:-1], 3, 3)


def matrix_to_quat(R: Tensor) -> Tensor:
    """(..., 3, 3) rotation matrix -> (..., 4) unit quaternion with w >= 0 (Shepperd's method).

    Each of the four components can be recovered from the diagonal; dividing by the largest
    one keeps every branch well conditioned, including 180 degree rotations.
    """
    _check_matrix(R)
    m00, m01, m02 = R[..., 0, 0], R[..., 0, 1], R[..., 0, 2]
    m10, m11, m12 = R[..., 1, 0], R[..., 1, 1], R[..., 1, 2]
    m20, m21, m22 = R[..., 2, 0], R[..., 2, 1], R[..., 2, 2]
    # 4 |q_i|^2 for i = w, x, y, z
    four_sq = torch.stack([
        1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22,
    ], dim=-1)
    two_abs = torch.sqrt(four_sq.clamp_min(0.0))  # (..., 4) = 2 |q_i|
    # Row i is 4 q_i q (the branch that divides by q_i).
    candidates = torch.stack([
        torch.stack([two_abs[..., 0] ** 2, m21 - m12, m02 - m20, m10 - m01], dim=-1),
        torch.stack([m21 - m12, two_abs[..., 1] ** 2, m10 + m01, m02 + m20], dim=-1),
        torch.stack([m02 - m20, m10 + m01, two_abs[..., 2] ** 2, m12 + m21], dim=-1),
        torch.stack([m10 - m01, m20 + m02, m21 + m12, two_abs[..., 3] ** 2], dim=-1),
    ], dim=-2)  # (..., 4, 4)
    # The floor only matters for branches that are not selected; it keeps them finite.
    candidates = candidates / (2 * two_abs.clamp_min(0.1))[..., None]
    best = two_abs.argmax(dim=-1)  # (...)
    index = best[..., None, None].expand(*best.shape, 1, 4)
    q = torch.gather(candidates, -2, index).squeeze(-2)
    return quat_canonical(quat_normalize(q))


def matrix_to_axis_angle(R: Tensor) -> Tensor:
    """(..., 3, 3) rotation matrix -> (..., 3) rotation vector with angle in [0, pi]."""
    return quat_to_axis_angle(matrix_to_quat(R))


def quat_multiply(q1: Tensor, q2: Tensor) -> Tensor:
    """Hamilton product ``q1 * q2`` (apply q2 first, then q1); broadcasts: (..., 4)."""
    _check_last_dim(q1, 4, "q1")
    _check_last_dim(q2, 4, "q2")
    w1, x1, y1, z1 = q1.unbind(-1)
    w2, x2, y2, z2 = q2.unbind(-1)
    return torch.stack([
        w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
        w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
        w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
        w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
    ], dim=-1)


def quat_conjugate(quat: Tensor) -> Tensor:
    """``(w, -x, -y, -z)``: the inverse rotation for unit quaternions."""
    _check_last_dim(quat, 4, "quat")
    return quat * quat.new_tensor([1.0, -1.0, -1.0, -1.0])


def quat_normalize(quat: Tensor, eps: float = 1e-12) -> Tensor:
    """Scale to unit norm (a zero quaternion stays zero instead of turning into NaN)."""
    _check_last_dim(quat, 4, "quat")
    return quat / torch.linalg.vector_norm(quat, dim=-1, keepdim=True).clamp_min(eps)


def quat_canonical(quat: Tensor) -> Tensor:
    """Pick the sign with ``w >= 0`` (``q`` and ``-q`` are the same rotation)."""
    _check_last_dim(quat, 4, "quat")
    return torch.where(quat[..., :1] < 0, -quat, quat)


def quat_apply(quat: Tensor, v: Tensor) -> Tensor:
    """Rotate vectors by unit quaternions, ``q v q*``: (..., 4), (..., 3) -> (..., 3), broadcasting.

    Uses ``v + 2w (u x v) + 2 u x (u x v)`` with ``u = xyz``: two cross products, no matrix.
    """
    _check_last_dim(quat, 4, "quat")
    _check_last_dim(v, 3, "v")
    w, u = quat[..., :1], quat[..., 1:]
    u, v = torch.broadcast_tensors(u, v)
    uv = torch.linalg.cross(u, v, dim=-1)
    return v + 2 * (w * uv + torch.linalg.cross(u, uv, dim=-1))


def quat_slerp(q0: Tensor, q1: Tensor, t: Tensor | float) -> Tensor:
    """Spherical linear interpolation along the shortest arc; ``t`` broadcasts as (...,).

    The half-angle between the inputs is ``atan2(|q1 - q0|, |q1 + q0|)``, accurate also when
    they are nearly equal (``acos`` of the dot product is not); there the weights fall back
    to linear interpolation followed by normalisation.
    """
    _check_last_dim(q0, 4, "q0")
    _check_last_dim(q1, 4, "q1")
    q0, q1 = quat_normalize(q0), quat_normalize(q1)
    t = torch.as_tensor(t, dtype=q0.dtype, device=q0.device)[..., None]
    # Shortest arc: flip q1 into the hemisphere of q0.
    q1 = torch.where((q0 * q1).sum(-1, keepdim=True) < 0, -q1, q1)
    half = torch.atan2(torch.linalg.vector_norm(q1 - q0, dim=-1, keepdim=True),
                       torch.linalg.vector_norm(q1 + q0, dim=-1, keepdim=True))
    theta = 2 * half  # angle between q0 and q1 on the 4D sphere, in [0, pi/2]
    small = theta < 1e-6
    sin_theta = torch.where(small, torch.ones_like(theta), torch.sin(theta))
    w0 = torch.where(small, 1 - t, torch.sin((1 - t) * theta) / sin_theta)
    w1 = torch.where(small, t, torch.sin(t * theta) / sin_theta)
    return quat_normalize(w0 * q0 + w1 * q1)


def _axis_rotation(axis: int, angle: Tensor) -> Tensor:
    """Elementary rotation about x (0), y (1) or z (2): (...,) -> (..., 3, 3)."""
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    if axis == 0:
        flat = [one, zero, zero, zero, c, -s, zero, s, c]
    elif axis == 1:
        flat = [c, zero, s, zero, one, zero, -s, zero, c]
    else:
        flat = [c, -s, zero, s, c, zero, zero, zero, one]
    return torch.stack(flat, dim=-1).reshape(*angle.shape, 3, 3)


def _parse_order(order: str) -> tuple[int, int, int]:
    key = order.upper() if isinstance(order, str) else order
    if key not in EULER_ORDERS:
        raise ValueError(f"Euler order must be one of {EULER_ORDERS}, got {order!r}")
    return tuple(_AXIS_INDEX[c] for c in key)  # type: ignore[return-value]


def euler_to_matrix(angles: Tensor, order: str) -> Tensor:
    """Intrinsic Euler angles (radians) -> matrix: ``order="ZXY"`` gives ``Rz(a) @ Rx(b) @ Ry(c)``.

    angles: (..., 3), one angle per letter of ``order`` in the same order; returns (..., 3, 3).
    """
    axes = _parse_order(order)
    _check_last_dim(angles, 3, "angles")
    a, b, c = angles.unbind(-1)
    return _axis_rotation(axes[0], a) @ _axis_rotation(axes[1], b) @ _axis_rotation(axes[2], c)


def matrix_to_euler(R: Tensor, order: str) -> Tensor:
    """Inverse of :func:`euler_to_matrix`: (..., 3, 3) -> (..., 3) angles in radians.

    The middle angle lies in [-pi/2, pi/2] (Tait-Bryan) or [0, pi] (proper Euler). At gimbal
    lock only the sum/difference of the outer angles is defined; the last angle is set to 0.
    """
    i, j, k = _parse_order(order)
    _check_matrix(R)
    tait_bryan = i != k
    m = k if tait_bryan else 3 - i - j  # the axis that is neither i nor j
    # +1 if (i, j, m) is a cyclic permutation of (x, y, z), else -1.
    s = 1.0 if (j - i) % 3 == 1 else -1.0
    if tait_bryan:
        # R[i, k] = s sin(b); the outer angles come from the row i / column k pairs.
        cos_b = torch.sqrt(R[..., i, i] ** 2 + R[..., i, j] ** 2)
        b = torch.atan2(s * R[..., i, k], cos_b)
        a = torch.atan2(-s * R[..., j, k], R[..., k, k])
        c = torch.atan2(-s * R[..., i, j], R[..., i, i])
        degenerate = cos_b
    else:
        # R[i, i] = cos(b); sin(b) >= 0 by convention.
        sin_b = torch.sqrt(R[..., i, j] ** 2 + R[..., i, m] ** 2)
        b = torch.atan2(sin_b, R[..., i, i])
        a = torch.atan2(R[..., j, i], -s * R[..., m, i])
        c = torch.atan2(R[..., i, j], s * R[..., i, m])
        degenerate = sin_b
    # Gimbal lock: R = Ri(a) Rj(b) with c = 0, whose column j is Ri(a) e_j.
    # sqrt(eps) balances the error of this branch (~degenerate) against that of the
    # general one (~eps / degenerate).
    lock = degenerate < torch.finfo(R.dtype).eps ** 0.5
    a_lock = torch.atan2(s * R[..., m, j], R[..., j, j])
    a = torch.where(lock, a_lock, a)
    c = torch.where(lock, torch.zeros_like(c), c)
    return torch.stack([a, b, c], dim=-1)


def rotation_6d_to_matrix(d6: Tensor) -> Tensor:
    """Gram-Schmidt on two 3-vectors -> rotation matrix whose first two columns they span.

    d6: (..., 6) = (column 1, column 2), not necessarily orthonormal; returns (..., 3, 3).
    """
    _check_last_dim(d6, 6, "d6")
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = torch.nn.functional.normalize(a1, dim=-1)
    b2 = torch.nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rotation_6d(R: Tensor) -> Tensor:
    """(..., 3, 3) -> (..., 6): the first two columns of ``R``, concatenated."""
    _check_matrix(R)
    return torch.cat([R[..., :, 0], R[..., :, 1]], dim=-1)
