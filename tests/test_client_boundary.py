"""The client/server boundary: what a Train worker receives, and what the server side writes to disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from masking.windows import WindowPlan, WindowRequest, window_mixtures, window_row_indices
from pipelines.client.face_client import ClientConfig, FaceClient
from tests.server_side_search import leaks, private_secrets, server_side_files
from trainers.client_record import read_client_manifest, sent_windows
from trainers.k_source import WindowReport
from trainers.schema import read_split

PLAN = WindowPlan(batch_size=16, window_batches=2, batches_per_epoch=5, workers=2)


@pytest.fixture()
def client(masked_synthetic_faces: Path, tmp_path: Path) -> FaceClient:
    face_client = FaceClient(ClientConfig(str(masked_synthetic_faces), str(tmp_path / "client"), holdout_modulo=10))
    face_client.accept_plan(PLAN)
    return face_client


@pytest.mark.parametrize("k", [2, 4])
def test_every_row_sent_for_a_mixing_defense_mixes_exactly_k_distinct_faces_on_the_simplex(client, k) -> None:
    for window in range(PLAN.windows_per_epoch):
        for batch in client.window(WindowRequest(epoch=0, window=window, rank=1, k=k)):
            assert batch.labels.shape == batch.weights.shape == (PLAN.batch_size, k)
            assert (batch.weights > 0).all(), "a zero weight would send fewer than k faces"
            assert torch.allclose(batch.weights.sum(dim=1), torch.ones(PLAN.batch_size, dtype=batch.weights.dtype))
            assert batch.inputs.shape[0] == PLAN.batch_size


def test_the_mixtures_hold_k_distinct_training_rows_and_are_not_any_single_face(client) -> None:
    rows, labels = client._rows, client._labels
    request = WindowRequest(epoch=1, window=0, rank=0, k=3)
    for mixed in window_mixtures(rows, labels, PLAN, client._secret_seed, request):
        assert all(len(set(partners.tolist())) == 3 for partners in mixed.partners)
        rebuilt = torch.einsum("bk,bk...->b...", mixed.weights, rows[mixed.partners])
        torch.testing.assert_close(mixed.mixed, rebuilt, rtol=1e-5, atol=1e-5)
        distance_to_nearest_face = (
            torch.cdist(mixed.mixed.flatten(1), rows.flatten(1), compute_mode="donot_use_mm_for_euclid_dist")
            .min(dim=1)
            .values
        )
        assert (distance_to_nearest_face > 1e-3).all(), "a row identical to one face was sent unmixed"


def test_a_replayed_window_is_identical_and_another_window_is_not(client) -> None:
    request = WindowRequest(epoch=2, window=1, rank=0, k=2)
    first, replay = client.window(request), client.window(request)
    other = client.window(WindowRequest(epoch=2, window=1, rank=1, k=2))
    for a, b in zip(first, replay):
        assert torch.equal(a.inputs, b.inputs) and torch.equal(a.labels, b.labels) and torch.equal(a.weights, b.weights)
    assert not torch.equal(first[0].inputs, other[0].inputs)


def test_workers_of_one_epoch_get_disjoint_rows(client) -> None:
    seen = [
        set(indices.tolist())
        for rank in range(PLAN.workers)
        for window in range(PLAN.windows_per_epoch)
        for indices in window_row_indices(
            PLAN, len(client._rows), client._secret_seed, WindowRequest(0, window, rank, 2)
        )
    ]
    union = set().union(*seen)
    assert len(union) == sum(len(rows) for rows in seen) == PLAN.workers * PLAN.batches_per_epoch * PLAN.batch_size


def test_what_is_sent_carries_no_names_and_the_client_keeps_them(client, masked_synthetic_faces, tmp_path) -> None:
    offer = client.offer()
    names = set(read_split(masked_synthetic_faces, "private", ["identity"]).column("identity").to_pylist())
    assert str(masked_synthetic_faces) not in json.dumps(vars(offer), default=str)
    assert not any(name in json.dumps(vars(offer), default=str) for name in names)
    sent = client.window(WindowRequest(0, 0, 0, 2))[0]
    assert sent.labels.dtype == torch.long and set(vars(sent)) == {"inputs", "labels", "weights"}
    manifest = read_client_manifest(tmp_path / "client")
    assert set(manifest["names_by_label"].values()) == names
    assert sent_windows(tmp_path / "client") == [WindowRequest(0, 0, 0, 2)]


def test_a_k_larger_than_the_batch_is_refused(client) -> None:
    from common.errors import InputError

    with pytest.raises(InputError, match="batch size"):
        client.window(WindowRequest(0, 0, 0, PLAN.batch_size + 1))


STREAM_CHUNK_ROWS = 16


@pytest.fixture(scope="module")
def mixing_run(ray_cluster, masked_synthetic_faces: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 2-worker hybrid run whose client streams its rows through Ray Data (`scale.stream_above_mb=0`): the
    boundary holds for that client too, and the clients holding every row train in every other training test."""
    from pipelines.runs.experiment_config import load_experiment
    from pipelines.runs.training import run_training

    run_dir = tmp_path_factory.mktemp("boundary") / "hybrid"
    overrides = ["defense.name=hybrid_fixed", "defense.k=2", "optim.epochs=1", "scale.workers=2"]
    streamed = ["scale.stream_above_mb=0", f"scale.stream_chunk_rows={STREAM_CHUNK_ROWS}"]
    config = load_experiment(
        None, [*overrides, *streamed, "optim.batch_size=16", "model.embedding_size=32", "window_batches=2"]
    )
    run_training(masked_synthetic_faces, run_dir, config)
    return run_dir


