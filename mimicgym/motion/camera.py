"""Pinhole perspective camera (SMPLify's ``PerspectiveCamera``), batched, differentiable.

Camera coordinates follow OpenCV: x right, y down, z forward (into the scene). A world
point ``p`` maps to ``p_cam = R p + t`` and to pixels ``(fx x/z + cx, fy y/z + cy)``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

__all__ = ["PerspectiveCamera"]


@dataclass(frozen=True)
class PerspectiveCamera:
    """Intrinsics ``focal_length`` (fx, fy) and ``center`` (cx, cy) in pixels; extrinsics
    ``rotation`` (3, 3) and ``translation`` (3,) map world to camera coordinates.
    """

    focal_length: Tensor
    center: Tensor
    rotation: Tensor
    translation: Tensor

    def __post_init__(self) -> None:
        shapes = {"focal_length": (2,), "center": (2,), "rotation": (3, 3), "translation": (3,)}
        for name, shape in shapes.items():
            value = torch.as_tensor(getattr(self, name))
            if value.shape != shape:
                raise ValueError(f"camera {name} must have shape {shape}, got {tuple(value.shape)}")
            if not torch.isfinite(value).all():
                raise ValueError(f"camera {name} contains NaN or inf: {value.tolist()}")
            object.__setattr__(self, name, value)
        if (self.focal_length <= 0).any():
            raise ValueError(f"camera focal_length must be > 0, got {self.focal_length.tolist()}")

    @classmethod
    def create(
        cls,
        focal_length: float | tuple[float, float] = 1000.0,
        image_size: tuple[int, int] = (1000, 1000),
        rotation: Tensor | None = None,
        translation: Tensor | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> "PerspectiveCamera":
        """A camera with the principal point at the centre of a (width, height) image."""
        f = torch.as_tensor(focal_length, dtype=dtype).expand(2).clone()
        center = torch.tensor([image_size[0] / 2.0, image_size[1] / 2.0], dtype=dtype)
        rotation = torch.eye(3, dtype=dtype) if rotation is None else torch.as_tensor(rotation, dtype=dtype)
        translation = torch.zeros(3, dtype=dtype) if translation is None else torch.as_tensor(translation, dtype=dtype)
        return cls(f, center, rotation, translation)

    def to(self, dtype: torch.dtype) -> "PerspectiveCamera":
        return PerspectiveCamera(*(t.to(dtype)
                                   for t in (self.focal_length, self.center, self.rotation, self.translation)))

    def with_translation(self, translation: Tensor) -> "PerspectiveCamera":
        return replace(self, translation=translation)

    def world_to_camera(self, points: Tensor, translation: Tensor | None = None) -> Tensor:
        """(..., 3) world points -> (..., 3) camera coordinates; ``translation`` overrides t."""
        t = self.translation if translation is None else translation
        return points @ self.rotation.to(points).T + t.to(points)

    def project(self, points: Tensor, translation: Tensor | None = None) -> Tensor:
        """(..., 3) world points -> (..., 2) pixel coordinates."""
        p = self.world_to_camera(points, translation)
        # Clamp depth away from zero so points behind/at the camera give large, finite pixels.
        z = p[..., 2:].clamp(min=1e-6)
        return p[..., :2] / z * self.focal_length.to(points) + self.center.to(points)

    def backproject(self, pixels: Tensor, depth: Tensor) -> Tensor:
        """Pixels (..., 2) at camera depth (...,) -> world points (..., 3)."""
        xy = (pixels - self.center.to(pixels)) / self.focal_length.to(pixels) * depth[..., None]
        p_cam = torch.cat([xy, depth[..., None]], dim=-1)
        return (p_cam - self.translation.to(pixels)) @ self.rotation.to(pixels)
