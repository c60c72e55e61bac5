"""A client's training rows read through Ray Data as the epoch goes, for data sets too large to decode into memory.

Each epoch reads the private split's shards in the epoch's seeded order (`masking.windows.StreamOrder`) as one
ordered Ray Data stream, drops the held-out rows, and keeps the decoded rows of the consecutive chunks of that
stream that the current window spans (the epoch order only shuffles rows within a chunk, and every worker's share
of window w lies in the same stretch of the stream). Chunks before it are dropped: the workers of one run move
through the windows in step, since every training step waits for all of them. A request for a chunk already dropped (a window replayed after a worker
restart) reads the epoch's stream again from its start. The read tasks run on the client's node when the cluster
has one (the `client` resource): the masked rows never leave it unmixed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from masking.windows import StreamOrder
from trainers.batches import batch_to_input
from trainers.schema import open_shard, split_dir

READ_AHEAD_CHUNKS = 2  # chunks read beyond the last one a request spans
STREAM_COLUMNS = {
    "masked": ["image_id", "features", "num_channels", "grid_height", "grid_width"],
    "images": ["image_id", "pixels", "height", "width", "channels"],
}


@dataclass(frozen=True)
class ShardIndex:
    """What the client knows of its private split without decoding it: the shards, each row's label and image id
    (storage order), and which rows are held out."""

    files: tuple[Path, ...]
    labels: torch.Tensor  # [training rows], in storage order
    order: StreamOrder
    holdout_modulo: int  # rows with image_id % holdout_modulo == 0 are held out
    holdout_rows: int


def index_shards(data_dir: str | Path, holdout_modulo: int, chunk_rows: int) -> ShardIndex:
    """Reads only the small columns (image id, label) of every private shard."""
    files = tuple(sorted(split_dir(data_dir, "private").glob("part-*.parquet")))
    labels, shard_rows, held_out = [], [], 0
    for path in files:
        table = open_shard(path).read(columns=["image_id", "label"])
        held = np.asarray(table.column("image_id")) % holdout_modulo == 0
        labels.append(np.asarray(table.column("label"), dtype=np.int64)[~held])
        shard_rows.append(int((~held).sum()))
        held_out += int(held.sum())
    return ShardIndex(
        files=files,
        labels=torch.from_numpy(np.concatenate(labels)),
        order=StreamOrder(shard_rows=tuple(shard_rows), chunk_rows=chunk_rows),
        holdout_modulo=holdout_modulo,
        holdout_rows=held_out,
    )


def read_holdout(index: ShardIndex, representation: str, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `count` held-out rows in storage order, decoded, with their labels; shards are read until found."""
    inputs, labels, found = [], [], 0
    for path in index.files:
        for batch in open_shard(path).iter_batches(columns=[*STREAM_COLUMNS[representation], "label"]):
            held = batch.filter(pa.array(np.asarray(batch.column("image_id")) % index.holdout_modulo == 0)).slice(
                0, count - found
            )
            if held.num_rows:
                inputs.append(batch_to_input(arrow_columns(held), representation))
                labels.append(torch.as_tensor(np.asarray(held.column("label"), dtype=np.int64)))
                found += held.num_rows
            if found >= count:
                return torch.cat(inputs), torch.cat(labels)
    if not inputs:
        raise RuntimeError("the private split has no held-out rows")
    return torch.cat(inputs), torch.cat(labels)


def arrow_columns(rows: pa.Table | pa.RecordBatch) -> dict[str, Any]:
    """Rows as `batch_to_input` reads them, the byte columns left in Arrow (decoded from their buffers)."""
    return {
        name: rows.column(name) if name in ("features", "pixels") else rows.column(name).to_pylist()
        for name in rows.column_names
    }


def decoded_size_mb(data_dir: str | Path, representation: str) -> float:
    """What decoding the whole private split into float32 inputs would take, from the shards' metadata alone."""
    files = sorted(split_dir(data_dir, "private").glob("part-*.parquet"))
    rows = sum(open_shard(path).metadata.num_rows for path in files)
    first = open_shard(files[0]).read_row_group(0, columns=STREAM_COLUMNS[representation][1:]).slice(0, 1)
    return rows * batch_to_input(first.to_pydict(), representation)[0].numel() * 4 / 2**20


