"""Writing the Parquet contract of trainers/schema.py: image shards per split, the pairs file, the pixel spill.

Bytes are deterministic: rows in image_id order, fixed compression, no timestamps (Parquet has none; the writer
version string is the installed pyarrow's), so the same input and seed give byte-identical shards.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from trainers.schema import IMAGE_SCHEMA, PAIRS_NAME, PAIRS_SCHEMA, shard_path, split_dir

_PARQUET_OPTIONS = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": ["identity", "split"],  # few distinct values; pixels and digests do not repeat
}


class PixelSpill:
    """Output faces parked in one flat file between decoding and writing, so memory stays flat on large sets.

    Shards can only be written once every identity's image count (and so the split) is known.
    """

    def __init__(self, path: Path) -> None:
        self._file = open(path, "w+b")  # noqa: SIM115 -- kept open for the spill's lifetime; close() ends it
        self._shapes: list[tuple[int, ...]] = []
        self._offsets: list[int] = []
        self._end = 0

    def append(self, pixels: np.ndarray) -> int:
        """Store one uint8 array; returns its index."""
        data = np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()
        self._file.seek(self._end)
        self._file.write(data)
        self._offsets.append(self._end)
        self._shapes.append(pixels.shape)
        self._end += len(data)
        return len(self._shapes) - 1

    def read(self, index: int) -> np.ndarray:
        shape = self._shapes[index]
        self._file.seek(self._offsets[index])
        return np.frombuffer(self._file.read(int(np.prod(shape))), dtype=np.uint8).reshape(shape)

    def close(self) -> None:
        self._file.close()


@dataclass(frozen=True)
class ImageRow:
    """Everything a shard row holds but the pixels, which wait in the spill."""

    image_id: int
    identity: str
    label: int
    split: str
    source_path: str
    sha256: str
    spill_index: int


def _pixel_bytes(pixels: np.ndarray, channels: int) -> bytes:
    if pixels.shape[2] != channels:  # a gray source in a data set that also has colour ones
        pixels = np.repeat(pixels, channels, axis=2)
    return pixels.tobytes()


def write_split(
    data_dir: Path, split: str, rows: list[ImageRow], spill: PixelSpill, channels: int, shard_rows: int
) -> int:
    """Write one split's rows (sorted by image_id) as part-NNNNN.parquet files; returns the number of shards."""
    split_dir(data_dir, split).mkdir(parents=True, exist_ok=True)
    rows = sorted(rows, key=lambda row: row.image_id)
    for index, start in enumerate(range(0, len(rows), shard_rows)):
        chunk = rows[start : start + shard_rows]
        pixels = [spill.read(row.spill_index) for row in chunk]
        columns = {
            "image_id": [row.image_id for row in chunk],
            "pixels": [_pixel_bytes(p, channels) for p in pixels],
            "width": [p.shape[1] for p in pixels],
            "height": [p.shape[0] for p in pixels],
            "channels": [channels] * len(chunk),
            "identity": [row.identity for row in chunk],
            "label": [row.label for row in chunk],
            "split": [split] * len(chunk),
            "source_path": [row.source_path for row in chunk],
            "sha256": [row.sha256 for row in chunk],
        }
        table = pa.Table.from_pydict(columns, schema=IMAGE_SCHEMA)
        pq.write_table(table, shard_path(data_dir, split, index), row_group_size=shard_rows, **_PARQUET_OPTIONS)
    return -(-len(rows) // shard_rows)


def write_pairs(data_dir: Path, left: np.ndarray, right: np.ndarray, is_same: np.ndarray) -> None:
    table = pa.Table.from_arrays(
        [pa.array(left, pa.int64()), pa.array(right, pa.int64()), pa.array(is_same, pa.bool_())],
        schema=PAIRS_SCHEMA,
    )
    pq.write_table(table, data_dir / PAIRS_NAME, **_PARQUET_OPTIONS | {"use_dictionary": False})
