"""`hybridmask mask`: mask a prepared folder's private faces with the client's key, for a training server."""

from __future__ import annotations

import argparse

CLI_DEFAULT_RATIO = 0.5
"""masking.ppfr.DEFAULT_MASKING_RATIO, written out so `--help` needs no torch (a test holds them equal)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "mask",
        help="mask the private and verify splits of a prepared folder with a secret key (PPFR-FD + shuffle-and-mix)",
    )
    parser.add_argument("data_dir", metavar="DATA_DIR", help="prepared data folder (from `hybridmask prepare`)")
    parser.add_argument("--key", required=True, metavar="KEYFILE", help="secret key file (from `hybridmask keygen`)")
    parser.add_argument("--out", required=True, metavar="DIR", help="new folder for the masked shards")
    parser.add_argument(
        "--ratio",
        type=float,
        default=CLI_DEFAULT_RATIO,
        help="fraction of frequency channels removed, highest energy first, in [0, 1) (default: %(default)s)",
    )
    parser.add_argument("--batch-size", type=int, default=256, help="images per batch (default: %(default)s)")
    parser.add_argument(
        "--device", default="cpu", help="torch device for the transform, e.g. cuda (default: %(default)s)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars on stderr")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pipelines.client.keyfile import read_key_file
    from pipelines.client.masking_io import mask_dataset

    key = read_key_file(args.key)
    manifest = mask_dataset(
        args.data_dir,
        key,
        args.out,
        ratio=args.ratio,
        batch_size=args.batch_size,
        device=args.device,
        progress=not args.quiet,
    )
    settings = manifest["masking"]
    counts = ", ".join(f"{count} {split}" for split, count in manifest["counts"].items())
    print(
        f"masked {counts} images into {args.out}: kept {settings['num_kept']} of {settings['num_channels']} "
        f"frequency channels, {100 * settings['energy_removed']:.2f}% of the image energy removed "
        f"(key fingerprint {settings['key_fingerprint']})"
    )
    return 0
