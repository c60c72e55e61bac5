"""A client that holds its private split against one that streams it through Ray Data: the same training run twice,
side by side in one Ray instance, images/s per Train worker in every epoch.

The streamed client is forced (`scale.stream_above_mb=0`); everything else is the config given. Both runs train on
the same masked folder with the same seed, so only the client's way of reading differs (and its epoch order: whole
split against shards and chunks, see `masking.windows.StreamOrder`).

    python -m benchmarks.client_streaming MASKED_DIR [--epochs 4] [--workers 2] [--defense ppfr_fd] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from pipelines.runs.experiment_config import load_experiment
from pipelines.runs.training import run_training
from trainers.local_ray import hide_state_api_warnings
from trainers.run import METRICS_FILE


def images_per_worker(run_dir: Path, workers: int) -> list[float]:
    epochs = [json.loads(line) for line in (run_dir / METRICS_FILE).read_text(encoding="utf-8").splitlines()]
    return [epoch["images_per_second"] / workers for epoch in epochs]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("masked_dir", type=Path)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--defense", default="ppfr_fd")
    parser.add_argument("--out", type=Path, help="keep the two runs here (default: a temporary folder)")
    args = parser.parse_args(argv)
    hide_state_api_warnings()  # as the command line does, before Ray is imported
    out = args.out or Path(tempfile.mkdtemp(prefix="client_streaming-"))
    common = [f"defense.name={args.defense}", f"optim.epochs={args.epochs}", f"scale.workers={args.workers}"]
    rates = {}
    for name, extra in (("held in memory", []), ("streamed (Ray Data)", ["scale.stream_above_mb=0"])):
        run_dir = out / name.split()[0]
        run_training(args.masked_dir, run_dir, load_experiment(None, [*common, *extra]), quiet=True)
        rates[name] = images_per_worker(run_dir, args.workers)
    print(f"\nimages/s per Train worker ({args.workers} workers, {args.defense}, {args.masked_dir})\n")
    print("| epoch | " + " | ".join(rates) + " | streamed / held |")
    print("|---|" + "---|" * (len(rates) + 1))
    held, streamed = rates.values()
    for epoch, (a, b) in enumerate(zip(held, streamed), start=1):
        print(f"| {epoch} | {a:.0f} | {b:.0f} | {b / a:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
