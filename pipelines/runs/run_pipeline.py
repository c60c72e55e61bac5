"""`hybridmask run`: prepare → mask → train each defence → attack → evaluate → one comparison report.

Plays both roles on one machine: the client (prepares and masks with its key) and the server (trains, and is
attacked). Layout of OUT:

    OUT/data/            prepared shards (or the prepared folder given as --data, used in place)
    OUT/masked/          the masked private and verify splits: the client's store (it keeps the names), read
                         only by the client actor
    OUT/runs/<defence>/  one training run each, with attacks/ and its own report.md
    OUT/report.md, report.json, privacy_utility.png, accuracy_per_epoch.png   the comparison of every defence

Every step first looks for its own finished output made from the same inputs and settings and reuses it, so an
interrupted run continues where it stopped when the same command is run again.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import InputError
from common.files import atomic_write_json, atomic_write_text, read_json
from evaluation.attacks.registry import ATTACK_NAMES
from evaluation.budgets import BudgetConfig
from evaluation.measures import CHANCE_VERIFICATION, SCORE_CLS_IN_WORDS
from evaluation.report import CURVES_PNG, REPORT_JSON, REPORT_MD
from pipelines.client.keyfile import default_key_path, read_key_file
from pipelines.runs.experiment_config import ExperimentConfig
from trainers.config_io import to_dict
from trainers.defenses import COMPARED_BY_DEFAULT, DEFENSES, UNPROTECTED
from trainers.run import SUMMARY_FILE, saved_run_config
from trainers.schema import MANIFEST_NAME

RUNS_DIR = "runs"

Say = Callable[[str], None]


@dataclass
class PipelineConfig:
    """Everything one `hybridmask run` needs; `validate()` checks it all before any work starts."""

    out: Path
    config: ExperimentConfig
    budgets: BudgetConfig
    defenses: tuple[str, ...] = COMPARED_BY_DEFAULT
    attacks: tuple[str, ...] = ATTACK_NAMES
    key_setting: str = "both"
    key_file: Path | None = None
    data_step: Callable[[Path], Path] | None = field(default=None, repr=False)  # writes OUT/data, returns it
    quiet: bool = False  # no training progress lines

    def validate(self) -> None:
        unknown = [name for name in self.defenses if name not in DEFENSES]
        if unknown or not self.defenses:
            raise InputError(
                f"--defenses: unknown defence {unknown[0] if unknown else '(none)'!r}; choose from {','.join(DEFENSES)}"
            )
        if len(set(self.defenses)) != len(self.defenses):
            raise InputError(f"--defenses {','.join(self.defenses)} names a defence twice")
        for defense in self.defenses:
            self.config_for(defense).validate()
        if self.key_file is not None:
            read_key_file(self.key_file)  # missing, damaged or readable by others: refused before any work
        elif default_key_path(self.out).is_file():
            read_key_file(default_key_path(self.out))

    @property
    def all_defenses(self) -> tuple[str, ...]:
        """The requested defences, with the unprotected baseline first: score_cls is measured against it."""
        return (UNPROTECTED, *(name for name in self.defenses if name != UNPROTECTED))

    def config_for(self, defense: str) -> ExperimentConfig:
        config = dataclasses.replace(self.config, defense=dataclasses.replace(self.config.defense, name=defense))
        config.validate()
        return config


def run_pipeline(spec: PipelineConfig, say: Say = print) -> dict[str, Any]:
    """Run (or continue) the whole pipeline; returns the comparison written to OUT/report.json."""
    spec.validate()
    created = not spec.out.exists()
    try:
        return _run_steps(spec, say)
    except BaseException:
        if created and spec.out.is_dir() and not any(spec.out.iterdir()):
            spec.out.rmdir()  # failed before its first output: leave no empty folder behind
        raise


def _run_steps(spec: PipelineConfig, say: Say) -> dict[str, Any]:
    from evaluation.evaluate_runs import evaluate_runs
    from evaluation.run_attacks import AttackCaches

    started = time.perf_counter()
    spec.out.mkdir(parents=True, exist_ok=True)
    data_dir = spec.data_step(spec.out) if spec.data_step is not None else spec.out / "data"
    key = client_key(spec.key_file or default_key_path(spec.out), say)
    masked_dir = _masked_data(spec, data_dir, key, say)
    caches = AttackCaches(spec.out / "attack-cache")
    timings: dict[str, float] = {}
    run_dirs = []
    for defense in spec.all_defenses:
        run_dir = spec.out / RUNS_DIR / defense
        step = time.perf_counter()
        train_defense(spec, defense, data_dir if spec.config_for(defense).uses_pixels else masked_dir, run_dir, say)
        attack_defense(spec, run_dir, key, caches, say)
        timings[defense] = time.perf_counter() - step
        run_dirs.append(run_dir)
    say("evaluating every defence against the unprotected baseline ...")
    reports = evaluate_runs(
        run_dirs, baseline=run_dirs[0], out_dir=spec.out, caches=caches, progress=say, attacks=spec.attacks
    )
    comparison = _write_comparison_report(spec, reports, run_dirs, timings, time.perf_counter() - started)
    say(f"report: {spec.out / REPORT_MD}")
    return comparison


def client_key(path: Path, say: Say) -> bytes:
    """The key in `path`, made there (owner-only) when the file does not exist yet."""
    from masking.keys import generate_key
    from pipelines.client.keyfile import read_key_file, write_key_file

    if not path.is_file():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_key_file(path, generate_key())
        say(f"made a new client key: {path} (owner-only; it masks the private faces and appears in no report)")
    return read_key_file(path)


def _masked_data(spec: PipelineConfig, data_dir: Path, key: bytes, say: Say) -> Path:
    from pipelines.runs.training import masked_data_for

    out = spec.out / "masked"
    if not (out / MANIFEST_NAME).is_file():
        say(f"masking the private and verify splits (ratio {spec.config.masking.ratio}) ...")
    return masked_data_for(data_dir, key, spec.config.masking.ratio, out, progress=not spec.quiet)


def train_defense(spec: PipelineConfig, defense: str, data_dir: Path, run_dir: Path, say: Say) -> None:
    from pipelines.runs.training import run_training

    config = spec.config_for(defense)
    if finished_run(run_dir, config):
        say(f"{defense}: trained earlier, reusing {run_dir}")
    else:
        say(f"{defense}: training ({config.optim.epochs} epochs, {config.scale.workers} workers) ...")
        summary = run_training(data_dir, run_dir, config, quiet=spec.quiet)
        say(f"{defense}: verification accuracy {summary['verification_accuracy']:.3f}")
    if defense == UNPROTECTED:
        require_baseline_above_chance(run_dir)


def require_baseline_above_chance(run_dir: Path) -> None:
    """Every defence's score_cls divides by the unprotected baseline's lead over chance: refuse a baseline without
    one as soon as it is trained, not after every attack and defence has run on scores that would fail at the end."""
    summary = read_json(run_dir / SUMMARY_FILE, f"delete {run_dir} and run again to train it again")
    accuracy = float(summary["verification_accuracy"])
    if accuracy <= CHANCE_VERIFICATION:
        raise InputError(
            f"the unprotected baseline in {run_dir} verifies at {accuracy:.3f}, at or below chance "
            f"({CHANCE_VERIFICATION}): it learned nothing, so no defence's utility can be scored against it. Train "
            "longer (--epochs; optim.epochs in a sweep's space) or give it more images per person, then delete "
            "that folder and run again"
        )


def finished_run(run_dir: Path, config: ExperimentConfig) -> bool:
    """A run with a summary for all its epochs, trained with this very learner config."""
    summary_path = run_dir / SUMMARY_FILE
    saved = saved_run_config(run_dir)
    if not summary_path.is_file() or saved is None:
        return False
    summary = read_json(summary_path, f"delete {run_dir} and re-run to train it again")
    return saved == to_dict(config.train_config()) and summary.get("epochs") == config.optim.epochs


def attack_defense(spec: PipelineConfig, run_dir: Path, key: bytes, caches, say: Say) -> None:
    """Run the attacks (and key settings) this run has no current record of with the same budget; reuse the others.

    A record made on an older checkpoint or data (stale) is redone. Pixel defences have no key, so they are
    attacked in the `unknown` setting only (`plan_attacks` says which)."""
    from evaluation.run_attacks import attack_run, current_records, plan_attacks

    budget = to_dict(spec.budgets)
    done = {
        (record["attack"], record["key_setting"]) for record in current_records(run_dir) if record["budget"] == budget
    }
    plan = plan_attacks(run_dir, spec.attacks, spec.key_setting, key)
    missing = [job for job in plan.jobs if job not in done]
    if not missing:
        say(f"{run_dir.name}: attacked earlier with the same budget, reusing its records")
        return
    for setting in dict.fromkeys(setting for _, setting in missing):
        names = [name for name, wanted in missing if wanted == setting]
        attack_run(run_dir, names, setting, key, spec.budgets, caches, say)


def _write_comparison_report(
    spec: PipelineConfig, reports: Sequence[Any], run_dirs: Sequence[Path], timings: dict[str, float], seconds: float
) -> dict[str, Any]:
    rows = []
    for _report, run_dir in zip(reports, run_dirs):
        summary = read_json(run_dir / SUMMARY_FILE, f"delete {run_dir} and re-run to train it again")
        row = read_json(run_dir / REPORT_JSON, "re-run the same command to evaluate it again")
        row.update(
            {key: summary[key] for key in ("tar_at_far_1e-3", "mean_k", "strategy", "k_histogram") if key in summary}
        )
        row["run_dir"] = str(run_dir.relative_to(spec.out))
        rows.append(row)
    synthetic = any(row["synthetic_data"] for row in rows)
    best = max(rows, key=lambda row: row["overall"])
    comparison = {
        "synthetic_data": synthetic,
        "defenses": rows,
        "best_overall": best["defense"],
        "seconds": seconds,
        "seconds_per_defense": timings,
        "settings": {
            "training": to_dict(spec.config),
            "budget": to_dict(spec.budgets),
            "attacks": list(spec.attacks),
            "key_setting": spec.key_setting,
        },
    }
    atomic_write_json(spec.out / REPORT_JSON, comparison, allow_nan=False)
    atomic_write_text(spec.out / REPORT_MD, _comparison_markdown(comparison))
    return comparison


def _comparison_markdown(comparison: dict[str, Any]) -> str:
    lines = ["# hybridmask: privacy and utility of each defence", ""]
    if comparison["synthetic_data"]:
        lines += [
            "> **Synthetic faces.** These numbers come from the built-in procedural faces, not from real people.",
            "",
        ]
    lines += [
        "Higher is better for every score. S1/S2: how little the masked data shows and how little of it an "
        "independent face model recognises; S3/S4: the same for the best attack's reconstructions (worst case over "
        f"attacks and key settings); score_pp = 0.4·(S1+S2)/2 + 0.6·(S3+S4)/2; {SCORE_CLS_IN_WORDS}; overall = "
        "their harmonic mean.",
        "",
        "| defence | S1 | S2 | S3 | S4 | score_pp | verification acc. | TAR@FAR=1e-3 | score_cls | overall | mean k |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in comparison["defenses"]:
        cells = [row["defense"]] + [
            f"{row[name]:.3f}" for name in ("S1", "S2", "S3", "S4", "score_pp", "verification_accuracy")
        ]
        cells += [
            f"{row.get('tar_at_far_1e-3', float('nan')):.3f}",
            f"{row['score_cls']:.3f}",
            f"**{row['overall']:.3f}**",
        ]
        cells.append(f"{row['mean_k']:.2f}" if row.get("mean_k") is not None else "")
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Best overall: **{comparison['best_overall']}**. Finished in {comparison['seconds'] / 60:.1f} minutes.",
        "",
        "![privacy-utility](privacy_utility.png)",
        "",
        f"![verification accuracy per epoch]({CURVES_PNG})",
        "",
        "Per defence (attack details, grid of original | server view | reconstructions): "
        + ", ".join(f"[{row['defense']}]({row['run_dir']}/{REPORT_MD})" for row in comparison["defenses"]),
        "",
        "The masking key is used on this machine only and appears in no report.",
        "",
    ]
    return "\n".join(lines)
