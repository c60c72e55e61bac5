"""`hybridmask demo`: `run` on the embedded synthetic faces, offline, sized for minutes on a 2-core laptop."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipelines.cli.commands.run import add_pipeline_options, pipeline_printer, pipeline_spec

# The demo's scale: enough people and epochs that the defences differ visibly, small enough for ~5 minutes on
# two CPU cores. Every value can be overridden on the command line (--epochs, --set ...).
DEMO_FACES = {"identities": 80, "images_per_identity": 10, "size": 32}
DEMO_TRAINING = ["optim.epochs=6", "optim.batch_size=32", "model.embedding_size=128", "window_batches=2"]
# Attack budgets about a third of the "small" preset's (a GAN prior of half the width and a quarter the steps): every attack
# still learns (recovery on undefended faces names almost every target), and the three defences' attacks finish in
# a few minutes.
DEMO_BUDGET = [
    "threads=2",
    "max_targets=32",
    "max_identities=16",
    "recovery.steps=250",
    "whitebox.gan_steps=800",
    "whitebox.gan_width=16",
    "whitebox.inversion_steps=80",
    "whitebox.restarts=4",
    "whitebox.kept_restarts=2",
    "blackbox.pool=2048",
    "blackbox.search_steps=0",  # revision 2: five query searches (defences x key settings) would not fit the 5 minutes
    "evaluator.classifier_epochs=20",
]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the whole pipeline on synthetic faces (offline, minutes on a laptop)",
        description="Generates the synthetic face set and runs `hybridmask run` on it: none, ppfr_fd and "
        "hybrid_adaptive by default. Prints where the report is.",
    )
    add_pipeline_options(parser, default_out="hybridmask-demo")
    parser.add_argument(
        "--identities", type=int, default=DEMO_FACES["identities"], help="synthetic people (default: %(default)s)"
    )
    parser.add_argument(
        "--images-per-identity",
        type=int,
        default=DEMO_FACES["images_per_identity"],
        help="images per person (default: %(default)s)",
    )
    parser.add_argument(
        "--size", type=int, default=DEMO_FACES["size"], help="face side in pixels (default: %(default)s)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pipelines.data.prepare import PrepareConfig
    from pipelines.data.synth import prepare_synthetic
    from pipelines.runs.run_pipeline import REPORT_MD, run_pipeline
    from trainers.local_ray import reserve_ray

    options = PrepareConfig(size=args.size)
    options.validate()

    def synthetic(out: Path) -> Path:
        prepare_synthetic(out / "data", args.identities, args.images_per_identity, options, progress=False)
        return out / "data"

    out = Path(args.out)
    spec = pipeline_spec(args, out, synthetic, DEMO_TRAINING, DEMO_BUDGET)
    reserve_ray()
    comparison = run_pipeline(spec, say=pipeline_printer(args.quiet))
    print(
        f"\ndemo finished in {comparison['seconds'] / 60:.1f} min on SYNTHETIC faces; best overall: {comparison['best_overall']}"
    )
    print(f"report: {out / REPORT_MD}")
    return 0
