"""The mimicgym console script: list, train, eval, render and gen (generative models).

Examples:
  mimicgym list
  mimicgym list --agent dqn                  every hyperparameter, its default and meaning
  mimicgym list --env mimicgym/WindyGridWorld-v0   the env's gym.make keywords
  mimicgym train --env mimicgym/CliffWalking-v0 --agent q_learning --timesteps 20000 --seed 0
  mimicgym train --config run.toml --set learning_rate=0.1
  mimicgym train --env CartPole-v1 --agent sb3:PPO --timesteps 50000 --n-envs 4 --normalize
  mimicgym train --env CartPole-v1 --agent rllib:PPO --timesteps 50000   (the rllib extra)
  mimicgym train --resume runs/q_learning_CliffWalking-v0_s0
  mimicgym eval runs/q_learning_CliffWalking-v0_s0 --episodes 20
  mimicgym render runs/sb3_PPO_MimicWalk-v0_s0
  mimicgym render --pretrained walk

A TOML config holds any train option by its long name (env, agent, timesteps, seed...) plus
[hyperparameters] and [env_kwargs] tables; flags override it. Errors in the input are one
line and exit status 2; Ctrl-C saves the run and exits with status 130.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any, Sequence

from mimicgym.cli_gen import add_gen_parser, cmd_gen
from mimicgym.errors import ConfigError, MimicgymError

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
        if not sep or not key.strip():
            raise ConfigError(f"{flag} expects KEY=VALUE, got {item!r}")
        out[key.strip()] = parse_value(value.strip())
    return out


def _add_train_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="TOML file with train options")
    p.add_argument("--env", help="environment id (default mimicgym/CliffWalking-v0)")
    p.add_argument("--agent", help="agent name (see `mimicgym list`), sb3:ALGO or rllib:ALGO")
    p.add_argument("--timesteps", type=int, help="total env steps of the run")
    p.add_argument("--episodes", type=int, help="total episodes (tabular sample-based agents)")
    p.add_argument("--seed", type=int)
    p.add_argument("--logdir", help="parent of the run directory (default runs/)")
    p.add_argument("--run-name", help="default AGENT_ENV_sSEED, suffixed _2, _3... when taken")
    p.add_argument("--set", nargs="*", metavar="KEY=VALUE",
                   help="agent hyperparameters (see `mimicgym list --agent NAME`)")
    p.add_argument("--env-kwarg", nargs="*", metavar="KEY=VALUE",
                   help="gym.make keywords (see `mimicgym list --env ID`)")
    p.add_argument("--eval-env-kwarg", nargs="*", metavar="KEY=VALUE",
                   help="gym.make keywords of the evaluation envs, over --env-kwarg "
                        "(e.g. reward_config=paper after training on reward_config=keep_up)")
    p.add_argument("--wrapper", choices=["onehot", "image"], help="observation wrapper")
    p.add_argument("--n-envs", type=int, help="parallel envs (sb3 algorithms)")
    p.add_argument("--subproc", action="store_true", default=None, help="subprocess vector env (sb3)")
    p.add_argument("--normalize", action="store_true", default=None,
                   help="normalise observations (sb3: VecNormalize; a2c, reinforce: in the network)")
    p.add_argument("--device", help="auto | cpu | cuda")
    p.add_argument("--threads", type=int, help="torch threads (default 1)")
    p.add_argument("--eval-episodes", type=int, help="evaluation episodes after training (default 20)")
    p.add_argument("--eval-max-steps", type=int, help="steps after which an evaluation episode is cut")
    p.add_argument("--eval-freq", type=int, help="steps between evaluations during training")
    p.add_argument("--video-every", type=int, help="imitation: an MP4 every n-th evaluation")
    p.add_argument("--checkpoint-freq", type=int, help="steps between checkpoints of the run")
    p.add_argument("--resume", metavar="RUN", help="continue this run directory (or a checkpoint in it)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="convert the run's vecnormalize.pkl (SB3's pickle; it can run code) once to arrays")
    p.add_argument("--no-progress", dest="progress_bar", action="store_false", default=None)
    p.add_argument("--engine", choices=["local", "ray"],
                   help="ppo, a2c: ray steps the envs in Ray actors (--workers), the update stays here")
    p.add_argument("--workers", type=int, help="--engine ray: Ray actors that split the run's n_envs (default 1)")
    p.add_argument("--address", help="--engine ray: a Ray cluster (auto, ray://HOST:10001, HOST:PORT); "
                   "default: a local Ray on this machine")
    p.add_argument("--seeds", metavar="RANGE",
                   help="one run per seed, as a sweep on Ray Tune: 0-9 (inclusive) or 0,3,7 (see `mimicgym sweep`)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mimicgym", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="list environments and agents, or one's options")
    p.add_argument("--agent", help="print this agent's hyperparameters")
    p.add_argument("--env", help="print this env's gym.make keywords")
    p.add_argument("--model", help="print this generative model's hyperparameters")
    _add_train_options(sub.add_parser("train", help="train an agent and write a run directory"))
    p = sub.add_parser("eval", help="evaluate a trained run (or a saved model)")
    p.add_argument("run", nargs="?", type=Path, help="run directory written by `train`")
    p.add_argument("--model", type=Path, help="a saved agent or model instead of a run directory")
    p.add_argument("--agent", help="agent name, with --model")
    p.add_argument("--env", help="environment id, with --model")
    p.add_argument("--env-kwarg", nargs="*", metavar="KEY=VALUE", help="gym.make keywords, with --model")
    p.add_argument("--wrapper", choices=["onehot", "image"], help="observation wrapper, with --model")
    p.add_argument("--normalize", action="store_true",
                   help="with --model: the vecnormalize.npz beside it (sb3)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="convert a vecnormalize.pkl (SB3's pickle; it can run code) once to arrays")
    p.add_argument("--episodes", type=int)
    p.add_argument("--seed", type=int, help="default: the run's (its training-time evaluation)")
    p = sub.add_parser("render", help="render an imitation run (or a shipped policy) beside its reference: MP4 and PNG")
    p.add_argument("run", type=Path, nargs="?", help="run directory")
    p.add_argument("--pretrained", metavar="NAME", help="a shipped policy instead of a run (see mimicgym list)")
    p.add_argument("--out", type=Path,
                   help="output path without extension (default RUN/render, renders/NAME for --pretrained)")
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, default=480)
    p.add_argument("--height", type=int, default=360)
    add_gen_parser(sub, parse_assignments)
    p = sub.add_parser("sweep", help="a grid of runs over seeds as Ray Tune trials, with their aggregate")
    p.add_argument("config", type=Path, help="TOML file: [sweep] (name, seeds, train options), "
                   "[hyperparameters], [env_kwargs]; a list value is a grid axis")
    p.add_argument("--logdir", help="parent of the sweep's directory (default: the file's, else runs/)")
    p.add_argument("--address", help="a Ray cluster: auto, ray://HOST:10001 or HOST:PORT (default: a local Ray)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs Ray reserves per trial (default 1)")
    p.add_argument("--gpus-per-trial", type=float, default=0.0, help="GPUs Ray reserves per trial (default 0)")
    p.add_argument("--no-progress", dest="progress_bar", action="store_false", help="no bar over the trials")
    return parser


def _flag_values(args: argparse.Namespace) -> dict[str, Any]:
    from mimicgym.runs import RunConfig
    from mimicgym.runs.config import KEYWORD_TABLES

    names = {f.name for f in dataclasses.fields(RunConfig)} - set(KEYWORD_TABLES)
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def config_from_args(args: argparse.Namespace):
    """The ``RunConfig`` of ``train``'s flags over its ``--config`` file."""
    from mimicgym.runs import config_from_values, load_toml

    values: dict[str, Any] = load_toml(args.config) if args.config is not None else {}
    values.update(_flag_values(args))
    for table, flag, items in (("hyperparameters", "--set", args.set),
                               ("env_kwargs", "--env-kwarg", args.env_kwarg),
                               ("eval_env_kwargs", "--eval-env-kwarg", args.eval_env_kwarg)):
        given = values.get(table, {})
        if not isinstance(given, dict):
            raise ConfigError(f"{args.config}: [{table}] must be a table, got {given!r}")
        values[table] = {**given, **parse_assignments(items, flag)}
    return config_from_values(values, str(args.config) if args.config else "")


