"""SMPLify-style fitting of the body model to 3D joints or 2D keypoints (Bogo et al. 2016).

Energy, summed over frames (a frame is one row of the batch):

* data: Geman-McClure robust error ``rho^2 r^2 / (rho^2 + r^2)`` of each joint, weighted by
  its confidence; ``r`` is the reprojection error in pixels (2D) or the 3D error in mm, so
  one ``rho`` (100) and one weight schedule serve both;
* pose prior: ``w_pose^2`` x the Gaussian-mixture energy of the body pose (:mod:`pose_prior`);
* bending: ``(3.17 w_pose)^2 x sum exp(+-theta)^2`` on the elbow (y) and knee (x) bend
  angles, signed so that hyperextension costs exponentially (SMPLify's ``angle_prior``);
* shape prior: ``w_shape^2 ||beta||^2``;
* temporal smoothness (sequences only): ``w_smooth`` x squared joint acceleration
  (second difference between frames) in mm.

Stages follow SMPLify: a rigid stage (global orientation and translation on the torso
joints), then four stages over all parameters with decreasing prior weights
``w_pose = 404, 404, 57.4, 4.78`` and ``w_shape = 100, 50, 10, 5``, on parameters scaled to
equal joint sensitivity (:func:`~mimicgym.motion.fitting_energy.parameter_scales`).
Independent frames are separate problems, as SMPLify fits each image: each stage runs
L-BFGS per frame and hypothesis, batched (:func:`~mimicgym.motion.fitting_energy.row_lbfgs`);
a sequence is one problem (one shape, smoothness) for ``torch.optim.LBFGS`` (strong-Wolfe
line search). Adam is the alternative to both. No randomness: identical inputs give
identical results.

2D fitting initialises the depth as SMPLify does, ``f x torso length (3D, model) / torso
length (2D, image)``, with the body upright facing the camera or turned by 180 deg, in the
prior's mean pose or any component mean; the ``hypotheses`` best starts (by reprojection
after the rigid stage) go through all stages and the lowest final energy wins. It optimises
the body translation, or the camera translation with ``optimize_camera_translation=True``
(the same freedom, written into ``res.camera``). The defaults (6 starts, 50/50/50/200
iterations) come from synthetic 2D data (``tests/test_fitting.py``, checked on other
seeds): fewer stop short of the energy's minimum and cost accuracy, which the
reprojection alone does not show.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from mimicgym.motion.body_geometry import body_skeleton, model_to_world_rotation
from mimicgym.motion.body_model import SMPL_JOINT_NAMES
from mimicgym.motion.camera import PerspectiveCamera
from mimicgym.motion.clip import MotionClip
from mimicgym.motion.fitting_energy import (
    FittingProblem,
    bending_energy,
    geman_mcclure,
    kabsch,
    model_joints,
    optimise,
    parameter_scales,
)
from mimicgym.motion.pose_prior import GaussianMixturePrior
from mimicgym.motion.rotations import axis_angle_to_matrix, axis_angle_to_quat, matrix_to_axis_angle, matrix_to_quat
from mimicgym.utils.torch_utils import check_finite_tensor

__all__ = ["FitConfig", "FitResult", "fit_to_keypoints", "fit_sequence", "result_to_clip", "model_joints",
           "geman_mcclure", "bending_energy"]

_TORSO = [SMPL_JOINT_NAMES.index(n) for n in ("left_hip", "right_hip", "left_shoulder", "right_shoulder")]
_RIGID = [SMPL_JOINT_NAMES.index(n) for n in ("pelvis", "left_hip", "right_hip", "spine1", "spine2", "spine3", "neck",
                                             "left_collar", "right_collar", "left_shoulder",
                                             "right_shoulder")]  # fmt: skip


@dataclass(frozen=True)
class FitConfig:
    """Hyperparameters of :func:`fit_to_keypoints` and :func:`fit_sequence`."""

    pose_weights: tuple[float, ...] = (404.0, 404.0, 57.4, 4.78)
    shape_weights: tuple[float, ...] = (100.0, 50.0, 10.0, 5.0)
    rho: float = 100.0  # Geman-McClure scale, pixels (2D) or mm (3D)
    smooth_weight: float = 1.0  # per squared mm of joint acceleration (second difference)
    depth_weight: float = 100.0  # rigid 2D stage: keeps the depth near the torso-length estimate
    hypotheses: int = 6  # 2D, independent frames: starts carried through all stages per frame
    rigid_iters: int = 30
    stage_iters: tuple[int, ...] = (50, 50, 50, 200)  # L-BFGS iterations of each stage
    optimizer: str = "lbfgs"  # or "adam"
    lr: float | None = None  # Adam (default 0.01) and sequences' torch L-BFGS (default 1.0)
    history_size: int = 20

    def __post_init__(self) -> None:
        if len(self.pose_weights) != len(self.shape_weights) or not self.pose_weights:
            raise ValueError(
                f"pose_weights and shape_weights need the same non-zero length, "
                f"got {self.pose_weights} and {self.shape_weights}"
            )
        for name in ("pose_weights", "shape_weights"):
            if any(not w >= 0 for w in getattr(self, name)):
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("rho", "smooth_weight", "depth_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if len(self.stage_iters) != len(self.pose_weights) or any(n < 1 for n in self.stage_iters):
            raise ValueError(f"stage_iters needs one count >= 1 per stage ({len(self.pose_weights)}), "
                             f"got {self.stage_iters}")
        for name in ("rigid_iters", "history_size", "hypotheses"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.optimizer not in ("lbfgs", "adam"):
            raise ValueError(f"optimizer must be 'lbfgs' or 'adam', got {self.optimizer!r}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


@dataclass
class FitResult:
    """Fitted parameters (B, 10), (B, 69), (B, 3), (B, 3), model joints (B, 24, 3), final energy.

    ``stage_losses``: energy after each stage (the rigid one first), summed over frames and,
    for 2D, over the hypotheses still in play; the last is that of the kept fit, ``loss``.
    """

    betas: Tensor
    body_pose: Tensor
    global_orient: Tensor
    transl: Tensor
    joints: Tensor
    loss: float
    camera: PerspectiveCamera | None = None
    stage_losses: list[float] = field(default_factory=list)


# ---------------------------------------------------------------------------- initialisation
def _mean_pose(prior: GaussianMixturePrior | None, B: int, dtype) -> Tensor:
    """SMPLify starts from the prior's mean pose (zeros without a prior)."""
    if prior is None:
        return torch.zeros(B, 69, dtype=dtype)
    return (prior.weights @ prior.means).to(dtype).expand(B, -1).clone()


