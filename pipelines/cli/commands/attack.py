"""`hybridmask attack RUN_DIR`: run the recovery and model-inversion attacks on a trained run."""

from __future__ import annotations

import argparse
import sys

from evaluation.attacks.registry import ATTACK_NAMES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "attack",
        help="attack a trained run (recovery, white-box and black-box model inversion) and judge the reconstructions",
        description="Writes RUN_DIR/attacks/<attack>-<setting>.json (outcomes) and .npz (reconstructions). "
        "The key, when given, is used in memory only and written nowhere.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by `hybridmask train`")
    parser.add_argument(
        "--attacks", default=",".join(ATTACK_NAMES), help="comma-separated attacks (default: %(default)s)"
    )
    parser.add_argument(
        "--key-setting",
        choices=("known", "unknown", "both"),
        default="both",
        help="known: the attacker has the client's key (a leak, the worst case); unknown: it does not (the threat "
        "model); both (default). Pixel defences have no key and run once",
    )
    parser.add_argument(
        "--key", metavar="KEYFILE", help="the client's key file, needed by the known setting on masked defences"
    )
    add_budget_options(parser)
    add_data_option(parser)
    parser.set_defaults(handler=run)


def add_data_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="DIR",
        help="where the run's data lies now, if not at the paths recorded when it trained (e.g. shared storage "
        "mounted elsewhere): the masked folder it trained on and/or the prepared folder; repeat for both",
    )
    add_public_option(parser)


def add_public_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--public",
        metavar="DIR",
        help="give the attacker this prepared folder's public split instead of the data set's own (e.g. LFW's "
        "thousands of people when the data set has a few public people); same --size and --color",
    )


def data_locations_from(args: argparse.Namespace):
    """A context in which runs read their data from the --data folders, and the attacker's faces from --public."""
    from evaluation.run_data import DataLocations, data_locations

    return data_locations(DataLocations.from_folders(args.data, args.public))


def add_budget_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--budget",
        choices=("small", "paper"),
        default="small",
        help="small: minutes on 2 CPU cores; paper: a GPU node's scale (default: %(default)s)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="budget.KEY=VALUE",
        help="override one budget value, e.g. budget.recovery.steps=2000 or budget.threads=1",
    )
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="keep trained GAN priors and evaluators here, to share them between runs on the same data "
        "(default: RUN_DIR/attacks/cache)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def budget_overrides(values: list[str]) -> list[str]:
    """`--set budget.a.b=v` (or `a.b=v`) as budget override strings."""
    return [value.removeprefix("budget.") for value in values]


def progress_printer(quiet: bool):
    return None if quiet else (lambda message: print(message, file=sys.stderr, flush=True))


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from evaluation.budgets import load_budgets
    from evaluation.run_attacks import ATTACKS_DIR, AttackCaches, attack_run, plan_attacks
    from pipelines.client.keyfile import read_key_file

    budgets = load_budgets(args.budget, budget_overrides(args.set))
    key = read_key_file(args.key) if args.key else None
    plan_attacks(args.run_dir, args.attacks, args.key_setting, key)  # every input error before any work
    caches = AttackCaches(Path(args.cache_dir)) if args.cache_dir else None
    with data_locations_from(args):
        outcomes = attack_run(
            args.run_dir, args.attacks, args.key_setting, key, budgets, caches, progress_printer(args.quiet)
        )
    print(f"{'attack':<10} {'key':<8} {'SSIM':>6} {'PSNR':>6} {'dlib top-1':>9} {'dlib top-5':>9} {'cls top-1':>10}")
    for name, by_setting in outcomes.items():
        for setting, o in by_setting.items():
            print(
                f"{name:<10} {setting:<8} {o.ssim:6.3f} {o.psnr:6.2f} {o.top1:9.3f} {o.top5:9.3f} {o.classifier_top1:10.3f}"
            )
    print(f"records written to {Path(args.run_dir) / ATTACKS_DIR}")
    return 0
