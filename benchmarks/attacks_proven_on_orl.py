"""Are the attacks proven on real faces? Every attack on the unprotected model of ORL at a budget preset, for each
size of the attacker's public split and each attack seed: p-hat per attack against the PROVEN_P_HAT bar.

An attack's numbers count only once it names people on `none` (docs/evaluation.md); the model inversions learn
their face prior from the public split, which on ORL's default split (8 of 40 people) is small. This prints how
p-hat moves when the attacker has more people (`prepare --splits`), the split stated in every row.

Run: python benchmarks/attacks_proven_on_orl.py --out /tmp/proof [--public 0.2 0.4] [--seeds 0 1] [--budget small]
Cost on 2 cores at `small`: about 17 minutes per public size and seed (white-box inversion takes most of it; its
GAN prior alone about 9).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.faces import ORL_DIR
from evaluation.measures import PROVEN_P_HAT, identification, identification_interval
from evaluation.report import RunReport, read_run_report
from pipelines.cli.main import main as hybridmask

VERIFY_SHARE = 0.2
LEARNER = [
    "--epochs",
    "10",
    "--set",
    "optim.batch_size=32",
    "--set",
    "model.embedding_size=128",
    "--set",
    "window_batches=2",
]  # fmt: skip  (the learner of docs/results' comparisons)


def splits_for(public_share: float) -> str:
    return f"{1.0 - VERIFY_SHARE - public_share:.2f},{VERIFY_SHARE:.2f},{public_share:.2f}"


def proof_report(orl: Path, out: Path, public_share: float, seed: int, budget: str) -> RunReport:
    """The `none` run's report for one public split and attack seed; prepared data, training and attack records in
    `out` are reused."""
    prepared = out / f"orl64-public{public_share:.2f}"
    if not prepared.is_dir():
        args = ["prepare", str(orl), "--out", str(prepared), "--size", "64", "--splits", splits_for(public_share)]
        if hybridmask([*args, "--no-progress"]) != 0:
            raise SystemExit(f"preparing {orl} failed")
    run_out = out / f"run-public{public_share:.2f}-seed{seed}"
    flags = ["--budget", budget, "--set", f"budget.seed={seed}", "--set", "budget.threads=2", "--quiet"]
    if hybridmask(["run", "--data", str(prepared), "--out", str(run_out), "--defenses", "none", *LEARNER, *flags]):
        raise SystemExit(f"the run in {run_out} failed")
    return read_run_report(run_out / "runs" / "none")


def table_rows(report: RunReport, public_share: float, seed: int) -> list[str]:
    """One row per attack and key setting: raw rates, p-hat with its interval, and the verdict."""
    people = round(1.0 / report.calibration.chance)  # chance is 1 / the private people in the gallery
    rows = []
    for attack, settings in sorted(report.attacks.items()):
        for setting, outcome in sorted(settings.items()):
            p_hat, judge = identification(outcome, report.calibration)
            interval = identification_interval(outcome, report.calibration)
            spread = "-" if interval is None else f"{interval[0]:.2f}–{interval[1]:.2f}"
            verdict = "yes" if p_hat >= PROVEN_P_HAT else "no"
            rows.append(
                f"| {splits_for(public_share)} | {people} | {seed} | {attack} ({setting}) | {outcome.top1:.3f} | "
                f"{outcome.classifier_top1 or 0.0:.3f} | {report.calibration.chance:.3f} | {p_hat:.3f} ({judge}) | {spread} | {verdict} |"
            )
    return rows


TABLE_HEADER = (
    f"proven: p-hat >= {PROVEN_P_HAT} on `none` (the higher of dlib and the evaluation classifier)\n"
    "| splits (private,verify,public) | private people | seed | attack | dlib top-1 | classifier top-1 | chance | p-hat "
    "| p-hat 95 % interval | proven |\n" + "|---" * 10 + "|"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orl", type=Path, default=ORL_DIR)
    parser.add_argument("--out", type=Path, required=True, help="working folder (prepared data, runs)")
    parser.add_argument("--public", type=float, nargs="+", default=[0.2, 0.4], help="public shares of the people")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="attack seeds (budget.seed)")
    parser.add_argument("--budget", choices=("small", "paper"), default="small")
    args = parser.parse_args()
    if not args.orl.is_dir():
        raise SystemExit(f"ORL not found at {args.orl}; pass --orl or set HYBRIDMASK_SHARED_DATA")
    rows = [
        row
        for share in args.public
        for seed in args.seeds
        for row in table_rows(proof_report(args.orl, args.out, share, seed, args.budget), share, seed)
    ]
    print(f"\n{TABLE_HEADER}")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