def _init_3d(problem: FittingProblem, p: dict[str, Tensor]) -> None:
    """Global orientation and translation by weighted Kabsch on the torso joints."""
    with torch.no_grad():
        rest = problem.joints(p)  # identity orientation, zero translation
        w = problem.conf[:, _RIGID]
        R, t = kabsch(rest[:, _RIGID], problem.joints3d[:, _RIGID], w)
        # SMPL rotates about the root joint J0 and then translates: J = R (x - J0) + J0 + transl.
        j0 = rest[:, 0]
        p["global_orient"].copy_(matrix_to_axis_angle(R))
        p["transl"].copy_(t + (R @ j0[..., None])[..., 0] - j0)


def _init_2d(problem: FittingProblem, p: dict[str, Tensor], scales: dict[str, Tensor], config: FitConfig, keep: int
             ) -> tuple[dict[str, Tensor], float]:
    """SMPLify's camera stage, over hypotheses; returns the parameters and the stage energy.

    Each frame starts upright facing the camera, or turned by 180 deg, in the prior's mean
    pose or one of its components' means, at SMPLify's depth ``f x torso length (model) /
    torso length (image)``. Global orientation and translation are fitted to the torso
    keypoints for every hypothesis (one batch), and each frame keeps the ``keep`` hypotheses
    whose robust reprojection energy over all keypoints is lowest (frame-major rows): one
    start often lands in the wrong basin of the 2D depth ambiguity.
    """
    cam, kp, conf = problem.camera, problem.keypoints2d, problem.conf
    B, dtype = kp.shape[0], kp.dtype
    prior = problem.prior
    poses = p["body_pose"][:1]  # the mixture mean, as SMPLify
    if prior is not None:
        poses = torch.cat([poses, prior.means.to(dtype)])
    with torch.no_grad():
        rest = problem.joints({**p, "body_pose": torch.zeros_like(p["body_pose"])})
        C = torch.as_tensor(model_to_world_rotation(rest[0].double().numpy()), dtype=dtype)  # rows: fwd, left, up
        # Camera axes (OpenCV) of the body's forward (towards the camera), left and up directions.
        B_cam = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [-1.0, 0.0, 0.0]], dtype=dtype)  # columns f, l, u
        R_face = cam.rotation.to(dtype).T @ B_cam @ C
        orients = matrix_to_axis_angle(torch.stack([R_face, R_face @ axis_angle_to_matrix(C[2] * torch.pi)]))

        def torso_length(x: Tensor) -> Tensor:
            return 0.5 * ((x[:, _TORSO[0]] - x[:, _TORSO[2]]).norm(dim=-1)
                          + (x[:, _TORSO[1]] - x[:, _TORSO[3]]).norm(dim=-1))

        depth = cam.focal_length.to(dtype).mean() * torso_length(rest) / torso_length(kp).clamp(min=1e-6)  # (B,)
        w = conf[:, _TORSO] + 1e-9
        centre_2d = (w[..., None] * kp[:, _TORSO]).sum(1) / w.sum(1, keepdim=True)
        target = cam.backproject(centre_2d, depth)  # (B, 3) world point of the torso centre

        H = len(orients) * len(poses)
        hyp = problem.repeat(H)
        q = {
            "betas": p["betas"] if problem.shared_betas else p["betas"].repeat_interleave(H, 0),
            "body_pose": poses.repeat(len(orients), 1).repeat(B, 1),  # (B H, 69), hypothesis-minor
            "global_orient": orients.repeat_interleave(len(poses), 0).repeat(B, 1),
            "transl": torch.zeros(B * H, 3, dtype=dtype),
        }
        joints = hyp.joints(q)
        wh = w.repeat_interleave(H, 0)
        q["transl"] = (target.repeat_interleave(H, 0)
                       - (wh[..., None] * joints[:, _TORSO]).sum(1) / wh.sum(1, keepdim=True))
    depth_h = depth.repeat_interleave(H, 0)
    torso_conf = torch.zeros_like(hyp.conf)
    torso_conf[:, _TORSO] = hyp.conf[:, _TORSO]
    w0 = (config.pose_weights[0], config.shape_weights[0])

    def rigid_energy(q):
        z = cam.world_to_camera(hyp.joints(q)[:, 0])[:, 2]
        e, depth_term = hyp.energy(q, *w0, torso_conf), config.depth_weight * (z - depth_h).pow(2)
        return e + (depth_term if e.ndim else depth_term.sum())

    optimise(q, ["global_orient", "transl"], rigid_energy, scales, config, config.rigid_iters)
    with torch.no_grad():
        score = hyp.frame_data_term(hyp.joints(q), q, hyp.conf).reshape(B, H)
        best = torch.topk(score, min(keep, H), dim=1, largest=False)
        rows = (torch.arange(B)[:, None] * H + best.indices).reshape(-1)
    out = {k: (v if k == "betas" and problem.shared_betas else v[rows]) for k, v in q.items()}
    return out, float(best.values[:, 0].sum())


