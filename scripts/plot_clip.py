"""Plot a motion clip as a strip of stick figures (side view) to a PNG.

    python scripts/plot_clip.py --clip walk --out runs/plots/walk.png
    python scripts/plot_clip.py --deepmimic /path/to/humanoid3d_walk.txt --out runs/plots/dm.png
    python scripts/plot_clip.py --deepmimic walk   # a clip shipped with pybullet, by name
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mimicgym.motion.clip import MotionClip  # noqa: E402
from mimicgym.motion.clip_library import LIBRARY, make_clip  # noqa: E402
from mimicgym.utils.io import atomic_write  # noqa: E402


def load(args: argparse.Namespace) -> MotionClip:
    if args.clip:
        return make_clip(args.clip)
    if args.deepmimic:
        from mimicgym.motion.deepmimic import load_deepmimic, load_deepmimic_clip
        path = Path(args.deepmimic)
        return load_deepmimic(path) if path.suffix == ".txt" else load_deepmimic_clip(args.deepmimic)
    return MotionClip.load(args.npz)


def plot_strip(clip: MotionClip, frames: int = 8, view: str = "side") -> plt.Figure:
    """``frames`` evenly spaced poses, side view (x right, z up) or front view (y, z)."""
    pos = clip.joint_positions()  # (T, J, 3)
    idx = np.linspace(0, clip.num_frames - 1, frames).round().astype(int)
    h = 0 if view == "side" else 1
    sk = clip.skeleton
    fig, axes = plt.subplots(1, frames, figsize=(1.9 * frames, 3.4), sharey=True)
    lo, hi = pos[..., 2].min(), pos[..., 2].max()
    for ax, i in zip(axes, idx):
        p = pos[i]
        centre = p[0, h]
        ax.axhline(0.0, color="0.6", lw=1)
        for j, parent in enumerate(sk.parents):
            if parent < 0:
                continue
            name = sk.joint_names[j]
            color = "tab:blue" if name.startswith("left") else "tab:red" if name.startswith("right") else "k"
            ax.plot([p[parent, h] - centre, p[j, h] - centre], [p[parent, 2], p[j, 2]], color=color, lw=2)
        ax.scatter(p[:, h] - centre, p[:, 2], s=6, color="k", zorder=3)
        ax.set_xlim(-0.8, 0.8)
        ax.set_ylim(min(lo, 0.0) - 0.05, hi + 0.1)
        ax.set_aspect("equal")
        ax.set_title(f"t={i / clip.fps:.2f}s", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"{clip.name or 'clip'} ({clip.skeleton.name}, {view} view; left blue, right red)", fontsize=9)
    fig.tight_layout()
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--clip", choices=sorted(LIBRARY), help="a generated library clip")
    src.add_argument("--deepmimic", help="a DeepMimic .txt file, or a pybullet clip name")
    src.add_argument("--npz", help="a clip saved with MotionClip.save")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--view", choices=("side", "front"), default="side")
    parser.add_argument("--out", default="runs/plots/clip.png")
    args = parser.parse_args()
    if args.frames < 2:
        parser.error(f"--frames must be at least 2, got {args.frames}")
    fig = plot_strip(load(args), args.frames, args.view)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    with atomic_write(args.out) as f:
        f.write(buf.getvalue())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
