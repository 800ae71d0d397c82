"""Gridworld speed: single-env steps/s against FrozenLake, the batched env, value iteration.

Rows:
  * single env: ``gym.make("mimicgym/GridWorld-v0")`` (also with slip 0.1) next to
    ``gym.make("FrozenLake-v1")`` (slippery), both through gym.make's default wrappers,
    random actions, reset on episode end, in the same run;
  * batched: ``BatchedGridWorld`` via ``gym.make_vec``, N=4096, slip 0.1, autoreset on;
  * value iteration (only if ``mimicgym.agents.dp`` exists): the vectorised
    ``mimicgym.agents.value_iteration`` on a 100x100 open grid (10,000 states, slip 0.1,
    -1 per step, goal in the far corner, gamma 0.99, tol 1e-8) next to a plain dict-loop
    implementation over ``env.P``.

Prints a table and writes ``benchmarks/results/gridworld_speed.json``.
Usage: ``python benchmarks/gridworld_speed.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

import mimicgym  # noqa: E402, F401  (registers the env ids)
from mimicgym.envs.maps import open_grid  # noqa: E402
from mimicgym.utils.io import atomic_write  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "gridworld_speed.json"


def single_env_steps_per_second(env_id: str, n_steps: int, repeats: int, **kwargs) -> float:
    """Best-of-``repeats`` steps/s of random play with resets, through gym.make's wrappers."""
    env = gym.make(env_id, **kwargs)
    actions = np.random.default_rng(0).integers(0, env.action_space.n, n_steps).tolist()
    best = 0.0
    for _ in range(repeats):
        env.reset(seed=0)
        start = time.perf_counter()
        for a in actions:
            _, _, terminated, truncated, _ = env.step(a)
            if terminated or truncated:
                env.reset()
        best = max(best, n_steps / (time.perf_counter() - start))
    return best


def batched_steps_per_second(num_envs: int, n_calls: int, repeats: int, **kwargs) -> float:
    envs = gym.make_vec("mimicgym/GridWorld-v0", num_envs=num_envs,
                        vectorization_mode="vector_entry_point", slip=0.1, **kwargs)
    actions = np.random.default_rng(0).integers(0, 4, (16, num_envs))  # cycled, not timed
    envs.reset(seed=0)
    for i in range(50):  # warm up, and let episodes spread out over time
        envs.step(actions[i % 16])
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(n_calls):
            envs.step(actions[i % 16])
        best = max(best, n_calls * num_envs / (time.perf_counter() - start))
    return best


def dict_value_iteration(P: dict, gamma: float, tol: float, max_sweeps: int | None = None):
    """Plain Python value iteration over the toy-text ``P[s][a]`` lists (synchronous sweeps,
    like the vectorised one). Returns (values, sweeps done, converged)."""
    values = {s: 0.0 for s in P}
    for sweep in range(1, (max_sweeps or 10**9) + 1):
        new, delta = {}, 0.0
        for s, actions in P.items():
            best = max(sum(p * (r + gamma * values[n]) for p, n, r, _ in outcomes)
                       for outcomes in actions.values())
            new[s] = best
            delta = max(delta, abs(best - values[s]))
        values = new
        if delta < tol:
            return values, sweep, True
    return values, sweep, False


def bench_value_iteration(quick: bool) -> list[dict]:
    """Value iteration on the 100x100 slippery grid: vectorised agent vs dict loop."""
    from mimicgym.agents import value_iteration

    env = gym.make("mimicgym/GridWorld-v0", map=open_grid(100, 100), slip=0.1, step_reward=-1.0)
    model, table = env.unwrapped.model(), env.unwrapped.P
    gamma, tol = 0.99, 1e-8
    times = []
    for _ in range(3):
        start = time.perf_counter()
        result = value_iteration(model, gamma=gamma, tol=tol)
        times.append(time.perf_counter() - start)
    fast = min(times)
    # the dict loop runs to convergence, or (with --quick) a few sweeps, projected
    start = time.perf_counter()
    values, sweeps, converged = dict_value_iteration(table, gamma, tol, max_sweeps=5 if quick else None)
    slow = time.perf_counter() - start
    if converged:
        ref = np.array([values[s] for s in range(model.n_states)])
        max_diff = float(np.abs(ref - result.values).max())
    else:  # compare the first sweeps with the same number of numpy Bellman sweeps
        v = np.zeros(model.n_states)
        for _ in range(sweeps):
            v = model.q_from_v(v, gamma).max(axis=1)
        max_diff = float(np.abs(np.array([values[s] for s in range(model.n_states)]) - v).max())
        slow *= result.iterations / sweeps
    return [
        {"name": "value_iteration 100x100 (mimicgym.agents)", "unit": "s", "value": fast,
         "sweeps": result.iterations},
        {"name": "value_iteration 100x100 (dict loop"
                 + ("" if converged else f", projected from {sweeps} sweeps") + ")",
         "unit": "s", "value": slow, "sweeps": sweeps, "max_abs_diff_vs_vectorised": max_diff,
         "vectorised_speedup": slow / fast},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps, a projected dict-loop time")
    args = parser.parse_args()
    n_single, n_calls, repeats = (20_000, 200, 2) if args.quick else (200_000, 2_000, 3)

    rows = []
    lake = single_env_steps_per_second("FrozenLake-v1", n_single, repeats)
    grid = single_env_steps_per_second("mimicgym/GridWorld-v0", n_single, repeats)
    grid_slip = single_env_steps_per_second("mimicgym/GridWorld-v0", n_single, repeats, slip=0.1)
    rows += [
        {"name": "FrozenLake-v1 (gym.make, slippery)", "unit": "steps/s", "value": lake},
        {"name": "mimicgym/GridWorld-v0 (gym.make)", "unit": "steps/s", "value": grid,
         "vs_frozenlake": grid / lake},
        {"name": "mimicgym/GridWorld-v0 slip=0.1 (gym.make)", "unit": "steps/s", "value": grid_slip,
         "vs_frozenlake": grid_slip / lake},
    ]
    for copy in (True, False):
        rate = batched_steps_per_second(4096, n_calls, repeats, copy=copy)
        rows.append({"name": f"BatchedGridWorld N=4096 slip=0.1 autoreset copy={copy}",
                     "unit": "steps/s", "value": rate})
    rows += bench_value_iteration(args.quick)

    print(f"{'benchmark':68s} {'value':>14s}  unit")
    for row in rows:
        extra = f"  ({row['vs_frozenlake']:.1f}x FrozenLake)" if "vs_frozenlake" in row else ""
        extra += f"  ({row['sweeps']} sweeps)" if "sweeps" in row else ""
        if "vectorised_speedup" in row:
            extra += (f"  (vectorised {row['vectorised_speedup']:.0f}x faster, "
                      f"max |dV| {row['max_abs_diff_vs_vectorised']:.1e})")
        print(f"{row['name']:68s} {row['value']:14,.3f}  {row['unit']}{extra}")
    with atomic_write(RESULTS, "w") as f:
        json.dump({"machine": platform.processor() or platform.machine(), "python": platform.python_version(),
                   "numpy": np.__version__, "gymnasium": gym.__version__, "quick": args.quick,
                   "rows": rows}, f, indent=2)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
