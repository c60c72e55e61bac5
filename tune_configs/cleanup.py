"""Frees the CPUs of a trial that Tune stopped while its Ray Train run was still training.

Tune stops an ASHA-cut trial by killing its actor. The Ray Train run inside dies with it, but the placement group
that reserved its workers' CPUs lives on until the whole sweep's job ends (Ray frees a placement group when its
creator *and* its job are gone), so the next trial would wait forever for CPUs. The training loop records its
placement group in every epoch's metrics line; when a trial ends, this callback removes that group if it is
still there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ray import tune

from trainers.run import METRICS_FILE
from tune_configs.trial import RUN_DIR, TRIAL_DIR_FIELD


def recorded_placement_group(run_dir: Path) -> str | None:
    """The workers' placement group named by the run's last metrics line (None if none was recorded)."""
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return None
    for line in reversed(path.read_text(encoding="utf-8").splitlines()):
        try:
            return json.loads(line).get("worker_placement_group")
        except json.JSONDecodeError:  # a line cut short by the kill
            continue
    return None


def release_placement_group(run_dir: Path) -> bool:
    """Remove the run's worker placement group if it still holds resources; True when one was removed."""
    import ray
    from ray._raylet import PlacementGroupID
    from ray.util.placement_group import PlacementGroup, placement_group_table

    group_id = recorded_placement_group(run_dir)
    if group_id is None or placement_group_table().get(group_id, {}).get("state") not in (
        "CREATED",
        "PENDING",
        "RESCHEDULING",
    ):
        return False
    ray.util.remove_placement_group(PlacementGroup(PlacementGroupID.from_hex(group_id)))
    return True


class ReleaseStoppedTrials(tune.Callback):
    """After every trial, free what its training run still reserves (see the module docstring)."""

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info) -> None:
        self._release(trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info) -> None:
        self._release(trial)

    @staticmethod
    def _release(trial: Any) -> None:
        folder = (trial.last_result or {}).get(TRIAL_DIR_FIELD)  # every report names it; none before the first
        if folder and release_placement_group(Path(folder) / RUN_DIR):
            print(f"trial {trial.trial_id}: freed the CPUs its stopped training run still held", flush=True)
