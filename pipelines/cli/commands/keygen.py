"""`hybridmask keygen`: write a fresh secret masking key, owner-only, and print its fingerprint."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "keygen",
        help="write a new secret masking key (32 random bytes, owner-only file); prints only its fingerprint",
    )
    parser.add_argument("--out", required=True, metavar="KEYFILE", help="key file to create (mode 0600)")
    parser.add_argument("--force", action="store_true", help="replace an existing key file")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from masking.keys import generate_key, key_fingerprint
    from pipelines.client.keyfile import write_key_file

    key = generate_key()
    path = write_key_file(args.out, key, force=args.force)
    print(key_fingerprint(key))
    print(
        f"wrote a new masking key to {path} (owner-only); keep it secret and back it up: "
        "masked data cannot be unmasked, nor new faces masked the same way, without it",
        file=sys.stderr,
    )
    return 0
