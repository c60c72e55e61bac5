"""Signs of life during long work: a line every few seconds with the step, the rate and the time left.

Epoch lines alone leave minutes of silence at `--budget paper` or on LFW; a step line at most every
`every_s` seconds keeps logs short on small runs and alive on large ones. Silent when `every_s` is 0 (--quiet).
Training prints on its rank-0 worker (Ray forwards the output to the driver's terminal); the attacks use it too.
"""

from __future__ import annotations

import time
from collections.abc import Callable

PROGRESS_EVERY_S = 10.0
"""Seconds between step lines."""


def format_duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _print_line(message: str) -> None:
    print(message, flush=True)


class StepProgress:
    """Counts steps and emits `LABEL step s/S  N img/s  R steps/s  left m:ss` at most every `every_s` seconds."""

    def __init__(
        self,
        total_steps: int,
        steps_done: int = 0,
        every_s: float = PROGRESS_EVERY_S,
        emit: Callable[[str], None] = _print_line,
        label: str = "",
        clock: Callable[[], float] | None = None,
    ) -> None:
        clock = clock or time.monotonic
        self.total_steps, self.steps, self.steps_at_start = total_steps, steps_done, steps_done
        self.every_s, self.emit, self.label, self.clock = every_s, emit, label, clock
        self.started = self.last_line = clock()
        self.images = 0

    @property
    def enabled(self) -> bool:
        return self.every_s > 0

    def step(self, images: int = 0) -> None:
        self.steps += 1
        self.images += images
        now = self.clock()
        if not self.enabled or now - self.last_line < self.every_s:
            return
        self.last_line = now
        elapsed = max(now - self.started, 1e-9)
        steps_per_s = (self.steps - self.steps_at_start) / elapsed
        left = (self.total_steps - self.steps) / steps_per_s if steps_per_s > 0 else float("inf")
        rate = f"{self.images / elapsed:.0f} img/s  " if self.images else ""
        self.emit(
            f"{self.label}step {self.steps}/{self.total_steps}  {rate}{steps_per_s:.2f} steps/s  "
            f"left {format_duration(left)}"
        )
