"""Energy terms and the optimiser loop of the SMPLify-style fitter (:mod:`mimicgym.motion.fitting`).

One function per term, batched over frames; :class:`FittingProblem` holds the observations
and sums the terms; :func:`optimise` runs one stage (L-BFGS or Adam) on scaled parameters.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mimicgym.motion.body_model import SMPL_JOINT_NAMES, batch_rigid_transform
from mimicgym.motion.rotations import axis_angle_to_matrix

__all__ = ["model_joints", "geman_mcclure", "bending_energy", "kabsch", "FittingProblem", "parameter_scales",
           "row_lbfgs", "optimise"]

_J = {name: i for i, name in enumerate(SMPL_JOINT_NAMES)}
# Bend angles in the 69-d body pose: left/right elbow about y, left/right knee about x, and
# the sign that makes hyperextension positive (SMPLify's angle_prior, SMPL's axes).
_BEND_INDEX = [3 * (_J["left_elbow"] - 1) + 1, 3 * (_J["right_elbow"] - 1) + 1,
               3 * (_J["left_knee"] - 1) + 0, 3 * (_J["right_knee"] - 1) + 0]  # fmt: skip
_BEND_SIGN = [1.0, -1.0, -1.0, -1.0]
_BEND_TO_POSE = 3.17  # SMPLify/SPIN: angle prior weight 15.2 = 3.17 x pose weight 4.78


def model_joints(bm, betas: Tensor, body_pose: Tensor, global_orient: Tensor, transl: Tensor) -> Tensor:
    """Posed joints (B, 24, 3) without the mesh: the regressor is linear in the shape, so
    rest joints are ``J_template + betas J_shapedirs``, then forward kinematics.
    """
    B, J = body_pose.shape[0], bm.num_joints
    rest = bm.rest_joints(betas)  # (B, J, 3)
    rot_mats = axis_angle_to_matrix(torch.cat([global_orient, body_pose], dim=-1).reshape(B, J, 3))
    posed, _ = batch_rigid_transform(rot_mats, rest, bm.parents)
    return posed + transl[:, None]


def geman_mcclure(residual_sq: Tensor, rho: float) -> Tensor:
    """Geman-McClure robustifier of squared residuals: ``rho^2 r^2 / (rho^2 + r^2)``."""
    return rho**2 * residual_sq / (rho**2 + residual_sq)


def bending_energy(body_pose: Tensor) -> Tensor:
    """SMPLify's elbow/knee term ``sum exp(sign theta)^2``: (B, 69) -> (B,)."""
    sign = torch.tensor(_BEND_SIGN, dtype=body_pose.dtype, device=body_pose.device)
    return torch.exp(body_pose[:, _BEND_INDEX] * sign).pow(2).sum(-1)


