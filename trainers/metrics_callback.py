"""Live metrics: a Ray Train callback on the controller (which runs on the driver's node) appends each reported
epoch to RUN_DIR/metrics.jsonl as soon as its checkpoint is persisted, skipping epochs already written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ray.train import UserCallback


class MetricsFileCallback(UserCallback):
    def __init__(self, path: str) -> None:
        self.path = path

    def _last_epoch_written(self) -> int:
        path = Path(self.path)
        if not path.is_file():
            return 0
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return json.loads(lines[-1])["epoch"] if lines else 0

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any) -> None:
        if checkpoint is None or not metrics:
            return
        epoch_metrics = metrics[0]
        if epoch_metrics["epoch"] <= self._last_epoch_written():
            return
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(epoch_metrics) + "\n")
