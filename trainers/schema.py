"""The Parquet contract: the one definition of every shard, pairs file and manifest name the project writes.

It lives in `trainers` because that is the lowest layer that reads shards; `pipelines` (which writes them) and
`evaluation` import it from here, so a column is named in exactly one place.

On-disk layout of a data folder (prepared or masked)::

    DIR/manifest.json           counts, parameters, skipped files, schema_version
    DIR/pairs.parquet           verification pairs over the `verify` split (PAIRS_SCHEMA)
    DIR/<split>/part-NNNNN.parquet   one folder per split, readable by ray.data.read_parquet(DIR/<split>)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from common.errors import InputError

SCHEMA_VERSION = 1

SPLITS = ("private", "verify", "public")
"""private: the FR model's training identities; verify: unseen identities for open-set verification pairs;
public: the attacker's auxiliary identities."""

MANIFEST_NAME = "manifest.json"
PAIRS_NAME = "pairs.parquet"

IMAGE_SCHEMA = pa.schema(
    [
        pa.field("image_id", pa.int64(), nullable=False),  # unique and stable within one prepared data set
        pa.field("pixels", pa.binary(), nullable=False),  # uint8, row-major height x width x channels
        pa.field("width", pa.int32(), nullable=False),
        pa.field("height", pa.int32(), nullable=False),
        pa.field("channels", pa.int32(), nullable=False),  # 1 (gray) or 3 (RGB)
        pa.field("identity", pa.string(), nullable=False),
        pa.field("label", pa.int32(), nullable=False),  # contiguous 0..n-1 within the split, identities sorted
        pa.field("split", pa.string(), nullable=False),
        pa.field("source_path", pa.string(), nullable=False),  # POSIX path relative to the source folder
        pa.field("sha256", pa.string(), nullable=False),  # hex digest of the source file's bytes
    ],
    metadata={b"hybridmask_schema": b"image", b"schema_version": str(SCHEMA_VERSION).encode()},
)

MASKED_SCHEMA = pa.schema(
    [
        pa.field("image_id", pa.int64(), nullable=False),
        pa.field("features", pa.binary(), nullable=False),  # float16, row-major channels x grid_h x grid_w
        # The mirrored face, masked by the client (only the key holder can): verify split only, for flip-fused
        # verification embeddings; null elsewhere.
        pa.field("features_flipped", pa.binary(), nullable=True),
        pa.field("num_channels", pa.int32(), nullable=False),
        pa.field("grid_height", pa.int32(), nullable=False),
        pa.field("grid_width", pa.int32(), nullable=False),
        pa.field("identity", pa.string(), nullable=False),
        pa.field("label", pa.int32(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
    ],
    metadata={b"hybridmask_schema": b"masked", b"schema_version": str(SCHEMA_VERSION).encode()},
)

PAIRS_SCHEMA = pa.schema(
    [
        pa.field("left_image_id", pa.int64(), nullable=False),
        pa.field("right_image_id", pa.int64(), nullable=False),
        pa.field("is_same", pa.bool_(), nullable=False),
    ],
    metadata={b"hybridmask_schema": b"pairs", b"schema_version": str(SCHEMA_VERSION).encode()},
)


def split_dir(data_dir: str | Path, split: str) -> Path:
    """The folder holding one split's shards."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    return Path(data_dir) / split


def shard_path(data_dir: str | Path, split: str, index: int) -> Path:
    return split_dir(data_dir, split) / f"part-{index:05d}.parquet"


def _damaged(path: str | Path, error: Exception) -> InputError:
    return InputError(
        f"shard {path} is damaged or not Parquet ({str(error).splitlines()[0]}); "
        "make its folder again (`hybridmask prepare` or `mask` into a new --out)"
    )


def open_shard(path: str | Path) -> pq.ParquetFile:
    """A shard opened for reading; a truncated or foreign file is an InputError naming it (its footer is read)."""
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as error:
        raise _damaged(path, error) from None


def read_shard(path: str | Path, columns: list[str] | None = None) -> pa.Table:
    try:
        return open_shard(path).read(columns=columns)
    except (pa.ArrowException, OSError) as error:
        raise _damaged(path, error) from None


def shard_kind(path: str | Path) -> str:
    """The schema tag a shard was written with: "image", "masked" or "pairs" ("" for a foreign file)."""
    return (open_shard(path).schema_arrow.metadata or {}).get(b"hybridmask_schema", b"").decode()


def read_split(data_dir: str | Path, split: str, columns: list[str] | None = None) -> pa.Table:
    """Read one split's shards in order, without Ray (for evaluation and small tools)."""
    files = sorted(split_dir(data_dir, split).glob("part-*.parquet"))
    if not files:
        raise FileNotFoundError(f"no shards for split {split!r} under {split_dir(data_dir, split)}")
    return pa.concat_tables([read_shard(f, columns=columns) for f in files])


def decode_pixels(pixels: bytes, height: int, width: int, channels: int) -> np.ndarray:
    """Image bytes of one IMAGE_SCHEMA row as a uint8 array of shape (height, width, channels)."""
    return np.frombuffer(pixels, dtype=np.uint8).reshape(height, width, channels)


def decode_features(features: bytes, num_channels: int, grid_height: int, grid_width: int) -> np.ndarray:
    """Masked features of one MASKED_SCHEMA row as a float16 array of shape (channels, grid_h, grid_w)."""
    return np.frombuffer(features, dtype=np.float16).reshape(num_channels, grid_height, grid_width)
