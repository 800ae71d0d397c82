"""Environments, registered under the Gymnasium namespace ``mimicgym``.

Entry points are strings, so registering imports neither the env modules nor MuJoCo.
Named textbook gridworlds are one class with a ``layout`` keyword; their variants are
further keywords to ``gym.make`` (``king_moves=True``, ``stochastic_wind=True``,
``n_states=19``). For gridworlds and the imitation ids alike,
``gym.make_vec(..., vectorization_mode="vector_entry_point")`` returns the batched
implementation with the same dynamics (numpy gridworlds; N imitation characters per call).
"""

from __future__ import annotations

import gymnasium as gym

from mimicgym.envs.tabular import TabularModel

_GRID = "mimicgym.envs.gridworld:GridWorldEnv"
_MIMIC = "mimicgym.envs.mimic.env:MimicEnv"
_GRID_VEC = "mimicgym.envs.batched:BatchedGridWorld"
_MIMIC_VEC = "mimicgym.envs.mimic.batched:BatchedMimicEnv"

# id -> (layout, max_episode_steps). Limits are generous where a textbook experiment runs
# untruncated episodes (the first windy-gridworld episodes take thousands of steps).
GRIDWORLDS: dict[str, tuple[str, int]] = {
    "GridWorld-v0": ("default", 200),
    "SuttonGrid4x4-v0": ("sutton_4x4", 200),
    "GridWorld5x5-v0": ("gridworld_5x5", 200),
    "CliffWalking-v0": ("cliff_walking", 5_000),
    "WindyGridWorld-v0": ("windy", 10_000),
    "RandomWalk-v0": ("random_walk", 1_000),
}


# Motion imitation (DeepMimic-style): id -> gym.make keywords. The env sets its own time
# limit (``episode_seconds``).
MIMIC_ENVS: dict[str, dict] = {
    "Mimic-v0": {},
    "MimicWalk-v0": {"clip": "walk"},
    "MimicRun-v0": {"clip": "run"},
}


def _register_all() -> None:
    for name, (layout, max_steps) in GRIDWORLDS.items():
        env_id = f"mimicgym/{name}"
        if env_id in gym.registry:
            continue
        gym.register(
            id=env_id,
            entry_point=_GRID,
            vector_entry_point=_GRID_VEC,
            max_episode_steps=max_steps,
            kwargs={"layout": layout},
        )
    for name, kwargs in MIMIC_ENVS.items():
        if f"mimicgym/{name}" not in gym.registry:
            gym.register(id=f"mimicgym/{name}", entry_point=_MIMIC, vector_entry_point=_MIMIC_VEC,
                         kwargs=kwargs)


_register_all()

__all__ = ["GRIDWORLDS", "MIMIC_ENVS", "TabularModel"]