class StreamedRows:
    """The training rows of one epoch at a time, read through Ray Data (module docstring).

    One reader thread owns the Ray Data stream and reads chunks in order; a request waits only for the chunks its
    window spans. After each request the reader is asked for the next READ_AHEAD_CHUNKS chunks, and near an
    epoch's end for the next epoch's first chunk, so the stream's latency overlaps the workers' training."""

    def __init__(
        self, index: ShardIndex, representation: str, secret_seed: int, ray_remote_args: dict[str, Any]
    ) -> None:
        self._index = index
        self._representation = representation
        self._secret_seed = secret_seed
        self._remote_args = ray_remote_args
        self._lock = threading.Lock()
        self._chunks: dict[tuple[int, int], Future[torch.Tensor]] = {}  # (epoch, chunk) -> its rows
        self._positions: dict[int, torch.Tensor] = {}  # epoch -> position of each training row in its stream
        self._chunks_per_epoch = -(-len(index.labels) // index.order.chunk_rows)
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stream-reader")
        # The reader thread's own state: the stream it reads and where it is.
        self._batches: Iterator[pa.Table] | None = None
        self._reading: tuple[int, int] = (-1, 0)  # (epoch, next chunk) of the open stream
        self._pending: list[torch.Tensor] = []  # decoded rows read past the last whole chunk
        self.chunks_read = 0  # for tests and the benchmark: chunks read (a replay reads its epoch again)
        self.most_rows_held = 0

    def __len__(self) -> int:
        return len(self._index.labels)

    def epoch(self, epoch: int) -> EpochRows:
        return EpochRows(self, epoch)

    def rows(self, epoch: int, indices: torch.Tensor) -> torch.Tensor:
        """The decoded rows of these training-row indices, in the epoch `epoch`."""
        chunk_rows = self._index.order.chunk_rows
        with self._lock:
            positions = self._positions_in(epoch)[indices]
            needed = sorted(set((positions // chunk_rows).tolist()))
            waits = {chunk: self._ask(epoch, chunk) for chunk in needed}
            for ahead in range(needed[-1] + 1, needed[-1] + 1 + READ_AHEAD_CHUNKS):
                self._ask(*divmod_epoch(epoch, ahead, self._chunks_per_epoch))
            for key in [key for key in self._chunks if key < (epoch, needed[0])]:
                del self._chunks[key]
        chunks = {chunk: wait.result() for chunk, wait in waits.items()}
        with self._lock:
            self.most_rows_held = max(
                self.most_rows_held, sum(len(f.result()) for f in self._chunks.values() if f.done())
            )
        rows = torch.stack([chunks[int(p) // chunk_rows][int(p) % chunk_rows] for p in positions])
        return rows.contiguous(memory_format=torch.channels_last)  # as decoded: the layout CPU convolutions are fast in

    def _positions_in(self, epoch: int) -> torch.Tensor:
        if epoch not in self._positions:
            stream = self._index.order.stream(self._secret_seed, epoch)
            position = torch.empty_like(stream)
            position[stream] = torch.arange(len(stream))
            self._positions = {e: p for e, p in self._positions.items() if e > epoch - 2}
            self._positions[epoch] = position
        return self._positions[epoch]

    def _ask(self, epoch: int, chunk: int) -> Future[torch.Tensor]:
        """The chunk's rows, read (in order, by the reader thread) if not already read or asked for."""
        if (epoch, chunk) not in self._chunks:
            self._chunks[(epoch, chunk)] = self._reader.submit(self._read, epoch, chunk)
        return self._chunks[(epoch, chunk)]

    def _read(self, epoch: int, chunk: int) -> torch.Tensor:
        """Reader thread: the stream of `epoch` read on to `chunk` (from the epoch's start again when the open stream
        is another epoch's or already past it: a replay)."""
        if self._reading[0] != epoch or self._reading[1] > chunk:
            self._open(epoch)
        while True:
            rows = self._next_chunk()
            if self._reading[1] - 1 == chunk:
                return rows

    def _open(self, epoch: int) -> None:
        import ray.data

        if self._batches is not None and hasattr(self._batches, "close"):
            self._batches.close()  # the old stream's reads stop
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False
        shards = self._index.order.shard_order(self._secret_seed, epoch)
        dataset = ray.data.read_parquet(
            [str(self._index.files[s]) for s in shards], ray_remote_args=self._remote_args
        ).select_columns(STREAM_COLUMNS[self._representation])
        chunk_rows = self._index.order.chunk_rows
        self._batches = iter(dataset.iter_batches(batch_size=chunk_rows, batch_format="pyarrow", prefetch_batches=2))
        self._reading, self._pending = (epoch, 0), []

    def _next_chunk(self) -> torch.Tensor:
        """Reader thread: reads on until the stream's next chunk is whole (or the stream ends)."""
        assert self._batches is not None
        chunk_rows = self._index.order.chunk_rows
        held = sum(len(rows) for rows in self._pending)
        while held < chunk_rows:
            batch = next(self._batches, None)
            if batch is None:
                break
            kept = batch.filter(pa.array(np.asarray(batch["image_id"]) % self._index.holdout_modulo != 0))
            if kept.num_rows:
                self._pending.append(batch_to_input(arrow_columns(kept), self._representation))
                held += kept.num_rows
        epoch, chunk = self._reading
        if not self._pending:
            raise RuntimeError(f"the stream of epoch {epoch} ended before its chunk {chunk}")
        rows = torch.cat(self._pending)
        self._pending = [rows[chunk_rows:]] if len(rows) > chunk_rows else []
        self._reading = (epoch, chunk + 1)
        self.chunks_read += 1
        return rows[:chunk_rows]


def divmod_epoch(epoch: int, chunk: int, chunks_per_epoch: int) -> tuple[int, int]:
    """(epoch, chunk) of a chunk counted on from `epoch`'s start: past the epoch's last, the next epoch's."""
    return epoch + chunk // chunks_per_epoch, chunk % chunks_per_epoch


@dataclass(frozen=True)
class EpochRows:
    """One epoch's view of the streamed rows, indexable like a tensor of all training rows (`RowSource`)."""

    source: StreamedRows
    epoch_index: int

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, indices: torch.Tensor) -> torch.Tensor:
        return self.source.rows(self.epoch_index, indices)
