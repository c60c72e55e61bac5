"""A client whose private split is above its memory threshold streams the rows through Ray Data: it sends the windows
a client holding every row would send under the same epoch order, holds a few chunks of rows, and answers a replayed
window identically. (A whole run from a streamed client: tests/test_client_boundary.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from masking.windows import StreamOrder, WindowPlan, WindowRequest, epoch_order, window_mixtures
from pipelines.client.face_client import ClientConfig, FaceClient
from pipelines.client.streamed_rows import READ_AHEAD_CHUNKS
from trainers.window_source import SentBatch

PLAN = WindowPlan(batch_size=16, window_batches=2, batches_per_epoch=5, workers=2)
CHUNK_ROWS = 16  # one batch: a window (2 workers x 2 batches of 16) spans 4 or 5 chunks


def test_a_stream_order_is_a_permutation_that_shuffles_only_within_chunks_and_changes_per_epoch() -> None:
    order = StreamOrder(shard_rows=(50, 0, 70, 30), chunk_rows=40)
    first, second = order.order(7, epoch=0), order.order(7, epoch=1)
    assert sorted(first.tolist()) == list(range(150)) and not torch.equal(first, second)
    stream = order.stream(7, epoch=0)
    for start in range(0, 150, 40):  # each chunk of the order holds exactly that chunk of the stream
        assert set(first[start : start + 40].tolist()) == set(stream[start : start + 40].tolist())
    assert torch.equal(order.order(7, epoch=0), first), "the same seed and epoch give the same order"


def test_a_client_holding_every_row_keeps_its_whole_split_permutation() -> None:
    """The order of runs trained before streamed clients existed, which their judges regenerate."""
    expected = torch.randperm(100, generator=torch.Generator().manual_seed((5 * 1_000_003 + 2 + 1) % (2**61 - 1)))
    assert torch.equal(epoch_order(100, 5, 2), expected)


@pytest.fixture(scope="module")
def streamed(ray_cluster, masked_synthetic_faces: Path, tmp_path_factory: pytest.TempPathFactory) -> FaceClient:
    config = ClientConfig(
        str(masked_synthetic_faces), str(tmp_path_factory.mktemp("streamed")), 10, stream_above_mb=0.0,
        stream_chunk_rows=CHUNK_ROWS,
    )  # fmt: skip
    client = FaceClient(config)
    client.accept_plan(PLAN)
    return client


@pytest.fixture(scope="module")
def held(masked_synthetic_faces: Path, tmp_path_factory: pytest.TempPathFactory) -> FaceClient:
    return FaceClient(ClientConfig(str(masked_synthetic_faces), str(tmp_path_factory.mktemp("held")), 10))


def same_batches(first, second) -> bool:
    """Equal values, and the same memory layout (channels_last: CPU convolutions are several times slower without)."""
    return all(
        torch.equal(a.inputs, b.inputs)
        and a.inputs.stride() == b.inputs.stride()
        and torch.equal(a.labels, b.labels)
        and torch.equal(a.weights, b.weights)
        for a, b in zip(first, second, strict=True)
    )


def test_a_streamed_client_sends_what_a_client_holding_every_row_sends_under_its_order(streamed, held) -> None:
    assert streamed._stream is not None and held._stream is None
    assert streamed.offer() == held.offer(), "the server cannot tell the two clients apart"
    for epoch in (0,):  # one epoch: the next ones read the same way, in another shard and chunk order
        for window in range(PLAN.windows_per_epoch):
            for rank in range(PLAN.workers):
                request = WindowRequest(epoch, window, rank, k=3)
                expected = window_mixtures(
                    held._rows, held._labels, PLAN, streamed._secret_seed, request, streamed._order
                )
                sent = [SentBatch(b.mixed, b.labels, b.weights) for b in expected]
                assert same_batches(streamed.window(request), sent), request
    assert torch.equal(streamed.holdout(8).inputs, held.holdout(8).inputs)


def test_a_streamed_client_holds_a_few_chunks_and_answers_a_replay_by_reading_the_epoch_again(streamed, held) -> None:
    stream = streamed._stream
    window_span = PLAN.workers * PLAN.window_batches * PLAN.batch_size
    bound = window_span + (READ_AHEAD_CHUNKS + 3) * CHUNK_ROWS  # the window's chunks, one before, the read-ahead
    assert stream.most_rows_held <= bound < len(streamed._labels), "it held the whole split"
    request = WindowRequest(epoch=0, window=0, rank=0, k=3)  # the test before read epoch 0 to its end
    first = window_mixtures(held._rows, held._labels, PLAN, streamed._secret_seed, request, streamed._order)
    reads = stream.chunks_read
    sent = [SentBatch(b.mixed, b.labels, b.weights) for b in first]
    assert same_batches(streamed.window(request), sent) and stream.chunks_read > reads, "window 0's chunks were dropped"
