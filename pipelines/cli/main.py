"""The `hybridmask` command line: one sub-command per module in `pipelines/cli/commands/`.

Verb modules import heavy libraries (torch, Ray) inside their handlers, so `hybridmask --help` stays fast.
This module is the top of the import graph: it may reach every package, `tune_configs` included.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading

from common import __version__
from common.errors import InputError
from common.limits import limit_image_decoding
from trainers.local_ray import hide_state_api_warnings

limit_image_decoding()  # before any verb imports cv2
hide_state_api_warnings()  # before any verb imports ray

VERB_MODULES = (
    "pipelines.cli.commands.demo",
    "pipelines.cli.commands.prepare",
    "pipelines.cli.commands.synth",
    "pipelines.cli.commands.keygen",
    "pipelines.cli.commands.mask",
    "pipelines.cli.commands.train",
    "pipelines.cli.commands.attack",
    "pipelines.cli.commands.evaluate",
    "pipelines.cli.commands.run",
    "tune_configs.tune",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hybridmask",
        description="Train face recognition on privacy-masked faces and measure, with real attacks, how private it stays.",
    )
    parser.add_argument("--version", action="version", version=f"hybridmask {__version__}")
    subparsers = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for module_name in VERB_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run one verb; bad input prints one clear line (exit 2) instead of a traceback. A SIGTERM (a killed job)
    ends the command like Ctrl-C, so half-built outputs are removed on the way out."""
    args = build_parser().parse_args(argv)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if in_main_thread else None
    try:
        return int(args.handler(args) or 0)
    except InputError as error:
        if os.environ.get("HYBRIDMASK_DEBUG"):
            raise
        print(f"hybridmask {args.verb}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hybridmask {args.verb}: interrupted; re-run the same command to continue", file=sys.stderr)
        return 130
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
