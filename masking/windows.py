"""Which faces go into a training window, and how they are mixed: one seeded definition for the client and the judge.

The client answers "window (epoch, window, rank) mixed with k" by calling `window_mixtures`; the evaluation calls
the same function with the client's recorded requests to regenerate exactly what the server was sent. A request
fixes everything: the epoch's permutation of the training rows (seeded by the client's secret seed and the epoch),
the worker's share of it, the window's batches, and the MixUp partners and weights (seeded by the whole request),
so a window replayed after a worker restart is identical, and nothing is mixed before it is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from common.errors import InputError
from masking.mixup import MixUpBatch, mixup


@dataclass(frozen=True)
class WindowPlan:
    """The sizes that decide which rows a window holds; every worker and the judge use the same plan."""

    batch_size: int
    window_batches: int
    batches_per_epoch: int  # per worker
    workers: int
    concentration: float = 1.0

    @property
    def windows_per_epoch(self) -> int:
        return -(-self.batches_per_epoch // self.window_batches)

    def batches_in_window(self, window: int) -> range:
        first = window * self.window_batches
        if window < 0 or first >= self.batches_per_epoch:
            raise InputError(f"window {window} is outside the epoch's {self.batches_per_epoch} batches")
        return range(first, min(first + self.window_batches, self.batches_per_epoch))


@dataclass(frozen=True)
class WindowRequest:
    """The whole of what a Train worker asks the client: which window, for which worker, mixed with which k."""

    epoch: int
    window: int
    rank: int
    k: int


def _seed(secret_seed: int, *parts: int) -> int:
    value = secret_seed & (2**63 - 1)
    for part in parts:
        value = (value * 1_000_003 + part + 1) % (2**61 - 1)
    return value


def window_row_indices(plan: WindowPlan, num_rows: int, secret_seed: int, request: WindowRequest) -> list[torch.Tensor]:
    """Row indices (into the client's training rows) of each batch in the requested window."""
    if not 0 <= request.rank < plan.workers:
        raise InputError(f"worker rank {request.rank} is outside 0..{plan.workers - 1}")
    if num_rows < plan.workers * plan.batches_per_epoch * plan.batch_size:
        raise InputError(f"{num_rows} training rows cannot fill the plan {plan}")
    epoch_order = torch.randperm(num_rows, generator=torch.Generator().manual_seed(_seed(secret_seed, request.epoch)))
    share = epoch_order[request.rank :: plan.workers]
    return [
        share[batch * plan.batch_size : (batch + 1) * plan.batch_size]
        for batch in plan.batches_in_window(request.window)
    ]


def window_mixtures(
    rows: torch.Tensor, labels: torch.Tensor, plan: WindowPlan, secret_seed: int, request: WindowRequest
) -> list[MixUpBatch]:
    """The requested window's batches, each mixed with k: `partners` index `rows` (not the batch), so a judge can
    tell which faces every mixture holds."""
    generator = torch.Generator().manual_seed(
        _seed(secret_seed, request.epoch, request.window, request.rank, request.k)
    )
    batches = []
    for indices in window_row_indices(plan, len(rows), secret_seed, request):
        mixed = mixup(rows[indices], labels[indices], request.k, plan.concentration, generator)
        batches.append(
            MixUpBatch(mixed=mixed.mixed, labels=mixed.labels, weights=mixed.weights, partners=indices[mixed.partners])
        )
    return batches
