"""Training-side pieces of the imitation env: reward-term logging, deterministic evaluation,
video/strip writing."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported: headless rendering

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mimicgym.envs.mimic.env import MimicEnv  # noqa: E402
from mimicgym.envs.mimic.reward import TERMS  # noqa: E402
from mimicgym.runs.imitation import RewardTermsCallback, evaluate_imitation, max_imitation_return  # noqa: E402

pytest.importorskip("pybullet_data")


class ZeroPolicy:
    """Deterministic zero offsets: the PD targets are the reference pose."""

    def __init__(self, n: int) -> None:
        self.n = n

    def predict(self, obs, deterministic=True):
        return np.zeros(self.n, dtype=np.float32), None


def test_evaluate_imitation_matches_a_manual_rollout():
    env = MimicEnv(clip="walk", episode_seconds=2.0)
    result = evaluate_imitation(ZeroPolicy(28), env, episodes=2, seed=5)
    poses = []
    for ep in range(2):
        env.reset(seed=5 + ep)
        rewards, done = [], False
        while not done:
            _, r, terminated, truncated, info = env.step(np.zeros(28, np.float32))
            rewards.append(info["imitation_reward"])
            poses.append(info["reward_terms"]["pose"])
            done = terminated or truncated
        assert result.lengths[ep] == len(rewards)
        assert result.imitation_per_step[ep] == pytest.approx(np.mean(rewards), rel=1e-12)
        assert result.normalised_return[ep] == pytest.approx(np.sum(rewards) / 60, rel=1e-12)
    assert result.summary()["reward_terms"]["pose"] == pytest.approx(np.mean(poses), rel=1e-12)


def test_reward_terms_callback_logs_every_term():
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    venv = DummyVecEnv([lambda: MimicEnv(clip="walk", episode_seconds=1.0)] * 2)
    model = PPO("MlpPolicy", venv, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu",
                policy_kwargs={"net_arch": [16]})
    callback = RewardTermsCallback(max_imitation_return(venv.envs[0]))
    logged = {}

    class Capture:  # records what the callback writes at the end of the rollout
        def __init__(self, inner):
            self.inner = inner

        def record(self, key, value, *a, **k):
            logged[key] = value
            self.inner.record(key, value, *a, **k)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    model.learn(64, callback=callback)
    model.set_logger(Capture(model.logger))
    model.learn(64 * 2, callback=callback, reset_num_timesteps=False)
    for term in TERMS:
        assert 0.0 < logged[f"imitation/{term}"] <= 1.0
    weights = np.array([0.65, 0.1, 0.15, 0.1])
    terms = np.array([logged[f"imitation/{t}"] for t in TERMS])
    # The mean of a weighted sum is the weighted sum of the means.
    assert logged["imitation/imitation_reward"] == pytest.approx(weights @ terms, rel=1e-9)
    assert 0.0 < logged["imitation/normalised_return"] < 1.0


def test_video_and_strip_are_written(tmp_path):
    import imageio.v2 as imageio

    from mimicgym.envs.mimic.render import save_strip, save_video

    frames = [np.full((64, 80, 3), 20 * i, dtype=np.uint8) for i in range(10)]
    video = save_video(frames, tmp_path / "clip.mp4", fps=30)
    back = imageio.mimread(video)
    assert len(back) == 10 and back[0].shape == (64, 80, 3)
    assert abs(int(back[9].mean()) - 180) <= 3  # lossy codec, flat colour survives
    strip = imageio.imread(save_strip(frames, tmp_path / "strip.png", n=4))
    assert strip.shape == (64, 320, 3)
    np.testing.assert_array_equal(strip[0, ::80, 0], [0, 60, 120, 180])  # frames 0, 3, 6, 9
    with pytest.raises(ValueError, match="no frames"):
        save_video([], tmp_path / "empty.mp4")


def _load_train_script():
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "train_mimic.py"
    spec = importlib.util.spec_from_file_location("train_mimic", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_short_ppo_run_improves_on_the_untrained_policy(tmp_path):
    """Our PPO on the batched env, the script's (and ``mimicgym train``'s) imitation defaults,
    200k samples on one thread (about two minutes): the deterministic policy must survive >= 30%
    longer and earn a >= 30% higher normalised return than the same network untrained (measured
    here: episodes 35 -> 53 steps, normalised return 0.071 -> 0.115); per step its imitation
    reward must not fall below the untrained one's (whose zero offsets already track the
    reference until it falls)."""
    from mimicgym import runs
    from mimicgym.runs.learners import make_learner

    script = _load_train_script()
    cfg = script.imitation_config(timesteps=200_000, eval_freq=0, video_every=0, checkpoint_freq=0,
                                  eval_episodes=10, threads=1, logdir=str(tmp_path), run_name="run",
                                  progress_bar=False)
    untrained = make_learner(cfg)  # the run's start: same seed, same weights
    env = MimicEnv(clip="walk")
    before = evaluate_imitation(untrained.model, env, episodes=10, seed=10_000).summary()
    untrained.close()
    after = runs.train(cfg).evaluation.summary()  # 10 episodes from seed 10_000, normalised
    print(f"untrained {before}\ntrained {after}")  # shown with pytest -s
    assert after["mean_ep_length"] >= 1.3 * before["mean_ep_length"], (before, after)
    assert after["normalised_return"] >= 1.3 * before["normalised_return"], (before, after)
    assert after["mean_imitation_reward"] >= before["mean_imitation_reward"], (before, after)


def test_cli_trains_the_imitation_env_with_sb3_ppo_and_with_our_a2c(tmp_path):
    import json

    import torch

    from mimicgym.cli import main

    base = ["train", "--env", "mimicgym/MimicWalk-v0", "--logdir", str(tmp_path), "--no-progress",
            "--eval-episodes", "1", "--timesteps", "512"]
    assert main([*base, "--agent", "sb3:PPO", "--run-name", "ppo", "--n-envs", "2",
                 "--normalize", "--set", "n_steps=128", "batch_size=64", "n_epochs=1"]) == 0
    history = json.loads((tmp_path / "ppo" / "progress.json").read_text())
    logged = {t: history[f"imitation/{t}"][-1][1] for t in TERMS}
    assert all(0.0 <= v <= 1.0 for v in logged.values()) and logged["pose"] > 0.1
    assert (tmp_path / "ppo" / "vecnormalize.npz").is_file()
    used = json.loads((tmp_path / "ppo" / "config.json").read_text())["hyperparameters"]
    assert used["gamma"] == used["gae_lambda"] == 0.95 and used["clip_range"] == 0.2  # DeepMimic's
    assert used["n_steps"] == 128  # --set wins over the imitation defaults
    # 32 updates of 2 x 8 steps, with observation normalisation: fewer than A2C's log
    # interval (100 updates), so what is logged is the end of learn's dump.
    assert main([*base, "--agent", "a2c", "--run-name", "a2c", "--normalize", "--set",
                 "n_envs=2", "n_steps=8"]) == 0
    state = torch.load(tmp_path / "a2c" / "model.pt", weights_only=True)
    assert state["num_timesteps"] == 512
    assert state["modules"]["policy"]["obs_normalizer.count"].item() == 512
    history = json.loads((tmp_path / "a2c" / "progress.json").read_text())
    ours = {t: history[f"imitation/{t}"][-1][1] for t in (*TERMS, "imitation_reward")}
    assert all(0.0 <= v <= 1.0 for v in ours.values()) and ours["pose"] > 0.1
    weights = np.array([0.65, 0.1, 0.15, 0.1])  # means of a weighted sum, step by step
    assert ours["imitation_reward"] == pytest.approx(weights @ [ours[t] for t in TERMS], rel=1e-9)
    # An episode earns between 0 and 1 per step, and lasts at least a step.
    for run in ("ppo", "a2c"):
        assert 0.0 < json.loads((tmp_path / run / "eval.json").read_text())["mean_reward"] <= 300


def test_every_imitation_run_gets_evaluations_videos_curves_and_a_render(tmp_path, capsys):
    """The CLI's imitation run (the route scripts/train_mimic.py takes too): periodic
    evaluations in evals.jsonl with an MP4, then the curve script and `mimicgym render`."""
    import importlib.util
    import json
    from pathlib import Path

    import imageio.v2 as imageio

    from mimicgym.cli import main

    argv = ["train", "--env", "mimicgym/MimicWalk-v0", "--agent", "sb3:PPO", "--normalize",
            "--timesteps", "256", "--eval-freq", "128", "--eval-episodes", "1", "--video-every", "2",
            "--logdir", str(tmp_path), "--run-name", "walk", "--no-progress", "--env-kwarg",
            "episode_seconds=1.0", "--set", "n_steps=64", "batch_size=64", "n_epochs=1"]
    assert main(argv) == 0
    run = tmp_path / "walk"
    rows = [json.loads(line) for line in (run / "evals.jsonl").read_text().splitlines()]
    assert [r["samples"] for r in rows] == [128, 256, 256]  # two periodic, then the final one
    assert all(0.0 < r["normalised_return"] <= 1.0 and r["mean_ep_length"] >= 1 for r in rows)
    assert (run / "videos" / "eval_256.mp4").stat().st_size > 0  # the 2nd evaluation's video
    assert not (run / "videos" / "eval_128.mp4").exists()
    spec = importlib.util.spec_from_file_location(
        "plot_mimic_curve", Path(__file__).resolve().parents[1] / "scripts" / "plot_mimic_curve.py")
    plot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plot)
    curve = plot.load_run(run)
    assert curve["clip"] == "walk" and curve["samples"].tolist() == [128, 256, 256]
    assert main(["render", str(run), "--seconds", "0.5", "--width", "96", "--height", "64"]) == 0
    assert "render.mp4" in capsys.readouterr().out
    strip = imageio.imread(run / "render.png")
    assert strip.shape[0] == 64 and strip.std() > 0  # frames with something in them


def test_reward_terms_callback_reads_same_step_infos_of_our_ppo():
    """On the batched env an ended episode's last info sits in final_info: every step counts."""
    import gymnasium as gym

    from mimicgym.agents import PPO

    env = gym.make_vec("mimicgym/MimicWalk-v0", num_envs=3, vectorization_mode="vector_entry_point",
                       episode_seconds=0.5)
    agent = PPO(env, seed=0, device="cpu", n_envs=3, n_steps=40, batch_size=60, n_epochs=1, net_arch=[16])
    callback = RewardTermsCallback(max_imitation_return(env.single_env))
    seen = {"steps": 0, "imitation": 0.0, "returns": []}
    running = np.zeros(3)

    def count(local_vars, _globals):  # the same sums, straight from the env's arrays
        info = local_vars["infos"]
        for i, item in enumerate(info):
            item = item if "imitation_reward" in item else item["final_info"]
            seen["steps"] += 1
            seen["imitation"] += item["imitation_reward"]
            running[i] += item["imitation_reward"]
        for i in np.flatnonzero(local_vars["dones"]):
            seen["returns"].append(running[i] / 15.0)  # 15 steps of at most 1
            running[i] = 0.0
        return True

    logged = {}
    agent.logger.record = lambda key, value, *a, **k: logged.__setitem__(key, value)
    agent.learn(120, callback=[callback, count])
    assert seen["steps"] == 120
    assert logged["imitation/imitation_reward"] == pytest.approx(seen["imitation"] / 120, rel=1e-12)
    assert len(seen["returns"]) >= 3  # episodes ended inside the rollout, their last steps counted
    assert logged["imitation/normalised_return"] == pytest.approx(np.mean(seen["returns"]), rel=1e-12)
    env.close()
