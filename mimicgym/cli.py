"""The ``mimicgym`` console script: ``list``, ``train`` and ``eval``.

Examples::

    mimicgym list
    mimicgym train --env mimicgym/CliffWalking-v0 --agent q_learning --timesteps 20000 --seed 0
    mimicgym train --config run.toml --set learning_rate=0.1
    mimicgym train --env CartPole-v1 --agent sb3:PPO --timesteps 50000 --n-envs 4 --normalize
    mimicgym eval runs/q_learning_CliffWalking-v0_s0 --episodes 20

A TOML config holds any ``train`` option by its long name (``env``, ``agent``, ``timesteps``,
``seed``...) plus ``[hyperparameters]`` and ``[env_kwargs]`` tables; flags override it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Sequence

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def parse_value(text: str) -> Any:
    """A TOML literal (``0.5``, ``true``, ``[64, 64]``, ``"x"``) or else the bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_assignments(items: Sequence[str] | None, flag: str) -> dict[str, Any]:
    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"error: {flag} expects KEY=VALUE, got {item!r}")
        out[key.strip()] = parse_value(value.strip())
    return out


def _train_parser(sub) -> None:
    p = sub.add_parser("train", help="train an agent and write a run directory")
    p.add_argument("--config", type=Path, help="TOML file with train options")
    p.add_argument("--env", help="environment id (default mimicgym/CliffWalking-v0)")
    p.add_argument("--agent", help="agent name (see `mimicgym list`) or sb3:ALGO")
    p.add_argument("--timesteps", type=int)
    p.add_argument("--episodes", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--logdir", help="parent of the run directory (default runs/)")
    p.add_argument("--run-name")
    p.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="agent hyperparameters")
    p.add_argument("--env-kwarg", nargs="*", metavar="KEY=VALUE", help="gym.make keywords")
    p.add_argument("--wrapper", choices=["onehot", "image"], help="observation wrapper")
    p.add_argument("--n-envs", type=int, help="parallel envs (sb3 algorithms)")
    p.add_argument("--subproc", action="store_true", default=None, help="subprocess vector env (sb3)")
    p.add_argument("--normalize", action="store_true", default=None,
                   help="normalise observations (sb3: VecNormalize; a2c, reinforce: in the network)")
    p.add_argument("--device", help="auto | cpu | cuda")
    p.add_argument("--eval-episodes", type=int)
    p.add_argument("--checkpoint-freq", type=int, help="steps between checkpoints")
    p.add_argument("--resume", help="saved agent to continue training from")
    p.add_argument("--no-progress", dest="progress_bar", action="store_false", default=None)


def _eval_parser(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a trained agent")
    p.add_argument("run", nargs="?", type=Path, help="run directory written by `train`")
    p.add_argument("--model", type=Path, help="saved agent (instead of a run directory)")
    p.add_argument("--agent", help="agent name, with --model")
    p.add_argument("--env", help="environment id, with --model")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mimicgym", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list environments and agents")
    _train_parser(sub)
    _eval_parser(sub)
    return parser


def config_from_args(args: argparse.Namespace):
    from mimicgym.training import RunConfig

    fields = {f.name for f in dataclasses.fields(RunConfig)}
    values: dict[str, Any] = {}
    if args.config is not None:
        with open(args.config, "rb") as f:
            values = tomllib.load(f)
        unknown = set(values) - fields
        if unknown:
            raise SystemExit(f"error: unknown keys in {args.config}: {sorted(unknown)}")
    for name in fields - {"hyperparameters", "env_kwargs"}:
        flag_value = getattr(args, name, None)
        if flag_value is not None:
            values[name] = flag_value
    values["hyperparameters"] = {**values.get("hyperparameters", {}),
                                 **parse_assignments(args.set, "--set")}
    values["env_kwargs"] = {**values.get("env_kwargs", {}),
                            **parse_assignments(args.env_kwarg, "--env-kwarg")}
    return RunConfig(**values)


def cmd_list() -> None:
    import gymnasium as gym

    from mimicgym.agents import AGENTS

    print("environments:")
    for env_id in sorted(k for k in gym.registry if k.startswith("mimicgym/")):
        print(f"  {env_id}")
    print("agents:")
    for name, cls in AGENTS.items():
        print(f"  {name:<18} mimicgym.agents.{cls}")
    print("  sb3:ALGO           stable-baselines3 algorithms (sb3:PPO, sb3:DQN, sb3:A2C, sb3:SAC...)")


def cmd_train(args: argparse.Namespace) -> None:
    import numpy as np

    from mimicgym.training import train

    cfg = config_from_args(args)
    result = train(cfg)
    print(f"run directory: {result.run_dir}")
    print(f"model: {result.model_path}")
    if result.eval_returns:
        print(f"evaluation over {len(result.eval_returns)} episodes: "
              f"mean return {result.eval_mean:.3f} +- {np.std(result.eval_returns):.3f}")
    print(f"TensorBoard: tensorboard --logdir {Path(cfg.logdir)}")


def cmd_eval(args: argparse.Namespace) -> None:
    import numpy as np

    from mimicgym.training import RunConfig, evaluate

    if args.run is not None:
        config = json.loads((args.run / "config.json").read_text())["config"]
        cfg = RunConfig(**config)
        model = next((args.run / n for n in ("model.npz", "model.pt", "model.zip")
                      if (args.run / n).exists()), None)
        if model is None:
            raise SystemExit(f"error: no saved model in {args.run}")
    elif args.model is not None and args.agent and args.env:
        cfg, model = RunConfig(env=args.env, agent=args.agent), args.model
    else:
        raise SystemExit("error: give a run directory, or --model with --agent and --env")
    cfg = dataclasses.replace(cfg, seed=args.seed, eval_episodes=args.episodes)
    if cfg.is_sb3:
        from mimicgym.sb3_runner import evaluate_sb3, sb3_algorithm

        stats = Path(model).with_name("vecnormalize.pkl")
        returns = evaluate_sb3(sb3_algorithm(cfg.agent).load(str(model)), cfg,
                               stats if cfg.normalize and stats.exists() else None)
    else:
        from mimicgym.agents import get_agent_class
        from mimicgym.training import make_agent_env

        agent_cls = get_agent_class(cfg.agent)
        agent = agent_cls.load(model, env=make_agent_env(agent_cls, cfg))
        returns = evaluate(agent, cfg, args.episodes)
    print(f"{cfg.agent} on {cfg.env}: mean return {np.mean(returns):.3f} +- {np.std(returns):.3f} "
          f"over {len(returns)} deterministic episodes")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "list":
            cmd_list()
        elif args.command == "train":
            cmd_train(args)
        elif args.command == "eval":
            cmd_eval(args)
    except KeyboardInterrupt:
        return 130
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
