"""Where each training window's k comes from: a fixed value, or (adaptive defence) a strategy outside the loop.

The training loop only sees this small protocol, so the RL side (rl_env) can drive k without trainers importing it.
Objects are pickled into every Ray Train worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class WindowReport:
    window_index: int  # global: epoch * windows_per_epoch + window within the epoch
    worker_rank: int
    k: int
    mixed_loss: float  # mean FR loss over the window's mixed batches
    clean_val_loss: float | None  # loss on held-out, unmixed images after the window (None when not asked for)
    progress: float  # fraction of all training windows done after this one


class KSource(Protocol):
    @property
    def wants_clean_validation(self) -> bool:
        """Whether workers score held-out clean batches after each window (the adaptive reward needs them)."""

    def k_for_window(self, window_index: int) -> int:
        """The k to mix this window with; may block until a strategy has chosen."""

    def report_window(self, report: WindowReport) -> None:
        """Called by every worker after each window."""

    def finish(self) -> None:
        """Called by every worker when training has ended."""


@dataclass(frozen=True)
class FixedK:
    """The same k for every window (k = 1: no mixing)."""

    k: int
    wants_clean_validation: bool = False

    def k_for_window(self, window_index: int) -> int:
        return self.k

    def report_window(self, report: WindowReport) -> None:
        return None

    def finish(self) -> None:
        return None
