"""Seed sweeps on Ray Tune (``mimicgym sweep``, ``train --seeds``): configs expand into the
grid the file says and refuse bad input before Ray starts; each trial is an ordinary run whose
results equal a plain ``train`` of that seed; the summary holds the statistics of the runs' own
final returns; a re-run skips finished trials and changes nothing; a trial that raises leaves
its traceback and does not stop the others. Ray runs once per module on two CPUs."""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mimicgym.cli import main
from mimicgym.errors import ConfigError
from mimicgym.runs import RunConfig, parse_seeds, run_sweep, seed_sweep, train
from mimicgym.runs.sweep import connect_ray, run_trial
from mimicgym.runs.sweep_config import sweep_from_values

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sweep_cliff.toml"
CLIFF = {"env": "mimicgym/CliffWalking-v0", "episodes": 50, "eval_episodes": 1, "eval_max_steps": 200}
TD = {"learning_rate": 0.5, "epsilon": 0.1, "gamma": 1.0}


def _toml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and ".tune" not in p.parts}


def _final_return(run_dir: Path) -> float:
    return json.loads((run_dir / "progress.json").read_text())["rollout/ep_rew_mean"][-1][1]


# -- configs: no Ray needed


@pytest.mark.parametrize("value, seeds", [("0-49", list(range(50))), ("0-2,7", [0, 1, 2, 7]), (" 5 ", [5]),
                                          ([3, 1], [3, 1]), (4, [4])])
def test_seeds_are_inclusive_ranges_or_lists(value, seeds):
    assert parse_seeds(value) == seeds


@pytest.mark.parametrize("value, words", [("9-0", ["'9-0'", "ends before it starts"]), ("-1", ["'-1'"]),
                                          ("a-b", ["'a-b'"]), ([], ["no seed"]), ([1, 1], ["repeats seed 1"]),
                                          ([0, True], ["True"]), (1.5, ["1.5"]), ("0-3,2", ["repeats seed 2"])])
def test_bad_seeds_name_the_key_and_value(value, words):
    with pytest.raises(ConfigError, match="seeds") as e:
        parse_seeds(value, "seeds")
    assert all(w in str(e.value) for w in words), e.value


def test_lists_are_grid_axes_keyed_by_the_varying_values_in_sorted_order(tmp_path):
    sweep = sweep_from_values({"sweep": {"name": "g", "agent": ["sarsa", "q_learning"], "seeds": "0-2", **CLIFF},
                               "hyperparameters": {**TD, "learning_rate": [0.1, 0.5]},
                               "env_kwargs": {"slip": 0.0}}, logdir=str(tmp_path))
    assert sweep.varying == ["agent", "learning_rate"]
    assert sorted(sweep.configurations) == ["agent=q_learning,learning_rate=0.1", "agent=q_learning,learning_rate=0.5",
                                            "agent=sarsa,learning_rate=0.1", "agent=sarsa,learning_rate=0.5"]
    cfg = sweep.configurations["agent=sarsa,learning_rate=0.1"]
    assert (cfg.agent, cfg.hyperparameters, cfg.env_kwargs) == ("sarsa", {**TD, "learning_rate": 0.1}, {"slip": 0.0})
    trials = sweep.trials()
    assert len(trials) == 12 and [t.seed for t in trials[:3]] == [0, 1, 2]
    assert trials[4].run_dir == tmp_path / "g" / "agent=q_learning,learning_rate=0.5" / "s1"
    assert (trials[4].config.seed, trials[4].config.progress_bar) == (1, False)

    # one configuration: keyed by its agent; a list-valued option is a list of lists; ids made safe
    one = sweep_from_values({"sweep": {"name": "one", "env": "CartPole-v1", "agent": "sb3:PPO", "timesteps": 64,
                                       "seeds": [0]}, "hyperparameters": {"policy_kwargs": [{"net_arch": [8]}]}})
    assert list(one.configurations) == ["agent=sb3:PPO"]
    assert one.trials()[0].run_dir.parent.name == "agent=sb3_PPO"
    two = sweep_from_values({"sweep": {"name": "t", "agent": "dqn", "timesteps": 64, "seeds": 0,
                                       "env": ["CartPole-v1", "Acrobot-v1"]},
                             "hyperparameters": {"net_arch": [[8], [8, 8]]}})
    assert sorted(two.configurations) == ["env=Acrobot-v1,net_arch=[8, 8]", "env=Acrobot-v1,net_arch=[8]",
                                          "env=CartPole-v1,net_arch=[8, 8]", "env=CartPole-v1,net_arch=[8]"]


