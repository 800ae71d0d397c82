"""Picture of the default body model: rest pose, a few poses, and the first shape directions.

Orthographic front and side views, triangles drawn back to front with Lambert shading.
Usage: python scripts/plot_body.py [--out runs/plots/body.png] [--model PATH]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402

from mimicgym.motion.body_model import SMPL_JOINT_NAMES, BodyModel  # noqa: E402
from mimicgym.motion.rotations import euler_to_matrix  # noqa: E402

J = {name: i for i, name in enumerate(SMPL_JOINT_NAMES)}


def pose(**joint_euler_xyz: tuple[float, float, float]) -> torch.Tensor:
    """Body pose as matrices (1, 23, 3, 3) from per-joint intrinsic XYZ Euler angles in degrees."""
    angles = torch.zeros(23, 3)
    for name, deg in joint_euler_xyz.items():
        angles[J[name] - 1] = torch.tensor(deg) * math.pi / 180
    return euler_to_matrix(angles, "XYZ")[None]


POSES = {
    "rest (T-pose)": pose(),
    "arms down": pose(left_shoulder=(0, 0, -75), right_shoulder=(0, 0, 75)),
    "walking stride": pose(left_hip=(-30, 0, 0), right_hip=(20, 0, 0), right_knee=(35, 0, 0),
                           left_knee=(5, 0, 0), left_shoulder=(25, 0, -75), right_shoulder=(-25, 0, 75),
                           left_elbow=(0, -20, 0), right_elbow=(0, 20, 0)),
    "sitting, reaching": pose(left_hip=(-85, 0, 0), right_hip=(-85, 0, 0), left_knee=(85, 0, 0),
                            right_knee=(85, 0, 0), right_shoulder=(0, 0, 75), left_shoulder=(0, 0, 30),
                            left_elbow=(0, -100, 0)),
}


def draw(ax, vertices: np.ndarray, faces: np.ndarray, view: str, title: str) -> None:
    """Orthographic projection onto the (x, y) plane ('front') or (z, y) plane ('side')."""
    if view == "side":  # look from the body's left: screen x = forward (+z)
        vertices = vertices[:, [2, 1, 0]] * np.array([1.0, 1.0, -1.0])
    tri = vertices[faces]  # (F, 3, 3)
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
    light = np.array([0.3, 0.5, 0.8]) / np.linalg.norm([0.3, 0.5, 0.8])
    shade = 0.25 + 0.75 * np.abs(normals @ light)
    order = np.argsort(tri[:, :, 2].mean(1))  # painter's algorithm: far (small z) first
    colors = np.clip(shade[order, None] * np.array([0.85, 0.7, 0.6]), 0, 1)
    ax.add_collection(PolyCollection(tri[order, :, :2], facecolors=colors, edgecolors="none"))
    ax.set_xlim(-1.0, 1.0)
    ax.set_ylim(-1.3, 1.0)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/plots/body.png"))
    parser.add_argument("--model", type=Path, default=None, help="SMPL-format .npz/.pkl (default: shipped model)")
    args = parser.parse_args()
    model = BodyModel.default() if args.model is None else BodyModel.load(args.model)
    faces = model.faces.numpy()

    panels = []
    for name, body_pose in POSES.items():
        out = model(body_pose=body_pose)
        panels.append((out.vertices[0].numpy(), name, "front"))
        if name != "rest (T-pose)":
            panels.append((out.vertices[0].numpy(), name + " (side)", "side"))
    for k in range(2):
        for value in (-2.0, 2.0):
            betas = torch.zeros(1, model.num_betas)
            betas[0, k] = value
            out = model(betas=betas, body_pose=POSES["arms down"])
            height = float(out.v_shaped[0, :, 1].max() - out.v_shaped[0, :, 1].min())
            panels.append((out.vertices[0].numpy(), f"beta{k} = {value:+.0f} ({height:.2f} m)", "front"))

    cols = 6
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 3.2 * rows))
    for ax in axes.flat:
        ax.axis("off")
    for ax, (verts, title, view) in zip(axes.flat, panels):
        ax.axis("on")
        draw(ax, verts, faces, view, title)
    fig.suptitle(f"default body model ({model.num_vertices} vertices, {model.num_joints} joints)")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
