"""`prepare` throughput on Extended Yale B: images per second by size, workers and alignment, as a table.

Run from the repository root: python -m benchmarks.prepare_throughput [--source DIR] [--align]
(--align adds the dlib rows, about a minute on two cores). Ratios are against the first row.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from pipelines.data.prepare import PrepareConfig, prepare_folder

DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "yaleb" / "CroppedYale"


def measure(source: Path, options: PrepareConfig, workers: int) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        manifest = prepare_folder(source, Path(folder) / "out", options, workers=workers)
        return time.perf_counter() - start, manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--align", action="store_true", help="also time --align (dlib), serial and 2 workers")
    args = parser.parse_args()
    runs = [
        ("size 112", PrepareConfig(), 1),
        ("size 112, 2 workers", PrepareConfig(), 2),
        ("size 32", PrepareConfig(size=32), 1),
    ]
    if args.align:
        runs += [
            ("size 112 --align", PrepareConfig(align=True), 1),
            ("size 112 --align, 2 workers", PrepareConfig(align=True), 2),
        ]
    print(f"{'configuration':32} {'seconds':>8} {'files/s':>9} {'images/s':>9} {'ratio':>6}")
    baseline = None
    for name, options, workers in runs:
        seconds, manifest = measure(args.source, options, workers)
        rate = manifest["num_images"] / seconds
        baseline = baseline or rate
        print(f"{name:32} {seconds:8.2f} {manifest['files_seen'] / seconds:9.0f} {rate:9.0f} {rate / baseline:6.2f}")


if __name__ == "__main__":
    main()
