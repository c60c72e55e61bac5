"""`hybridmask tune`: sweep a search space of `tune_configs/spaces/` with Ray Tune, ranked by overall."""

from __future__ import annotations

import argparse
from pathlib import Path

from tune_configs.space_files import available_spaces


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tune",
        help="Ray Tune sweep of pipeline runs over a search space, ranked by the overall score (--resume continues)",
        description="Trains the unprotected baseline once, then runs one trial per sampled configuration: mask, "
        "train (reporting each epoch; ASHA stops laggards), attack, evaluate. Writes OUT/results.md, results.csv, "
        "pareto.png and best_config.yaml (for `hybridmask train --config`).",
    )
    parser.add_argument(
        "--space",
        required=True,
        metavar="NAME|FILE.yaml",
        help=f"search space: {', '.join(available_spaces())} or a YAML file",
    )
    parser.add_argument(
        "--data", required=True, metavar="DIR", help="a prepared folder, or a folder with one sub-folder per person"
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="sweep folder (trials, Tune state, results)")
    parser.add_argument(
        "--key",
        metavar="KEYFILE",
        help="the client's key the trials mask with (default: one made for OUT under $XDG_CONFIG_HOME/hybridmask/keys, "
        "as `run` does; on a cluster, a file every node reads)",
    )
    parser.add_argument("--samples", type=int, help="trials to sample (default: the space's `samples`)")
    parser.add_argument("--resume", action="store_true", help="continue the interrupted sweep in --out")
    parser.add_argument("--config", metavar="FILE.yaml", help="base training config every trial starts from")
    parser.add_argument(
        "--size", type=int, default=112, help="face side when --data needs preparing (default: %(default)s)"
    )
    parser.add_argument("--attacks", help="comma-separated attacks per trial (default: every attack)")
    parser.add_argument(
        "--key-setting",
        choices=("known", "unknown", "both"),
        default="both",
        help="attack with the key unknown (the threat model), leaked, or both, the worst case `run` ranks by "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--budget", choices=("small", "paper"), default="small", help="attack budget preset (default: %(default)s)"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="budget.KEY=VALUE", help="override an attack budget value"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from common.errors import InputError
    from evaluation.budgets import load_budgets
    from evaluation.run_attacks import parse_attack_names
    from pipelines.cli.commands.run import prepared_data_step
    from pipelines.client.keyfile import default_key_path
    from trainers.local_ray import reserve_ray
    from tune_configs.space import load_space
    from tune_configs.sweep import SweepConfig, check_sweep_key, run_sweep

    not_budget = [value for value in args.set if not value.startswith("budget.")]
    if not_budget:
        raise InputError(
            f"--set {not_budget[0]}: tune takes budget.* overrides only; put training keys in the space or --config"
        )
    budget_overrides = tuple(value.removeprefix("budget.") for value in args.set)
    load_budgets(args.budget, list(budget_overrides))  # checked now, before any training
    out = Path(args.out)
    space = load_space(args.space)
    base_config = Path(args.config) if args.config else None
    if base_config is not None and not base_config.is_file():
        raise InputError(f"--config {base_config} does not exist")
    attacks = parse_attack_names(args.attacks)
    key_file = Path(args.key) if args.key else default_key_path(out)
    check_sweep_key(out, key_file, args.resume)
    data_step = prepared_data_step(Path(args.data), args.size)
    reserve_ray()  # every check above, and no second local Ray, before the data step writes anything
    spec = SweepConfig(
        space=space,
        data_dir=data_step(out),
        out=out,
        key_file=key_file,
        base_config=base_config,
        samples=args.samples,
        resume=args.resume,
        budget_preset=args.budget,
        budget_overrides=budget_overrides,
        attacks=attacks,
        key_setting=args.key_setting,
    )
    rows = run_sweep(spec)
    if any(row.interrupted for row in rows):
        return 130  # as a shell reports Ctrl-C: a script must not go on with a sweep's partial results
    failed = [row for row in rows if row.status.startswith("failed")]
    if rows and len(failed) == len(rows):
        print(f"every trial failed; the first: {failed[0].status} (Tune's error files: {out / 'tune'})", flush=True)
        return 1
    return 0
