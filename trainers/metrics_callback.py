"""Live metrics: a Ray Train callback on the controller (which runs on the driver's node) appends each reported
epoch to RUN_DIR/metrics.jsonl as soon as its checkpoint is persisted, skipping epochs already written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.train import UserCallback

from common.files import append_json_line, read_json_lines


class MetricsFileCallback(UserCallback):
    def __init__(self, path: str) -> None:
        self.path = path

    def _last_epoch_written(self) -> int:
        path = Path(self.path)
        if not path.is_file():
            return 0
        records = read_json_lines(path)
        return records[-1]["epoch"] if records else 0

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any) -> None:
        if checkpoint is None or not metrics:
            return
        epoch_metrics = metrics[0]
        if epoch_metrics["epoch"] <= self._last_epoch_written():
            return
        append_json_line(self.path, epoch_metrics)
