"""``mimicgym gen``: train, evaluate and sample the generative models.

Examples:
  mimicgym gen train MADE --data digits --epochs 100
  mimicgym gen train PixelCNN --epochs 200 --batch-size 32 --lr-schedule cosine --set channels=32
  mimicgym gen train CausalTransformer --data markov --epochs 20
  mimicgym gen train WaveNet --data motion --epochs 30
  mimicgym gen train --resume runs/gen_MADE_digits_s0 --epochs 200
  mimicgym gen eval runs/gen_MADE_digits_s0
  mimicgym gen sample runs/gen_MADE_digits_s0 -n 64
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mimicgym.errors import ConfigError


def add_gen_parser(sub: argparse._SubParsersAction, parse_assignments) -> None:
    gen = sub.add_parser("gen", help="train, evaluate and sample generative models",
                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = gen.add_subparsers(dest="gen_command", required=True)
    p = commands.add_parser("train", help="train a model on a data set and write a run directory")
    p.add_argument("model", nargs="?", help="model class name (see `mimicgym list`)")
    p.add_argument("--data", help="digits | markov | motion (mu-law joint angles; default digits)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--patience", type=int, help="early stop after this many epochs without a better validation NLL")
    p.add_argument("--max-grad-norm", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="model hyperparameters, e.g. hidden=[512]")
    p.add_argument("--logdir")
    p.add_argument("--run-name")
    p.add_argument("--device", help="auto | cpu | cuda")
    p.add_argument("--threads", type=int)
    p.add_argument("--sample-every", type=int, help="epochs between sample grids (0: only at the end)")
    p.add_argument("--lr-schedule", choices=["constant", "cosine"], help="learning-rate schedule (default constant)")
    p.add_argument("--prior-epochs", type=int, help="VQ-VAE: epochs of the prior over its codes (default 100)")
    p.add_argument("--resume", metavar="RUN", help="continue this run directory")
    p.add_argument("--no-progress", dest="progress_bar", action="store_false", default=None)
    p = commands.add_parser("eval", help="test NLL of a trained run")
    p.add_argument("run", type=Path)
    p = commands.add_parser("sample", help="samples of a trained run: PNG grid (images) or text (sequences)")
    p.add_argument("run", type=Path)
    p.add_argument("-n", type=int, default=64, help="number of samples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path)
    gen.set_defaults(parse_assignments=parse_assignments)


def cmd_gen(args: argparse.Namespace) -> None:
    from mimicgym.runs import generative

    if args.gen_command == "eval":
        result = generative.evaluate_run(args.run)
        print(f"{result['model']} on {result['data']}: {generative.describe_evaluation(result)}")
        return
    if args.gen_command == "sample":
        if args.n < 1:
            raise ConfigError(f"-n must be a positive int, got {args.n}")
        print(f"wrote {generative.sample_run(args.run, args.n, args.out, args.seed)}")
        return
    flags = {name: getattr(args, name) for name in ("data", "epochs", "batch_size", "lr", "patience",
                                                    "max_grad_norm", "seed", "logdir", "run_name", "device",
                                                    "threads", "sample_every", "prior_epochs", "lr_schedule",
                                                    "progress_bar")}
    flags = {k: v for k, v in flags.items() if v is not None}
    if args.resume:
        if args.model or args.set:
            raise ConfigError("--resume continues a run with its own model and hyperparameters")
        result = generative.train_generative(resume=args.resume, **flags)
    else:
        if not args.model:
            raise ConfigError("name a model, e.g. `mimicgym gen train MADE` (see `mimicgym list`)")
        hyperparameters = args.parse_assignments(args.set, "--set")
        result = generative.train_generative(generative.GenConfig(model=args.model, hyperparameters=hyperparameters,
                                                                  **flags))
    print(f"run directory: {result.run_dir}\n{generative.describe_evaluation(result.evaluation)}\n"
          f"TensorBoard: tensorboard --logdir {result.run_dir.parent}")
