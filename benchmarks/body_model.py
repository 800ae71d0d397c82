"""Body model forward throughput: mimicgym's BodyModel next to smplx.SMPL on the same file.

A random SMPL-sized model (6,890 vertices, 24 joints, 10 betas, 207 posedirs; see
``tests/_body_fixtures.py``) is written once as a pickle and loaded by both. Each row is the
same random parameters (betas, body_pose, global_orient, transl) through both models, CPU,
float32, one thread, under ``torch.inference_mode``; figures are the best of ``--repeats``
interleaved trials of CPU time (``time.process_time``), so other jobs on a shared machine
count less. Also times the shipped default model (13,718 vertices, no posedirs).
At batch 1 both models are bound by reading ``posedirs`` (207 x 20,670 floats, 17 MB) once
per call, so the gap there is small; it grows with the batch (coordinate-major chunked skinning).

Prints a table and writes ``benchmarks/results/body_model.json``.
Usage: ``python benchmarks/body_model.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import pickle
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _body_fixtures import random_smpl_arrays  # noqa: E402

from mimicgym.motion.body_model import BodyModel  # noqa: E402
from mimicgym.utils.io import write_results  # noqa: E402


def bench(fn, min_time: float) -> float:
    """Calls per CPU-second of fn, over at least min_time seconds after one warm-up call."""
    fn()
    calls, start = 0, time.process_time()
    while True:
        fn()
        calls += 1
        elapsed = time.process_time() - start
        if elapsed >= min_time:
            return calls / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter trials (for a smoke run)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "body_model.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    import smplx

    min_time = 0.3 if args.quick else 1.0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "SMPL_NEUTRAL.pkl"
        path.write_bytes(pickle.dumps(random_smpl_arrays(seed=0), protocol=2))
        ours, ref = BodyModel.load(path), smplx.SMPL(model_path=str(path))
    default = BodyModel.default()

    rows = []
    g = torch.Generator().manual_seed(0)
    for B in (1, 64, 1024):
        p = dict(betas=torch.randn(B, 10, generator=g), body_pose=0.5 * torch.randn(B, 69, generator=g),
                 global_orient=torch.randn(B, 3, generator=g), transl=torch.randn(B, 3, generator=g))
        best = {"mimicgym": 0.0, "smplx": 0.0, "default": 0.0}
        with torch.inference_mode():
            err = float((ours(**p).vertices - ref(**p).vertices).abs().max())
            for _ in range(args.repeats):
                best["mimicgym"] = max(best["mimicgym"], bench(lambda p=p: ours(**p), min_time))
                best["smplx"] = max(best["smplx"], bench(lambda p=p: ref(**p), min_time))
                best["default"] = max(best["default"], bench(lambda p=p: default(**p), min_time))
        rows.append({"batch": B, "mimicgym_bodies_per_s": best["mimicgym"] * B, "smplx_bodies_per_s": best["smplx"] * B,
                     "speedup": best["mimicgym"] / best["smplx"], "default_model_bodies_per_s": best["default"] * B,
                     "max_abs_vertex_diff": err})

    print(f"{'batch':>6} {'mimicgym (bodies/s)':>20} {'smplx (bodies/s)':>18} {'speedup':>8} "
          f"{'default model':>14} {'max |dv|':>9}")
    for r in rows:
        print(f"{r['batch']:>6} {r['mimicgym_bodies_per_s']:>20,.0f} {r['smplx_bodies_per_s']:>18,.0f} "
              f"{r['speedup']:>7.2f}x {r['default_model_bodies_per_s']:>14,.0f} {r['max_abs_vertex_diff']:>9.1e}")
    result = {"benchmark": "body_model", "device": "cpu", "dtype": "float32", "threads": 1,
              "torch": torch.__version__, "smplx": getattr(smplx, "__version__", "0.1.28"),
              "machine": platform.machine(), "quick": args.quick, "rows": rows}
    write_results(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
