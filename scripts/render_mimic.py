"""Render a policy next to its reference (translucent ghost): an MP4 and a PNG strip of frames.

    python scripts/render_mimic.py --run runs/mimic/walk_humanoid3d_s0       # trained policy
    python scripts/render_mimic.py --clip run --policy zero                   # reference PD targets
    python scripts/render_mimic.py --clip cartwheel --policy reference        # kinematic playback
    python scripts/render_mimic.py --character smpl --betas 1.5 0.5 --policy reference

Writes ``<out>.mp4`` and ``<out>.png`` (default ``<run>/render`` or ``renders/<clip>_<policy>``).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

from mimicgym.envs.mimic.env import MimicEnv  # noqa: E402
from mimicgym.envs.mimic.render import save_strip, save_video  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default=None, help="an imitation run directory (as `mimicgym render`)")
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
    if policy == "trained":
        if args.run is None:
            parser.error("--policy trained needs --run")
        from mimicgym.runs import render_run

        video, strip, result = render_run(args.run, args.out, args.seconds, args.seed, args.width,
                                          args.height, args.frames_in_strip)
        s = result.summary()
        print(f"{args.run}: {s['mean_ep_length']:.0f} steps, per-step imitation reward "
              f"{s['mean_imitation_reward']:.3f}\nwrote {video} and {strip}")
        return
    clip = args.clip
    character, betas = args.character or "humanoid3d", args.betas
    env = MimicEnv(clip=clip, character=character, betas=betas, render_mode="rgb_array",
                   width=args.width, height=args.height,
                   rsi=False, early_termination=policy != "reference",
                   episode_seconds=args.seconds)
    obs, _ = env.reset(seed=args.seed)
    frames, rewards, done = [env.render()], [], False
    start = time.perf_counter()
    while not done:
        action = np.zeros(env.action_space.shape, dtype=np.float32)
        obs, _, terminated, truncated, info = env.step(action)
        if policy == "reference":
            env.set_state_to_reference(env.reference_step)
        rewards.append(env.imitation_terms() if policy == "reference"
                       else list(info["reward_terms"].values()))
        frames.append(env.render())
        done = terminated or truncated
    elapsed = time.perf_counter() - start
    out = Path(args.out) if args.out else Path("renders") / f"{clip}_{character}_{policy}"
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
