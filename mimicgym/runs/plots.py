"""The plots of a run directory: learning curve, and for gridworlds the value heatmap."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np


def occupiable_states(model) -> np.ndarray:
    """(S,) True where the agent can be: start states and successors of other states.

    Walls and cliff cells (entering one sends the agent back to start) never are; their
    values mean nothing, so plots leave them blank.
    """
    states = np.arange(model.n_states)[:, None, None]
    moved_in = model.next_states[(model.probs > 0) & (model.next_states != states)]
    occupiable = model.initial > 0
    occupiable[moved_in] = True
    return occupiable


def write_run_plots(run_dir: Path, agent, env: gym.Env | None, history: dict) -> list[Path]:
    """``learning_curve.png`` (episode returns, else the logged ``rollout/ep_rew_mean``) and,
    for an agent with values on a gridworld, ``values.png``."""
    from mimicgym.plots import plot_learning_curves, plot_value_heatmap

    written = []
    stats = getattr(agent, "episode_stats", None)
    if stats is not None and stats.returns:
        episodes = np.arange(1, len(stats.returns) + 1)
        written.append(plot_learning_curves(
            {agent.__class__.__name__: (episodes, stats.returns)},
            run_dir / "learning_curve.png", xlabel="episode", ylabel="episode return",
            title=f"{agent.__class__.__name__} on {getattr(env, 'spec', None) and env.spec.id}",
            smooth=max(1, len(stats.returns) // 50)))
    elif "rollout/ep_rew_mean" in history:
        steps, values = zip(*history["rollout/ep_rew_mean"])
        written.append(plot_learning_curves({agent.__class__.__name__: (steps, values)},
                                            run_dir / "learning_curve.png",
                                            xlabel="timesteps", ylabel="mean episode return"))
    base = getattr(env, "unwrapped", None)
    model = base.model() if hasattr(base, "model") else None
    values = getattr(agent, "values", None)
    q_values = getattr(agent, "q_values", None)
    if model is not None and model.grid_shape is not None and (values is not None or q_values is not None):
        v = np.asarray(values if values is not None else q_values.max(axis=1))
        q = q_values if q_values is not None else model.q_from_v(v, getattr(agent.config, "gamma", 1.0))
        written.append(plot_value_heatmap(
            v, model.grid_shape, run_dir / "values.png", greedy_actions=np.argmax(q, axis=1),
            moves=getattr(base, "moves", None), mask=model.terminal | ~occupiable_states(model),
            title=f"{agent.__class__.__name__}: V and greedy policy"))
    return written
