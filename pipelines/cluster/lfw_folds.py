"""LFW View 2, every fold: prepare and mask each fold here (the key stays on this machine), train each defence on
the cluster, then summarise accuracy over the folds (mean and standard deviation, as LFW results are reported).

    python pipelines/cluster/lfw_folds.py --lfw /data/lfw --out /mnt/shared/lfw --key client.key \
        --address http://127.0.0.1:8265 --defenses none,ppfr_fd -- --workers 4 --set scale.use_gpu=true
    python pipelines/cluster/lfw_folds.py --out /mnt/shared/lfw --summary

Everything after `--` goes to each `hybridmask train`. With --address, each training run is a Ray job submitted
without waiting (the cluster runs as many at once as it fits); without it, runs train here one after another.
A fold already prepared or masked is reused, so re-running after an interruption submits what is missing.
--out must be a file system every node mounts at the same path. docs/lfw.md explains the protocol.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

PLAIN_DEFENSES = ("none", "mixup")  # trained on the prepared faces; every other defence on the masked ones


def fold_commands(args: argparse.Namespace, fold: int) -> list[list[str]]:
    """The commands for one fold, in order: prepare and mask where not done yet, then one training per defence."""
    out = Path(args.out)
    prepared, masked = out / f"fold{fold}", out / f"fold{fold}-masked"
    here = [sys.executable, "-m", "pipelines.cli"]
    commands = []
    if not (prepared / "manifest.json").is_file():
        lfw = Path(args.lfw)
        source, pairs = str(lfw / "images_deepfunneled"), str(lfw / "pairs.txt")
        options = ["--pairs-file", pairs, "--fold", str(fold), "--align", "--crop", "0.52", "--no-progress"]
        commands.append([*here, "prepare", source, "--out", str(prepared), *options])
    if not (masked / "manifest.json").is_file():
        commands.append([*here, "mask", str(prepared), "--key", args.key, "--out", str(masked)])
    for defense in args.defenses.split(","):
        data = prepared if defense in PLAIN_DEFENSES else masked
        run_dir = out / "runs" / f"fold{fold}" / defense
        train = ["train", "--data", str(data), "--defense", defense, "--out", str(run_dir), *args.train_args]
        if args.address:
            commands.append(
                ["ray", "job", "submit", "--address", args.address, "--no-wait", "--", "hybridmask", *train]
            )
        else:
            commands.append([*here, *train])
    return commands


def summary(out: Path) -> str:
    """Accuracy per fold and defence, and mean ± standard deviation over the folds that finished."""
    results: dict[str, dict[int, float]] = {}
    for path in sorted(out.glob("runs/fold*/*/summary.json")):
        fold = int(path.parent.parent.name.removeprefix("fold"))
        results.setdefault(path.parent.name, {})[fold] = json.loads(path.read_text())["verification_accuracy"]
    lines = ["| defence | folds | accuracy mean | std | per fold |", "|---|---|---|---|---|"]
    for defense, by_fold in sorted(results.items()):
        values = [by_fold[fold] for fold in sorted(by_fold)]
        spread = statistics.stdev(values) if len(values) > 1 else float("nan")
        per_fold = ", ".join(f"{fold}: {by_fold[fold]:.3f}" for fold in sorted(by_fold))
        lines.append(f"| {defense} | {len(values)} | {statistics.mean(values):.4f} | {spread:.4f} | {per_fold} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for the folds' data and runs (shared by all nodes)")
    parser.add_argument("--lfw", help="LFW's folder: images_deepfunneled/ and pairs.txt")
    parser.add_argument("--key", help="the client's key file, for masking (never sent to the cluster)")
    parser.add_argument("--folds", default="1-10", help="folds to run, e.g. 1-10 or 1,3 (default: %(default)s)")
    parser.add_argument("--defenses", default="none,ppfr_fd", help="comma-separated (default: %(default)s)")
    parser.add_argument("--address", help="the Ray Jobs API, e.g. http://127.0.0.1:8265; without it, train here")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--summary", action="store_true", help="only summarise the finished runs under --out")
    parser.add_argument("train_args", nargs="*", help="after --: arguments for every `hybridmask train`")
    args = parser.parse_args(argv)
    if args.summary:
        print(summary(Path(args.out)))
        return 0
    if not args.lfw or not args.key:
        parser.error("--lfw and --key are needed to prepare and mask the folds")
    first, _, last = args.folds.partition("-")
    folds = range(int(first), int(last or first) + 1) if "," not in args.folds else map(int, args.folds.split(","))
    for fold in folds:
        for command in fold_commands(args, fold):
            print(shlex.join(command), flush=True)
            if not args.dry_run:
                subprocess.run(command, check=True)
    if not args.address and not args.dry_run:
        print(summary(Path(args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
