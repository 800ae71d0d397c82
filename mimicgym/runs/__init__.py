"""The run layer: run configs and directories, training, resume, evaluation, rendering.

Used by the CLI and the scripts; agents and envs know nothing of it.

    from mimicgym.runs import RunConfig, evaluate_run, load_sweep, resume, run_sweep, train
    result = train(RunConfig(env="mimicgym/CliffWalking-v0", agent="q_learning", episodes=500))
    run_sweep(load_sweep("examples/sweep_cliff.toml"))  # trials on Ray Tune (mimicgym[distributed])
"""

from mimicgym.runs.config import RunConfig, config_from_values, load_toml
from mimicgym.runs.directory import find_model, read_run_record, run_config
from mimicgym.runs.evaluation import EvalResult, evaluate_episodes
from mimicgym.runs.playback import evaluate_run, load_run_learner, render_pretrained, render_run
from mimicgym.runs.sweep import SweepResult, run_sweep
from mimicgym.runs.sweep_config import SweepConfig, load_sweep, parse_seeds, seed_sweep
from mimicgym.runs.train import RESUME_OPTIONS, RunResult, resume, resume_command, train

__all__ = ["RESUME_OPTIONS", "EvalResult", "RunConfig", "RunResult", "SweepConfig", "SweepResult",
           "config_from_values", "evaluate_episodes", "evaluate_run", "find_model", "load_run_learner",
           "load_sweep", "load_toml", "parse_seeds", "read_run_record", "render_pretrained", "render_run",
           "resume", "resume_command", "run_config", "run_sweep", "seed_sweep", "train"]
