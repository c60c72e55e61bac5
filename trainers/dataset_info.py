"""What a data folder holds (raw images or masked channels), read from its shards before Ray starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import InputError
from common.files import read_json
from trainers.schema import MANIFEST_NAME, PAIRS_NAME, open_shard, read_shard, shard_kind, split_dir


@dataclass(frozen=True)
class DatasetInfo:
    data_dir: str
    representation: str  # "images" (prepared shards) or "masked" (the client's masked shards)
    channels: int  # image channels, or masked frequency channels
    size: int  # image side, or the frequency grid side (image side / 8)
    num_classes: int  # identities in the private split
    num_train_rows: int  # rows in the private split (before the clean hold-out)
    synthetic_data: bool
    manifest: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def input_kind(self) -> str:
        return "pixels" if self.representation == "images" else "frequency"


def _first_shard(data_dir: Path, split: str) -> Path:
    files = sorted(split_dir(data_dir, split).glob("part-*.parquet"))
    if not files:
        raise InputError(
            f"{data_dir} has no {split!r} split ({split_dir(data_dir, split)}/part-*.parquet); "
            "pass a folder written by `hybridmask prepare`, `synth` or `mask`"
        )
    return files[0]


def inspect_dataset(data_dir: str | Path) -> DatasetInfo:
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputError(f"data folder {data_dir} does not exist")
    manifest_path = data_dir / MANIFEST_NAME
    if not manifest_path.is_file():
        raise InputError(f"{data_dir} has no {MANIFEST_NAME}; pass a folder written by `hybridmask prepare` or `mask`")
    manifest = read_json(manifest_path, "make the folder again with `hybridmask prepare` or `mask`")
    private = _first_shard(data_dir, "private")
    _first_shard(data_dir, "verify")
    if not (data_dir / PAIRS_NAME).is_file():
        raise InputError(f"{data_dir} has no {PAIRS_NAME}: verification needs the verify pairs")
    for path in [*split_dir(data_dir, "verify").glob("part-*.parquet"), data_dir / PAIRS_NAME]:
        open_shard(path)  # a damaged shard is named now, not inside a Ray worker
    kind = shard_kind(private)
    first = open_shard(private).read_row_group(0).slice(0, 1).to_pylist()[0]
    if kind == "image":
        representation, channels, size = "images", first["channels"], first["height"]
    elif kind == "masked":
        representation, channels, size = "masked", first["num_channels"], first["grid_height"]
    else:
        raise InputError(f"{private} is not a hybridmask shard (schema tag {kind!r})")
    private_files = sorted(split_dir(data_dir, "private").glob("part-*.parquet"))
    labels = set()
    rows = 0
    for path in private_files:
        table = read_shard(path, columns=["label"])
        rows += table.num_rows
        labels.update(table.column("label").to_pylist())
    return DatasetInfo(
        data_dir=str(data_dir.resolve()),
        representation=representation,
        channels=int(channels),
        size=int(size),
        num_classes=len(labels),
        num_train_rows=rows,
        synthetic_data=bool(manifest.get("synthetic_data", False)),
        manifest=manifest,
    )
