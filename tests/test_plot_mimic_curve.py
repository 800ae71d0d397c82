"""``mimicgym.runs.imitation_curves`` (``scripts/plot_mimic_curve.py``): reads an imitation run's
evaluation log, sums it up, plots it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def _load_script():
    from mimicgym.runs import imitation_curves

    return imitation_curves


def _write_run(run_dir: Path, rows: list[dict], clip: str = "walk") -> Path:
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"clip": clip}))
    (run_dir / "evals.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run_dir


def _row(samples: int, hours: float, ret: float) -> dict:
    return {"samples": samples, "hours": hours, "normalised_return": ret,
            "mean_imitation_reward": 0.6, "mean_ep_length": 100.0}


def test_summary_figures_and_png(tmp_path):
    plot = _load_script()
    rows = [_row(500_000, 0.25, 0.30), _row(1_000_000, 0.5, 0.2)]
    run_dir = _write_run(tmp_path / "walk_s0", rows)
    run = plot.load_run(run_dir)
    assert run["clip"] == "walk" and run["samples"].tolist() == [500_000, 1_000_000]
    s = plot.summary(run)
    # 1M samples in half an hour; the last evaluation's 0.2 over 1M samples; the best is earlier.
    assert s["samples_per_hour"] == pytest.approx(2_000_000)
    assert s["normalised_return"] == pytest.approx(0.2)
    assert s["return_per_million_samples"] == pytest.approx(0.2)
    assert s["best_normalised_return"] == pytest.approx(0.3) and s["best_at_samples"] == 500_000
    out = tmp_path / "plots" / "curve.png"
    plot.plot([run], out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_logs_are_named(tmp_path):
    plot = _load_script()
    with pytest.raises(FileNotFoundError, match="no evals.jsonl"):
        plot.load_run(tmp_path)
    run_dir = _write_run(tmp_path / "cut", [_row(100_000, 0.1, 0.1)])
    with open(run_dir / "evals.jsonl", "a") as f:
        f.write('{"samples": 2000')  # a run killed mid-write
    with pytest.raises(ValueError, match=r"evals.jsonl:2: not a JSON record"):
        plot.load_run(run_dir)