def _print_table(rows: list[tuple[str, str, str]]) -> None:
    width = max((len(n) for n, _, _ in rows), default=0)
    for name, default, doc in rows:
        print(f"  {name:<{width}}  {default:<14} {doc}".rstrip())


def describe_agent(name: str) -> None:
    from mimicgym.runs.options import describe_dataclass

    if name.startswith("sb3:"):
        from mimicgym.runs.sb3 import describe_sb3, sb3_algorithm

        algo = sb3_algorithm(name)
        print(f"{name}: stable_baselines3.{algo.__name__} hyperparameters (--set NAME=VALUE):")
        _print_table(describe_sb3(algo))
        return
    if name.startswith("rllib:"):
        from mimicgym.runs.rllib import describe_rllib
        from mimicgym.runs.rllib_policy import algorithm_name

        print(f"{name}: ray.rllib.{algorithm_name(name)} training options (--set NAME=VALUE):")
        _print_table(describe_rllib(name))
        return
    from mimicgym.agents import get_agent_class

    try:
        cls = get_agent_class(name)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    print(f"{name}: mimicgym.agents.{cls.__name__} hyperparameters (--set NAME=VALUE):")
    _print_table(describe_dataclass(cls.Config))


def describe_env(env_id: str) -> None:
    import inspect

    import gymnasium as gym

    from mimicgym.runs.envs import env_spec

    spec = env_spec(env_id)
    creator = gym.envs.registration.load_env_creator(spec.entry_point) if isinstance(
        spec.entry_point, str) else spec.entry_point
    params = inspect.signature(creator.__init__ if inspect.isclass(creator) else creator).parameters
    print(f"{env_id}: {spec.entry_point}, gym.make keywords (--env-kwarg NAME=VALUE):")
    from mimicgym.runs.options import describe_dataclass

    rows = []
    for name, p in params.items():
        if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        rows.append((name, "(required)" if p.default is p.empty else repr(p.default), ""))
    options = getattr(creator, "Options", None)  # keywords gathered in one dataclass
    if options is not None:
        rows += describe_dataclass(options)
    for i, (name, default, doc) in enumerate(rows):
        if name in spec.kwargs:
            rows[i] = (name, repr(spec.kwargs[name]), f"(set by this id) {doc}".strip())
    _print_table(rows)
    if spec.max_episode_steps:
        print(f"  (time limit: {spec.max_episode_steps} steps)")


