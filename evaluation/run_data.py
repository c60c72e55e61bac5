"""A trained run and the data around it, as the privacy evaluation needs them, read from RUN_DIR alone.

The evaluation is the judge, not the server: it reads the client's record (RUN/client, see
`trainers.client_record`), which names the folder the client served from; for masked runs that folder's
manifest names the prepared folder it was masked from (`source_data_dir`). From those the evaluation reads the
private originals (the ground truth, never shown to an attacker), the masked rows the client mixed from, the
record of every window the client sent (to regenerate exactly what the server held), and the public split (the
attacker's own faces). Nothing here needs or reads the key.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.errors import InputError
from common.files import read_json, read_json_lines
from masking.windows import StreamOrder, WindowPlan, WindowRequest
from trainers.checkpoints import MODEL_FILE, load_model
from trainers.client_record import (
    CLIENT_RECORD_DIR,
    client_plan,
    client_stream_order,
    holdout_rows_sent,
    read_client_manifest,
    sent_windows,
)
from trainers.dataset_info import inspect_dataset
from trainers.model import FaceModel
from trainers.run import METRICS_FILE, SUMMARY_FILE
from trainers.schema import MANIFEST_NAME, decode_features, decode_pixels, read_split, split_dir


@dataclass(frozen=True)
class LabelledImages:
    """Images [N, C, H, W] float32 in [0, 1] with their labels [N] and image ids [N], in shard order."""

    images: torch.Tensor
    labels: torch.Tensor
    image_ids: torch.Tensor


@dataclass(frozen=True)
class SentRecord:
    """What the client recorded of a run: its plan and secret seed, every window it answered, which private rows
    (positions in `RunData.private`) it mixed from, in its own order, and how many held-out faces it sent unmixed."""

    plan: WindowPlan
    secret_seed: int
    windows: tuple[WindowRequest, ...]
    train_rows: torch.Tensor
    holdout_rows_sent: int = 0
    stream: StreamOrder | None = None  # the epoch order of a client that streamed its rows (None: held them all)


@dataclass(frozen=True)
class RunData:
    """One trained run: its model, public settings and summary, and the data sets it is judged on.

    private: the private originals (ground truth); masked: the masked private rows the server holds, aligned
    with `private` row by row (None for pixel defences); public: the attacker's faces of other identities.
    """

    run_dir: Path
    model: FaceModel
    summary: dict[str, Any]
    train_config: dict[str, Any]
    representation: str  # "images" or "masked"
    public_masking: dict[str, Any]
    prepared_dir: Path
    private: LabelledImages
    masked: torch.Tensor | None
    public: LabelledImages
    sent: SentRecord | None = None  # None only for runs given without a client record (tests of the view alone)

    @property
    def defense(self) -> str:
        return str(self.summary["defense"])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        channels, height, width = self.private.images.shape[1:]
        return channels, height, width

    @property
    def num_identities(self) -> int:
        return int(self.private.labels.unique().numel())

    @property
    def synthetic_data(self) -> bool:
        return bool(self.summary.get("synthetic_data", False))

    @property
    def is_masked(self) -> bool:
        return self.representation == "masked"


def check_run_dir(run_dir: str | Path) -> Path:
    """The run folder, checked for the files the evaluation reads (InputError naming what is missing)."""
    folder = Path(run_dir)
    if not folder.is_dir():
        raise InputError(f"run folder {folder} does not exist; pass a folder written by `hybridmask train`")
    for name in (MODEL_FILE, SUMMARY_FILE):
        if not (folder / name).is_file():
            raise InputError(f"{folder} has no {name}: it is not a finished training run (train it first)")
    return folder


def read_summary(run_dir: Path) -> dict[str, Any]:
    return read_json(run_dir / SUMMARY_FILE, f"train the run again (`hybridmask train --out {run_dir}`)")


def read_verification_curve(run_dir: Path) -> list[tuple[int, float]]:
    """(epoch, verification accuracy) of every verified epoch in metrics.jsonl; empty when the file is gone."""
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return []
    return [
        (int(epoch["epoch"]), float(epoch["verification_accuracy"]))
        for epoch in read_json_lines(path)
        if epoch.get("verification_accuracy") is not None
    ]


@dataclass(frozen=True)
class DataLocations:
    """Where a run's data lies now when not at the absolute paths recorded at training time (`--data`): e.g.
    after a cluster run, on a machine that mounts the shared storage elsewhere. Each folder is checked to hold
    the data the run was trained on before it is used."""

    masked: Path | None = None
    prepared: Path | None = None
    # Not a moved folder but other data: a prepared folder whose public split replaces the data set's own as the
    # attacker's faces (`--public`), e.g. thousands of LFW people when the data set's public split is a few people.
    public: Path | None = None

    @classmethod
    def from_folders(cls, folders: list[str], public: str | None = None) -> DataLocations:
        """`--data` folders sorted by kind (at most one masked and one prepared folder), and the `--public` folder."""
        found: dict[str, Path] = {}
        for text in folders:
            folder = Path(text)
            manifest = read_json(folder / MANIFEST_NAME, f"--data {folder} must be a prepared or masked folder")
            kind = "masked" if manifest.get("kind") == "masked" else "prepared"
            if kind in found:
                raise InputError(f"--data names two {kind} folders ({found[kind]}, {folder}); give one of each kind")
            found[kind] = folder
        if public is None:
            return cls(**found)
        manifest = read_json(Path(public) / MANIFEST_NAME, f"--public {public} must be a prepared folder")
        if manifest.get("kind") == "masked":
            raise InputError(f"--public {public} is masked; give a prepared folder (the attacker's faces are unmasked)")
        return cls(**found, public=Path(public))


_LOCATIONS: ContextVar[DataLocations | None] = ContextVar("data_locations", default=None)


@contextlib.contextmanager
def data_locations(locations: DataLocations) -> Iterator[None]:
    """Within the block, runs read their data from `locations` instead of the recorded paths."""
    token = _LOCATIONS.set(locations)
    try:
        yield
    finally:
        _LOCATIONS.reset(token)


def training_data_dir(dataset: dict[str, Any], run_dir: Path) -> Path:
    """The folder the run's client served from (named in the client's manifest, never in the server's files),
    or the `--data` folder of its kind, checked against the offer recorded with the model (`dataset`)."""
    locations = _LOCATIONS.get() or DataLocations()
    moved = locations.masked if dataset["representation"] == "masked" else locations.prepared
    if moved is None:
        return _existing_folder(_client_data_dir(run_dir), f"the data folder {run_dir} trained on")
    info = inspect_dataset(moved)
    recorded = (*(dataset[name] for name in _SAME_DATA_FIELDS), dataset["train_rows"] + dataset["holdout_rows"])
    if (*(getattr(info, name) for name in _SAME_DATA_FIELDS), info.num_train_rows) != recorded:
        raise InputError(
            f"--data {moved} is not the data {run_dir} trained on ({dict(zip(_SAME_DATA_FIELDS, recorded))} then); "
            "give the folder it trained on"
        )
    return moved


_SAME_DATA_FIELDS = ("representation", "channels", "size", "num_classes")  # and the private split's rows


def run_fingerprint(run_dir: Path) -> dict[str, str]:
    """What an attack on this run attacks: sha256 of the checkpoint file and of the data manifests (the folder the
    run trained on, for masked runs the prepared originals, and a `--public` folder), so a record made before
    retraining, re-masking, re-preparing or with other attacker faces is known to be stale."""
    checkpoint = check_run_dir(run_dir) / MODEL_FILE
    data_dir = training_data_dir(torch.load(checkpoint, map_location="cpu", weights_only=True)["dataset"], run_dir)
    prepared_dir = prepared_folder_of(data_dir)
    data = hashlib.sha256()
    for folder in dict.fromkeys([data_dir, prepared_dir, attacker_faces_dir(prepared_dir)]):
        data.update((folder / MANIFEST_NAME).read_bytes())
    return {"checkpoint_sha256": _file_sha256(checkpoint), "data_sha256": data.hexdigest()}


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_run(run_dir: str | Path, device: torch.device | str = "cpu") -> RunData:
    folder = check_run_dir(run_dir)
    summary = read_summary(folder)
    model, saved = load_model(folder / MODEL_FILE, device=device)
    dataset = saved["dataset"]
    manifest = read_client_manifest(folder / CLIENT_RECORD_DIR)
    data_dir = training_data_dir(dataset, folder)
    prepared_dir = prepared_folder_of(data_dir)
    private = read_images(prepared_dir, "private")
    masked = None
    if dataset["representation"] == "masked":
        masked = read_masked_aligned(data_dir, private.image_ids)
    sent = SentRecord(
        plan=client_plan(manifest),
        secret_seed=int(manifest["secret_seed"]),
        windows=tuple(sent_windows(folder / CLIENT_RECORD_DIR)),
        train_rows=torch.nonzero(private.image_ids % int(manifest["holdout_modulo"]) != 0).flatten(),
        holdout_rows_sent=holdout_rows_sent(folder / CLIENT_RECORD_DIR),
        stream=client_stream_order(manifest),
    )
    return RunData(
        run_dir=folder,
        model=model,
        summary=summary,
        train_config=saved["config"],
        representation=dataset["representation"],
        public_masking=dict(saved.get("public_masking") or {}),
        prepared_dir=prepared_dir,
        private=private,
        masked=masked,
        public=read_attacker_faces(prepared_dir, private),
        sent=sent,
    )


def attacker_faces_dir(prepared_dir: Path) -> Path:
    """The prepared folder whose public split the attacker has: the `--public` folder, or the run's own."""
    return (_LOCATIONS.get() or DataLocations()).public or prepared_dir


