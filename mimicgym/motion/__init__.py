"""Motion: rotations, the SMPL-style body model, motion clips, fitting and the humanoid builder.

Torch-backed names load lazily so ``import mimicgym.motion`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "BodyModel": "mimicgym.motion.body_model",
    "BodyModelOutput": "mimicgym.motion.body_model",
    "SMPL_JOINT_NAMES": "mimicgym.motion.body_model",
    "SMPL_PARENTS": "mimicgym.motion.body_model",
    "lbs": "mimicgym.motion.body_model",
    "ModelFileError": "mimicgym.motion.model_io",
    "load_model_file": "mimicgym.motion.model_io",
    "save_model_npz": "mimicgym.motion.model_io",
    "Skeleton": "mimicgym.motion.skeleton",
    "SMPL_SKELETON": "mimicgym.motion.skeleton",
    "HUMANOID3D_SKELETON": "mimicgym.motion.skeleton",
    "forward_kinematics": "mimicgym.motion.skeleton",
    "MotionClip": "mimicgym.motion.clip",
    "retarget": "mimicgym.motion.retargeting",
    "load_bvh": "mimicgym.motion.bvh",
    "save_bvh": "mimicgym.motion.bvh",
    "load_amass": "mimicgym.motion.amass",
    "load_deepmimic": "mimicgym.motion.deepmimic",
    "deepmimic_clip_path": "mimicgym.motion.deepmimic",
    "load_deepmimic_clip": "mimicgym.motion.deepmimic",
    "make_clip": "mimicgym.motion.clip_library",
    "walk": "mimicgym.motion.clip_library",
    "run": "mimicgym.motion.clip_library",
    "turn": "mimicgym.motion.clip_library",
    "jumping_jacks": "mimicgym.motion.clip_library",
    "squat": "mimicgym.motion.clip_library",
    "foot_contacts": "mimicgym.motion.plausibility",
    "loop_closure": "mimicgym.motion.plausibility",
    "fit_to_keypoints": "mimicgym.motion.fitting",
    "fit_sequence": "mimicgym.motion.fitting",
    "FitConfig": "mimicgym.motion.fitting",
    "FitResult": "mimicgym.motion.fitting",
    "GaussianMixturePrior": "mimicgym.motion.pose_prior",
    "default_pose_prior": "mimicgym.motion.pose_prior",
    "PerspectiveCamera": "mimicgym.motion.camera",
    "build_humanoid_mjcf": "mimicgym.motion.humanoid",
    "pose_to_qpos": "mimicgym.motion.humanoid",
    "play_clip_kinematic": "mimicgym.motion.humanoid",
    "body_skeleton": "mimicgym.motion.body_geometry",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mimicgym.motion' has no attribute {name!r}")
