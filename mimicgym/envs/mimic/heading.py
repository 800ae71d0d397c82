"""The heading frame: world coordinates turned by the root's yaw, so that observations and
end-effector targets do not depend on which way the character faces (DeepMimic's convention)."""

from __future__ import annotations

import numpy as np


def heading_matrix(root_xmat: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """(3, 3) world -> heading frame: a yaw that turns the root's forward axis (local x) onto +x.

    ``root_xmat`` is the root's (9,) or (3, 3) world orientation; rows of the result are the
    heading frame's axes in world coordinates. ``out``: a (3, 3) array to fill (the env's
    per-step scratch) instead of a new one.
    """
    m = np.asarray(root_xmat).ravel()
    fx, fy = float(m[0]), float(m[3])  # the root's local x axis in the world, horizontal part
    norm = (fx * fx + fy * fy) ** 0.5
    # Plain floats: this runs every env step and numpy's per-call cost would dominate.
    c, s = (fx / norm, fy / norm) if norm > 1e-9 else (1.0, 0.0)  # facing straight up/down
    if out is None:
        return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
    out[0, 0], out[0, 1], out[1, 0], out[1, 1] = c, s, -s, c
    out[0, 2] = out[1, 2] = out[2, 0] = out[2, 1] = 0.0
    out[2, 2] = 1.0
    return out


def end_effectors_in_heading(body_pos: np.ndarray, root_xmat: np.ndarray,
                             ee_index: np.ndarray) -> np.ndarray:
    """(B, 3) world body origins -> (E, 3) end effectors relative to the root, heading frame."""
    rel = body_pos[ee_index] - body_pos[0]  # (E, 3)
    return rel @ heading_matrix(root_xmat).T
