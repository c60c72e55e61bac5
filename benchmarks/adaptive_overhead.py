"""Wall time of an adaptive run against a fixed-k run at the adaptive run's mean k (rounded), side by side.

Both are full `hybridmask train` runs (Ray Train, verification, checkpoints) on the same masked data, settings
and epochs, in one process and one Ray instance; the adaptive run goes first because the fixed run's k is its
mean k. The driver imports Ray Train and RLlib before either clock starts, so neither run pays the other's
imports. Goal: adaptive / fixed <= 1.10.

    python -m benchmarks.adaptive_overhead [--data PREPARED] [--epochs 3] [--strategy ppo] [--json OUT] [--keep DIR]

Without --data it trains on the built-in synthetic faces (`hybridmask synth`: 40 people x 12 images, 64 px).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

GOAL = 1.10


def synthetic_data(out: Path) -> Path:
    from pipelines.data.prepare import PrepareConfig
    from pipelines.data.synth import prepare_synthetic

    prepare_synthetic(out, identities=40, images_per_identity=12, options=PrepareConfig(size=64))
    return out


def timed_run(data: Path, run_dir: Path, overrides: list[str]) -> tuple[float, dict]:
    from pipelines.runs.experiment_config import load_experiment
    from pipelines.runs.training import run_training

    config = load_experiment(None, overrides)
    started = time.perf_counter()
    summary = run_training(data, run_dir, config)
    return time.perf_counter() - started, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="a prepared folder (default: synthetic faces, 64 px)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--strategy", choices=("ppo", "reinforce"), default="ppo")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra KEY=VALUE settings")
    parser.add_argument("--json", type=Path, help="write {ratio, adaptive_s, fixed_s, mean_k} here")
    parser.add_argument("--keep", type=Path, help="keep the data and both runs in this new folder")
    args = parser.parse_args()

    import ray

    from masking.keys import generate_key
    from pipelines.client.masking_io import mask_dataset
    from rl_env.coupling import import_both_sides

    with tempfile.TemporaryDirectory(prefix="adaptive-overhead-") as scratch:
        root = args.keep or Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        prepared = args.data or synthetic_data(root / "prepared")
        masked = root / "masked"
        mask_dataset(prepared, generate_key(), masked, progress=False)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        import_both_sides()
        common = [f"optim.epochs={args.epochs}", f"scale.workers={args.workers}", *args.overrides]
        adaptive_s, adaptive = timed_run(
            masked, root / "adaptive", ["defense.name=hybrid_adaptive", f"strategy.algorithm={args.strategy}", *common]
        )
        mean_k = round(adaptive["mean_k"])
        fixed_s, fixed = timed_run(
            masked, root / "fixed", ["defense.name=hybrid_fixed", f"defense.k={mean_k}", *common]
        )
        ray.shutdown()

    ratio = adaptive_s / fixed_s
    rows = [
        ("hybrid_adaptive", f"{args.strategy}, mean k {adaptive['mean_k']:.2f}", adaptive_s, adaptive),
        ("hybrid_fixed", f"k = {mean_k}", fixed_s, fixed),
    ]
    print(f"\n{'defence':<16} {'k':<22} {'wall s':>8} {'verify acc':>10}")
    for name, k, seconds, summary in rows:
        print(f"{name:<16} {k:<22} {seconds:8.1f} {summary['verification_accuracy']:10.3f}")
    print(f"\nratio adaptive / fixed = {ratio:.3f} (goal <= {GOAL}); ", end="")
    print(
        f"policy updates {adaptive['policy_updates']}, windows {adaptive['windows']}, "
        f"windows whose k the workers waited for {adaptive['windows_waited_for_k']}"
    )
    print("reward by k (mean raw / centred):", json.dumps(adaptive["reward_by_k"]))
    if args.json:
        args.json.write_text(
            json.dumps(
                {"ratio": ratio, "adaptive_s": adaptive_s, "fixed_s": fixed_s, "mean_k": adaptive["mean_k"]}, indent=2
            )
            + "\n",
            encoding="utf-8",
        )


if __name__ == "__main__":
    main()