def describe_model(name: str) -> None:
    from mimicgym.generative import MODELS
    from mimicgym.runs.options import describe_dataclass

    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; models: {', '.join(MODELS)}")
    print(f"{name} hyperparameters (mimicgym gen train {name} --set KEY=VALUE):")
    rows = describe_dataclass(MODELS[name].Config)
    _print_table(rows) if rows else print("  none")


def cmd_list(args: argparse.Namespace) -> None:
    if args.agent:
        return describe_agent(args.agent)
    if args.env:
        return describe_env(args.env)
    if args.model:
        return describe_model(args.model)
    import gymnasium as gym

    from mimicgym.agents import AGENTS
    from mimicgym.generative import MODELS

    print("environments:")
    for env_id in sorted(k for k in gym.registry if k.startswith("mimicgym/")):
        print(f"  {env_id}")
    print("agents:")
    for name, cls in AGENTS.items():
        print(f"  {name:<18} mimicgym.agents.{cls}")
    print("  sb3:ALGO           stable-baselines3 algorithms (sb3:PPO, sb3:DQN, sb3:A2C, sb3:SAC...)")
    print("  rllib:ALGO         RLlib algorithms, with the rllib extra (rllib:PPO, rllib:DQN, rllib:APPO...)")
    print("generative models (mimicgym gen train MODEL --data digits|markov|motion|eight_gaussians|...):")
    for name, cls in MODELS.items():
        print(f"  {name:<18} {cls.__module__}.{name}")
    from mimicgym import pretrained

    print("pretrained policies (mimicgym render --pretrained NAME; mimicgym.pretrained.load(NAME)):")
    for name in pretrained.available():
        info = pretrained.describe(name)
        print(f"  {name:<18} {info['env_id']}, {info['training'].get('samples', '?')} samples, "
              f"normalised return {info['training'].get('normalised_return', '?')}")
    print("options: mimicgym list --agent NAME | --env ID | --model NAME")


def cmd_train(args: argparse.Namespace) -> None:
    from mimicgym import runs

    if args.seeds is not None:
        return cmd_train_seeds(args)
    if args.resume:
        given = _flag_values(args)
        given.pop("resume", None)
        if args.trust_pickle:
            _convert_trusted_pickle(Path(args.resume))
        if args.config or args.set or args.env_kwarg:
            raise ConfigError("--resume continues a run with its own options: no --config, "
                              "--set or --env-kwarg")
        result = runs.resume(args.resume, **given)
    else:
        if args.trust_pickle:
            raise ConfigError("--trust-pickle converts a resumed run's vecnormalize.pkl: use it with --resume")
        result = runs.train(config_from_args(args))
    print(f"run directory: {result.run_dir}")
    print(f"model: {result.model_path}")
    if result.evaluation is not None:
        s = result.evaluation.summary()
        print(f"evaluation over {s['episodes']} episodes: mean return {s['mean_reward']:.3f} "
              f"+- {s['std_reward']:.3f}")
    print(f"TensorBoard: tensorboard --logdir {result.run_dir.parent}")


def cmd_train_seeds(args: argparse.Namespace) -> None:
    """``train ... --seeds 0-9``: a sweep of this one configuration over the seeds."""
    from mimicgym.runs.sweep import run_sweep
    from mimicgym.runs.sweep_config import seed_sweep

    if args.resume:
        raise ConfigError(f"--seeds {args.seeds} starts new runs, one per seed; it does not combine with --resume")
    if args.seed is not None:
        raise ConfigError(f"give --seed or --seeds, not both (got --seed {args.seed} and --seeds {args.seeds})")
    sweep = seed_sweep(config_from_args(args), args.seeds)
    _report_sweep(run_sweep(sweep, progress=args.progress_bar is not False))