def read_attacker_faces(prepared_dir: Path, private: LabelledImages) -> LabelledImages:
    """The attacker's public faces, checked to be prepared like the private originals (a `--public` folder must be)."""
    folder = attacker_faces_dir(prepared_dir)
    if folder == prepared_dir:
        return read_images(prepared_dir, "public")
    public = read_images(folder, "public")
    if public.images.shape[1:] != private.images.shape[1:]:
        channels, height, width = private.images.shape[1:]
        raise InputError(
            f"--public {folder} holds faces of shape {tuple(public.images.shape[1:])}, not {(channels, height, width)} "
            f"like the run's; prepare it with --size {height} and the same --color"
        )
    return public


def _client_data_dir(run_dir: Path) -> Path:
    manifest = read_client_manifest(run_dir / CLIENT_RECORD_DIR)
    if "data_dir" not in manifest:
        raise InputError(
            f"{run_dir / CLIENT_RECORD_DIR} has no client manifest: the run was not trained through the client; "
            "re-train it with this version"
        )
    return Path(manifest["data_dir"])


def prepared_folder_of(data_dir: Path) -> Path:
    """The prepared folder holding the original faces: data_dir itself, or the source of a masked folder."""
    manifest_path = data_dir / MANIFEST_NAME
    if not manifest_path.is_file():
        raise InputError(f"{data_dir} has no {MANIFEST_NAME}; the run's data folder was moved or deleted")
    manifest = read_json(manifest_path, "make the data folder again (`hybridmask prepare` or `mask`)")
    if manifest.get("kind") != "masked":
        return data_dir
    moved = (_LOCATIONS.get() or DataLocations()).prepared
    if moved is not None:
        prepared = read_json(moved / MANIFEST_NAME, f"--data {moved} must be a prepared folder")
        if prepared.get("source_fingerprint") != manifest.get("source_fingerprint"):
            raise InputError(f"--data {moved} holds other faces than {data_dir} was masked from; give that folder")
        return moved
    source = manifest.get("source_data_dir")
    if not source:
        raise InputError(
            f"{manifest_path} names no source_data_dir; re-mask the prepared folder with `hybridmask mask`"
        )
    return _existing_folder(Path(source), f"the prepared folder {data_dir} was masked from")


