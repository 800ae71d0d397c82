"""The aggregate of a sweep, read from its run directories: final returns per configuration
(``summary.json``, ``summary.md``) and the learning curves of all seeds as mean with a 95%
confidence band (``curves.png``).

A run's final return is its last logged ``rollout/ep_rew_mean`` (for our agents the mean
return of its last 100 training episodes, SB3's window): the online return the textbook
figures average, not the deterministic evaluation (which the summary adds beside it).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from mimicgym.runs.directory import write_json
from mimicgym.runs.sweep_config import SweepConfig, Trial
from mimicgym.utils.io import atomic_write

FINAL_RETURN_KEY = "rollout/ep_rew_mean"
EVAL_FILE = "eval.json"
ERROR_FILE = "error.txt"
CONFIDENCE = 0.95
_CURVE_POINTS = 200


def is_finished(run_dir: Path) -> bool:
    """A trial is finished once its run wrote its final evaluation."""
    return (Path(run_dir) / EVAL_FILE).is_file()


def read_history(run_dir: Path) -> dict[str, list]:
    path = Path(run_dir) / "progress.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def final_return(run_dir: Path) -> float | None:
    """The run's last logged ``rollout/ep_rew_mean`` (None if it logged none)."""
    points = read_history(run_dir).get(FINAL_RETURN_KEY)
    return float(points[-1][1]) if points else None


def learning_curve(history: dict[str, list], by_episodes: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """``rollout/ep_rew_mean`` against timesteps, or against episodes where the run logged its
    episode count at the same steps (``time/episodes``); None if it cannot be drawn."""
    points = history.get(FINAL_RETURN_KEY)
    if not points:
        return None
    steps, values = (np.asarray(a, dtype=np.float64) for a in zip(*points))
    if by_episodes:
        episodes = dict((int(s), e) for s, e in history.get("time/episodes", []))
        if not all(int(s) in episodes for s in steps):
            return None
        steps = np.asarray([episodes[int(s)] for s in steps], dtype=np.float64)
    return steps, values


def _t_quantile(n: int) -> float:
    """The two-sided 95% quantile of Student's t with n - 1 degrees of freedom."""
    from scipy import stats

    return float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1))


