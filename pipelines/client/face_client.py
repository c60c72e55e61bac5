"""The client: the data owner's side of training. It holds the faces (raw, or masked with its key), the names and
a secret mixing seed, and answers the server's narrow requests (`trainers.window_source.WindowSource`).

Mixing defences get mixtures made on demand with the k of each request (never pools made in advance for every
k), `ppfr_fd` gets masked single faces, `none` raw faces. What leaves: model inputs, integer labels, MixUp
weights, shapes and counts. What stays, in the client's record folder (RUN/client when one machine plays both
roles): the client manifest (data folder, names by label, the secret seed, the plan) and `sent.jsonl`, one line
per answered request, from which the evaluation regenerates exactly what the server held.

The private split is decoded into memory once when that takes at most `stream_above_mb` (LFW at 112 px: about
1.4 GB); a larger one streams through Ray Data instead (`streamed_rows`), an epoch at a time, and its epoch order
shuffles rows within chunks of the stream rather than across the whole split. The client's manifest records which
(`row_order`), so the judge regenerates the same windows.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch

from common.errors import InputError
from masking.windows import StreamOrder, WindowPlan, WindowRequest, window_mixtures
from pipelines.client.streamed_rows import StreamedRows, decoded_size_mb, index_shards, read_holdout
from trainers.batches import batch_to_input, flipped_input
from trainers.client_record import CLIENT_MANIFEST, SENT_LOG, read_client_manifest
from trainers.dataset_info import inspect_dataset
from trainers.schema import PAIRS_NAME, read_split
from trainers.window_source import ActorWindowSource, ClientOffer, SentBatch, VerificationSet

CLIENT_RESOURCE = "client"  # the custom Ray resource of the data owner's node (pipelines/cluster/cluster.yaml)


@dataclass(frozen=True)
class ClientConfig:
    data_dir: str  # the client's prepared (pixel defences) or masked folder
    record_dir: str  # where the client keeps its manifest and the log of what it sent
    holdout_modulo: int  # private rows with image_id % holdout_modulo == 0 are held out, never trained on
    stream_above_mb: float = 4096.0  # decode the private split into memory up to this size; stream it above
    stream_chunk_rows: int = 4096  # a streamed epoch shuffles rows within chunks of this many


def _holdout_mask(image_ids: np.ndarray, modulo: int) -> np.ndarray:
    return image_ids % modulo == 0


class FaceClient:
    """The client's state and its answers. Plain Python, so tests call it directly; `start_client` makes it an actor."""

    def __init__(self, config: ClientConfig) -> None:
        self._record_dir = Path(config.record_dir)
        self._record_dir.mkdir(parents=True, exist_ok=True)
        self._info = inspect_dataset(config.data_dir)
        saved = read_client_manifest(self._record_dir)
        self._secret_seed = int(saved.get("secret_seed", secrets.randbits(62)))
        self._plan: WindowPlan | None = None
        self._lock = threading.Lock()
        self._stream: StreamedRows | None = None
        self._order: StreamOrder | None = None
        if decoded_size_mb(config.data_dir, self._info.representation) > config.stream_above_mb:
            self._index = index_shards(config.data_dir, config.holdout_modulo, config.stream_chunk_rows)
            self._order = self._index.order
            self._stream = StreamedRows(self._index, self._info.representation, self._secret_seed, _on_client_node())
            self._labels = self._index.labels
            self._holdout_count = self._index.holdout_rows
        else:
            self._load_into_memory(config)
        table = read_split(config.data_dir, "private", ["label", "identity"]).to_pydict()
        names = dict(zip(table["label"], table["identity"]))
        self._manifest = {
            "data_dir": self._info.data_dir,
            "holdout_modulo": config.holdout_modulo,
            "secret_seed": self._secret_seed,
            "row_order": {"streamed": asdict(self._order)} if self._order else {"whole_split": True},
            "names_by_label": {str(label): names[label] for label in sorted(names)},
        }
        self._write_manifest()

    def _load_into_memory(self, config: ClientConfig) -> None:
        table = read_split(config.data_dir, "private").to_pydict()
        held_out = torch.from_numpy(_holdout_mask(np.asarray(table["image_id"]), config.holdout_modulo))
        inputs = batch_to_input(table, self._info.representation)
        labels = torch.as_tensor(np.asarray(table["label"], dtype=np.int64))
        self._rows, self._labels = inputs[~held_out], labels[~held_out]
        self._holdout_rows, self._holdout_labels = inputs[held_out], labels[held_out]
        self._holdout_count = len(self._holdout_rows)

    def _write_manifest(self) -> None:
        path = self._record_dir / CLIENT_MANIFEST
        path.write_text(json.dumps(self._manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    def _log(self, record: dict[str, Any]) -> None:
        with self._lock, (self._record_dir / SENT_LOG).open("a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")

    def offer(self) -> ClientOffer:
        info = self._info
        verify = read_split(info.data_dir, "verify", ["image_id"]).num_rows
        pairs = pq.read_metadata(Path(info.data_dir) / PAIRS_NAME).num_rows
        return ClientOffer(
            representation=info.representation,
            channels=info.channels,
            size=info.size,
            num_classes=info.num_classes,
            train_rows=len(self._labels),
            holdout_rows=self._holdout_count,
            verify_rows=verify,
            verify_pairs=pairs,
            synthetic_data=info.synthetic_data,
            masking=dict(info.manifest.get("masking", {})),
        )

    def accept_plan(self, plan: WindowPlan) -> None:
        """The server's batch sizes; every later window is cut by this plan."""
        self._plan = plan
        self._manifest["plan"] = asdict(plan)
        self._write_manifest()

    def window(self, request: WindowRequest) -> list[SentBatch]:
        if self._plan is None:
            raise RuntimeError("the server asked for a window before it sent its plan (accept_plan)")
        if request.k < 1 or request.k > self._plan.batch_size:
            raise InputError(f"k = {request.k} must be from 1 to the batch size {self._plan.batch_size}")
        rows = self._rows if self._stream is None else self._stream.epoch(request.epoch)
        batches = window_mixtures(rows, self._labels, self._plan, self._secret_seed, request, self._order)
        self._log({"sent": "window", **asdict(request)})
        return [SentBatch(inputs=b.mixed, labels=b.labels, weights=b.weights) for b in batches]

    def holdout(self, count: int) -> SentBatch:
        """Clean, unmixed held-out faces: the adaptive defence's validation signal needs them (logged)."""
        if self._stream is None:
            rows, labels = self._holdout_rows[:count], self._holdout_labels[:count]
        else:
            rows, labels = read_holdout(self._index, self._info.representation, count)
        self._log({"sent": "holdout", "rows": len(rows)})
        return SentBatch(inputs=rows, labels=labels[:, None], weights=torch.ones(len(rows), 1))

    def verification(self) -> VerificationSet:
        """The verify split, unmixed (masked for masked defences): other identities than the training set."""
        table = read_split(self._info.data_dir, "verify").to_pydict()
        pairs = pq.read_table(Path(self._info.data_dir) / PAIRS_NAME).to_pydict()
        position = {image_id: row for row, image_id in enumerate(table["image_id"])}
        self._log({"sent": "verification", "rows": len(table["image_id"])})
        return VerificationSet(
            inputs=batch_to_input(table, self._info.representation),
            mirrored=flipped_input(table, self._info.representation),
            left=torch.tensor([position[i] for i in pairs["left_image_id"]]),
            right=torch.tensor([position[i] for i in pairs["right_image_id"]]),
            is_same=torch.tensor(pairs["is_same"], dtype=torch.bool),
        )


def _on_client_node() -> dict[str, Any]:
    """Ray options that keep a task on the data owner's node, where the cluster has one."""
    from trainers.local_ray import cluster_totals

    return {"resources": {CLIENT_RESOURCE: 0.01}} if cluster_totals().get(CLIENT_RESOURCE, 0) > 0 else {}


def start_client(config: ClientConfig) -> ActorWindowSource:
    """The client as a Ray actor, on the node with the `client` resource when the cluster has one. Its work counts
    against `scale.data_cpus`, so it reserves no CPU; "DEFAULT" scheduling keeps it out of an enclosing placement
    group (a Tune trial's), which has no `client` resource."""
    import ray

    options: dict[str, Any] = {"num_cpus": 0, "max_concurrency": 4, "scheduling_strategy": "DEFAULT"}
    options.update(_on_client_node())
    return ActorWindowSource(ray.remote(FaceClient).options(**options).remote(config))
