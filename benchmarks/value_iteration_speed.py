"""Value iteration on a 100x100 slippery grid (10,000 states, 4 actions, slip 0.1, -1 per
step, goal in the far corner, gamma 0.99) to tolerance 1e-8, on one core.

Also times one exact and one iterative policy evaluation on the 4x4 grid of Example 4.1
and the sweeps of policy iteration (iterative evaluation) on the big grid, for scale.
Prints a table and writes ``benchmarks/results/value_iteration_speed.json``.
Usage: ``python benchmarks/value_iteration_speed.py [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, as the target says
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

import mimicgym  # noqa: E402, F401  (registers the env ids)
from mimicgym.agents import dp  # noqa: E402
from mimicgym.envs.maps import open_grid  # noqa: E402
from mimicgym.utils.io import atomic_write  # noqa: E402


def best_time(fn, repeats: int) -> tuple[float, float, object]:
    """Best wall-clock and best CPU seconds over ``repeats`` calls (CPU time is the fairer
    figure on a shared machine), and the last result."""
    wall, cpu, result = [], [], None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return min(wall), min(cpu), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    env = gym.make("mimicgym/GridWorld-v0", map=open_grid(100, 100), slip=0.1, step_reward=-1.0)
    model = env.unwrapped.model()
    rows = []
    seconds, cpu, result = best_time(lambda: dp.value_iteration(model, gamma=0.99, tol=1e-8), args.repeats)
    rows.append({"task": "value_iteration 100x100 slip 0.1, tol 1e-8", "seconds": seconds, "cpu_seconds": cpu,
                 "sweeps": result.iterations, "ms_per_sweep": 1e3 * cpu / result.iterations,
                 "value_at_start": float(result.values[0])})
    seconds, cpu, result = best_time(
        lambda: dp.policy_iteration(model, gamma=0.99, evaluation="iterative", tol=1e-8), 1)
    rows.append({"task": "policy_iteration (iterative eval) 100x100", "seconds": seconds, "cpu_seconds": cpu,
                 "sweeps": result.iterations, "ms_per_sweep": float("nan"),  # improvement steps
                 "value_at_start": float(result.values[0])})
    small = gym.make("mimicgym/SuttonGrid4x4-v0").unwrapped.model()
    uniform = dp.uniform_policy(small)
    for name, fn in (("policy_evaluation_exact 4x4", lambda: dp.policy_evaluation_exact(small, uniform, 1.0)),
                     ("policy_evaluation (iterative) 4x4", lambda: dp.policy_evaluation(small, uniform, 1.0))):
        seconds, cpu, _ = best_time(fn, args.repeats)
        rows.append({"task": name, "seconds": seconds, "cpu_seconds": cpu, "sweeps": None, "ms_per_sweep": float("nan"),
                     "value_at_start": None})

    print(f"{'task':48s} {'wall s':>9s} {'cpu s':>9s} {'iters':>7s} {'ms/sweep':>9s}")
    for row in rows:
        print(f"{row['task']:48s} {row['seconds']:9.4f} {row['cpu_seconds']:9.4f} "
              f"{str(row['sweeps'] or ''):>7s} {row['ms_per_sweep']:9.3f}")
    out = Path(__file__).parent / "results" / "value_iteration_speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out, "w") as f:
        json.dump({"machine": platform.processor() or platform.machine(),
                   "numpy": np.__version__, "rows": rows}, f, indent=2)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
