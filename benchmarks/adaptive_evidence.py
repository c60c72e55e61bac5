"""Adaptive k against every fixed k, over several seeds: accuracy and mixing with their spread, and a verdict.

Trains `hybrid_fixed` at each k of --ks and `hybrid_adaptive` with each strategy of --strategies, once per seed
(the seed sets the model's initial weights and the strategy's), all on the same masked folder with the same
learner settings, in one Ray instance. Every run is kept in OUT/<run>-s<seed>; a run already finished there with
the same settings is read back, not trained again, so an interrupted study continues where it stopped.

Writes OUT/evidence.json (every run), OUT/evidence.md (per configuration: mean and spread over seeds) and
OUT/evidence.png: verification accuracy against mean k (how many faces each sample mixes), one point per
configuration with the seeds' standard deviation as error bars and every seed faint behind it.

The paper's claim: adaptive reaches a point no fixed k reaches, more mixing at the same accuracy or more accuracy
at the same mixing. The verdict compares each strategy's mean accuracy with the fixed-k accuracy interpolated at
its mean k, against the spread of both (the root of the summed variances over seeds).

    python -m benchmarks.adaptive_evidence --data MASKED --out DIR [--seeds 0,1,2] [--ks 2,3,4,5,6]
                                           [--strategies ppo,reinforce] [--epochs 10] [--set KEY=VALUE ...]

MASKED is a folder written by `hybridmask mask` (or a `run`'s OUT/masked).
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Arm:
    """One configuration of the study: a fixed k, or an adaptive strategy."""

    name: str
    overrides: tuple[str, ...]
    adaptive: bool


@dataclass
class Outcome:
    arm: str
    seed: int
    accuracy: float
    tar_at_far: float
    mean_k: float
    k_histogram: dict[str, int]
    wall_s: float


def arms(ks: list[int], strategies: list[str]) -> list[Arm]:
    fixed = [Arm(f"fixed k={k}", ("defense.name=hybrid_fixed", f"defense.k={k}"), False) for k in ks]
    adaptive = [
        Arm(f"adaptive {algorithm}", ("defense.name=hybrid_adaptive", f"strategy.algorithm={algorithm}"), True)
        for algorithm in strategies
    ]
    return fixed + adaptive


def run_arm(masked: Path, out: Path, arm: Arm, seed: int, common: list[str]) -> Outcome:
    """Train one arm at one seed, or read back its finished run."""
    import time

    from pipelines.runs.experiment_config import load_experiment
    from pipelines.runs.run_pipeline import finished_run
    from pipelines.runs.training import run_training
    from trainers.run import SUMMARY_FILE

    config = load_experiment(None, [*arm.overrides, *common, f"seed={seed}", f"strategy.seed={seed}"])
    run_dir = out / f"{arm.name.replace(' ', '_').replace('=', '')}-s{seed}"
    started = time.perf_counter()
    if finished_run(run_dir, config):
        summary = json.loads((run_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
    else:
        summary = run_training(masked, run_dir, config, quiet=True)
    return Outcome(
        arm=arm.name,
        seed=seed,
        accuracy=float(summary["verification_accuracy"]),
        tar_at_far=float(summary.get("tar_at_far_1e-3", float("nan"))),
        mean_k=float(summary["mean_k"]),
        k_histogram={str(k): int(n) for k, n in (summary.get("k_histogram") or {}).items()},
        wall_s=float(summary.get("wall_seconds_this_session", time.perf_counter() - started)),
    )


def spread(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def verdicts(outcomes: list[Outcome], ks: list[int], strategies: list[str]) -> list[str]:
    """Each strategy against the fixed-k accuracy curve, interpolated at the strategy's mean k."""
    by_arm = {arm: [o for o in outcomes if o.arm == arm] for arm in {o.arm for o in outcomes}}
    fixed = [(k, *spread([o.accuracy for o in by_arm[f"fixed k={k}"]])) for k in sorted(ks)]
    fixed_k = np.array([k for k, _, _ in fixed], dtype=float)
    lines = []
    for algorithm in strategies:
        runs = by_arm[f"adaptive {algorithm}"]
        mean_k, k_sd = spread([o.mean_k for o in runs])
        accuracy, accuracy_sd = spread([o.accuracy for o in runs])
        at_k = float(np.interp(mean_k, fixed_k, [mean for _, mean, _ in fixed]))
        at_k_sd = float(np.interp(mean_k, fixed_k, [sd for _, _, sd in fixed]))
        gap, noise = accuracy - at_k, float(np.hypot(accuracy_sd, at_k_sd))
        beyond = abs(gap) > noise and noise > 0
        better_than_all = all(accuracy > mean for k, mean, _ in fixed if k <= mean_k)
        lines.append(
            f"adaptive {algorithm}: mean k {mean_k:.2f} ± {k_sd:.2f}, accuracy {accuracy:.3f} ± {accuracy_sd:.3f}; "
            f"fixed k interpolated at k = {mean_k:.2f}: {at_k:.3f} ± {at_k_sd:.3f}; difference {gap:+.3f} "
            f"against a spread of {noise:.3f}: "
            + (
                ("beyond the spread, " + ("above" if gap > 0 else "below") + " the fixed-k curve")
                if beyond
                else "within the spread (no evidence either way)"
            )
            + ("; more accurate than every fixed k that mixes less" if better_than_all else "")
        )
    return lines