def read_images(data_dir: Path, split: str) -> LabelledImages:
    """One split of a prepared folder as float images in [0, 1]."""
    if not any(split_dir(data_dir, split).glob("part-*.parquet")):
        raise InputError(f"{data_dir} has no {split!r} split; the evaluation needs the prepared folder's {split} faces")
    table = read_split(data_dir, split, ["image_id", "pixels", "height", "width", "channels", "label"]).to_pydict()
    shapes = set(zip(table["height"], table["width"], table["channels"]))
    if len(shapes) != 1:
        raise InputError(f"{data_dir}/{split} mixes image sizes {sorted(shapes)}; prepare all faces at one size")
    shape = shapes.pop()
    pixels = np.stack([decode_pixels(row, *shape) for row in table["pixels"]])
    return LabelledImages(
        images=torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div(255.0).contiguous(),
        labels=torch.tensor(table["label"], dtype=torch.long),
        image_ids=torch.tensor(table["image_id"], dtype=torch.long),
    )


def read_masked_aligned(data_dir: Path, image_ids: torch.Tensor) -> torch.Tensor:
    """The masked private rows [N, K, h, w] float32, in the order of `image_ids` (the originals' order)."""
    table = read_split(
        data_dir, "private", ["image_id", "features", "num_channels", "grid_height", "grid_width"]
    ).to_pydict()
    row_of = {image_id: row for row, image_id in enumerate(table["image_id"])}
    missing = [int(i) for i in image_ids.tolist() if int(i) not in row_of]
    if missing:
        raise InputError(
            f"{data_dir} lacks the masked rows of private images {missing[:5]}; it was masked from other data"
        )
    order = [row_of[int(i)] for i in image_ids.tolist()]
    features = [
        decode_features(
            table["features"][row], table["num_channels"][row], table["grid_height"][row], table["grid_width"][row]
        )
        for row in order
    ]
    return torch.from_numpy(np.stack(features).astype(np.float32))


def _existing_folder(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise InputError(f"{what} ({path}) does not exist here; pass --data with the folder where it lies now")
    return path
