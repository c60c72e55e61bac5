"""`hybridmask synth --out DIR`: the embedded synthetic face data set, through the same path as `prepare`."""

from __future__ import annotations

import argparse

from pipelines.cli.commands.prepare import add_output_options, options_from_args, summary


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="generate the synthetic face data set (offline, deterministic) as prepared shards",
        description="Draw procedural faces (each identity its own geometry and colours, each image its own pose, "
        "expression, light, blur and noise) and write them as `hybridmask prepare` would.",
    )
    add_output_options(parser, default_size=64)
    parser.add_argument("--identities", type=int, default=40, help="number of people (default: %(default)s)")
    parser.add_argument("--images-per-identity", type=int, default=12, help="images per person (default: %(default)s)")
    parser.add_argument("--preview", metavar="PNG", help="also write a contact sheet (8 people x 6 images) here")
    parser.add_argument("--no-progress", "--quiet", action="store_true", help="no progress bars on stderr")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pipelines.data.synth import prepare_synthetic, save_contact_sheet

    options = options_from_args(args)
    manifest = prepare_synthetic(
        args.out,
        args.identities,
        args.images_per_identity,
        options,
        workers=args.workers,
        progress=not args.no_progress,
    )
    print(summary(manifest, args.out))
    if args.preview:
        path = save_contact_sheet(
            args.preview,
            identities=min(8, args.identities),
            images_per_identity=min(6, args.images_per_identity),
            size=args.size,
            seed=args.seed,
        )
        print(f"contact sheet: {path}")
    return 0
