"""Where source faces come from: a folder-per-identity tree on disk, or any in-memory generator.

Both are turned into the same `FaceCollection` (a sorted list of `SourceFile`s), so `prepare` has one code path
whatever the origin. Files are read lazily (`SourceFile.load`), so scanning a large tree costs no memory.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import InputError

UNREADABLE = "unreadable"


@dataclass(frozen=True)
class SourceFile:
    """One file of a face collection; `identity` is None for a file that is not inside an identity folder."""

    relative_path: str  # POSIX, relative to the collection's root; the sort key of the whole pipeline
    identity: str | None
    load: Callable[[], bytes] = field(repr=False, compare=False)

    def read(self) -> tuple[bytes | None, str]:
        """(content, its SHA-256 hex), or (None, why) when the file cannot be read: it is then skipped, not fatal."""
        try:
            data = self.load()
        except OSError as error:
            return None, f"{UNREADABLE}: {error.strerror or error}"
        return data, hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class FaceCollection:
    """Every file of one source, sorted by relative path, and how to name the source in a manifest."""

    files: list[SourceFile]
    origin: dict[str, Any]  # goes into the manifest's parameters, e.g. {"kind": "folder", "path": "/abs"}
    synthetic: bool = False

    def __post_init__(self) -> None:
        paths = [item.relative_path for item in self.files]
        if paths != sorted(paths) or len(set(paths)) != len(paths):
            raise ValueError("a FaceCollection's files must be unique and sorted by relative path")

    @property
    def identity_names(self) -> list[str]:
        return sorted({item.identity for item in self.files if item.identity is not None})

    def fingerprint(self) -> str:
        """A digest of every (relative path, content) pair: tells a re-run whether the source is the same data."""
        return fingerprint_of((item.relative_path, item.read()[1]) for item in self.files)


def fingerprint_of(path_digests) -> str:
    """SHA-256 over sorted (relative path, SHA-256 of content) pairs, one per line."""
    digest = hashlib.sha256()
    for relative_path, content_digest in sorted(path_digests):
        digest.update(f"{relative_path}\t{content_digest}\n".encode("utf-8", "backslashreplace"))
    return digest.hexdigest()


def printable_name(raw: str) -> str:
    """File names that are not valid UTF-8 (Python keeps them as surrogates) become backslash escapes.

    Parquet strings must be UTF-8; the escaped form is stable and unique, so no file is dropped for its name.
    """
    return os.fsencode(raw).decode("utf-8", "backslashreplace")


def scan_folder(source: str | Path) -> FaceCollection:
    """List a folder-per-identity tree: identity = first-level sub-folder; deeper folders belong to it."""
    root = Path(source).expanduser()
    if not root.exists():
        raise InputError(f"SRC {str(source)!r} does not exist; give the folder that holds one sub-folder per person")
    if not root.is_dir():
        raise InputError(f"SRC {str(source)!r} is a file; give the folder that holds one sub-folder per person")
    root = root.resolve()
    files, visited = [], set()
    for directory, subdirectories, names in os.walk(root, followlinks=True):
        if os.path.realpath(directory) in visited:  # a linked folder seen already: stop, or a link loop never ends
            subdirectories.clear()
            continue
        visited.add(os.path.realpath(directory))
        subdirectories.sort()
        for name in names:
            path = Path(directory) / name
            relative = path.relative_to(root)
            identity = printable_name(relative.parts[0]) if len(relative.parts) > 1 else None
            files.append(SourceFile(printable_name(relative.as_posix()), identity, path.read_bytes))
    files.sort(key=lambda item: item.relative_path)
    collection = FaceCollection(files=files, origin={"kind": "folder", "path": str(root)})
    if not collection.identity_names:
        raise InputError(
            f"SRC {str(source)!r} has no identity folders with files in them; "
            "put each person's images in a sub-folder named after the person (SRC/<person>/<image>)"
        )
    return collection
