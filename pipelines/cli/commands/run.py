"""`hybridmask run`: the whole pipeline on a face collection, ending in one comparison report."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from pipelines.cli.commands.attack import add_public_option
from trainers.defenses import COMPARED_BY_DEFAULT, DEFENSES, UNPROTECTED


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="prepare, mask, train each defence, attack, evaluate: one comparison report (re-run to continue)",
        description="Prepares SRC, masks it with the client key, trains each defence on Ray Train, runs the attacks "
        "on every run and writes OUT/report.md and OUT/report.json. Steps already done with the same inputs and "
        "settings are reused, so re-running an interrupted command continues it.",
    )
    parser.add_argument(
        "--data", required=True, metavar="SRC", help="a folder with one sub-folder per person, or a prepared folder"
    )
    parser.add_argument(
        "--size", type=int, default=112, help="face side when SRC needs preparing (default: %(default)s)"
    )
    add_pipeline_options(parser, default_out=None)
    add_public_option(parser)
    parser.set_defaults(handler=run)


def add_pipeline_options(parser: argparse.ArgumentParser, default_out: str | None) -> None:
    """Options `run` and `demo` share."""
    parser.add_argument(
        "--out",
        required=default_out is None,
        default=default_out,
        metavar="DIR",
        help="output folder" + (" (default: %(default)s)" if default_out else ""),
    )
    parser.add_argument(
        "--defenses",
        default=",".join(COMPARED_BY_DEFAULT),
        help=f"comma-separated defences of {', '.join(DEFENSES)}; the unprotected `{UNPROTECTED}` baseline is always "
        "added (default: %(default)s)",
    )
    parser.add_argument(
        "--strategy", choices=("ppo", "reinforce"), help="the RL algorithm of hybrid_adaptive (default: ppo)"
    )
    parser.add_argument("--epochs", type=int, help="training epochs for every defence")
    parser.add_argument("--workers", type=int, help="Ray Train workers per run")
    parser.add_argument(
        "--key",
        metavar="KEYFILE",
        help="the client's key (default: one made for OUT under $XDG_CONFIG_HOME/hybridmask/keys)",
    )
    parser.add_argument(
        "--config", metavar="FILE.yaml", help="training config for every defence (see `hybridmask train`)"
    )
    parser.add_argument(
        "--attacks",
        help="comma-separated attacks to run (default: every attack)",
    )
    parser.add_argument(
        "--key-setting",
        choices=("known", "unknown", "both"),
        default="both",
        help="attack with the key leaked, unknown, or both (default: %(default)s)",
    )
    parser.add_argument(
        "--budget", choices=("small", "paper"), default="small", help="attack budget preset (default: %(default)s)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a training key (optim.lr=0.001) or an attack budget (budget.recovery.steps=500)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines; errors and the result only")


def pipeline_spec(
    args: argparse.Namespace,
    out: Path,
    data_step,
    config_defaults: Sequence[str] = (),
    budget_defaults: Sequence[str] = (),
):
    """A validated PipelineConfig from the shared options; `--set budget.*` goes to the attacks, the rest to training."""
    from evaluation.budgets import load_budgets
    from evaluation.run_attacks import parse_attack_names
    from pipelines.cli.commands.train import config_overrides
    from pipelines.runs.experiment_config import load_experiment
    from pipelines.runs.run_pipeline import PipelineConfig

    budget_sets = [value.removeprefix("budget.") for value in args.set if value.startswith("budget.")]
    training_sets = [value for value in args.set if not value.startswith("budget.")]
    named = argparse.Namespace(
        defense=None,
        workers=args.workers,
        epochs=args.epochs,
        k=None,
        strategy=args.strategy,
        ratio=None,
        set=training_sets,
    )
    spec = PipelineConfig(
        out=out,
        config=load_experiment(args.config, [*config_defaults, *config_overrides(named)]),
        budgets=load_budgets(args.budget, [*budget_defaults, *budget_sets]),
        defenses=tuple(name.strip() for name in args.defenses.split(",") if name.strip()),
        attacks=parse_attack_names(args.attacks),
        key_setting=args.key_setting,
        key_file=Path(args.key) if args.key else None,
        data_step=data_step,
        quiet=args.quiet,
    )
    spec.validate()
    return spec


def run(args: argparse.Namespace) -> int:
    from evaluation.run_data import DataLocations, data_locations
    from pipelines.runs.run_pipeline import run_pipeline
    from trainers.local_ray import reserve_ray

    spec = pipeline_spec(args, Path(args.out), prepared_data_step(Path(args.data), args.size, not args.quiet))
    attacker = DataLocations.from_folders([], args.public)  # checks --public before Ray starts
    reserve_ray()
    with data_locations(attacker):
        run_pipeline(spec, say=pipeline_printer(args.quiet))
    return 0


def pipeline_printer(quiet: bool):
    """What `run` and `demo` say about their steps: every line, or none with --quiet."""
    return (lambda message: None) if quiet else print


def prepared_data_step(source: Path, size: int, progress: bool = True):
    """Checks SRC now; the step it returns uses a prepared folder as is, or prepares a folder of people into
    OUT/data (a re-run rewrites it identically, or stops if SRC has changed)."""
    from common.errors import InputError
    from common.files import read_json
    from pipelines.data.prepare import PrepareConfig, prepare_folder
    from trainers.schema import MANIFEST_NAME

    if not source.is_dir():
        raise InputError(f"--data {source} is not a folder; give a prepared folder or one with a sub-folder per person")
    if (source / MANIFEST_NAME).is_file():
        manifest = read_json(source / MANIFEST_NAME, f"prepare {source} again, or give the folder of faces")
        if manifest.get("kind") == "masked":
            raise InputError(
                f"--data {source} holds masked data; this command masks itself: give the prepared folder "
                f"({manifest.get('source_data_dir', 'from `hybridmask prepare`')}) or the folder of faces"
            )
    options = PrepareConfig(size=size)
    options.validate()

    def prepared(out: Path) -> Path:
        if (source / MANIFEST_NAME).is_file():
            return source
        prepare_folder(source, out / "data", options, progress=progress)
        return out / "data"

    return prepared
