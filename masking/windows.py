"""Which faces go into a training window, and how they are mixed: one seeded definition for the client and the judge.

The client answers "window (epoch, window, rank) mixed with k" by calling `window_mixtures`; the evaluation calls
the same function with the client's recorded requests to regenerate exactly what the server was sent. A request
fixes everything: the epoch's permutation of the training rows (seeded by the client's secret seed and the epoch),
the worker's share of it, the window's batches, and the MixUp partners and weights (seeded by the whole request),
so a window replayed after a worker restart is identical, and nothing is mixed before it is asked for.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Protocol

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


@dataclass(frozen=True)
class StreamOrder:
    """The epoch order of a client that streams its rows instead of holding them all: its shards in a seeded order
    per epoch, and the rows of that stream shuffled within consecutive chunks of `chunk_rows`, so the client needs
    one chunk at a time. (A client that holds every row uses one permutation of all rows instead.)"""

    shard_rows: tuple[int, ...]  # training rows in each shard, in storage order
    chunk_rows: int

    def shard_order(self, secret_seed: int, epoch: int) -> list[int]:
        return torch.randperm(len(self.shard_rows), generator=_generator(secret_seed, epoch, -1)).tolist()

    def stream(self, secret_seed: int, epoch: int) -> torch.Tensor:
        """Training-row indices in the order the epoch reads them: whole shards, in the epoch's shard order."""
        starts = [0]
        for count in self.shard_rows:
            starts.append(starts[-1] + count)
        return torch.cat([torch.arange(starts[s], starts[s + 1]) for s in self.shard_order(secret_seed, epoch)])

    def order(self, secret_seed: int, epoch: int) -> torch.Tensor:
        stream = self.stream(secret_seed, epoch)
        generator = _generator(secret_seed, epoch, -2)
        chunks = stream.split(self.chunk_rows)
        return torch.cat([chunk[torch.randperm(len(chunk), generator=generator)] for chunk in chunks])


class RowSource(Protocol):
    """The training rows a window is cut from: a tensor, or a streaming client's view of one epoch."""

    def __len__(self) -> int: ...

    def __getitem__(self, indices: torch.Tensor) -> torch.Tensor: ...


def _generator(secret_seed: int, *parts: int) -> torch.Generator:
    return torch.Generator().manual_seed(_seed(secret_seed, *parts))


@functools.lru_cache(maxsize=4)
def epoch_order(num_rows: int, secret_seed: int, epoch: int, stream: StreamOrder | None = None) -> torch.Tensor:
    """The epoch's order of the training rows, seeded by the client's secret seed and the epoch. Every window of the
    epoch asks for it, so the last few are kept (callers only read it)."""
    if stream is None:
        return torch.randperm(num_rows, generator=_generator(secret_seed, epoch))
    if sum(stream.shard_rows) != num_rows:
        raise InputError(f"the stream order covers {sum(stream.shard_rows)} rows, not the client's {num_rows}")
    return stream.order(secret_seed, epoch)


def _seed(secret_seed: int, *parts: int) -> int:
    value = secret_seed & (2**63 - 1)
    for part in parts:
        value = (value * 1_000_003 + part + 1) % (2**61 - 1)
    return value


def window_row_indices(
    plan: WindowPlan, num_rows: int, secret_seed: int, request: WindowRequest, stream: StreamOrder | None = None
) -> list[torch.Tensor]:
    """Row indices (into the client's training rows) of each batch in the requested window."""
    if not 0 <= request.rank < plan.workers:
        raise InputError(f"worker rank {request.rank} is outside 0..{plan.workers - 1}")
    if num_rows < plan.workers * plan.batches_per_epoch * plan.batch_size:
        raise InputError(f"{num_rows} training rows cannot fill the plan {plan}")
    share = epoch_order(num_rows, secret_seed, request.epoch, stream)[request.rank :: plan.workers]
    return [
        share[batch * plan.batch_size : (batch + 1) * plan.batch_size]
        for batch in plan.batches_in_window(request.window)
    ]


def window_mixtures(
    rows: RowSource,
    labels: torch.Tensor,
    plan: WindowPlan,
    secret_seed: int,
    request: WindowRequest,
    stream: StreamOrder | None = None,
) -> list[MixUpBatch]:
    """The requested window's batches, each mixed with k: `partners` index `rows` (not the batch), so a judge can
    tell which faces every mixture holds."""
    generator = _generator(secret_seed, request.epoch, request.window, request.rank, request.k)
    batches = []
    for indices in window_row_indices(plan, len(rows), secret_seed, request, stream):
        mixed = mixup(rows[indices], labels[indices], request.k, plan.concentration, generator)
        batches.append(
            MixUpBatch(mixed=mixed.mixed, labels=mixed.labels, weights=mixed.weights, partners=indices[mixed.partners])
        )
    return batches
