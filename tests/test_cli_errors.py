"""Bad input to the console script: one line naming the problem, exit status 2, nothing left
behind. And the CLI's own help: hyperparameters and env keywords listed, plain text."""

from __future__ import annotations

import pytest

from mimicgym.cli import main


def _fails(argv: list[str], capsys, *needles: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err  # one line, no traceback
    for needle in needles:
        assert needle in err, err
    return err


@pytest.mark.parametrize("agent, budget", [("q_learning", "--episodes"), ("dqn", "--timesteps"),
                                           ("sb3:PPO", "--timesteps")])
@pytest.mark.parametrize("gamma, expected", [("abc", "gamma must be"), ("1.5", "gamma must lie in")])
def test_bad_hyperparameters_are_named_before_anything_runs(agent, budget, gamma, expected, tmp_path,
                                                            capsys):
    env = "mimicgym/CliffWalking-v0" if agent == "q_learning" else "CartPole-v1"
    err = _fails(["train", "--env", env, "--agent", agent, budget, "100", "--logdir", str(tmp_path),
                  "--set", f"gamma={gamma}"], capsys, expected, gamma)
    assert err.startswith("error: ")
    assert not tmp_path.exists() or not any(tmp_path.iterdir())  # no run directory


def test_bad_config_files_and_ids_are_named(tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text('agent = "q_learning"\nepisodes = "ten"\n')
    logdir = tmp_path / "runs"
    _fails(["train", "--config", str(cfg), "--logdir", str(logdir)], capsys, "run.toml", "episodes",
           "'ten'")
    cfg.write_text("agent = q_learning\n")  # not TOML: a bare word
    _fails(["train", "--config", str(cfg)], capsys, "run.toml", "not valid TOML")
    _fails(["train", "--env", "CartPol-v1", "--agent", "dqn", "--timesteps", "10", "--logdir",
            str(logdir)], capsys, "CartPol", "Did you mean")
    _fails(["train", "--env", "mimicgym/WindyGridWorld-v0", "--env-kwarg", "kings=true",
            "--episodes", "5", "--logdir", str(logdir)], capsys, "kings")
    _fails(["train", "--agent", "nope", "--logdir", str(logdir)], capsys, "unknown agent 'nope'")
    _fails(["train", "--agent", "sarsa", "--logdir", str(logdir)], capsys, "timesteps or episodes")
    _fails(["train", "--agent", "dqn", "--env", "CartPole-v1", "--timesteps", "10", "--set",
            "gama=0.9", "--logdir", str(logdir)], capsys, "'gama'")
    _fails(["train", "--agent", "sb3:PPO", "--env", "CartPole-v1", "--timesteps", "10", "--set",
            "gama=0.9", "--logdir", str(logdir)], capsys, "'gama'")
    assert not logdir.exists() or not any(logdir.iterdir())


def test_a_text_file_is_not_a_checkpoint(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("these are my notes\n" * 20)
    _fails(["eval", "--model", str(notes), "--agent", "dqn", "--env", "CartPole-v1"], capsys,
           "notes.txt", "not a readable")
    _fails(["eval", "--model", str(notes), "--agent", "q_learning", "--env",
            "mimicgym/CliffWalking-v0"], capsys, "notes.txt")
    _fails(["eval", "--model", str(notes), "--agent", "sb3:PPO", "--env", "CartPole-v1"], capsys,
           "notes.txt")
    _fails(["train", "--resume", str(notes)], capsys, "notes.txt", "not inside a run directory")
    assert main(["train", "--agent", "q_learning", "--episodes", "5", "--logdir", str(tmp_path),
                 "--run-name", "run", "--no-progress", "--eval-episodes", "0"]) == 0
    _fails(["train", "--resume", str(tmp_path / "run")], capsys, "5 episodes", "larger")  # done
    (tmp_path / "run" / "model.npz").write_text("not an archive")
    _fails(["train", "--resume", str(tmp_path / "run"), "--episodes", "10"], capsys, "model.npz")
    _fails(["train", "--resume", str(tmp_path / "run"), "--env", "CartPole-v1"], capsys, "env")


def test_list_shows_hyperparameters_and_env_keywords(capsys):
    assert main(["list", "--agent", "dqn"]) == 0
    out = capsys.readouterr().out
    assert "learning_rate" in out and "0.001" in out and "buffer_size" in out
    assert "environment steps between training rounds" in out  # the field's doc
    assert main(["list", "--agent", "sb3:PPO"]) == 0
    out = capsys.readouterr().out
    assert "clip_range" in out and "Clipping parameter" in out
    assert main(["list", "--env", "mimicgym/WindyGridWorld-v0"]) == 0
    out = capsys.readouterr().out
    assert "king_moves" in out and "stochastic_wind" in out
    assert main(["train", "--help"]) == 0
    assert main(["train", "--agent", "q_learning", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--resume" in out and "epsilon" in out and "``" not in out


def test_train_sets_torch_threads(tmp_path):
    import torch

    before = torch.get_num_threads()
    try:
        assert main(["train", "--env", "CartPole-v1", "--agent", "dqn", "--timesteps", "50",
                     "--threads", "2", "--logdir", str(tmp_path), "--no-progress",
                     "--eval-episodes", "0"]) == 0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_evaluation_episodes_are_bounded():
    import gymnasium as gym

    from mimicgym.runs import evaluate_episodes

    class Up:  # walks into the top wall forever from the start cell
        def predict(self, obs, deterministic=True):
            return 0, None

    env = gym.make("mimicgym/CliffWalking-v0").unwrapped  # no time limit
    result = evaluate_episodes(Up(), env, 2, seed=0, max_steps=300)
    assert result.lengths.tolist() == [300, 300] and result.cut == 2
