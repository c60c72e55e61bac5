"""`hybridmask demo`: the whole pipeline on the embedded synthetic faces, offline, in minutes."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run the pipeline end to end on synthetic faces (offline)")
    parser.add_argument("--out", default="hybridmask-demo", help="output folder (default: %(default)s)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("demo is filled in by the pipelines issue")