@pytest.mark.parametrize("change, words", [
    ({"sweep": {"colour": "red"}}, ["unknown key 'colour'", "red"]),
    ({"extra": {"x": 1}}, ["'extra'", "[sweep]"]),
    ({"sweep": {"agent": ["sarsa", "nope"]}}, ["configuration agent=nope", "unknown agent 'nope'"]),
    ({"sweep": {"env": "mimicgym/Nowhere-v0"}}, ["env 'mimicgym/Nowhere-v0'"]),
    ({"hyperparameters": {"learning_rate": [0.5, "fast"]}}, ["learning_rate=fast", "'fast'"]),
    ({"hyperparameters": {"alpha": 0.5}}, ["'alpha'"]),
    ({"hyperparameters": {"epsilon": [0.1, 2.0]}}, ["epsilon=2.0", "2.0"]),
    ({"sweep": {"seed": 3}}, ["seed = 3", "seeds"]),
    ({"sweep": {"seeds": "3-1"}}, ["seeds", "'3-1'"]),
    ({"sweep": {"name": "a/b"}}, ["name", "'a/b'"]),
    ({"sweep": {"eval_episodes": 0}}, ["eval_episodes", "0"]),
    ({"sweep": {"agent": []}}, ["agent", "[]"]),
    ({"sweep": {"agent": ["sarsa", "sarsa"]}}, ["agent", "repeats"]),
    ({"sweep": {"agent": "sb3:PPO"}}, ["PPO", "'epsilon'"]),
])
def test_bad_sweep_configs_fail_before_anything_runs(change, words, tmp_path):
    values = {"sweep": {"name": "bad", "agent": "sarsa", "seeds": "0-1", **CLIFF}, "hyperparameters": dict(TD)}
    for table, entries in change.items():
        values[table] = {**values.get(table, {}), **entries}
    with pytest.raises(ConfigError) as e:
        sweep_from_values(values, "bad.toml", logdir=str(tmp_path))
    assert str(e.value).startswith("bad.toml: ") and all(w in str(e.value) for w in words), e.value
    assert list(tmp_path.iterdir()) == []


def test_without_ray_the_sweep_says_which_extra_to_install(tmp_path, monkeypatch, capsys):
    config = _toml(tmp_path / "s.toml", '[sweep]\nname = "x"\nagent = "sarsa"\nepisodes = 5\nseeds = "0-1"\n')
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    assert main(["sweep", str(config), "--logdir", str(tmp_path / "runs")]) == 2
    assert "pip install 'mimicgym[distributed]'" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:1", "no-port", "http://127.0.0.1:80"])
def test_an_unreachable_address_is_a_quick_clear_error_and_writes_nothing(address, tmp_path, capsys):
    config = _toml(tmp_path / "s.toml", '[sweep]\nname = "x"\nagent = "sarsa"\nepisodes = 5\nseeds = "0-1"\n')
    start = time.monotonic()
    assert main(["sweep", str(config), "--logdir", str(tmp_path / "runs"), "--address", address]) == 2
    err = capsys.readouterr().err
    assert f"--address {address!r}" in err and time.monotonic() - start < 15, err
    assert not (tmp_path / "runs").exists()


