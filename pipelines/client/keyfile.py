"""Key files: the client's secret masking key on disk, written owner-only and read with checks.

A key file holds the raw key bytes (32 from `hybridmask keygen`) and nothing else. Only the key's fingerprint
(`masking.keys.key_fingerprint`) may be printed, logged or stored beside data.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from common.errors import InputError
from masking.keys import KEY_BYTES, validate_key

MAX_KEY_FILE_BYTES = 1024
"""A larger file is not a key file (a photo or a data file passed by mistake), so it is refused."""


KEY_DIR_NAME = "hybridmask/keys"
"""Under $XDG_CONFIG_HOME (default ~/.config): where `run` and `demo` keep the key they make, away from OUT."""


def default_key_path(out_dir: Path) -> Path:
    """The key `run`/`demo` make for OUT when no --key is given: one per output folder, outside it, so the
    reports people share never sit beside the key; the same OUT finds the same key when re-run."""
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    resolved = str(Path(out_dir).expanduser().resolve())
    digest = hashlib.sha256(resolved.encode("utf-8", "backslashreplace")).hexdigest()[:12]
    return config_home / KEY_DIR_NAME / f"{Path(resolved).name or 'root'}-{digest}.key"


def write_key_file(path: str | Path, key: bytes, force: bool = False) -> Path:
    """Create `path` with owner-only permissions (0600) and write the key; refuse to replace a file unless `force`.

    The file is created with O_EXCL and mode 0600 in one step, so the key is never readable by others, not even
    for a moment, and a symbolic link at `path` is not followed."""
    path = Path(path)
    key = validate_key(key)
    if not path.parent.is_dir():
        raise InputError(f"cannot write key file {path}: folder {path.parent} does not exist; create it first")
    if force and (path.exists() or path.is_symlink()):
        if path.is_dir():
            raise InputError(f"--out {path} is a folder; give a file name for the key")
        path.unlink()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        descriptor = os.open(path, flags, 0o600)
    except FileExistsError:
        raise InputError(
            f"key file {path} already exists; choose another name, or pass --force to replace it "
            "(data masked with the old key can then no longer be unmasked)"
        ) from None
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key)
        handle.flush()
        os.fsync(handle.fileno())
    return path


def read_key_file(path: str | Path) -> bytes:
    """The key bytes of a key file; InputError when it is missing, unreadable, too short or too long, or when
    group or others may read it (as ssh does with private keys: a key others could have copied is no secret)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputError(f"key file {path} does not exist; make one with `hybridmask keygen --out {path}`") from None
    except OSError as error:
        raise InputError(f"cannot read key file {path}: {error.strerror}") from None
    if not stat.S_ISREG(mode):
        raise InputError(f"key file {path} is not a regular file; pass the file written by `hybridmask keygen`")
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        raise InputError(f"key file {path} can be read by other users; restrict it with `chmod 600 {path}`")
    try:
        with open(path, "rb") as handle:
            key = handle.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as error:
        raise InputError(f"cannot read key file {path}: {error.strerror}; check its owner and permissions") from None
    if len(key) < KEY_BYTES:
        raise InputError(
            f"key file {path} holds {len(key)} bytes; a key needs at least {KEY_BYTES} "
            "(make one with `hybridmask keygen`)"
        )
    if len(key) > MAX_KEY_FILE_BYTES:
        raise InputError(
            f"key file {path} is larger than {MAX_KEY_FILE_BYTES} bytes, so not a key file; check the path"
        )
    return validate_key(key)
