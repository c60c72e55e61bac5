"""Mixing throughput: the client actor serving windows against the old in-worker mixing, images/s side by side.

One masked synthetic data set (64 px by default, like the Yale B runs), one plan (2 workers, batch 32, windows
of 4 batches), k = 2 and 4. Timed, each the median of several rounds:

- in-worker (before the client/server boundary): what a Train worker did per batch, decode the masked shard
  rows it received (float16 bytes) and mix them with `masking.mixup.mixup`;
- client, in-process: `FaceClient.window` called directly (mixing on demand, no Ray);
- client actor, 2 workers: two Ray actors standing in for the Train workers ask one client actor for their
  windows at the same time, as training does; the rate counts images delivered to them, transfer included;
- train step: images/s one worker trains on (tiny backbone, same inputs), the rate the client must keep up with.

    python -m benchmarks.client_mixing [--size 64] [--rounds 5] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from benchmarks.faces import DEMO_KEY
from masking.mixup import mixup
from masking.windows import WindowPlan, WindowRequest
from pipelines.client.face_client import ClientConfig, FaceClient
from pipelines.client.masking_io import mask_dataset
from pipelines.data.prepare import PrepareConfig
from pipelines.data.synth import prepare_synthetic
from trainers.batches import features_to_input
from trainers.config import TrainConfig
from trainers.config_io import load_config
from trainers.loop import build_optimizer, train_step
from trainers.model import build_face_model
from trainers.schema import read_split
from trainers.window_source import SentBatch

WORKERS, BATCH, WINDOW_BATCHES = 2, 32, 4


def _median_rate(images: int, work: Callable[[], object], rounds: int) -> float:
    seconds = []
    for _ in range(rounds + 1):  # the first round warms up
        started = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - started)
    return images / statistics.median(seconds[1:])


def in_worker_rate(masked_dir: Path, k: int, rounds: int) -> float:
    """Decode and mix one epoch's worth of one worker's shard batches, as the loop did before the client."""
    table = read_split(masked_dir, "private").to_pydict()
    batches = [
        {name: np.asarray(values[start : start + BATCH], dtype=object) for name, values in table.items()}
        for start in range(0, len(table["label"]) - BATCH + 1, BATCH)
    ]
    generator = torch.Generator().manual_seed(0)

    def work() -> None:
        for batch in batches:
            labels = torch.from_numpy(np.array(batch["label"], dtype=np.int64))
            mixup(features_to_input(batch), labels, k, 1.0, generator)

    return _median_rate(len(batches) * BATCH, work, rounds)


def client_rate(client: FaceClient, plan: WindowPlan, k: int, rounds: int) -> float:
    requests = [WindowRequest(0, window, 0, k) for window in range(plan.windows_per_epoch)]
    images = plan.batches_per_epoch * plan.batch_size
    return _median_rate(images, lambda: [client.window(request) for request in requests], rounds)


def actor_rate(config: ClientConfig, plan: WindowPlan, k: int, rounds: int) -> float:
    """Two stand-in workers pull their windows from one client actor concurrently; images delivered per second."""
    import ray

    from pipelines.client.face_client import start_client

    class StandInWorker:
        def pull(self, source, rank: int, epoch: int) -> int:
            return sum(
                len(batch.inputs)
                for window in range(plan.windows_per_epoch)
                for batch in source.window(WindowRequest(epoch, window, rank, k))
            )

    source = start_client(config)
    source.accept_plan(plan)
    workers = [ray.remote(num_cpus=0)(StandInWorker).remote() for _ in range(WORKERS)]
    epochs = iter(range(10_000))

    def work() -> None:
        epoch = next(epochs)
        ray.get([worker.pull.remote(source, rank, epoch) for rank, worker in enumerate(workers)])

    rate = _median_rate(WORKERS * plan.batches_per_epoch * plan.batch_size, work, rounds)
    for actor in (*workers, source.actor):
        ray.kill(actor)
    return rate


def train_step_rate(client: FaceClient, plan: WindowPlan, k: int, rounds: int) -> float:
    config = load_config(
        TrainConfig, None, ["defense.name=hybrid_fixed", f"defense.k={k}", f"optim.batch_size={BATCH}"]
    )
    model = build_face_model(config, client.offer()).train()
    optimizer = build_optimizer(config, model)
    batches: list[SentBatch] = client.window(WindowRequest(0, 0, 0, k))
    device = torch.device("cpu")
    return _median_rate(
        len(batches) * BATCH, lambda: [train_step(model, optimizer, b, device) for b in batches], rounds
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--identities", type=int, default=60)
    parser.add_argument("--images-per-identity", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads in this process (one worker's share)")
    parser.add_argument("--json", help="write the table as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import ray

    with tempfile.TemporaryDirectory() as folder:
        prepared, masked = Path(folder) / "prepared", Path(folder) / "masked"
        prepare_synthetic(prepared, args.identities, args.images_per_identity, options=PrepareConfig(size=args.size))
        mask_dataset(prepared, DEMO_KEY, masked, progress=False)
        config = ClientConfig(str(masked), str(Path(folder) / "client"), holdout_modulo=10)
        client = FaceClient(config)
        per_worker = client.offer().train_rows // WORKERS // BATCH
        plan = WindowPlan(BATCH, WINDOW_BATCHES, per_worker, WORKERS)
        client.accept_plan(plan)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        rows = []
        for k in (2, 4):
            rows.append(
                {
                    "k": k,
                    "in_worker": in_worker_rate(masked, k, args.rounds),
                    "client_in_process": client_rate(client, plan, k, args.rounds),
                    "client_actor_2_workers": actor_rate(config, plan, k, args.rounds),
                    "train_step_one_worker": train_step_rate(client, plan, k, args.rounds),
                }
            )
        ray.shutdown()
    print(
        f"mixing throughput, images/s (median of {args.rounds} rounds), masked {args.size}px synthetic faces, "
        f"batch {BATCH}, windows of {WINDOW_BATCHES} batches, {WORKERS} workers, {args.threads} torch thread(s)"
    )
    print(
        f"{'k':>2} {'in-worker':>10} {'client':>10} {'client actor':>13} {'÷ in-worker':>11} {'train step':>11} {'feeds':>6}"
    )
    for row in rows:
        feeds = row["client_actor_2_workers"] / (WORKERS * row["train_step_one_worker"])
        row["actor_over_in_worker"] = row["client_actor_2_workers"] / row["in_worker"]
        row["feeds_2_workers"] = feeds
        print(
            f"{row['k']:>2} {row['in_worker']:>10.0f} {row['client_in_process']:>10.0f} "
            f"{row['client_actor_2_workers']:>13.0f} {row['actor_over_in_worker']:>11.2f} "
            f"{row['train_step_one_worker']:>11.0f} {feeds:>5.1f}x"
        )
    print("feeds: the actor's rate over what 2 workers train on (above 1: the client keeps them fed)")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "settings": vars(args)}, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
