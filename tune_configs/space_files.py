"""Where the named search spaces live; light (no torch, no Ray) so `hybridmask tune --help` can list them."""

from __future__ import annotations

from pathlib import Path

SPACES_DIR = Path(__file__).resolve().parent / "spaces"


def available_spaces() -> list[str]:
    return sorted(path.stem for path in SPACES_DIR.glob("*.yaml"))
