"""Files a later step trusts: whole or absent after an interruption, and read back with one clear error."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from common.errors import InputError
from common.files import (
    append_json_line,
    atomic_output,
    atomic_write_json,
    read_json,
    read_json_lines,
    remove_stale_staging,
    staging_folder,
)


def test_an_interrupted_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    atomic_write_json(target, {"epochs": 3})
    with pytest.raises(KeyboardInterrupt), atomic_output(target) as temporary:
        temporary.write_text('{"epo')
        raise KeyboardInterrupt
    assert json.loads(target.read_text()) == {"epochs": 3}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_an_atomic_write_keeps_the_suffix_for_writers_that_add_their_own(tmp_path: Path) -> None:
    import numpy as np

    with atomic_output(tmp_path / "records.npz") as temporary:
        np.savez_compressed(temporary, values=np.arange(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["records.npz"]
    with np.load(tmp_path / "records.npz") as saved:
        assert saved["values"].tolist() == [0, 1, 2]


def test_a_truncated_json_file_is_an_input_error_naming_it_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    path.write_text('{"defense": "no')
    with pytest.raises(InputError, match=rf"{path} is damaged or truncated.*train again"):
        read_json(path, "train again")
    with pytest.raises(InputError, match="does not exist; train again"):
        read_json(tmp_path / "missing.json", "train again")


def test_a_torn_last_line_of_a_json_lines_log_is_left_out_and_healed_on_the_next_append(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 1}\n{"epoch": 2}\n{"epo')
    assert read_json_lines(path) == [{"epoch": 1}, {"epoch": 2}]
    append_json_line(path, {"epoch": 3})
    assert read_json_lines(path) == [{"epoch": 1}, {"epoch": 2}, {"epoch": 3}]
    assert path.read_text().endswith('{"epoch": 3}\n')


def test_a_damaged_line_before_the_last_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 1}\n{"epo\n{"epoch": 3}\n')
    with pytest.raises(InputError, match="line 2 is damaged"):
        read_json_lines(path)


def test_staging_folders_of_ended_processes_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    target = tmp_path / "out"
    dead = tmp_path / ".out.partial-4194304-abcd"  # no process can have this pid
    old_style = tmp_path / ".out.partial-0123456789ab"
    alive = tmp_path / f".out.partial-{os.getppid()}-abcd"  # the test runner's parent is running
    other = tmp_path / ".other.partial-4194304-abcd"
    for folder in (dead, old_style, alive, other):
        folder.mkdir()
    fresh = staging_folder(target)
    assert fresh.is_dir() and fresh.name.startswith(f".out.partial-{os.getpid()}-")
    assert not dead.exists() and not old_style.exists() and alive.is_dir() and other.is_dir()
    remove_stale_staging(target)
    assert fresh.is_dir()  # this process's own folder is in use


def test_a_damaged_cache_is_removed_and_reported_absent_so_it_is_computed_again(tmp_path: Path) -> None:
    import torch

    from common.files import read_cache

    def load(path: Path):
        return torch.load(path, weights_only=True)

    path = tmp_path / "gan-0123.pt"
    torch.save({"weights": torch.ones(64)}, path)
    assert torch.equal(read_cache(path, load)["weights"], torch.ones(64))
    truncate_to = path.stat().st_size // 2
    path.write_bytes(path.read_bytes()[:truncate_to])
    assert read_cache(path, load) is None and not path.exists()
    assert read_cache(tmp_path / "absent.pt", load) is None and read_cache(None, load) is None
