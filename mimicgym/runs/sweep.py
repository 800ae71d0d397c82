"""Sweeps on Ray Tune: every (configuration, seed) of a :class:`SweepConfig` is one Tune trial,
and every trial is an ordinary run of the run layer (``train(cfg)``) in its own directory.

Order of work, so that bad input costs nothing and loses nothing: the config is checked
(``sweep_config``), the trials that finished in an earlier invocation are found (their run
directory holds ``eval.json``; they are skipped), Ray is reached (an embedded local Ray on this
machine's cores by default, or the cluster at ``address``), and only then is anything written.
A trial that raises writes its traceback to ``error.txt`` in its run directory and the others go
on; an unfinished trial of an interrupted sweep continues from its last checkpoint if it saved
one, else starts again. Finally the aggregate (``summary.json``, ``summary.md``, ``curves.png``)
is written from what the run directories hold.

Tune's own files go to ``<sweep>/.tune`` and its console output is off; the sweep prints a bar
over its trials and one line per finished trial.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mimicgym.errors import ConfigError
from mimicgym.runs.aggregate import ERROR_FILE, EVAL_FILE, final_return, is_finished, write_summary
from mimicgym.runs.config import config_from_values
from mimicgym.runs.directory import CONFIG_FILE, MODEL_FILES, read_run_record
from mimicgym.runs.ray_session import INSTALL_HINT, connect_ray, import_ray  # noqa: F401  (re-exported)
from mimicgym.runs.sweep_config import SweepConfig, Trial, comparable
from mimicgym.utils.io import atomic_write

TUNE_DIR = ".tune"


@dataclass
class SweepResult:
    sweep_dir: Path
    summary: dict[str, dict[str, Any]]  # as in summary.json
    ran: int  # trials run by this invocation
    skipped: int  # trials finished by an earlier one
    failed: list[Trial]  # trials whose run raised (error.txt in their run directory)
    nodes: dict[str, str] = dataclasses.field(default_factory=dict)  # "key s<seed>" -> Ray node id that ran it

    @property
    def total(self) -> int:
        return self.ran + self.skipped


def _check_resources(ray, cpus: float, gpus: float) -> None:
    """Trials that ask for more than any node has would wait forever: refuse them now."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    for name, flag, wanted in (("CPU", "--cpus-per-trial", cpus), ("GPU", "--gpus-per-trial", gpus)):
        most = max((n.get(name, 0.0) for n in nodes), default=0.0)
        if wanted > most:
            raise ConfigError(f"{flag} {wanted:g}: no node of the Ray cluster has that many {name}s "
                              f"(the largest has {most:g})")


# -- one trial, inside a Ray worker (plain Python: callable without Ray)


def _has_checkpoint(run_dir: Path) -> bool:
    return (run_dir / CONFIG_FILE).is_file() and any((run_dir / m).is_file() for m in MODEL_FILES)


def _node_id() -> str | None:
    """The Ray node this process runs on (None outside Ray)."""
    ray = sys.modules.get("ray")
    return ray.get_runtime_context().get_node_id() if ray is not None and ray.is_initialized() else None


def run_trial(values: dict[str, Any]) -> dict[str, Any]:
    """Train the run of ``values`` (a ``RunConfig`` as a dict); never raises an ``Exception``:
    a failure writes its traceback to ``error.txt`` in the run directory and is reported."""
    from mimicgym.runs.train import resume, train

    start = time.monotonic()
    node = _node_id()
    cfg = config_from_values(values)
    run_dir = Path(cfg.logdir) / cfg.run_name
    try:
        if _has_checkpoint(run_dir):  # an interrupted (or failed) trial that saved a checkpoint
            (run_dir / ERROR_FILE).unlink(missing_ok=True)
            resume(run_dir, timesteps=cfg.timesteps, episodes=cfg.episodes)
        else:
            if run_dir.exists():  # what a trial that saved nothing left: started again
                shutil.rmtree(run_dir)
            train(cfg)
        value = final_return(run_dir)
        if value is None:  # a run without rollouts reports its evaluation
            import json

            value = json.loads((run_dir / EVAL_FILE).read_text())["mean_reward"]
        return {"ok": True, "final_return": float(value), "seconds": time.monotonic() - start, "node": node}
    except Exception as e:  # the sweep goes on; the traceback stays with the run
        run_dir.mkdir(parents=True, exist_ok=True)
        with atomic_write(run_dir / ERROR_FILE, "w") as f:
            f.write(traceback.format_exc())
        return {"ok": False, "final_return": float("nan"), "error": f"{type(e).__name__}: {e}"[:500],
                "error_file": str(run_dir / ERROR_FILE), "seconds": time.monotonic() - start, "node": node}


def _trainable(config: dict[str, Any], payloads: list[dict[str, Any]]) -> None:
    """Tune's function trainable: the trial at ``config["index"]``, one report at its end."""
    from ray import tune

    tune.report(run_trial(payloads[config["index"]]))


# -- the sweep, in the driver


def _check_existing(trials: list[Trial]) -> None:
    """A run directory already there must be this sweep's run of that trial: a config changed
    under the same sweep name would otherwise mix runs of two configs in one summary."""
    for trial in trials:
        path = trial.run_dir / CONFIG_FILE
        if not path.is_file():
            continue
        recorded = comparable(read_run_record(trial.run_dir)["config"])
        wanted = comparable(trial.config)
        changed = sorted(k for k in set(recorded) | set(wanted) if recorded.get(k) != wanted.get(k))
        if changed:
            diffs = ", ".join(f"{k}: {recorded.get(k)!r} there, {wanted.get(k)!r} now" for k in changed)
            raise ConfigError(f"{trial.run_dir} was run with other options ({diffs}); give the sweep "
                              f"another name or --logdir, or restore its config")