def mean_band(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Seeds' curves on one grid (their own x where all share it, else linear interpolation
    over the span that every seed covers): x, mean, and the 95% confidence half-width of the
    mean (zero for one seed)."""
    xs = [x for x, _ in curves]
    if all(x.shape == xs[0].shape and np.array_equal(x, xs[0]) for x in xs):
        grid = xs[0]
        ys = np.stack([y for _, y in curves])
    else:
        low, high = max(x[0] for x in xs), min(x[-1] for x in xs)
        if not high > low:
            return None
        grid = np.linspace(low, high, _CURVE_POINTS)
        ys = np.stack([np.interp(grid, x, y) for x, y in curves])
    mean = ys.mean(axis=0)
    n = len(curves)
    half = (_t_quantile(n) * ys.std(axis=0, ddof=1) / math.sqrt(n)) if n > 1 else np.zeros_like(mean)
    return grid, mean, half


def _statistics(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"final_return_mean": None, "final_return_sem": None, "final_return_min": None,
                "final_return_max": None}
    a = np.asarray(values, dtype=np.float64)
    sem = float(a.std(ddof=1) / math.sqrt(a.size)) if a.size > 1 else None
    return {"final_return_mean": float(a.mean()), "final_return_sem": sem,
            "final_return_min": float(a.min()), "final_return_max": float(a.max())}


def summarize(trials: list[Trial]) -> dict[str, dict[str, Any]]:
    """Per configuration key: ``n`` finished seeds, mean, standard error, min and max of their
    final returns, the mean deterministic evaluation, and the failed and missing seeds."""
    summary: dict[str, dict[str, Any]] = {}
    for key in sorted({t.key for t in trials}):
        finished, failed, missing, returns, evals, sources = [], [], [], [], [], set()
        for trial in (t for t in trials if t.key == key):
            run_dir = trial.run_dir
            if is_finished(run_dir):
                value = final_return(run_dir)
                evaluation = json.loads((run_dir / EVAL_FILE).read_text())
                if value is None:  # a run without rollouts (dynamic programming): its evaluation
                    value, source = float(evaluation["mean_reward"]), "eval/mean_reward"
                else:
                    source = FINAL_RETURN_KEY
                finished.append(trial.seed)
                returns.append(value)
                evals.append(float(evaluation["mean_reward"]))
                sources.add(source)
            elif (run_dir / ERROR_FILE).is_file():
                failed.append({"seed": trial.seed, "error_file": str(run_dir / ERROR_FILE)})
            else:
                missing.append(trial.seed)
        summary[key] = {"n": len(finished), **_statistics(returns),
                        "final_return_source": " and ".join(sorted(sources)) or FINAL_RETURN_KEY,
                        "eval_mean_reward_mean": float(np.mean(evals)) if evals else None,
                        "seeds": finished, "failed": failed, "missing": missing}
    return summary


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def summary_table(name: str, summary: dict[str, dict[str, Any]]) -> str:
    """``summary`` as Markdown: one row per configuration, then the failed trials."""
    lines = [f"# Sweep {name}", "",
             f"Final return: each run's last `{FINAL_RETURN_KEY}`; SEM: standard error of the mean over seeds.",
             "", "| configuration | n | mean | SEM | min | max | eval mean | failed |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for key, row in summary.items():
        lines.append(f"| {key} | {row['n']} | {_number(row['final_return_mean'])} | "
                     f"{_number(row['final_return_sem'])} | {_number(row['final_return_min'])} | "
                     f"{_number(row['final_return_max'])} | {_number(row['eval_mean_reward_mean'])} | "
                     f"{len(row['failed'])} |")
    failures = [(key, f) for key, row in summary.items() for f in row["failed"]]
    if failures:
        lines += ["", "Failed trials (tracebacks):", ""]
        lines += [f"- {key}, seed {f['seed']}: `{f['error_file']}`" for key, f in failures]
    return "\n".join(lines) + "\n"


def plot_curves(sweep: SweepConfig, trials: list[Trial], path: Path) -> Path | None:
    """Mean learning curve with its 95% confidence band per configuration, all on one axes;
    x is episodes when every configuration counts episodes, else timesteps."""
    from mimicgym.plots import pyplot, save_figure

    by_episodes = all(c.episodes is not None and c.timesteps is None for c in sweep.configurations.values())
    bands = {}
    for key in sorted({t.key for t in trials}):
        runs = [t.run_dir for t in trials if t.key == key and is_finished(t.run_dir)]
        curves = [learning_curve(read_history(r), by_episodes) for r in runs]
        if curves and all(c is not None for c in curves):
            band = mean_band(curves)
            if band is not None:
                bands[key] = (band, len(curves))
    if not bands:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for key, ((x, mean, half), n) in bands.items():
        (line,) = ax.plot(x, mean, lw=1.5, label=f"{key} (n={n})")
        if n > 1:
            ax.fill_between(x, mean - half, mean + half, color=line.get_color(), alpha=0.2, lw=0)
    ax.set_xlabel("episode" if by_episodes else "timesteps")
    ax.set_ylabel(f"{FINAL_RETURN_KEY} (mean, 95% CI)")
    ax.set_title(f"sweep {sweep.name}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def write_summary(sweep: SweepConfig, trials: list[Trial] | None = None) -> dict[str, dict[str, Any]]:
    """``summary.json``, ``summary.md`` and ``curves.png`` in the sweep's directory, from what
    its run directories hold now; returns the summary."""
    trials = sweep.trials() if trials is None else trials
    summary = summarize(trials)
    out = sweep.sweep_dir
    write_json(out / "summary.json", summary)
    with atomic_write(out / "summary.md", "w") as f:
        f.write(summary_table(sweep.name, summary))
    plot_curves(sweep, trials, out / "curves.png")
    return summary
