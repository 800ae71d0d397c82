"""Env steps/s of MimicWalk (humanoid3d and SMPL) next to Gymnasium's Humanoid-v5 and next to each
model's bare physics (``mj_step`` times the substeps of one env step), in the same run; and the
batched env (``gym.make_vec(..., vectorization_mode="vector_entry_point")``, N characters per
call) on 1 and 2 threads next to its physics floor and next to N single envs in ``AsyncVectorEnv``.

The physics floor replays the env's own trajectory without observation, reward or reference
lookup: every recorded step's state and controls (the PD actuators' ``ctrl``) are set and
``mj_step(model, data, nstep)`` runs: the physics work of the env's step (which splits the same
``nstep`` physics steps as ``mj_step2``, ``nstep - 1`` steps and ``mj_step1`` of the new state).
Overhead = env time per step over floor time per step, minus 1. Single-process rates use this
process's CPU time (``time.process_time``), so other jobs on a shared machine do not count against them; each
figure is the best of ``--repeats`` interleaved trials. Vectorised rates (Gymnasium's
``SyncVectorEnv``: all envs in this process; ``AsyncVectorEnv``: one subprocess per env, as
training uses) are wall-clock over the whole vector, so they count the pipes and, on a shared
machine, other jobs too.

The batched env's floor replays its own physics calls (recorded by wrapping its physics step):
each character's state, solver warm start and controls are set and ``mj_step`` of the substeps
runs on one ``MjData``. Its 1-thread overhead uses CPU time like the single env's; the thread speed-up
is wall-clock, next to that of MuJoCo's own thread pool (``mujoco.rollout``, physics only) on
the same states, which shows what the machine allows at that moment; the load average is
recorded with the results.

    python benchmarks/imitation_env.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import mimicgym.envs  # noqa: E402,F401
from mimicgym.utils.io import atomic_write  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "imitation_env.json"


def _rollout(env, actions, record: bool):
    """Step ``env`` through ``actions`` (resetting on episode ends); optionally record, per step,
    the state before it and the controls it set (``ctrl``) for a physics replay."""
    d = env.data
    states, lengths, n = [], [], 0
    for a in actions:
        before = (d.qpos.copy(), d.qvel.copy()) if record else None
        _, _, terminated, truncated, _ = env.step(a)
        if record:
            states.append((*before, d.ctrl.copy()))
        n += 1
        if terminated or truncated:
            lengths.append(n)
            n = 0
            env.reset()
    return states, lengths


def env_and_floor_rates(env_id: str, steps: int, seed: int = 0,
                        **kwargs) -> tuple[float, float, list[int]]:
    """(env steps/s, physics-floor steps/s, episode lengths) under uniform random actions.

    The floor replays the env's own trajectory: each recorded step's state and controls are
    set and ``mj_step(model, data, nstep)`` runs, so both do the same physics work.
    """
    env = gym.make(env_id, **kwargs).unwrapped  # no wrappers: time the env itself
    actions = np.random.default_rng(seed).uniform(-1, 1, (steps, *env.action_space.shape))
    actions = actions.astype(env.action_space.dtype) * env.action_space.high
    env.reset(seed=seed)
    states, _ = _rollout(env, actions, record=True)
    env.reset(seed=seed)
    start = time.process_time()
    _, lengths = _rollout(env, actions, record=False)
    env_rate = steps / (time.process_time() - start)
    m, d = env.model, env.data
    nstep = getattr(env, "substeps", None) or env.frame_skip
    start = time.process_time()
    for qpos, qvel, ctrl in states:
        d.qpos[:], d.qvel[:], d.ctrl[:] = qpos, qvel, ctrl
        mujoco.mj_step(m, d, nstep=nstep)
    floor_rate = steps / (time.process_time() - start)
    env.close()
    return env_rate, floor_rate, lengths


def vector_rate(env_id: str, n_envs: int, steps: int, mode: str = "async", seed: int = 0,
                **kwargs) -> float:
    """Env steps/s (summed over envs) of a vector of ``n_envs`` envs: ``mode`` ``"sync"`` (all
    in this process) or ``"async"`` (one subprocess each)."""
    # forkserver, as SB3's SubprocVecEnv uses: a plain fork copies this process's thread pools
    # (BLAS, torch's OpenMP after the SMPL body model ran) into children that then deadlock.
    vector_kwargs = {"context": "forkserver"} if mode == "async" else {}
    envs = gym.make_vec(env_id, num_envs=n_envs, vectorization_mode=mode,
                        vector_kwargs=vector_kwargs, **kwargs)
    envs.reset(seed=seed)
    envs.action_space.seed(seed)
    actions = [envs.action_space.sample() for _ in range(steps)]
    start = time.perf_counter()  # wall clock: async work happens in the subprocesses
    for a in actions:
        envs.step(a)
    rate = steps * n_envs / (time.perf_counter() - start)
    envs.close()
    return rate


def batched_rates(env_id: str, n_envs: int, steps: int, repeats: int, seed: int = 0) -> dict[str, float]:
    """Env steps/s (summed over characters) of the batched env: 1 thread (CPU time and wall
    clock), 2 threads (wall clock), its physics floor (CPU time) and ``mujoco.rollout`` on the
    same states with 1 and 2 threads (wall clock), each the best of ``repeats`` interleaved trials."""
    from mujoco import rollout

    envs = {t: gym.make_vec(env_id, num_envs=n_envs, vectorization_mode="vector_entry_point", threads=t)
            for t in (1, 2)}
    single = envs[1].single_action_space
    actions = np.random.default_rng(seed).uniform(-1, 1, (steps, n_envs, *single.shape)).astype(single.dtype)
    recorded, physics = [], envs[1]._advance  # the floor replays exactly these calls

    def recording(ctrl):
        recorded.append([(d.qpos.copy(), d.qvel.copy(), d.qacc_warmstart.copy(), c.copy())
                         for d, c in zip(envs[1].datas, ctrl)])
        physics(ctrl)

    envs[1]._advance = recording
    envs[1].reset(seed=seed)
    for a in actions:
        envs[1].step(a)
    envs[1]._advance = physics
    m, nstep = envs[1].single_env.model, envs[1].single_env.substeps
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    states = np.empty((steps, n_envs, mujoco.mj_stateSize(m, spec)))
    data = mujoco.MjData(m)
    for t, row in enumerate(recorded):
        for i, (qpos, qvel, _, _) in enumerate(row):
            data.qpos[:], data.qvel[:] = qpos, qvel
            mujoco.mj_getState(m, data, states[t, i], spec)
    ctrls = np.array([[c for *_, c in row] for row in recorded])[:, :, None]  # (steps, N, 1, nu)
    pools = {t: rollout.Rollout(nthread=t) for t in (1, 2)}
    datas = {t: [mujoco.MjData(m) for _ in range(t)] for t in (1, 2)}
    best: dict[str, float] = {}

    def keep(name: str, seconds: float) -> None:
        best[name] = max(best.get(name, 0.0), steps * n_envs / seconds)

    for _ in range(repeats):
        for t, env in envs.items():
            env.reset(seed=seed)
            cpu, wall = time.process_time(), time.perf_counter()
            for a in actions:
                env.step(a)
            keep(f"{t} thread wall", time.perf_counter() - wall)
            if t == 1:
                keep("1 thread", time.process_time() - cpu)
        cpu = time.process_time()
        for row in recorded:
            for qpos, qvel, warm, ctrl in row:
                data.qpos[:], data.qvel[:], data.qacc_warmstart[:], data.ctrl[:] = qpos, qvel, warm, ctrl
                mujoco.mj_step(m, data, nstep=nstep)
        keep("physics floor", time.process_time() - cpu)
        for t, pool in pools.items():
            wall = time.perf_counter()
            for state, ctrl in zip(states, ctrls):
                pool.rollout(m, datas[t], state, ctrl, nstep=nstep)
            keep(f"rollout {t} thread wall", time.perf_counter() - wall)
    for env in envs.values():
        env.close()
    for pool in pools.values():
        pool.close()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (well under 5 minutes)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n-envs", type=int, default=2)
    parser.add_argument("--batch-envs", type=int, nargs="+", default=[16, 64],
                        help="characters in the batched env, one row set each (the first also against "
                             "that many single envs in AsyncVectorEnv)")
    args = parser.parse_args()
    load_before = os.getloadavg()
    # One torch thread: the SMPL character's body model runs torch in this process, and an
    # OpenMP pool started before the async envs fork their workers deadlocks them.
    torch.set_num_threads(1)
    steps = 1_500 if args.quick else 6_000
    rows: dict[str, list[float]] = {}
    lengths: dict[str, float] = {}
    # (row name, its physics-floor row, env id, gym.make keywords)
    envs = (("MimicWalk-v0 (humanoid3d)", "MimicWalk-v0 physics floor", "mimicgym/MimicWalk-v0",
             {}),
            ("MimicWalk-v0 (smpl)", "MimicWalk-v0 (smpl) physics floor", "mimicgym/MimicWalk-v0",
             {"character": "smpl"}),
            ("Humanoid-v5", "Humanoid-v5 physics floor", "Humanoid-v5", {}))
    for _ in range(args.repeats):
        for name, floor_name, env_id, kwargs in envs:
            rate, floor, lens = env_and_floor_rates(env_id, steps, **kwargs)
            rows.setdefault(name, []).append(rate)
            rows.setdefault(floor_name, []).append(floor)
            lengths[name] = float(np.mean(lens)) if lens else float(steps)
    best = {name: max(rates) for name, rates in rows.items()}
    vec_steps = steps // (2 * args.n_envs)
    vec = {f"{name.replace(' (humanoid3d)', '')} x{args.n_envs} {mode}":
           vector_rate(env_id, args.n_envs, vec_steps, mode, **kwargs)
           for name, _, env_id, kwargs in envs for mode in ("sync", "async")}

    by_size = {n: batched_rates("mimicgym/MimicWalk-v0", n, max(steps // n, 8), args.repeats)
               for n in args.batch_envs}
    n_batch = args.batch_envs[0]
    batched = by_size[n_batch]
    batched[f"MimicWalk-v0 x{n_batch} singles async"] = vector_rate(
        "mimicgym/MimicWalk-v0", n_batch, max(steps // (2 * n_batch), 10), "async")
    load_after = os.getloadavg()

    mimic, floor = best["MimicWalk-v0 (humanoid3d)"], best["MimicWalk-v0 physics floor"]
    human = best["Humanoid-v5"]

    def paired(env_row: str, floor_row: str) -> float:
        """Median over trials of each trial's own floor/env ratio - 1: the env and its floor run
        back to back, so load on a shared machine shifts both (best-of figures can come from
        different moments)."""
        return float(np.median(np.array(rows[floor_row]) / np.array(rows[env_row]) - 1.0))

    summary = {
        "mimic_overhead_vs_physics_floor": floor / mimic - 1.0,
        "mimic_overhead_paired_median": paired("MimicWalk-v0 (humanoid3d)",
                                               "MimicWalk-v0 physics floor"),
        "mimic_smpl_overhead_vs_physics_floor":
            best["MimicWalk-v0 (smpl) physics floor"] / best["MimicWalk-v0 (smpl)"] - 1.0,
        "humanoid_v5_overhead_vs_physics_floor": best["Humanoid-v5 physics floor"] / human - 1.0,
        "mimic_over_humanoid_v5": mimic / human,
        "batched_overhead_vs_physics_floor": batched["physics floor"] / batched["1 thread"] - 1.0,
        "batched_two_threads_over_one": batched["2 thread wall"] / batched["1 thread wall"],
        "rollout_two_threads_over_one": batched["rollout 2 thread wall"] / batched["rollout 1 thread wall"],
        "batched_over_async_singles": batched["1 thread wall"] / batched[f"MimicWalk-v0 x{n_batch} singles async"],
        "batched_overhead_by_num_envs": {n: r["physics floor"] / r["1 thread"] - 1.0 for n, r in by_size.items()},
        "load_average_1min_before_after": [load_before[0], load_after[0]],
        "physics_steps_per_env_step": {"MimicWalk-v0": 20, "MimicWalk-v0 (smpl)": 20,
                                       "Humanoid-v5": 5},
        "targets": {"overhead_below": 0.30, "mimic_over_humanoid_v5_at_least": 0.5,
                    "batched_overhead_below": 0.10, "batched_two_threads_over_one_at_least": 1.8},
    }
    print(f"{'benchmark':36s} {'env steps/s':>12s} {'mean ep len':>12s}")
    for name, rate in {**best, **vec}.items():
        ep = lengths.get(name)
        print(f"{name:36s} {rate:12.0f} {'' if ep is None else f'{ep:12.1f}'}")
    overhead = summary["mimic_overhead_vs_physics_floor"]
    print(f"MimicWalk overhead over its physics floor: {overhead:.1%} (target < 30%)"
          f"; MimicWalk / Humanoid-v5: {summary['mimic_over_humanoid_v5']:.2f}x"
          f" (target >= 0.5x)")
    print(f"MimicWalk overhead, median of per-trial ratios: "
          f"{summary['mimic_overhead_paired_median']:.1%}")
    print(f"MimicWalk (smpl) overhead over its physics floor: "
          f"{summary['mimic_smpl_overhead_vs_physics_floor']:.1%} (target < 30%)")
    for n, rates in by_size.items():
        print(f"batched MimicWalk-v0, {n} characters (steps/s summed over them): 1-thread overhead over "
              f"its floor {summary['batched_overhead_by_num_envs'][n]:.1%}")
        for name, rate in rates.items():
            print(f"  {name:34s} {rate:12.0f}")
    print(f"batched overhead over its physics floor, 1 thread: "
          f"{summary['batched_overhead_vs_physics_floor']:.1%} (target <= 10%); 2 threads / 1: "
          f"{summary['batched_two_threads_over_one']:.2f}x (target >= 1.8x; mujoco.rollout's own pool: "
          f"{summary['rollout_two_threads_over_one']:.2f}x); over {n_batch} async single envs: "
          f"{summary['batched_over_async_singles']:.2f}x; load average {load_before[0]:.2f} -> "
          f"{load_after[0]:.2f} on {os.cpu_count()} CPUs")
    result = {"steps_per_trial": steps, "repeats": args.repeats, "best_steps_per_s": best,
              "all_trials_steps_per_s": rows, "vectorised_steps_per_s": vec,
              "batched_steps_per_s": {str(n): rates for n, rates in by_size.items()},
              "mean_episode_length": lengths, "summary": summary,
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "mujoco": mujoco.__version__}}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(RESULTS, "w") as f:
        f.write(json.dumps(result, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
