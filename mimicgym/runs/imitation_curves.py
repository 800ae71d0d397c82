"""Learning curves of imitation runs: deterministic normalised return against samples and hours,
next to the DeepMimic paper's results (Peng et al. 2018, humanoid: walk 0.985 after 61M samples,
run 0.951 after 53M). Reads a run directory's ``evals.jsonl`` (imitation runs with
``--eval-freq``) and its ``config.json`` (for the clip name)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mimicgym.utils.io import atomic_write

# DeepMimic, Table 1 (humanoid): clip -> (samples, normalised return).
PAPER = {"walk": (61e6, 0.985), "run": (53e6, 0.951)}


def load_run(run_dir: Path) -> dict:
    """A run's evaluations as arrays (samples, hours, normalised_return, ...) plus its clip."""
    log = run_dir / "evals.jsonl"
    if not log.is_file():
        raise FileNotFoundError(f"{run_dir}: no evals.jsonl (an imitation run with --eval-freq?)")
    rows = []
    for n, line in enumerate(log.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:  # a run killed mid-write leaves a partial line
            raise ValueError(f"{log}:{n}: not a JSON record ({err})") from None
    if not rows:
        raise ValueError(f"{log}: no evaluations yet")
    config = run_dir / "config.json"
    clip = _clip(json.loads(config.read_text())) if config.is_file() else "?"
    run = {key: np.array([r[key] for r in rows], dtype=float)
           for key in ("samples", "hours", "normalised_return", "mean_imitation_reward",
                       "mean_ep_length")}
    return {"name": run_dir.name, "clip": clip, **run}


def _clip(record: dict) -> str:
    """The clip of a run's config.json: its env keywords, else the registered id's (MimicWalk-v0)."""
    if "clip" in record:  # runs written before the run layer
        return record["clip"]
    cfg = record.get("config", {})
    if "clip" in cfg.get("env_kwargs", {}):
        return cfg["env_kwargs"]["clip"]
    try:
        import gymnasium as gym

        import mimicgym  # noqa: F401  (registers the ids)

        return gym.spec(cfg.get("env", "")).kwargs.get("clip", "walk")
    except Exception:  # an unknown id: the plot still shows the run
        return "?"


def summary(run: dict) -> dict[str, float]:
    """Last evaluation's figures, the sample rate, and normalised return per million samples."""
    samples, hours = run["samples"][-1], run["hours"][-1]
    best = int(np.argmax(run["normalised_return"]))
    return {"samples": samples, "hours": hours,
            "samples_per_hour": samples / hours if hours > 0 else float("nan"),
            "normalised_return": run["normalised_return"][-1],
            "best_normalised_return": run["normalised_return"][best],
            "best_at_samples": run["samples"][best],
            "return_per_million_samples": run["normalised_return"][-1] / (samples / 1e6)}


def plot(runs: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_s, ax_h) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    colours = {"walk": "tab:blue", "run": "tab:orange"}
    styles = ("o-", "s--", "^:", "d-.")  # the clip sets the colour, its n-th run the style
    seen: dict[str, int] = {}
    for i, run in enumerate(runs):
        colour = colours.get(run["clip"], f"C{i + 2}")
        style = styles[seen.get(run["clip"], 0) % len(styles)]
        seen[run["clip"]] = seen.get(run["clip"], 0) + 1
        label = f"{run['clip']} ({run['name']})"
        ax_s.plot(run["samples"], run["normalised_return"], style, ms=3, color=colour, label=label)
        ax_h.plot(run["hours"], run["normalised_return"], style, ms=3, color=colour, label=label)
    for clip, (samples, ret) in PAPER.items():
        ax_s.plot(samples, ret, "*", ms=14, color=colours[clip], markeredgecolor="k",
                  label=f"DeepMimic {clip}: {ret} at {samples / 1e6:.0f}M")
    ax_s.set_xscale("log")  # one session's few million samples next to the paper's 50-60M
    ax_s.set_xlabel("samples (env steps)")
    ax_h.set_xlabel("wall-clock hours")
    for ax in (ax_s, ax_h):
        ax.set_ylabel("normalised return (deterministic policy)")
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="lower right")
    ax_s.set_title("against samples (paper's results starred)")
    ax_h.set_title("against time")
    with atomic_write(out, "wb") as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)
