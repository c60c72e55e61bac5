"""Wall time of an adaptive run against a fixed-k run at the adaptive run's mean k (rounded), side by side.

All runs are full `hybridmask train` runs (Ray Train, verification, checkpoints) on the same masked data, settings
and epochs, in one process and one Ray instance. A first adaptive run, not timed in the ratio, sets the fixed k
(its mean k, rounded) and warms Ray's pool of worker processes: the first run in a Ray instance starts them, later
ones reuse them, which on two CPU cores made whichever run came first tens of seconds slower. Then each repeat
times one fixed and one adaptive run, alternating which goes first; the ratio is mean adaptive / mean fixed.
Beside it, the same ratio over the epochs alone (metrics.jsonl's epoch_seconds): short runs are mostly Ray Train
start-up, which hides what the strategy costs per window (the clean validation loss, the mailbox, the updates
sharing the CPUs), and a long run pays that cost in every epoch.
The driver imports Ray Train and RLlib before any clock starts. Goal: adaptive / fixed <= 1.10.

    python -m benchmarks.adaptive_overhead [--data PREPARED] [--epochs 3] [--strategy ppo] [--repeats 1]
                                           [--json OUT] [--keep DIR]

Without --data it trains on the built-in synthetic faces (`hybridmask synth`: 40 people x 12 images, 64 px).
"""

from __future__ import annotations

import argparse
import json
import statistics
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


def epoch_seconds(run_dir: Path) -> float:
    """Seconds spent in the training epochs themselves (no start-up, no export), from the run's metrics.jsonl."""
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return sum(json.loads(line)["epoch_seconds"] for line in lines if line.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="a prepared folder (default: synthetic faces, 64 px)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--strategy", choices=("ppo", "reinforce"), default="ppo")
    parser.add_argument("--repeats", type=int, default=1, help="timed fixed + adaptive pairs (default: %(default)s)")
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
        adaptive_settings = ["defense.name=hybrid_adaptive", f"strategy.algorithm={args.strategy}", *common]
        warmup_s, warmup = timed_run(masked, root / "adaptive-warmup", adaptive_settings)
        mean_k = round(warmup["mean_k"])
        settings = {
            "adaptive": adaptive_settings,
            "fixed": ["defense.name=hybrid_fixed", f"defense.k={mean_k}", *common],
        }
        timed: dict[str, list[tuple[float, dict]]] = {"adaptive": [], "fixed": []}
        for repeat in range(args.repeats):
            for name in ("fixed", "adaptive") if repeat % 2 == 0 else ("adaptive", "fixed"):
                seconds, summary = timed_run(masked, root / f"{name}-{repeat}", settings[name])
                timed[name].append((seconds, summary | {"epoch_s": epoch_seconds(root / f"{name}-{repeat}")}))
        warmup["epoch_s"] = epoch_seconds(root / "adaptive-warmup")
        ray.shutdown()

    adaptive_s = statistics.fmean(seconds for seconds, _ in timed["adaptive"])
    fixed_s = statistics.fmean(seconds for seconds, _ in timed["fixed"])
    ratio = adaptive_s / fixed_s
    epoch_ratio = statistics.fmean(run["epoch_s"] for _, run in timed["adaptive"]) / statistics.fmean(
        run["epoch_s"] for _, run in timed["fixed"]
    )
    print(f"\n{'run':<28} {'k':<16} {'wall s':>8} {'epochs s':>8} {'verify acc':>10} {'waited':>6} {'updates':>7}")
    rows = [("hybrid_adaptive (warm-up)", warmup_s, warmup)]
    rows += [(f"{name} #{i + 1}", *run) for name in ("adaptive", "fixed") for i, run in enumerate(timed[name])]
    for label, seconds, summary in rows:
        k = f"mean {summary['mean_k']:.2f}" if "strategy" in summary else f"fixed {summary['mean_k']:.0f}"
        waited = summary.get("windows_waited_for_k", "")
        updates = summary.get("policy_updates", "")
        accuracy = summary["verification_accuracy"]
        print(f"{label:<28} {k:<16} {seconds:8.1f} {summary['epoch_s']:8.1f} {accuracy:10.3f} {waited:>6} {updates:>7}")
    print(f"\nratio mean adaptive / mean fixed = {adaptive_s:.1f} / {fixed_s:.1f} = {ratio:.3f} (goal <= {GOAL})")
    print(f"the epochs alone (no start-up or export): adaptive / fixed = {epoch_ratio:.3f}")
    print("reward by k in the warm-up run (windows, mean raw / centred reward):")
    for k, earned in warmup["reward_by_k"].items():
        print(f"  k={k}: {earned['windows']:3d}  {earned['mean_reward']:8.3f}  {earned['mean_centred_reward']:8.3f}")
    if args.json:
        result = {
            "ratio": ratio,
            "adaptive_s": adaptive_s,
            "fixed_s": fixed_s,
            "mean_k": warmup["mean_k"],
            "epoch_ratio": epoch_ratio,
        }
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
