"""Reading Ray's free CPUs in tests: `ray.available_resources()` is the scheduler's view, which lags a placement
group's or an actor's start and end by a resource-report period, so a check must wait for it to settle."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import ModuleType


def free_cpus_once_settled(ray: ModuleType, settled: Callable[[float], bool], timeout_s: float = 30.0) -> float:
    """The free CPUs as soon as `settled(free)` holds, or at the timeout whatever they are (the caller asserts)."""
    deadline = time.monotonic() + timeout_s
    while True:
        free = ray.available_resources().get("CPU", 0.0)
        if settled(free) or time.monotonic() > deadline:
            return free
        time.sleep(0.1)