def _trial_line(trial: Trial, result: dict[str, Any]) -> str:
    head = f"{trial.key} s{trial.seed}"
    if result.get("ok"):
        return f"{head}: final return {result['final_return']:.4g} ({result['seconds']:.1f} s)"
    return f"{head}: FAILED ({result.get('error', 'worker died')}); traceback: {result.get('error_file')}"


def _callback(tune, todo: list[Trial], bar, failed: list[Trial], nodes: dict[str, str]):
    """A Tune callback (driver side) for the per-trial lines, the bar, and trials whose worker
    died without reporting (their Tune error goes to ``error.txt`` too)."""
    from tqdm.auto import tqdm

    class TrialLines(tune.Callback):
        def __init__(self) -> None:
            self.done = 0

        def _finish(self, trial: Trial, result: dict[str, Any]) -> None:
            self.done += 1
            if result.get("node"):
                nodes[f"{trial.key} s{trial.seed}"] = result["node"]
            if not result.get("ok"):
                failed.append(trial)
            tqdm.write(f"[{self.done}/{len(todo)}] {_trial_line(trial, result)}")
            bar.update(self.done, result.get("final_return") if result.get("ok") else None)

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self._finish(todo[trial.config["index"]], result)

        def on_trial_error(self, iteration, trials, trial, **info):
            ours = todo[trial.config["index"]]
            error = trial.get_error()
            path = ours.run_dir / ERROR_FILE
            with atomic_write(path, "w") as f:
                f.write(f"the trial's Ray worker failed:\n{error}\n")
            self._finish(ours, {"ok": False, "error": str(error).strip().splitlines()[-1][:300] if error
                                else "worker died", "error_file": str(path)})

    return TrialLines()


def _run_trials(ray, tune, sweep: SweepConfig, todo: list[Trial], cpus: float, gpus: float,
                progress: bool, nodes: dict[str, str]) -> list[Trial]:
    from mimicgym.utils.progress import ProgressBar

    payloads = [dataclasses.asdict(t.config) for t in todo]
    failed: list[Trial] = []
    bar = ProgressBar(len(todo), unit="trial", enabled=progress, label="last return")
    trainable = tune.with_resources(tune.with_parameters(_trainable, payloads=payloads),
                                    {"cpu": cpus, "gpu": gpus})
    tuner = tune.Tuner(
        trainable,
        param_space={"index": tune.grid_search(list(range(len(todo))))},
        # Workers stay up between trials: imports and env registration are paid once per worker.
        tune_config=tune.TuneConfig(reuse_actors=True,
                                    trial_name_creator=lambda t: f"trial_{t.config['index']}",
                                    trial_dirname_creator=lambda t: f"trial_{t.config['index']}"),
        run_config=tune.RunConfig(name=time.strftime("%Y%m%d-%H%M%S"),
                                  storage_path=str(sweep.sweep_dir / TUNE_DIR), verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=0),
                                  callbacks=[_callback(tune, todo, bar, failed, nodes)]),
    )
    # Tune's newer console output prints its own header whatever the verbosity; its older
    # one is silent at verbose=0. The variable is read by fit() in this (the driver) process.
    previous = os.environ.get("RAY_AIR_NEW_OUTPUT")
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    try:
        tuner.fit()
    finally:
        bar.close()
        if previous is None:
            os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
        else:
            os.environ["RAY_AIR_NEW_OUTPUT"] = previous
    return failed


def run_sweep(sweep: SweepConfig, *, address: str | None = None, cpus_per_trial: float = 1.0,
              gpus_per_trial: float = 0.0, progress: bool = True) -> SweepResult:
    """Run the trials of ``sweep`` that have not finished, as Ray Tune trials, then write its
    aggregate. ``address``: None for an embedded local Ray, ``auto``, ``ray://HOST:PORT`` or
    ``HOST:PORT`` for a cluster (its nodes need mimicgym installed)."""
    for flag, value, zero_ok in (("--cpus-per-trial", cpus_per_trial, False),
                                 ("--gpus-per-trial", gpus_per_trial, True)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value > 0 or zero_ok and value == 0):
            raise ConfigError(f"{flag} must be {'non-negative' if zero_ok else 'positive'}, got {value!r}")
    ray, tune = import_ray()
    trials = sweep.trials()
    _check_existing(trials)
    todo = [t for t in trials if not is_finished(t.run_dir)]
    n_configs = len(sweep.configurations)
    print(f"sweep {sweep.name}: {len(trials)} trials ({n_configs} configuration{'s' * (n_configs != 1)} x "
          f"{len(sweep.seeds)} seeds) in {sweep.sweep_dir}; {len(trials) - len(todo)} finished earlier, skipped",
          flush=True)
    failed: list[Trial] = []
    nodes: dict[str, str] = {}
    if todo:
        started = connect_ray(address)
        try:
            _check_resources(ray, float(cpus_per_trial), float(gpus_per_trial))
            failed = _run_trials(ray, tune, sweep, todo, float(cpus_per_trial), float(gpus_per_trial), progress,
                                 nodes)
        finally:
            if started:
                ray.shutdown()
    summary = write_summary(sweep, trials)
    return SweepResult(sweep.sweep_dir, summary, len(todo), len(trials) - len(todo), failed, nodes)