# ---------------------------------------------------------------------------- public API
def _check_inputs(joints3d, keypoints2d, confidence, camera, dtype):
    if (joints3d is None) == (keypoints2d is None):
        raise ValueError("give exactly one of joints3d (B, 24, 3) and keypoints2d (B, 24, 2)")
    obs = joints3d if joints3d is not None else keypoints2d
    obs = torch.as_tensor(obs, dtype=dtype)
    dim = 3 if joints3d is not None else 2
    name = "joints3d" if joints3d is not None else "keypoints2d"
    if obs.ndim == 2:
        obs = obs[None]
    if obs.ndim != 3 or obs.shape[1:] != (24, dim):
        raise ValueError(f"{name} must be (B, 24, {dim}) in SMPL joint order, got {tuple(obs.shape)}")
    check_finite_tensor(name, obs, " (give such joints zero confidence and any finite value)")
    conf = torch.ones(obs.shape[:2], dtype=dtype) if confidence is None else torch.as_tensor(confidence, dtype=dtype)
    if conf.ndim == 1:
        conf = conf[None]
    check_finite_tensor("confidence", conf)
    if conf.shape != obs.shape[:2] or not torch.isfinite(conf).all() or (conf < 0).any():
        raise ValueError(f"confidence must be finite, >= 0 and of shape {tuple(obs.shape[:2])}, "
                         f"got shape {tuple(conf.shape)}")
    if keypoints2d is not None:
        if camera is None:
            raise ValueError("2D fitting needs a camera with known intrinsics")
        if float(conf[:, _TORSO].sum(1).min()) <= 0:
            raise ValueError("2D fitting needs confident hips and shoulders to initialise depth")
        camera = camera.to(dtype)
    return obs, conf, camera


