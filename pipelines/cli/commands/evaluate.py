"""`hybridmask evaluate RUN_DIR [RUN_DIR ...]`: privacy measures, scores, reports and figures of attacked runs."""

from __future__ import annotations

import argparse

from pipelines.cli.commands.attack import add_data_option, data_locations_from, progress_printer


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score attacked runs (S1-S4, score_pp, score_cls, overall): report.json, report.md, grid.png per run, "
        "and a comparison with a privacy-utility scatter for several runs",
    )
    parser.add_argument(
        "run_dirs", nargs="+", metavar="RUN_DIR", help="run folders already attacked with `hybridmask attack`"
    )
    parser.add_argument(
        "--baseline",
        metavar="RUN_DIR",
        help="the unprotected (`none`) run for score_cls (default: the `none` run among RUN_DIRs)",
    )
    parser.add_argument("--out", metavar="DIR", help="where the comparison goes (default: the runs' common parent)")
    parser.add_argument(
        "--cache-dir", metavar="DIR", help="evaluators shared between runs (default: RUN_DIR/attacks/cache)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    add_data_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from evaluation.evaluate_runs import evaluate_runs
    from evaluation.run_attacks import AttackCaches

    caches = AttackCaches(Path(args.cache_dir)) if args.cache_dir else None
    with data_locations_from(args):
        reports = evaluate_runs(args.run_dirs, args.baseline, args.out, caches, progress_printer(args.quiet))
    print(
        f"{'defence':<18} {'S1':>6} {'S2':>6} {'S3':>6} {'S4':>6} {'score_pp':>9} {'score_cls':>10} {'overall':>8} {'verif.':>7}"
    )
    for r in reports:
        m, s = r.measures, r.scores
        print(
            f"{r.label:<18} {m.S1:6.3f} {m.S2:6.3f} {m.S3:6.3f} {m.S4:6.3f} {s.score_pp:9.3f} {s.score_cls:10.3f} "
            f"{s.overall:8.3f} {r.verification_accuracy:7.3f}"
        )
    return 0