def write_markdown(outcomes: list[Outcome], arm_names: list[str], lines: list[str], path: Path) -> None:
    rows = [
        "| configuration | seeds | mean k | verification acc. | TAR@FAR=1e-3 | accuracy per seed |",
        "|---|---|---|---|---|---|",
    ]
    for name in arm_names:
        runs = sorted((o for o in outcomes if o.arm == name), key=lambda o: o.seed)
        k, k_sd = spread([o.mean_k for o in runs])
        accuracy, accuracy_sd = spread([o.accuracy for o in runs])
        tar, tar_sd = spread([o.tar_at_far for o in runs])
        per_seed = ", ".join(f"{o.accuracy:.3f}" for o in runs)
        rows.append(
            f"| {name} | {len(runs)} | {k:.2f} ± {k_sd:.2f} | {accuracy:.3f} ± {accuracy_sd:.3f} | "
            f"{tar:.3f} ± {tar_sd:.3f} | {per_seed} |"
        )
    path.write_text("\n".join([*rows, "", *(f"- {line}" for line in lines)]) + "\n", encoding="utf-8")


def write_figure(outcomes: list[Outcome], arm_names: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.4))
    fixed_points = []
    for name in arm_names:
        runs = [o for o in outcomes if o.arm == name]
        k, k_sd = spread([o.mean_k for o in runs])
        accuracy, accuracy_sd = spread([o.accuracy for o in runs])
        adaptive = name.startswith("adaptive")
        colour = {"adaptive ppo": "tab:red", "adaptive reinforce": "tab:green"}.get(name, "tab:blue")
        axes.scatter([o.mean_k for o in runs], [o.accuracy for o in runs], color=colour, alpha=0.25, s=14)
        axes.errorbar(k, accuracy, xerr=k_sd if adaptive else None, yerr=accuracy_sd, fmt="o" if not adaptive else "D",
                      color=colour, capsize=4, label=name if adaptive else None)  # fmt: skip
        if not adaptive:
            fixed_points.append((k, accuracy))
    axes.plot(*zip(*sorted(fixed_points)), color="tab:blue", linewidth=1, label="fixed k (mean over seeds)")
    axes.set_xlabel("mean k (faces mixed per training sample): more is more private")
    axes.set_ylabel("verification accuracy")
    axes.set_title("Adaptive against fixed k: mean ± standard deviation over seeds")
    axes.legend(loc="best", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=130)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a masked folder (hybridmask mask)")
    parser.add_argument("--out", type=Path, required=True, help="runs and results go here; re-run to continue")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--ks", default="2,3,4,5,6")
    parser.add_argument("--strategies", default="ppo,reinforce")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra KEY=VALUE settings")
    args = parser.parse_args()
    seeds = [int(value) for value in args.seeds.split(",")]
    ks = [int(value) for value in args.ks.split(",")]
    strategies = args.strategies.split(",")

    import ray

    from rl_env.coupling import import_both_sides

    args.out.mkdir(parents=True, exist_ok=True)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    import_both_sides()
    common = [f"optim.epochs={args.epochs}", *args.overrides]
    study, outcomes = arms(ks, strategies), []
    total = len(study) * len(seeds)
    for seed in seeds:
        for arm in study:
            outcome = run_arm(args.data, args.out, arm, seed, common)
            outcomes.append(outcome)
            print(f"[{len(outcomes)}/{total}] {arm.name} seed {seed}: accuracy {outcome.accuracy:.3f}, "
                  f"mean k {outcome.mean_k:.2f}", flush=True)  # fmt: skip
    ray.shutdown()

    names = [arm.name for arm in study]
    lines = verdicts(outcomes, ks, strategies)
    (args.out / "evidence.json").write_text(json.dumps([asdict(o) for o in outcomes], indent=2) + "\n")
    write_markdown(outcomes, names, lines, args.out / "evidence.md")
    write_figure(outcomes, names, args.out / "evidence.png")
    print((args.out / "evidence.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