def _fit(bm, joints3d, keypoints2d, confidence, camera, pose_prior, config, optimize_camera_translation, shared_betas,
         betas=None):
    config = config or FitConfig()
    dtype = bm.v_template.dtype
    obs, conf, camera = _check_inputs(joints3d, keypoints2d, confidence, camera, dtype)
    B = obs.shape[0]
    if optimize_camera_translation and keypoints2d is not None and B != 1:
        raise ValueError(f"optimize_camera_translation needs a single frame (one camera), got {B} frames")
    problem = FittingProblem(
        bm, config, pose_prior, obs if joints3d is not None else None, obs if keypoints2d is not None else None,
        conf, camera, shared_betas,
    )  # fmt: skip
    nb = bm.shapedirs.shape[-1]
    if betas is not None:
        betas = torch.as_tensor(betas, dtype=dtype).reshape(-1, nb)
        if betas.shape[0] != (1 if shared_betas else B) or not torch.isfinite(betas).all():
            raise ValueError(f"fixed betas must be finite with shape ({1 if shared_betas else B}, {nb}), "
                             f"got {tuple(betas.shape)}")
    p = {
        "betas": torch.zeros(1 if shared_betas else B, nb, dtype=dtype) if betas is None else betas.clone(),
        "body_pose": _mean_pose(pose_prior, B, dtype),
        "global_orient": torch.zeros(B, 3, dtype=dtype),
        "transl": torch.zeros(B, 3, dtype=dtype),
    }
    scales = parameter_scales(bm)
    stage_losses = []
    rigid_conf = torch.zeros_like(conf)
    w0 = (config.pose_weights[0], config.shape_weights[0])
    rigid = ["global_orient", "transl"]

    if keypoints2d is None:
        _init_3d(problem, p)
        rigid_conf[:, _RIGID] = conf[:, _RIGID]
        stage_losses.append(optimise(p, rigid, lambda q: problem.energy(q, *w0, rigid_conf), scales, config,
                                     config.rigid_iters))
    else:
        # Independent frames carry several starts through every stage and keep the best.
        keep = 1 if shared_betas else config.hypotheses
        p, loss = _init_2d(problem, p, scales, config, keep)
        stage_losses.append(loss)
        keep = p["body_pose"].shape[0] // B
        problem, conf = problem.repeat(keep), conf.repeat_interleave(keep, 0)
    if optimize_camera_translation and keypoints2d is not None:
        # Move the body translation into the camera: R (x + transl) + t = R x + (R transl + t).
        p["cam_t"] = p["transl"] @ camera.rotation.T + camera.translation
        p["transl"] = torch.zeros_like(p["transl"])
        free = ["betas", "body_pose", "global_orient", "cam_t"]
    else:
        free = ["betas", "body_pose", "global_orient", "transl"]
    if betas is not None:  # a known shape: fit the pose only
        free.remove("betas")
    for w_pose, w_shape, iters in zip(config.pose_weights, config.shape_weights, config.stage_iters):
        energy = lambda q, w_pose=w_pose, w_shape=w_shape: problem.energy(q, w_pose, w_shape, conf)  # noqa: E731
        stage_losses.append(optimise(p, free, energy, scales, config, iters))
    with torch.no_grad():
        joints = problem.joints(p)
        if joints.shape[0] > B:  # hypotheses: keep each frame's lowest final energy
            H = joints.shape[0] // B
            e = problem.frame_energy(p, config.pose_weights[-1], config.shape_weights[-1], conf, joints).reshape(B, H)
            rows = torch.arange(B) * H + e.argmin(1)
            p = {k: v[rows] for k, v in p.items()}
            joints = joints[rows]
            stage_losses[-1] = float(e.min(1).values.sum())  # the kept hypotheses' energy
    betas = p["betas"].detach().expand(B, -1).clone() if shared_betas else p["betas"].detach()
    out_camera = camera.with_translation(p["cam_t"][0].detach()) if "cam_t" in p else camera
    return FitResult(
        betas=betas, body_pose=p["body_pose"].detach(), global_orient=p["global_orient"].detach(),
        transl=p["transl"].detach(), joints=joints, loss=stage_losses[-1], camera=out_camera, stage_losses=stage_losses,
    )  # fmt: skip


