"""A trial stopped early by Tune leaves its Ray Train workers' placement group behind; the sweep's callback finds it
in the run's metrics and frees it, so the next trial gets the CPUs."""

from __future__ import annotations

import json
from pathlib import Path

from tests.ray_resources import free_cpus_once_settled
from tune_configs.cleanup import recorded_placement_group, release_placement_group


def write_metrics(run_dir: Path, *rows: dict) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.jsonl").write_text(
        "".join(json.dumps(row) + "\n" for row in rows) + '{"epoch": 3, "cut sh', encoding="utf-8"
    )


def test_a_left_behind_placement_group_is_removed_and_its_cpus_come_back(ray_cluster, tmp_path: Path) -> None:
    ray = ray_cluster
    group = ray.util.placement_group([{"CPU": 0.5}, {"CPU": 0.5}])
    ray.get(group.ready(), timeout=60)
    reserved = free_cpus_once_settled(ray, lambda free: free <= 1.0 + 1e-6)
    assert reserved <= 1.0 + 1e-6, f"the group's CPUs were never taken: {reserved} free"
    write_metrics(
        tmp_path,
        {"epoch": 1, "worker_placement_group": "ff" * 18},
        {"epoch": 2, "worker_placement_group": group.id.hex()},
    )

    assert recorded_placement_group(tmp_path) == group.id.hex()  # the last complete line counts
    assert release_placement_group(tmp_path) is True
    assert ray.util.placement_group_table(group)["state"] == "REMOVED"
    freed = free_cpus_once_settled(ray, lambda free: free >= reserved + 1.0 - 1e-6)
    assert freed >= reserved + 1.0 - 1e-6, f"the group's CPUs did not come back: {reserved} free before, {freed} after"
    assert release_placement_group(tmp_path) is False  # already gone: nothing to do


def test_a_run_without_a_recorded_group_is_left_alone(tmp_path: Path) -> None:
    assert release_placement_group(tmp_path / "never-trained") is False
    write_metrics(tmp_path, {"epoch": 1})
    assert recorded_placement_group(tmp_path) is None
