"""Masking a prepared data folder on the client: image shards in, masked shards out (what `hybridmask mask` does).

Reads the `private` and `verify` splits of a prepared folder (`public` is the attacker's own data and stays
as it is), fits the masker on the private split (energy ranking and normalisation statistics), and writes

    OUT/manifest.json                  public settings, source, counts (never the key; its fingerprint only)
    OUT/pairs.parquet                  copied from the prepared folder
    OUT/<split>/part-NNNNN.parquet     MASKED_SCHEMA, float16 features; one output shard per input shard

The folder appears at once, complete, or not at all: everything is written to a hidden temporary folder beside
OUT and renamed at the end.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm import tqdm

from common.errors import InputError
from common.files import atomic_write_json, read_json, staging_folder
from masking.keys import validate_key
from masking.masker import FrequencyMasker
from masking.ppfr import DEFAULT_MASKING_RATIO, channels_to_drop
from trainers.schema import (
    MANIFEST_NAME,
    MASKED_SCHEMA,
    PAIRS_NAME,
    SCHEMA_VERSION,
    open_shard,
    shard_kind,
    split_dir,
)

MASKED_SPLITS = ("private", "verify")
"""The client's own faces. `public` is the attacker's auxiliary data and is never masked."""


def read_manifest(data_dir: Path) -> dict:
    path = data_dir / MANIFEST_NAME
    if not path.is_file():
        raise InputError(
            f"{data_dir} has no {MANIFEST_NAME}; it is not a prepared data folder (run `hybridmask prepare`)"
        )
    manifest = read_json(path, "re-run `hybridmask prepare`")
    if manifest.get("kind") == "masked":
        raise InputError(
            f"{data_dir} is already masked (by `hybridmask mask`); pass the prepared folder it was made from, "
            f"{manifest.get('source_data_dir', 'from `hybridmask prepare`')}"
        )
    return manifest


def shard_files(data_dir: Path, split: str) -> list[Path]:
    return sorted(split_dir(data_dir, split).glob("part-*.parquet"))


Geometry = tuple[int, int, int]
"""(height, width, channels) of every image in one masked data set."""


def decode_image_batch(rows: pa.RecordBatch, where: str, geometry: Geometry) -> torch.Tensor:
    """IMAGE_SCHEMA rows, all of `geometry` -> [B, C, H, W] float32 in [0, 1]."""
    columns = (rows.column(name).to_pylist() for name in ("height", "width", "channels"))
    sizes = set(zip(*columns))
    if sizes != {geometry}:
        raise InputError(
            f"{where} holds images of (height, width, channels) {sorted(sizes)}, not {geometry} like the private "
            "split; prepare all splits at one size (e.g. 112x112)"
        )
    height, width, channels = geometry
    pixels = b"".join(rows.column("pixels").to_pylist())
    if len(pixels) != rows.num_rows * height * width * channels:
        raise InputError(
            f"{where} holds pixel data of the wrong length for {height}x{width}x{channels}; re-run prepare"
        )
    array = np.frombuffer(pixels, dtype=np.uint8).reshape(rows.num_rows, height, width, channels)
    return torch.from_numpy(array.copy()).permute(0, 3, 1, 2).float().div_(255.0)


def iter_image_batches(
    files: list[Path], batch_size: int, geometry: Geometry
) -> Iterator[tuple[pa.RecordBatch, torch.Tensor]]:
    for path in files:
        for rows in open_shard(path).iter_batches(batch_size=batch_size):
            yield rows, decode_image_batch(rows, str(path), geometry)


def _count_rows(files: list[Path]) -> int:
    return sum(open_shard(path).metadata.num_rows for path in files)


def _feature_bytes(masked: torch.Tensor, where: str) -> pa.Array:
    features = masked.to(device="cpu", dtype=torch.float16).contiguous()
    if not torch.isfinite(features).all():
        raise InputError(
            f"{where}: masked values overflow float16; these images differ wildly from the private training images"
        )
    flat = features.numpy().reshape(features.shape[0], -1)
    return pa.array([row.tobytes() for row in flat], type=pa.binary())


def _masked_rows(
    rows: pa.RecordBatch, masked: torch.Tensor, masked_mirror: torch.Tensor | None, where: str
) -> pa.RecordBatch:
    count, num_channels, grid_h, grid_w = masked.shape
    mirrored = _feature_bytes(masked_mirror, where) if masked_mirror is not None else pa.nulls(count, pa.binary())
    return pa.record_batch(
        [
            rows.column("image_id"),
            _feature_bytes(masked, where),
            mirrored,
            pa.array(np.full(count, num_channels, dtype=np.int32)),
            pa.array(np.full(count, grid_h, dtype=np.int32)),
            pa.array(np.full(count, grid_w, dtype=np.int32)),
            rows.column("identity"),
            rows.column("label"),
            rows.column("split"),
        ],
        schema=MASKED_SCHEMA,
    )


def _check_out_dir(out_dir: Path, data_dir: Path) -> None:
    if out_dir.resolve() == data_dir.resolve():
        raise InputError(f"--out {out_dir} is the prepared data folder itself; choose a new folder")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InputError(f"--out {out_dir} already exists and is not empty; choose a new folder or delete it")
    if not out_dir.parent.is_dir():
        raise InputError(f"--out {out_dir}: folder {out_dir.parent} does not exist; create it first")


def _image_geometry(files: list[Path], split: str) -> Geometry:
    if shard_kind(files[0]) != "image":
        raise InputError(f"{files[0]} holds no face images; pass a folder written by `hybridmask prepare` or `synth`")
    first = next(iter(open_shard(files[0]).iter_batches(batch_size=1, columns=["height", "width", "channels"])))
    height, width, channels = (int(first.column(name)[0].as_py()) for name in ("height", "width", "channels"))
    if height % 8 or width % 8:
        raise InputError(
            f"the {split} images are {height}x{width}; masking needs sides that are multiples of 8: "
            "prepare the data at 112x112"
        )
    return height, width, channels


def mask_dataset(
    data_dir: str | Path,
    key: bytes,
    out_dir: str | Path,
    ratio: float = DEFAULT_MASKING_RATIO,
    batch_size: int = 256,
    device: str = "cpu",
    progress: bool = True,
) -> dict:
    """Mask a prepared folder's private and verify splits into `out_dir`; returns the written manifest."""
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    key = validate_key(key)
    channels_to_drop(ratio)  # a bad ratio fails before any data is read
    if batch_size < 1:
        raise InputError(f"--batch-size is {batch_size}; it must be at least 1")
    prepared = read_manifest(data_dir)
    if prepared.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise InputError(
            f"{data_dir} was prepared with schema version {prepared.get('schema_version')}; re-run prepare"
        )
    _check_out_dir(out_dir, data_dir)
    files = {split: found for split in MASKED_SPLITS if (found := shard_files(data_dir, split))}
    if "private" not in files:
        raise InputError(f"{data_dir} has no private shards under {split_dir(data_dir, 'private')}; re-run prepare")
    geometry = _image_geometry(files["private"], "private")
    height, width, channels = geometry
    private_rows = _count_rows(files["private"])

    def private_batches() -> Iterator[torch.Tensor]:
        with tqdm(total=private_rows, unit="img", desc="fit masker", disable=not progress, leave=False) as bar:
            for _, images in iter_image_batches(files["private"], batch_size, geometry):
                bar.update(images.shape[0])
                yield images.to(device)

    masker = FrequencyMasker.fit(private_batches, key, ratio)
    temporary = staging_folder(out_dir)
    try:
        counts, identities = {}, {}
        for split, paths in files.items():
            counts[split], identities[split] = _mask_split(
                masker, paths, temporary / split, batch_size, geometry, device, progress
            )
        has_pairs = (data_dir / PAIRS_NAME).is_file()
        if has_pairs:
            shutil.copy2(data_dir / PAIRS_NAME, temporary / PAIRS_NAME)
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "kind": "masked",
            "created_by": "hybridmask mask",
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "source_data_dir": str(data_dir.resolve()),
            "source_fingerprint": prepared.get("source_fingerprint"),
            "synthetic_data": prepared.get("synthetic_data"),
            "image_height": height,
            "image_width": width,
            "image_channels": channels,
            "grid_height": height // 8,
            "grid_width": width // 8,
            "feature_dtype": "float16",
            "splits": list(files),
            "counts": counts,
            "num_identities": identities,
            "pairs": has_pairs,
            "masking": masker.public_settings(),
        }
        atomic_write_json(temporary / MANIFEST_NAME, manifest)
        if out_dir.exists():
            out_dir.rmdir()  # checked empty above
        os.replace(temporary, out_dir)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return manifest


def _mask_split(
    masker: FrequencyMasker,
    files: list[Path],
    out_split_dir: Path,
    batch_size: int,
    geometry: Geometry,
    device: str,
    progress: bool,
) -> tuple[int, int]:
    """Write one output shard per input shard; returns (rows, distinct identities).

    Verify rows also carry their mirrored face, masked, so the server can flip-fuse verification embeddings.
    """
    out_split_dir.mkdir()
    with_mirror = out_split_dir.name == "verify"
    rows_written, names = 0, set()
    with tqdm(total=_count_rows(files), unit="img", desc=f"mask {out_split_dir.name}", disable=not progress) as bar:
        for path in files:
            with pq.ParquetWriter(out_split_dir / path.name, MASKED_SCHEMA) as writer:
                for rows, images in iter_image_batches([path], batch_size, geometry):
                    with torch.inference_mode():
                        masked = masker.mask(images.to(device))
                        mirror = masker.mask(torch.flip(images, dims=[3]).to(device)) if with_mirror else None
                    writer.write_batch(_masked_rows(rows, masked, mirror, str(path)))
                    names.update(rows.column("identity").to_pylist())
                    rows_written += rows.num_rows
                    bar.update(rows.num_rows)
    return rows_written, len(names)
