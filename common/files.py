"""Files a later step trusts: written whole or not at all, read back with one clear error when damaged.

A reader that finds a file assumes it is complete (a summary.json marks a finished run, a cache file a trained
model). So every such file is written to a temporary file in the same folder, flushed to disk and renamed over
the target: an interruption leaves the old file or none, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from common.errors import InputError

T = TypeVar("T")

PARTIAL_MARK = ".partial-"
_MAX_PID = 4_194_304  # Linux's bound (pids are below it); a number this large in a folder name is not a process id
"""Hidden staging folders are named `.<name>.partial-<pid>-<random>` beside the folder they become."""


def _fsync_folder(folder: Path) -> None:
    """Make a rename inside `folder` durable (not every file system allows opening a folder: then skip)."""
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block ends without error it replaces `path` at once.

    For writers that want a file name (torch.save, np.savez, savefig, ParquetWriter); the temporary keeps the
    target's suffix so such writers do not append their own."""
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}{path.suffix}")
    try:
        yield temporary
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_folder(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_output(path) as temporary:
        temporary.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, value: Any, **dump_options: Any) -> None:
    atomic_write_text(path, json.dumps(value, **{"indent": 2, **dump_options}) + "\n")


def read_json(path: str | Path, fix: str) -> Any:
    """A JSON file that must be whole; a missing, truncated or unreadable one is an InputError naming it and `fix`."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path} does not exist; {fix}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path} is damaged or truncated ({error}); {fix}") from None


def read_json_lines(path: str | Path) -> list[Any]:
    """The records of an append-only JSON-lines log; a last line torn by an interruption is left out.

    A damaged line before the last is not a torn append but a damaged file, and is an InputError."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise InputError(f"{path} line {number} is damaged; delete the run folder and train again") from None
    return records


def read_cache(path: Path | None, load: Callable[[Path], T]) -> T | None:
    """A cached result (a trained GAN prior, evaluator), or None when absent or unreadable: a damaged cache
    (a full disk, a copy cut short) is removed so the caller computes it again, instead of failing every re-run."""
    if path is None or not path.is_file():
        return None
    try:
        return load(path)
    except (OSError, EOFError, RuntimeError, ValueError, KeyError, pickle.UnpicklingError):
        path.unlink(missing_ok=True)
        return None


def append_json_line(path: str | Path, record: Any) -> None:
    """Append one record to a JSON-lines log; a torn last line (an interrupted append) is dropped first."""
    path = Path(path)
    if path.is_file() and path.stat().st_size and not path.read_bytes().endswith(b"\n"):
        atomic_write_text(path, "".join(json.dumps(kept) + "\n" for kept in read_json_lines(path)))
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def staging_folder(target: Path) -> Path:
    """A fresh hidden folder beside `target` to build it in; stale ones of killed earlier attempts are removed."""
    remove_stale_staging(target)
    staging = target.parent / f".{target.name}{PARTIAL_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    return staging


def remove_stale_staging(target: Path) -> None:
    """Delete `.<target>.partial-<pid>-*` folders whose process has ended (a killed prepare or mask)."""
    prefix = f".{target.name}{PARTIAL_MARK}"
    if not target.parent.is_dir():
        return
    for candidate in target.parent.iterdir():
        if candidate.name.startswith(prefix) and candidate.is_dir() and not _owner_alive(candidate.name[len(prefix) :]):
            shutil.rmtree(candidate, ignore_errors=True)


def _owner_alive(suffix: str) -> bool:
    """Whether the process named in a staging folder's suffix (`<pid>-<random>`) still runs; unnamed: no."""
    pid_text = suffix.split("-", 1)[0]
    if not pid_text.isdigit() or int(pid_text) in (0, os.getpid()) or int(pid_text) >= _MAX_PID:
        return pid_text == str(os.getpid())  # this process's own folders are in use (another thread may build)
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
