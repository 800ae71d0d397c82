"""``mimicgym gen``: train, evaluate and sample the generative models.

Examples:
  mimicgym gen train MADE --data digits --epochs 100
  mimicgym gen train PixelCNN --epochs 200 --batch-size 32 --lr-schedule cosine --set channels=64 layers=5
  mimicgym gen train CausalTransformer --data markov --epochs 20
  mimicgym gen train WaveNet --data motion --epochs 30
  mimicgym gen train --resume runs/gen_MADE_digits_s0 --epochs 200
  mimicgym gen eval runs/gen_MADE_digits_s0
  mimicgym gen sample runs/gen_MADE_digits_s0 -n 64
  mimicgym gen train RealNVP --data eight_gaussians --epochs 20
  mimicgym gen train DDPM --data digits --epochs 100 --set num_classes=10
  mimicgym gen sample runs/gen_DDPM_digits_s0 --sampler ddim --steps 50 --guidance 3 --condition 7
  mimicgym gen train ControlNet --base-run runs/gen_DDPM_digits_s0 --epochs 60
  mimicgym gen train VAE --set decoder=gaussian latent_dim=12 && \
    mimicgym gen train LatentDiffusion --base-run runs/gen_VAE_digits_s0 --epochs 150
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
    p.add_argument("--data", help="digits | markov | motion (mu-law joint angles) | eight_gaussians | two_moons | "
                                  "checkerboard | rings (default digits)")
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
    p.add_argument("--base-run", metavar="RUN", help="LatentDiffusion / ControlNet: the trained VAE / DDPM run")
    p.add_argument("--resume", metavar="RUN", help="continue this run directory")
    p.add_argument("--sampled-targets", dest="rao_blackwell", action="store_false", default=None,
                   help="binary autoregressive models on grey data: train on the sampled pixels, not "
                        "their grey probabilities (see TrainConfig.rao_blackwell)")
    p.add_argument("--no-progress", dest="progress_bar", action="store_false", default=None)
    p = commands.add_parser("eval", help="test NLL of a trained run")
    p.add_argument("run", type=Path)
    p = commands.add_parser("sample", help="samples of a trained run: PNG grid (images) or text (sequences)")
    p.add_argument("run", type=Path)
    p.add_argument("-n", type=int, default=64, help="number of samples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path)
    p.add_argument("--sampler", choices=["ddpm", "ddim"], help="diffusion models: ancestral or DDIM sampling")
    p.add_argument("--steps", type=int, help="diffusion models: sampling steps (DDIM; default all)")
    p.add_argument("--guidance", type=float, help="conditional diffusion: classifier-free guidance weight w")
    p.add_argument("--condition", type=int, help="conditional models: the class to sample")
    gen.set_defaults(parse_assignments=parse_assignments)


def cmd_gen(args: argparse.Namespace) -> None:
    from mimicgym.runs import generative
    from mimicgym.runs.generative_eval import describe_evaluation

    if args.gen_command == "eval":
        result = generative.evaluate_run(args.run)
        print(f"{result['model']} on {result['data']}: {describe_evaluation(result)}")
        return
    if args.gen_command == "sample":
        if args.n < 1:
            raise ConfigError(f"-n must be a positive int, got {args.n}")
        options = {name: getattr(args, name) for name in ("sampler", "steps", "guidance", "condition")
                   if getattr(args, name) is not None}
        print(f"wrote {generative.sample_run(args.run, args.n, args.out, args.seed, **options)}")
        return
    flags = {name: getattr(args, name) for name in ("data", "epochs", "batch_size", "lr", "patience",
                                                    "max_grad_norm", "seed", "logdir", "run_name", "device",
                                                    "threads", "sample_every", "prior_epochs", "lr_schedule",
                                                    "base_run", "rao_blackwell", "progress_bar")}
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
    print(f"run directory: {result.run_dir}\n{describe_evaluation(result.evaluation)}\n"
          f"TensorBoard: tensorboard --logdir {result.run_dir.parent}")