def kabsch(x: Tensor, y: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    """Weighted rigid alignment: R, t minimising sum w ||R x + t - y||^2; (B, N, 3) -> (B, 3, 3), (B, 3)."""
    w = w / w.sum(1, keepdim=True).clamp(min=1e-12)
    mx, my = (w[..., None] * x).sum(1), (w[..., None] * y).sum(1)
    cov = ((y - my[:, None]) * w[..., None]).transpose(1, 2) @ (x - mx[:, None])  # (B, 3, 3)
    U, _, Vt = torch.linalg.svd(cov)
    d = torch.sign(torch.linalg.det(U @ Vt))
    D = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    R = U @ D @ Vt
    return R, my - (R @ mx[..., None])[..., 0]


class FittingProblem:
    """Holds the observations and evaluates the energy for given parameters."""

    def __init__(self, bm, config, prior, joints3d, keypoints2d, confidence, camera, shared_betas):
        self.bm, self.config, self.prior = bm, config, prior
        self.joints3d, self.keypoints2d, self.conf, self.camera = joints3d, keypoints2d, confidence, camera
        self.shared_betas = shared_betas

    def joints(self, p: dict[str, Tensor]) -> Tensor:
        betas = p["betas"].expand(p["body_pose"].shape[0], -1) if self.shared_betas else p["betas"]
        return model_joints(self.bm, betas, p["body_pose"], p["global_orient"], p["transl"])

    def frame_data_term(self, joints: Tensor, p: dict[str, Tensor], conf: Tensor) -> Tensor:
        """Robust data energy of each frame: (B,)."""
        if self.keypoints2d is not None:
            cam_t = p.get("cam_t")  # (B, 3) when the camera translation is optimised
            r2 = (self.camera.project(joints, None if cam_t is None else cam_t[:, None])
                  - self.keypoints2d).pow(2).sum(-1)
        else:
            r2 = ((joints - self.joints3d) * 1000.0).pow(2).sum(-1)
        return (conf * geman_mcclure(r2, self.config.rho)).sum(-1)

    def data_term(self, joints: Tensor, p: dict[str, Tensor], conf: Tensor) -> Tensor:
        return self.frame_data_term(joints, p, conf).sum()

    def repeat(self, n: int) -> "FittingProblem":
        """The same problem with every frame repeated n times (frame-major), for hypotheses."""
        rep = lambda x: None if x is None else x.repeat_interleave(n, dim=0)  # noqa: E731
        return FittingProblem(self.bm, self.config, self.prior, rep(self.joints3d), rep(self.keypoints2d),
                        rep(self.conf), self.camera, self.shared_betas)  # fmt: skip

    def frame_energy(self, p: dict[str, Tensor], w_pose: float, w_shape: float, conf: Tensor, joints: Tensor) -> Tensor:
        """Energy of each frame without the terms that couple frames: (B,)."""
        e = self.frame_data_term(joints, p, conf)
        if w_pose > 0:
            if self.prior is not None:
                e = e + w_pose**2 * self.prior(p["body_pose"])
            e = e + (_BEND_TO_POSE * w_pose) ** 2 * bending_energy(p["body_pose"])
        if not self.shared_betas:
            e = e + w_shape**2 * p["betas"].pow(2).sum(-1)
        return e

    def energy(self, p: dict[str, Tensor], w_pose: float, w_shape: float, conf: Tensor) -> Tensor:
        """Per-frame energies (B,) for independent frames; the scalar total for a sequence."""
        joints = self.joints(p)
        e = self.frame_energy(p, w_pose, w_shape, conf, joints)
        if not self.shared_betas:
            return e
        # One shape for the sequence (its prior counted once per frame) couples the frames.
        e = e.sum() + joints.shape[0] * w_shape**2 * p["betas"].pow(2).sum()
        if self.config.smooth_weight > 0 and joints.shape[0] > 2:
            # Acceleration, not velocity: steady motion (walking) costs nothing.
            accel = (joints[2:] - 2.0 * joints[1:-1] + joints[:-2]) * 1000.0
            e = e + self.config.smooth_weight * accel.pow(2).sum()
        return e


def parameter_scales(bm) -> dict[str, Tensor]:
    """RMS joint displacement (m) per unit of each parameter, at the mean shape's rest pose.

    The optimiser works on ``parameter x scale``, so a unit step moves the joints by about
    the same amount whatever the parameter (a diagonal preconditioner): without it the
    weak shape directions and the short distal bones make L-BFGS crawl.
    """
    J, dtype = bm.num_joints, bm.J_template.dtype
    rest = bm.J_template  # (J, 3)
    parents = bm.parents.tolist()
    lever = torch.zeros(J, dtype=dtype)  # sum over descendants d of |J_d - J_j|^2
    for d in range(1, J):
        a = parents[d]
        while a >= 0:
            lever[a] += (rest[d] - rest[a]).pow(2).sum()
            a = parents[a] if a > 0 else -1
    lever = (lever / J).sqrt().clamp(min=1e-2)  # leaves move no joint: keep them well-posed
    betas = (bm.J_shapedirs_flat_T.pow(2).sum(1) / J).sqrt().clamp(min=1e-4)
    one = torch.ones(3, dtype=dtype)
    return {"betas": betas, "body_pose": lever[1:].repeat_interleave(3), "global_orient": lever[0] * one,
            "transl": one, "cam_t": one}  # fmt: skip


def row_lbfgs(x: Tensor, row_energy, iters: int, history_size: int, max_backtracks: int = 20) -> Tensor:
    """L-BFGS on each row of x (B, D) separately for an energy of independent rows (B,).

    Every row keeps its own curvature history and Armijo backtracking step, so a batch of
    frames converges as fast as each frame alone (one optimiser over the summed energy
    shares one line search between rows and crawls), while each step evaluates the whole
    batch in one call. A row stops when its gradient or its energy change vanishes.
    """
    B, D = x.shape
    S, Y = x.new_zeros(B, history_size, D), x.new_zeros(B, history_size, D)  # step and gradient pairs
    rho = x.new_zeros(B, history_size)  # 1 / (y . s); 0 marks an empty or skipped pair

    def evaluate(z: Tensor) -> tuple[Tensor, Tensor]:
        z = z.detach().requires_grad_(True)
        e = row_energy(z)
        (grad,) = torch.autograd.grad(e.sum(), z)
        return e.detach(), grad

    x = x.detach().clone()
    e, g = evaluate(x)
    gamma = 1.0 / g.abs().sum(-1).clamp(min=1.0)  # first step as torch's LBFGS: min(1, 1/|g|_1)
    active = torch.ones(B, dtype=torch.bool)
    head = 0
    for _ in range(iters):
        # Two-loop recursion, newest pair first (Nocedal & Wright, Alg. 7.4), batched over rows.
        q, alphas = -g, []
        order = [(head - 1 - j) % history_size for j in range(history_size)]
        for i in order:
            a = rho[:, i] * (S[:, i] * q).sum(-1)
            q = q - a[:, None] * Y[:, i]
            alphas.append(a)
        d = gamma[:, None] * q
        for i, a in zip(reversed(order), reversed(alphas)):
            b = rho[:, i] * (Y[:, i] * d).sum(-1)
            d = d + (a - b)[:, None] * S[:, i]
        slope = (g * d).sum(-1)
        uphill = slope >= 0  # lost curvature information: fall back to steepest descent
        d = torch.where(uphill[:, None], -gamma[:, None] * g, d)
        slope = torch.where(uphill, -gamma * g.pow(2).sum(-1), slope)
        d = d * active[:, None]
        t, done = torch.ones(B, dtype=x.dtype), ~active
        x_new, e_new, g_new = x.clone(), e.clone(), g.clone()
        for _ in range(max_backtracks):
            e_t, g_t = evaluate(x + t[:, None] * d)
            ok = ~done & torch.isfinite(e_t) & (e_t <= e + 1e-4 * t * slope)
            x_new[ok], e_new[ok], g_new[ok] = x[ok] + t[ok, None] * d[ok], e_t[ok], g_t[ok]
            done = done | ok
            if bool(done.all()):
                break
            t = torch.where(done, t, 0.5 * t)
        moved = done & active
        s, y = x_new - x, g_new - g
        sy = (s * y).sum(-1)
        valid = moved & (sy > 1e-10)
        S[:, head], Y[:, head] = s * valid[:, None], y * valid[:, None]
        rho[:, head] = torch.where(valid, 1.0 / sy.clamp(min=1e-10), torch.zeros_like(sy))
        gamma = torch.where(valid, sy / y.pow(2).sum(-1).clamp(min=1e-30), gamma)
        head = (head + 1) % history_size
        converged = (g_new.abs().amax(-1) <= 1e-9) | ((e - e_new).abs() <= 1e-12 * e.abs().clamp(min=1.0))
        active = moved & ~converged
        x, e, g = x_new, e_new, g_new
        if not bool(active.any()):
            break
    return x


def optimise(p: dict[str, Tensor], free: list[str], energy, scales: dict[str, Tensor], config, iters: int) -> float:
    """Minimise ``energy(params)`` over the ``free`` entries of ``p`` (updated in place).

    ``energy`` returns a scalar, or one energy per row (B,) when the rows are independent
    problems (frames, hypotheses): L-BFGS then runs per row (:func:`row_lbfgs`). Returns
    the final energy, summed over rows.
    """
    x = {k: (p[k].detach() * scales[k]).requires_grad_(True) for k in free}

    def current() -> dict[str, Tensor]:
        return {**p, **{k: x[k] / scales[k] for k in free}}

    with torch.no_grad():
        per_row = energy(current()).ndim == 1
    if config.optimizer == "lbfgs" and per_row:
        sizes = [x[k].shape[1] for k in free]

        def row_energy(z: Tensor) -> Tensor:  # (B, D) packed scaled parameters -> (B,)
            parts = z.split(sizes, dim=1)
            return energy({**p, **{k: v / scales[k] for k, v in zip(free, parts)}})

        z = row_lbfgs(torch.cat([x[k].detach() for k in free], 1), row_energy, iters, config.history_size)
        x = dict(zip(free, z.split(sizes, dim=1)))
    elif config.optimizer == "lbfgs":
        opt = torch.optim.LBFGS(
            list(x.values()), lr=config.lr or 1.0, max_iter=iters, max_eval=4 * iters, history_size=config.history_size,
            tolerance_grad=1e-9, tolerance_change=1e-12, line_search_fn="strong_wolfe",
        )  # fmt: skip

        def closure():
            opt.zero_grad()
            e = energy(current()).sum()
            e.backward()
            return e

        opt.step(closure)
    else:
        opt = torch.optim.Adam(list(x.values()), lr=config.lr or 0.01)
        for _ in range(iters):
            opt.zero_grad()
            e = energy(current()).sum()
            e.backward()
            opt.step()
    with torch.no_grad():
        final = current()
        e = energy(final).sum()
    if not torch.isfinite(e):
        raise FloatingPointError(f"fitting energy became {float(e)}; check the inputs' scale and confidences")
    p.update({k: final[k].detach() for k in free})
    return float(e)