def test_train_seeds_refuses_seed_and_resume(tmp_path, capsys):
    base = ["train", "--agent", "sarsa", "--episodes", "5", "--seeds", "0-1", "--logdir", str(tmp_path)]
    assert main([*base, "--seed", "3"]) == 2
    assert "--seed or --seeds" in capsys.readouterr().err
    assert main([*base, "--resume", str(tmp_path)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--agent", "sarsa", "--episodes", "5", "--seeds", "4-2", "--logdir", str(tmp_path)]) == 2
    assert "'4-2'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_trial_continues_from_its_checkpoint_or_starts_again(tmp_path):
    cfg = RunConfig(agent="sarsa", seed=2, hyperparameters=TD, logdir=str(tmp_path / "plain"), run_name="r",
                    progress_bar=False, **{**CLIFF, "episodes": 40})
    plain = train(cfg).run_dir
    # a trial killed before its first save: its leftovers are removed and it starts again
    fresh = tmp_path / "fresh" / "r"
    fresh.mkdir(parents=True)
    (fresh / "config.json").write_text("{}")
    (fresh / "error.txt").write_text("old")
    assert run_trial({**vars(cfg), "logdir": str(fresh.parent)})["ok"]
    # a trial stopped after a checkpoint at 20 episodes: it continues to its 40
    half = RunConfig(**{**vars(cfg), "logdir": str(tmp_path / "half"), "episodes": 20})
    train(half)
    (tmp_path / "half" / "r" / "eval.json").unlink()
    outcome = run_trial({**vars(cfg), "logdir": str(tmp_path / "half")})
    assert outcome["ok"] and outcome["final_return"] == _final_return(plain)
    for run_dir in (fresh, tmp_path / "half" / "r"):
        assert not (run_dir / "error.txt").exists()
        assert (run_dir / "eval.json").read_text() == (plain / "eval.json").read_text()
        with np.load(run_dir / "model.npz") as a, np.load(plain / "model.npz") as b:
            np.testing.assert_array_equal(a["q_values"], b["q_values"])


# -- sweeps on Ray


def test_a_sweep_runs_every_trial_summarises_them_and_a_rerun_skips_them(ray_session, tmp_path, capsys):
    config = _toml(tmp_path / "cliff.toml", """
[sweep]
name = "cliff"
env = "mimicgym/CliffWalking-v0"
agent = ["sarsa", "q_learning"]
episodes = 50
seeds = "0-2"
eval_episodes = 1
eval_max_steps = 200

[hyperparameters]
learning_rate = 0.5
epsilon = 0.1
gamma = 1.0
""")
    assert main(["sweep", str(config), "--logdir", str(tmp_path / "runs"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    sweep_dir = tmp_path / "runs" / "cliff"
    assert "6 trials (2 configurations x 3 seeds)" in out and "0 finished earlier, skipped" in out
    summary = json.loads((sweep_dir / "summary.json").read_text())
    assert sorted(summary) == ["agent=q_learning", "agent=sarsa"]
    for key, row in summary.items():
        runs = [sweep_dir / key / f"s{seed}" for seed in range(3)]
        for run_dir in runs:
            assert {"eval.json", "config.json", "model.npz", "progress.json"} <= {p.name for p in run_dir.iterdir()}
            assert any(p.name.startswith("events.out.tfevents") for p in run_dir.iterdir())
            line = f"{key} s{run_dir.name[1:]}: final return {_final_return(run_dir):.4g}"
            assert line in out, out  # one line per finished trial
        finals = np.array([_final_return(r) for r in runs])
        assert row["n"] == 3 and row["seeds"] == [0, 1, 2] and row["failed"] == []
        assert row["final_return_mean"] == pytest.approx(finals.mean(), abs=1e-12)
        assert row["final_return_sem"] == pytest.approx(finals.std(ddof=1) / math.sqrt(3), abs=1e-12)
        assert (row["final_return_min"], row["final_return_max"]) == (finals.min(), finals.max())
        assert key in (sweep_dir / "summary.md").read_text()
    assert (sweep_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (sweep_dir / ".tune").is_dir()  # Tune's files stay inside the sweep

    # a trial is the plain run of its seed
    assert main(["train", "--agent", "q_learning", "--episodes", "50", "--seed", "1", "--eval-episodes", "1",
                 "--eval-max-steps", "200", "--set", "learning_rate=0.5", "epsilon=0.1", "gamma=1.0",
                 "--logdir", str(tmp_path / "plain"), "--run-name", "p", "--no-progress"]) == 0
    plain, trial = tmp_path / "plain" / "p", sweep_dir / "agent=q_learning" / "s1"
    assert json.loads((trial / "eval.json").read_text()) == json.loads((plain / "eval.json").read_text())
    assert _final_return(trial) == _final_return(plain)
    with np.load(trial / "model.npz") as a, np.load(plain / "model.npz") as b:
        np.testing.assert_array_equal(a["q_values"], b["q_values"])

    before = _hashes(sweep_dir)
    capsys.readouterr()
    assert main(["sweep", str(config), "--logdir", str(tmp_path / "runs"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "6 finished earlier, skipped" in out and not re.search(r"^\[\d+/\d+\] ", out, re.M), out
    assert _hashes(sweep_dir) == before  # the summary rewritten as it was, no run touched


def test_a_trial_that_raises_leaves_its_traceback_and_the_others_finish(ray_session, tmp_path, capsys):
    config = _toml(tmp_path / "slip.toml", """
[sweep]
name = "slip"
agent = "sarsa"
env = "mimicgym/CliffWalking-v0"
episodes = 20
seeds = [0, 1]
eval_episodes = 1
eval_max_steps = 200

[env_kwargs]
slip = [0.0, 2.0]  # 2.0 is no probability: the env refuses it when a trial makes it
""")
    argv = ["sweep", str(config), "--logdir", str(tmp_path), "--no-progress"]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert "2 of 4 trials failed" in err, err
    summary = json.loads((tmp_path / "slip" / "summary.json").read_text())
    assert summary["slip=0.0"]["n"] == 2 and summary["slip=0.0"]["failed"] == []
    bad = summary["slip=2.0"]
    assert bad["n"] == 0 and [f["seed"] for f in bad["failed"]] == [0, 1]
    for failure in bad["failed"]:
        text = Path(failure["error_file"]).read_text()
        assert "Traceback" in text and "slip must be a probability in [0, 1], got 2.0" in text
        assert f"traceback: {failure['error_file']}" in out
        assert not (Path(failure["error_file"]).parent / "eval.json").exists()
    assert "slip=2.0, seed 0" in (tmp_path / "slip" / "summary.md").read_text()
    assert main(argv) == 2  # failed trials are retried, finished ones are not
    assert "2 finished earlier, skipped" in capsys.readouterr().out


def test_train_seeds_is_a_sweep_of_one_configuration(ray_session, tmp_path, capsys):
    assert main(["train", "--agent", "sarsa", "--episodes", "20", "--seeds", "3-4", "--eval-episodes", "1",
                 "--eval-max-steps", "200", "--logdir", str(tmp_path), "--no-progress"]) == 0
    summary = json.loads((tmp_path / "sarsa_CliffWalking-v0" / "summary.json").read_text())
    assert list(summary) == ["agent=sarsa"] and summary["agent=sarsa"]["seeds"] == [3, 4]
    finals = [_final_return(tmp_path / "sarsa_CliffWalking-v0" / "agent=sarsa" / f"s{s}") for s in (3, 4)]
    assert summary["agent=sarsa"]["final_return_mean"] == pytest.approx(np.mean(finals), abs=1e-12)
    # the library form, with a name: an existing sweep's trials are checked against the config
    sweep = seed_sweep(RunConfig(agent="sarsa", episodes=30, eval_episodes=1, logdir=str(tmp_path)), "3",
                       name="sarsa_CliffWalking-v0")
    with pytest.raises(ConfigError, match="episodes: 20 there, 30 now"):
        run_sweep(sweep, progress=False)


def test_connect_ray_uses_the_session_already_running(ray_session):
    assert connect_ray() is False and ray_session.is_initialized()


def test_the_example_sweep_reproduces_figure_6_4(ray_session, tmp_path, capsys):
    """Sutton & Barto's Figure 6.4 through ``mimicgym sweep``: 50 seeds of 500 episodes each of
    SARSA and Q-learning (epsilon 0.1, alpha 0.5); online returns over the last 100 episodes
    near -25 (the book; test_textbook's window -28 +- 4) and near -50."""
    assert main(["sweep", str(EXAMPLE), "--logdir", str(tmp_path), "--no-progress"]) == 0
    summary = json.loads((tmp_path / "cliff" / "summary.json").read_text())
    assert summary["agent=sarsa"]["n"] == summary["agent=q_learning"]["n"] == 50
    assert summary["agent=sarsa"]["final_return_mean"] == pytest.approx(-28, abs=4), summary
    assert summary["agent=q_learning"]["final_return_mean"] == pytest.approx(-49, abs=4), summary
    assert summary["agent=q_learning"]["eval_mean_reward_mean"] == -13  # greedy: along the cliff edge
    assert (tmp_path / "cliff" / "curves.png").stat().st_size > 10_000
