"""The main job on built-in defaults: tabular agents on Sutton & Barto's cliff-walking gridworld,
then the shipped walking humanoid.

Trains value iteration, SARSA, Expected SARSA and Q-learning (epsilon 0.1, alpha 0.5, 500
episodes, as in Example 6.6), writes one run directory per agent under ``runs/quickstart``
(TensorBoard events, config, saved agent, evaluation, value heatmap, learning curve) and a
comparison of the online returns, the picture of Figure 6.4. Then renders the shipped walk
policy (``mimicgym.pretrained``) beside its reference clip: ``walk.mp4`` and a ``walk.png``
strip (skipped, with the system packages to install, where MuJoCo finds no OpenGL).

    python scripts/quickstart.py [--logdir runs/quickstart] [--episodes 500] [--seed 0]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import mimicgym  # noqa: F401  (registers the environments)
from mimicgym.plots import plot_learning_curves
from mimicgym.runs import RunConfig, train

ENV = "mimicgym/CliffWalking-v0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--logdir", default="runs/quickstart")
    parser.add_argument("--episodes", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    logdir = Path(args.logdir)
    if logdir.exists():
        shutil.rmtree(logdir)  # the quickstart's runs are replaced, never piled up
    td_params = {"learning_rate": 0.5, "epsilon": 0.1, "gamma": 1.0}
    runs = {
        "value_iteration": RunConfig(env=ENV, agent="value_iteration", logdir=str(logdir),
                                     seed=args.seed, hyperparameters={"gamma": 1.0}),
    }
    for agent in ("sarsa", "expected_sarsa", "q_learning"):
        runs[agent] = RunConfig(env=ENV, agent=agent, episodes=args.episodes, seed=args.seed,
                                logdir=str(logdir), hyperparameters=td_params)

    results = {}
    for name, cfg in runs.items():
        print(f"training {name} on {ENV} ...")
        results[name] = train(cfg)

    curves = {}
    for name, res in results.items():
        returns = res.agent.episode_stats.returns
        if returns:
            curves[name] = (range(1, len(returns) + 1), returns)
    comparison = plot_learning_curves(
        curves, logdir / "cliff_online_returns.png", xlabel="episode",
        ylabel="sum of rewards during episode", title="Cliff walking (S&B Figure 6.4)",
        smooth=10, ylim=(-100, 0))

    print(f"\n{'agent':<16} {'greedy return':>14} {'online return, last 100':>24}  run directory")
    for name, res in results.items():
        returns = res.agent.episode_stats.returns
        online = f"{sum(returns[-100:]) / len(returns[-100:]):.1f}" if returns else "-"
        print(f"{name:<16} {res.eval_mean:>14.1f} {online:>24}  {res.run_dir}")
    print(f"\ncomparison plot: {comparison}")
    print(f"TensorBoard:     tensorboard --logdir {logdir}")
    render_walk(logdir)


def render_walk(logdir: Path) -> None:
    """The shipped walk policy beside its ghost reference, if this machine can render."""
    from mimicgym import pretrained
    from mimicgym.runs import render_pretrained

    if "walk" not in pretrained.available():
        print("\n(no shipped walk policy in this checkout: nothing to render)")
        return
    print("\nrendering the shipped walk policy beside its reference ...")
    try:
        video, strip, result = render_pretrained("walk", logdir / "walk")
    except RuntimeError as e:  # no OpenGL context: say what to install, lose nothing else
        print(f"skipped the video: {e}\n  Debian/Ubuntu: apt install libegl1 libgl1 libgles2 libegl-mesa0 "
              f"(MUJOCO_GL=egl), or libosmesa6 with MUJOCO_GL=osmesa")
        return
    s = result.summary()
    print(f"walk: {video} and {strip} ({s['mean_ep_length']:.0f} steps, normalised return "
          f"{s['normalised_return']:.3f}; mimicgym render --pretrained walk renders it again)")


if __name__ == "__main__":
    main()
