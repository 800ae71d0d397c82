"""Train a DeepMimic-style imitation policy: an example over the run layer.

The same run as

    mimicgym train --env mimicgym/Mimic-v0 --env-kwarg clip=walk --agent ppo --threads 2 \\
        --timesteps 2000000 --eval-freq 100000 --eval-episodes 5 \\
        --video-every 5 --checkpoint-freq 250000 --logdir runs/mimic --run-name walk_humanoid3d_s0

with our PPO on the batched env and DeepMimic-like defaults
(``mimicgym.runs.imitation.DEEPMIMIC_PPO_OURS``: 16 characters x 256 steps per rollout,
observation normalisation in the network), or with ``--agent sb3:PPO``: stable-baselines3's PPO
on 4 subprocess envs with VecNormalize (``DEEPMIMIC_PPO``); either way the reward terms and
normalised return in TensorBoard, periodic deterministic evaluations in ``evals.jsonl`` (an MP4
every few), checkpoints, and Ctrl-C that saves.

    python scripts/train_mimic.py --clip walk --timesteps 2000000
    python scripts/train_mimic.py --clip run --agent sb3:PPO --set learning_rate=3e-4 n_epochs=10
    mimicgym train --resume runs/mimic/walk_humanoid3d_s0        # continue a run
    mimicgym render runs/mimic/walk_humanoid3d_s0                # MP4 + PNG beside the ghost
    python scripts/plot_mimic_curve.py runs/mimic/walk_humanoid3d_s0
"""

from __future__ import annotations

import argparse
import sys

from mimicgym import runs
from mimicgym.cli import parse_assignments
from mimicgym.errors import MimicgymError


def imitation_config(clip: str = "walk", character: str = "humanoid3d", timesteps: int = 2_000_000,
                     agent: str = "ppo", n_envs: int = 4, seed: int = 0, logdir: str = "runs/mimic",
                     run_name: str | None = None, hyperparameters: dict | None = None,
                     **options) -> runs.RunConfig:
    """The run config of an imitation run on the script's defaults; ``n_envs``: SB3's subprocess
    envs (ours take ``n_envs`` as a hyperparameter); ``options``: any other ``RunConfig`` field
    (``eval_freq``, ``progress_bar``...)."""
    settings = dict(eval_freq=100_000, eval_episodes=5, video_every=5, checkpoint_freq=250_000)
    if agent.startswith("sb3:"):
        settings.update(n_envs=n_envs, subproc=n_envs > 1, normalize=True)
    else:
        settings.update(threads=2)
    settings.update(options)
    return runs.RunConfig(env="mimicgym/Mimic-v0", agent=agent,
                          env_kwargs={"clip": clip, "character": character}, timesteps=timesteps,
                          seed=seed, logdir=logdir, run_name=run_name or f"{clip}_{character}_s{seed}",
                          hyperparameters=hyperparameters or {}, **settings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clip", default="walk")
    parser.add_argument("--character", default="humanoid3d", choices=("humanoid3d", "smpl"))
    parser.add_argument("--timesteps", type=int, default=2_000_000)
    parser.add_argument("--agent", default="ppo", help="ppo (ours, batched env) or sb3:PPO")
    parser.add_argument("--n-envs", type=int, default=4, help="sb3:PPO's subprocess envs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--logdir", default="runs/mimic")
    parser.add_argument("--run-name")
    parser.add_argument("--eval-freq", type=int, default=100_000)
    parser.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="PPO hyperparameters")
    args = parser.parse_args()
    try:
        cfg = imitation_config(args.clip, args.character, args.timesteps, args.agent, args.n_envs, args.seed,
                               args.logdir, args.run_name, parse_assignments(args.set, "--set"),
                               eval_freq=args.eval_freq)
        result = runs.train(cfg)
    except KeyboardInterrupt:
        return 130  # the run was saved and the resume command printed
    except MimicgymError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"run directory: {result.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
