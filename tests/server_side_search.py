"""Searching what the server side of a run or a sweep wrote for what must stay with the client."""

from __future__ import annotations

from pathlib import Path

from trainers.schema import read_split

# RUN/client (the client's record) and a sweep trial's client/ (its masked data) are the client's, kept beside the
# server's files when one machine plays both roles
CLIENT_SIDE_FOLDER = "client"


def private_secrets(data_dirs: list[Path], key: bytes) -> dict[str, bytes]:
    """Everything that must not reach the server, as the bytes to search for: key, folder paths, names, file paths."""
    secrets_by_name = {f"key {form}": value for form, value in (("raw", key), ("hex", key.hex().encode()))}
    for data_dir in data_dirs:
        secrets_by_name[f"path {data_dir}"] = str(data_dir).encode()
        for split in ("private", "verify"):
            table = read_split(data_dir, split)
            for name in set(table.column("identity").to_pylist()):
                secrets_by_name[f"name {name}"] = name.encode()
            if "source_path" in table.column_names:
                for path in table.column("source_path").to_pylist():
                    secrets_by_name[f"source path {path}"] = path.encode()
    return secrets_by_name


def server_side_files(root: Path) -> list[Path]:
    """Every file under `root` but the client's: its record folders and its key files."""
    return [
        path
        for path in root.rglob("*")
        if path.is_file() and CLIENT_SIDE_FOLDER not in path.relative_to(root).parts and path.suffix != ".key"
    ]


def leaks(root: Path, files: list[Path], secrets: dict[str, bytes]) -> list[str]:
    """One line per (file, secret) found, naming both."""
    found = []
    for path in files:
        content = path.read_bytes()
        found += [f"{path.relative_to(root)} holds {what}" for what, needle in secrets.items() if needle in content]
    return found