def fit_to_keypoints(
    bm,
    joints3d: Tensor | None = None,
    keypoints2d: Tensor | None = None,
    confidence: Tensor | None = None,
    camera: PerspectiveCamera | None = None,
    *,
    pose_prior: GaussianMixturePrior | None = None,
    config: FitConfig | None = None,
    optimize_camera_translation: bool = False,
    betas: Tensor | None = None,
) -> FitResult:
    """Fit shape, pose, orientation and translation of each frame independently.

    joints3d: (B, 24, 3) metres, or keypoints2d: (B, 24, 2) pixels seen by ``camera``; both in
    SMPL joint order with ``confidence`` (B, 24) (zero for a missing joint). ``betas`` (B, 10)
    fixes a known shape instead of fitting it. Runs in the body model's dtype (float64
    converges more tightly).

    Each frame is its own problem, as SMPLify fits each image: L-BFGS runs per frame (and
    per hypothesis) with its own history and line search, all frames evaluated as one batch
    (:func:`~mimicgym.motion.fitting_energy.row_lbfgs`). ``res.loss`` and
    ``res.stage_losses`` are summed over frames.
    """
    return _fit(bm, joints3d, keypoints2d, confidence, camera, pose_prior, config, optimize_camera_translation,
                False, betas)  # fmt: skip


def result_to_clip(bm, res: FitResult, fps: float = 30.0, name: str = "fitted") -> MotionClip:
    """A fit of T frames with one shape as a clip on that shape's SMPL skeleton, in the z-up
    world (world = C x body-model coordinates; :func:`~mimicgym.motion.humanoid.model_to_world_rotation`).
    """
    skeleton = body_skeleton(bm, res.betas[:1])
    C = torch.as_tensor(skeleton.upright_matrix(), dtype=torch.float64)
    quats = axis_angle_to_quat(torch.cat([res.global_orient, res.body_pose], -1).double().reshape(-1, 24, 3))
    quats[:, 0] = matrix_to_quat(C @ axis_angle_to_matrix(res.global_orient.double()))
    root = res.joints[:, 0].double() @ C.T
    return MotionClip(skeleton=skeleton, fps=fps, root_trans=root.numpy(), rotations=quats.numpy(),
                      betas=res.betas[0].double().numpy(), name=name)  # fmt: skip


def fit_sequence(
    bm,
    joints3d: Tensor | None = None,
    keypoints2d: Tensor | None = None,
    confidence: Tensor | None = None,
    camera: PerspectiveCamera | None = None,
    *,
    fps: float = 30.0,
    pose_prior: GaussianMixturePrior | None = None,
    config: FitConfig | None = None,
    name: str = "fitted",
    return_result: bool = False,
) -> MotionClip | tuple[MotionClip, FitResult]:
    """Fit a (T, 24, ...) keypoint sequence with one shared shape and the temporal smoothness
    term (SFV's video-to-motion, keypoints given) and return it as a motion clip (and the
    :class:`FitResult` with ``return_result=True``).
    """
    obs = joints3d if joints3d is not None else keypoints2d
    if obs is not None and (torch.as_tensor(obs).ndim != 3 or len(obs) < 2):
        raise ValueError(f"a sequence needs (T, 24, D) keypoints with T >= 2, "
                         f"got shape {tuple(torch.as_tensor(obs).shape)}")
    res = _fit(bm, joints3d, keypoints2d, confidence, camera, pose_prior, config, False, True)
    clip = result_to_clip(bm, res, fps, name)
    return (clip, res) if return_result else clip
