"""Learning curves of imitation runs: deterministic normalised return against samples and hours,
next to the DeepMimic paper's results (Peng et al. 2018, humanoid: walk 0.985 after 61M samples,
run 0.951 after 53M).

Reads each run directory's ``evals.jsonl`` (written by imitation runs with ``--eval-freq``,
e.g. ``scripts/train_mimic.py``) and its ``config.json`` (for the clip name); prints a table with the sample rate and
the sample efficiency (normalised return per million samples) reached.

    python scripts/plot_mimic_curve.py runs/mimic/walk_humanoid3d_s0 runs/mimic/run_humanoid3d_s0 \
        --out runs/plots/mimic_curve.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mimicgym.runs.imitation_curves import PAPER, load_run, plot, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="imitation run directories")
    parser.add_argument("--out", type=Path, default=Path("runs/plots/mimic_curve.png"))
    args = parser.parse_args()
    runs = [load_run(r) for r in args.runs]
    print(f"{'run':28s} {'clip':6s} {'samples':>10s} {'hours':>6s} {'samples/h':>10s} "
          f"{'norm. return':>12s} {'best':>6s} {'per 1M samples':>14s}")
    for run in runs:
        s = summary(run)
        print(f"{run['name']:28s} {run['clip']:6s} {s['samples']:10.0f} {s['hours']:6.2f} "
              f"{s['samples_per_hour']:10.0f} {s['normalised_return']:12.3f} "
              f"{s['best_normalised_return']:6.3f} {s['return_per_million_samples']:14.3f}")
    for clip, (samples, ret) in PAPER.items():
        print(f"{'DeepMimic (paper)':28s} {clip:6s} {samples:10.0f} {'':>6s} {'':>10s} "
              f"{ret:12.3f} {'':>6s} {ret / (samples / 1e6):14.3f}")
    plot(runs, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