def cmd_sweep(args: argparse.Namespace) -> None:
    from mimicgym.runs.sweep import run_sweep
    from mimicgym.runs.sweep_config import load_sweep

    sweep = load_sweep(args.config, args.logdir)
    _report_sweep(run_sweep(sweep, address=args.address, cpus_per_trial=args.cpus_per_trial,
                            gpus_per_trial=args.gpus_per_trial, progress=args.progress_bar))


def _report_sweep(result) -> None:
    for key, row in result.summary.items():
        sem = row["final_return_sem"]
        mean = "-" if row["final_return_mean"] is None else f"{row['final_return_mean']:.4g}"
        print(f"  {key}: final return {mean}{'' if sem is None else f' +- {sem:.2g}'} (n={row['n']}"
              f"{', failed ' + str(len(row['failed'])) if row['failed'] else ''})")
    print(f"summary: {result.sweep_dir / 'summary.md'} (and summary.json, curves.png)")
    print(f"TensorBoard: tensorboard --logdir {result.sweep_dir}")
    if result.failed:
        paths = ", ".join(str(t.run_dir / "error.txt") for t in result.failed[:3])
        raise MimicgymError(f"{len(result.failed)} of {result.ran} trials failed (tracebacks: {paths}"
                            f"{', ...' if len(result.failed) > 3 else ''}); re-run the sweep to retry them")


def _convert_trusted_pickle(path: Path) -> None:
    from mimicgym.runs.normalization import convert_pickled_stats

    converted = convert_pickled_stats(path if path.is_dir() else path.parent)
    if converted is not None:
        print(f"--trust-pickle: read {converted.with_suffix('.pkl')} once and wrote its statistics to {converted}")


def cmd_eval(args: argparse.Namespace) -> None:
    from mimicgym import runs

    if args.trust_pickle and (args.run or args.model):
        _convert_trusted_pickle(args.run or args.model)
    if args.run is not None:
        result = runs.evaluate_run(args.run, args.episodes, args.seed, progress_bar=True)
        cfg = runs.run_config(args.run)
    elif args.model is not None and args.agent and args.env:
        from mimicgym.runs.envs import make_env
        from mimicgym.runs.evaluation import EVAL_SEED_OFFSET
        from mimicgym.runs.learners import make_learner

        cfg = runs.RunConfig(env=args.env, agent=args.agent, normalize=args.normalize,
                             wrapper=args.wrapper, progress_bar=False,
                             timesteps=1, env_kwargs=parse_assignments(args.env_kwarg, "--env-kwarg"))
        learner = make_learner(cfg, checkpoint=args.model)
        env = make_env(cfg)
        try:
            result = runs.evaluate_episodes(learner.model, env, args.episodes or cfg.eval_episodes,
                                            (args.seed or 0) + EVAL_SEED_OFFSET, normalize_obs=learner.normalize_obs,
                                            max_steps=cfg.eval_max_steps, progress_bar=True)
        finally:
            env.close()
            learner.close()
    else:
        raise ConfigError("give a run directory, or --model with --agent and --env")
    s = result.summary()
    print(f"{cfg.agent} on {cfg.env}: mean return {s['mean_reward']:.3f} +- {s['std_reward']:.3f} "
          f"over {s['episodes']} deterministic episodes")


def cmd_render(args: argparse.Namespace) -> None:
    from mimicgym import runs

    if (args.run is None) == (args.pretrained is None):
        raise ConfigError("render: give a run directory or --pretrained NAME (one of them)")
    if args.pretrained is not None:
        video, strip, result = runs.render_pretrained(args.pretrained, args.out, args.seconds, args.seed,
                                                      args.width, args.height)
    else:
        video, strip, result = runs.render_run(args.run, args.out, args.seconds, args.seed,
                                               args.width, args.height)
    s = result.summary()
    print(f"wrote {video} and {strip}: {s['mean_ep_length']:.0f} steps, "
          f"normalised return {s['normalised_return']:.3f}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:
        # `train --agent NAME --help`: train's options, then the agent's hyperparameters
        if e.code == 0 and argv[:1] == ["train"] and "--agent" in argv[:-1]:
            print()
            args = argparse.Namespace(command="list", agent=argv[argv.index("--agent") + 1], env=None, model=None)
        else:
            return int(e.code or 0)
    try:
        commands = {"list": cmd_list, "train": cmd_train, "eval": cmd_eval, "render": cmd_render, "gen": cmd_gen,
                    "sweep": cmd_sweep}
        commands[args.command](args)
    except KeyboardInterrupt:
        return 130
    except MimicgymError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
