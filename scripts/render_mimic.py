"""Render a policy next to its reference (translucent ghost): an MP4 and a PNG strip of frames.

    python scripts/render_mimic.py --run runs/mimic/walk_humanoid3d_s0       # trained policy
    python scripts/render_mimic.py --clip run --policy zero                   # reference PD targets
    python scripts/render_mimic.py --clip cartwheel --policy reference        # kinematic playback
    python scripts/render_mimic.py --character smpl --betas 1.5 0.5 --policy reference

Writes ``<out>.mp4`` and ``<out>.png`` (default ``<run>/render`` or ``renders/<clip>_<policy>``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

from mimicgym.envs.mimic.env import MimicEnv  # noqa: E402
from mimicgym.envs.mimic.render import save_strip, save_video  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default=None, help="a scripts/train_mimic.py run directory")
    parser.add_argument("--clip", default="walk")
    parser.add_argument("--character", choices=("humanoid3d", "smpl"), default=None,
                        help="default: the run's, else humanoid3d")
    parser.add_argument("--betas", type=float, nargs="+", default=None,
                        help="SMPL shape parameters (--character smpl)")
    parser.add_argument("--policy", choices=("trained", "zero", "reference"), default=None)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--width", type=int, default=480)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--frames-in-strip", type=int, default=8)
    parser.add_argument("--out", default=None, help="output path without extension")
    args = parser.parse_args()
    policy = args.policy or ("trained" if args.run else "zero")
    clip = args.clip
    character, betas = args.character or "humanoid3d", args.betas
    model = normalizer = None
    run_kwargs = {}  # the run's env settings that change the observation or the actions
    if policy == "trained":
        if args.run is None:
            parser.error("--policy trained needs --run")
        from stable_baselines3 import PPO
        from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

        run = Path(args.run)
        config = json.loads((run / "config.json").read_text())
        clip = config["clip"]
        character = args.character or config.get("character", "humanoid3d")
        betas = args.betas if args.betas is not None else config.get("betas")
        run_kwargs = {k: config[k] for k in ("reference_targets", "action_scale") if k in config}
        model = PPO.load(run / "model.zip", device="cpu")
        stats = run / "vecnormalize.pkl"
        if stats.exists():
            dummy = DummyVecEnv([lambda: MimicEnv(clip=clip, character=character, betas=betas,
                                                  **run_kwargs)])
            normalizer = VecNormalize.load(str(stats), dummy)
            normalizer.training = False
    env = MimicEnv(clip=clip, character=character, betas=betas, render_mode="rgb_array",
                   width=args.width, height=args.height,
                   rsi=False, early_termination=policy != "reference",
                   episode_seconds=args.seconds, **run_kwargs)
    obs, _ = env.reset(seed=args.seed)
    frames, rewards, done = [env.render()], [], False
    start = time.perf_counter()
    while not done:
        if policy == "trained":
            x = obs if normalizer is None else normalizer.normalize_obs(obs[None])[0]
            action = model.predict(x, deterministic=True)[0]
        else:
            action = np.zeros(env.action_space.shape, dtype=np.float32)
        obs, _, terminated, truncated, info = env.step(action)
        if policy == "reference":
            env.set_state_to_reference(env.reference_step)
        rewards.append(env.imitation_terms() if policy == "reference"
                       else list(info["reward_terms"].values()))
        frames.append(env.render())
        done = terminated or truncated
    elapsed = time.perf_counter() - start
    out = Path(args.out) if args.out else (
        Path(args.run) / "render" if args.run
        else Path("renders") / f"{clip}_{character}_{policy}")
    video = save_video(frames, out.with_suffix(".mp4"), fps=env.metadata["render_fps"])
    strip = save_strip(frames, out.with_suffix(".png"), n=args.frames_in_strip)
    terms = np.mean(rewards, axis=0)
    print(f"{clip} / {character} / {policy}: {len(frames) - 1} steps "
          f"({len(frames) / elapsed:.0f} frames/s with physics), mean terms pose {terms[0]:.3f} "
          f"velocity {terms[1]:.3f} "
          f"end-effector {terms[2]:.3f} com {terms[3]:.3f}")
    print(f"wrote {video} and {strip}")
    env.close()


if __name__ == "__main__":
    main()
