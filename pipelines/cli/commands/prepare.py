"""`hybridmask prepare SRC --out DIR`: a folder-per-identity tree to identity-split Parquet shards."""

from __future__ import annotations

import argparse
from typing import Any


def add_output_options(parser: argparse.ArgumentParser, default_size: int) -> None:
    """Options every producer of prepared data shares (prepare, synth): geometry, colour, split, pairs, shards."""
    parser.add_argument("--out", required=True, help="output folder: new, empty, or holding this same data set")
    parser.add_argument(
        "--size",
        type=int,
        default=default_size,
        help="side of the square output faces, a multiple of 8 (default: %(default)s)",
    )
    parser.add_argument(
        "--color",
        choices=("keep", "gray", "rgb"),
        default="keep",
        help="keep: 1 channel when every source is gray, else 3 (RGB); gray; rgb (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the identity split and the pairs (default: 0)")
    parser.add_argument(
        "--splits",
        default="0.6,0.2,0.2",
        help="fractions of identities for private,verify,public (default: %(default)s)",
    )
    parser.add_argument(
        "--pairs",
        type=int,
        default=1000,
        help="verification pairs over the verify split, half genuine (default: %(default)s)",
    )
    parser.add_argument("--shard-rows", type=int, default=2000, help="rows per Parquet shard (default: %(default)s)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="decoding processes; more helps with --align on idle cores (default: %(default)s)",
    )


def options_from_args(args: argparse.Namespace, **overrides: Any):
    from pipelines.data.prepare import PrepareConfig
    from pipelines.data.splits import parse_fractions

    values = {
        "size": args.size,
        "color": args.color,
        "seed": args.seed,
        "splits": parse_fractions(args.splits),
        "pairs": args.pairs,
        "shard_rows": args.shard_rows,
    }
    return PrepareConfig(**(values | overrides))


def summary(manifest: dict[str, Any], out: str) -> str:
    """What a user needs to see at the end of a run: where, how many, what was left out and why."""
    splits = ", ".join(f"{name} {s['images']} images / {s['identities']} ids" for name, s in manifest["splits"].items())
    lines = [
        f"wrote {manifest['num_images']} images of {manifest['num_identities']} identities to {out} ({splits}); "
        f"{manifest['pairs']['count']} verification pairs"
    ]
    if manifest["num_skipped"]:
        kinds = ", ".join(f"{kind}: {count}" for kind, count in manifest["skipped_by_kind"].items())
        lines.append(
            f"skipped {manifest['num_skipped']} of {manifest['files_seen']} files ({kinds}); "
            "see 'skipped' in manifest.json"
        )
    protocol = manifest["pairs"].get("protocol")
    if protocol:
        lines.append(
            f"verify pairs: fold {protocol['fold']} of {protocol['pairs_file']}, "
            f"{manifest['pairs']['genuine']} genuine and {manifest['pairs']['impostor']} impostor"
        )
        if manifest["pairs"]["dropped"]:
            lines.append(
                f"{len(manifest['pairs']['dropped'])} of the fold's pairs left out: an image of theirs was skipped "
                "(listed in 'pairs' / 'dropped')"
            )
    if manifest["alignment_fallbacks"]:
        lines.append(
            f"no face found in {len(manifest['alignment_fallbacks'])} images: centre-cropped instead "
            "(listed in 'alignment_fallbacks')"
        )
    if manifest["synthetic_data"]:
        lines.append("these are SYNTHETIC faces: say so in anything reported from them")
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prepare",
        help="turn a folder-per-identity face collection into identity-split Parquet shards",
        description="Read SRC/<person>/<image> (JPEG, PNG, PGM, BMP, GIF; any size, gray or colour) and write "
        "DIR/<split>/part-NNNNN.parquet, DIR/pairs.parquet and DIR/manifest.json.",
    )
    parser.add_argument("source", metavar="SRC", help="folder with one sub-folder per person")
    add_output_options(parser, default_size=112)
    parser.add_argument(
        "--align",
        action="store_true",
        help="align faces to the 5-point template with dlib (no face found: plain centre crop)",
    )
    parser.add_argument(
        "--crop",
        type=float,
        default=1.0,
        help="share of the centred square kept before resizing, without --align or where it finds no face; "
        "0.52 fits LFW's deep-funneled 250x250 faces to the template (docs/lfw.md) (default: %(default)s)",
    )
    parser.add_argument(
        "--pairs-file",
        help="an LFW View 2 pairs file (pairs.txt): the verify split is --fold's people and its pairs replace "
        "--pairs; private and public come from everyone else (docs/lfw.md)",
    )
    parser.add_argument("--fold", type=int, help="the test fold of --pairs-file, 1 to 10 for LFW")
    parser.add_argument(
        "--min-size",
        type=int,
        default=24,
        help="skip images whose short side is below this many pixels (default: %(default)s)",
    )
    parser.add_argument(
        "--min-images", type=int, default=2, help="skip identities with fewer usable images (default: %(default)s)"
    )
    parser.add_argument("--no-progress", "--quiet", action="store_true", help="no progress bars on stderr")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pipelines.data.prepare import prepare_folder

    options = options_from_args(
        args,
        align=args.align,
        crop=args.crop,
        min_size=args.min_size,
        min_images=args.min_images,
        pairs_file=args.pairs_file,
        fold=args.fold,
    )
    manifest = prepare_folder(args.source, args.out, options, workers=args.workers, progress=not args.no_progress)
    print(summary(manifest, args.out))
    return 0