def test_the_judge_regenerates_the_windows_of_a_run_whose_client_streamed(mixing_run: Path) -> None:
    from evaluation.run_data import load_run
    from evaluation.server_view import sent_samples
    from trainers.client_record import CLIENT_RECORD_DIR

    assert (
        read_client_manifest(mixing_run / CLIENT_RECORD_DIR)["row_order"]["streamed"]["chunk_rows"] == STREAM_CHUNK_ROWS
    )
    run = load_run(mixing_run)
    assert run.sent is not None and run.sent.stream is not None
    samples, plan = sent_samples(run), run.sent.plan
    assert samples.partners.shape == (plan.workers * plan.batches_per_epoch * plan.batch_size, 2)
    assert set(samples.partners.flatten().tolist()) <= set(run.sent.train_rows.tolist())


def test_no_file_the_server_side_wrote_holds_a_name_a_client_path_or_the_key(
    mixing_run: Path, synthetic_faces: Path, masked_synthetic_faces: Path, client_key: Path
) -> None:
    from pipelines.client.keyfile import read_key_file

    forbidden = private_secrets([synthetic_faces, masked_synthetic_faces], read_key_file(client_key))
    files = server_side_files(mixing_run)
    assert {"model.pt", "summary.json", "config.yaml", "metrics.jsonl", "client_offer.json"} <= {p.name for p in files}
    assert any(path.name == "state.pt" for path in files), "the Ray Train storage (checkpoints) must be searched too"
    found = leaks(mixing_run, files, forbidden)
    assert not found, "\n".join(found[:20])
    client_side = b"".join(path.read_bytes() for path in (mixing_run / "client").iterdir())
    assert b"id_0000" in client_side, "the client's record keeps the names (the search above can find them)"


def test_the_mixing_run_was_sent_only_windows_of_k_mixtures(mixing_run: Path) -> None:
    from trainers.client_record import read_sent_log

    sent = read_sent_log(mixing_run / "client")
    kinds = {record["sent"] for record in sent}
    assert kinds == {"window", "verification"}, "a fixed-k run asks for no unmixed held-out faces"
    assert {record["k"] for record in sent if record["sent"] == "window"} == {2}
    assert {record["rank"] for record in sent if record["sent"] == "window"} == {0, 1}


def test_the_train_workers_have_no_data_path_but_the_client() -> None:
    """The worker's modules read no shard and open no Ray dataset: the WindowSource is their only data."""
    from tests.test_architecture import REPO_ROOT, imported_top_levels

    forbidden = {"pyarrow", "pandas"}
    for module in ("loop.py", "run.py", "window_source.py", "model.py", "checkpoints.py"):
        path = REPO_ROOT / "trainers" / module
        assert not imported_top_levels(path) & forbidden, f"trainers/{module} reads data files"
        text = path.read_text(encoding="utf-8")
        for reader in ("read_split", "read_parquet", "get_dataset_shard", "ray.data", "trainers.schema"):
            assert reader not in text, f"trainers/{module} uses {reader}: a data path around the client"


class RecordingK:
    """A KSource that gives one k and keeps the window reports."""

    wants_clean_validation = False

    def __init__(self, k: int) -> None:
        self.k = k
        self.reports: list[WindowReport] = []

    def k_for_window(self, window_index: int) -> int:
        return self.k

    def report_window(self, report: WindowReport) -> None:
        self.reports.append(report)

    def finish(self) -> None:
        return None


def test_the_loop_steps_train_on_the_clients_window_and_report_the_epoch(client, monkeypatch) -> None:
    """The worker's window and end-of-epoch steps, called without Ray Train, with the client in-process."""
    import ray.train

    from trainers.config import TrainConfig
    from trainers.config_io import load_config
    from trainers.loop import WorkerConfig, WorkerState, build_optimizer, end_epoch, train_window
    from trainers.model import build_face_model

    overrides = ["defense.name=hybrid_fixed", "defense.k=2", "optim.batch_size=16", "window_batches=2"]
    config = load_config(TrainConfig, None, [*overrides, "model.embedding_size=32", "optim.epochs=2"])
    offer, k_source = client.offer(), RecordingK(3)
    worker = WorkerConfig(config, offer, PLAN, k_source, client, torch_threads=1)
    model = build_face_model(config, offer)
    optimizer = build_optimizer(config, model)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=2)
    state = WorkerState(model, model, optimizer, scheduler, torch.device("cpu"), rank=1, world=2)
    before = [p.detach().clone() for p in model.parameters()]

    record = train_window(worker, state, epoch=1, window=2)
    assert record["k"] == 3 and len(record["losses"]) == 1 and record["images"] == PLAN.batch_size  # the last window
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters())), "the step did not train"
    assert [r.window_index for r in k_source.reports] == [PLAN.windows_per_epoch + 2]
    assert sent_windows(client._record_dir) == [WindowRequest(1, 2, 1, 3)]

    reported = []
    monkeypatch.setattr(ray.train, "report", lambda metrics, **_: reported.append(metrics))
    metrics = end_epoch(worker, state, epoch=1, windows=[record], seconds=2.0)
    assert metrics["epoch"] == 2 and metrics["mean_k"] == 3 and metrics["images_per_second"] == PLAN.batch_size
    assert reported == [metrics] and state.history == [metrics]
    assert "verification_accuracy" not in metrics, "only rank 0 verifies"
