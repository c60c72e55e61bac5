"""`hybridmask train`: train one defence on Ray Train (adaptive k through the RL strategy)."""

from __future__ import annotations

import argparse

from trainers.defenses import DEFENSES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train an FR model under one defence (Ray Train; RL strategy for hybrid_adaptive)"
    )
    parser.add_argument(
        "--data",
        required=True,
        metavar="DATA_DIR",
        help="prepared folder (with --key for masked defences) or masked folder",
    )
    parser.add_argument(
        "--defense",
        metavar="NAME",
        help=f"{' | '.join(DEFENSES)}; required unless --config (or --set defense.name=...) names it",
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="RUN_DIR",
        help="run folder; re-running into it resumes from its last checkpoint",
    )
    parser.add_argument("--workers", type=int, help="Ray Train workers (default from the config: 2)")
    parser.add_argument("--epochs", type=int, help="training epochs")
    parser.add_argument("--k", type=int, help="images per MixUp sample for mixup / hybrid_fixed")
    parser.add_argument(
        "--strategy", choices=("ppo", "reinforce"), help="the RL algorithm choosing k (hybrid_adaptive)"
    )
    parser.add_argument(
        "--key", metavar="KEYFILE", help="client key: masks prepared data for masked defences (never saved)"
    )
    parser.add_argument("--ratio", type=float, help="masking ratio used when masking here (masking.ratio)")
    parser.add_argument(
        "--config",
        metavar="FILE.yaml",
        help="config file (sections: defense, model, optim, scale, strategy, adaptive, masking)",
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override one config key, e.g. optim.lr=0.001"
    )
    parser.add_argument(
        "--storage",
        metavar="PATH",
        help="Ray Train storage (shared on clusters, e.g. s3://bucket/runs); default RUN_DIR/ray",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines (steps, rate, time left, epochs)")
    parser.set_defaults(handler=run)


def config_overrides(args: argparse.Namespace) -> list[str]:
    """The named flags as `--set` overrides; explicit --set entries come last and win."""
    named = {
        "defense.name": args.defense,
        "scale.workers": args.workers,
        "optim.epochs": args.epochs,
        "defense.k": args.k,
        "strategy.algorithm": args.strategy,
        "masking.ratio": args.ratio,
    }
    return [f"{key}={value}" for key, value in named.items() if value is not None] + list(args.set)


def run(args: argparse.Namespace) -> int:
    import json

    from common.errors import InputError
    from pipelines.client.keyfile import read_key_file
    from pipelines.runs.experiment_config import load_experiment
    from pipelines.runs.training import run_training
    from trainers.local_ray import reserve_ray

    if args.defense is None and args.config is None and not any(v.startswith("defense.name=") for v in args.set):
        raise InputError(
            "train needs a defence: pass --defense NAME (none, ppfr_fd, mixup, hybrid_fixed or hybrid_adaptive)"
        )
    config = load_experiment(args.config, config_overrides(args))
    key = read_key_file(args.key) if args.key else None
    reserve_ray()
    summary = run_training(args.data, args.out, config, key=key, storage_path=args.storage, quiet=args.quiet)
    print(
        json.dumps(
            {
                name: summary[name]
                for name in ("defense", "epochs", "verification_accuracy", "tar_at_far_1e-3", "mean_k")
            }
        )
    )
    print(f"run written to {args.out} (summary.json, metrics.jsonl, model.pt)")
    return 0
