"""Scoring attacked runs: S1/S2 from the server-view renderings, S3/S4 from the attack records, score_pp,
score_cls against the unprotected baseline, overall; report.json, report.md and grid.png per run, and the
comparison (table and privacy-utility scatter) across runs (what `hybridmask evaluate` and `hybridmask run` do).

Only complete, current attack coverage is scored: every run must hold a record of every attack in every key
setting of its defence, made on the run as it is now (`run_attacks.coverage_gaps`), since a worst case over
fewer attacks, or over records of an older model, is no worst case. The targets are rebuilt from the attack
records' budget (seed, max_targets), so renderings, reconstructions and the grid's originals line up row by row. Attack outcomes are taken from the records when they were judged by
the same evaluators (same fingerprint); otherwise the saved reconstructions are judged again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.errors import InputError
from evaluation.attacks.registry import ATTACK_NAMES
from evaluation.budgets import BudgetConfig
from evaluation.evaluators import Judges
from evaluation.figures import GridImages
from evaluation.measures import AttackOutcome, proven_on_none
from evaluation.renderings import key_free_renderings
from evaluation.report import (
    REPORT_JSON,
    RunReport,
    build_run_report,
    read_run_report,
    write_comparison,
    write_run_report,
)
from evaluation.run_attacks import (
    ATTACKS_DIR,
    CACHE_DIR,
    AttackCaches,
    Progress,
    coverage_gaps,
    current_records,
    read_attack_records,
    read_reconstructions,
    torch_threads,
)
from evaluation.run_data import (
    RunData,
    attacker_faces_dir,
    check_run_dir,
    load_run,
    prepared_folder_of,
    read_summary,
    read_verification_curve,
    training_data_dir,
)
from evaluation.server_view import (
    PublicDefenseConfig,
    ServerTargets,
    build_server_targets,
    sent_appearances,
    sent_samples,
    server_renderings,
)
from trainers.checkpoints import MODEL_FILE
from trainers.config_io import from_dict, to_dict
from trainers.defenses import UNPROTECTED
from trainers.schema import MANIFEST_NAME

GRID_ROWS = 6


def evaluate_runs(
    run_dirs: Sequence[str | Path],
    baseline: str | Path | None = None,
    out_dir: str | Path | None = None,
    caches: AttackCaches | None = None,
    progress: Progress | None = None,
    attacks: Sequence[str] = ATTACK_NAMES,
) -> list[RunReport]:
    """Evaluate every run against one unprotected baseline; write each run's report and, for several runs, the
    comparison in out_dir (default: the runs' common parent). All inputs are checked before any work, the
    coverage of `attacks` in every key setting included."""
    folders = [check_attacked(run_dir, attacks) for run_dir in run_dirs]
    if not folders:
        raise InputError("no run folders given; pass at least one RUN_DIR")
    baseline_dir = find_baseline(folders, baseline)
    baseline_accuracy = float(read_summary(baseline_dir)["verification_accuracy"])
    for folder in folders:
        check_same_data(folder, baseline_dir)
    target = comparison_folder(folders, out_dir) if len(folders) > 1 else None
    say = progress or (lambda message: None)
    by_folder: dict[Path, RunReport] = {}
    proof_source = None if baseline_dir in folders else saved_report(baseline_dir)
    for folder in sorted(folders, key=lambda f: f != baseline_dir):  # the baseline first: it proves the attacks
        by_folder[folder] = evaluate_run(
            folder,
            baseline_accuracy,
            caches or AttackCaches(folder / ATTACKS_DIR / CACHE_DIR),
            say,
            attacks,
            proof_source if folder != baseline_dir else None,
        )
        if folder == baseline_dir:
            proof_source = by_folder[folder]
        say(f"{folder.name}: report written ({folder / 'report.md'})")
    reports = [by_folder[folder] for folder in folders]
    if target is not None:
        paths = write_comparison(reports, target)
        say(f"comparison written: {paths['markdown']}, {paths['scatter']}, {paths['curves']}")
    return reports


def comparison_folder(folders: Sequence[Path], out_dir: str | Path | None) -> Path:
    """--out, or the runs' common parent when that is a folder of their own (never / or the home folder)."""
    if out_dir is not None:
        target = Path(out_dir)
        if target.exists() and not target.is_dir():
            raise InputError(f"--out {target} is a file; give a folder for the comparison")
        return target
    common = Path(os.path.commonpath([str(folder.resolve()) for folder in folders]))
    if common == Path(common.anchor) or common == Path.home():
        raise InputError(
            f"the runs share no folder of their own (only {common}); pass --out DIR for the comparison report"
        )
    return common


def check_attacked(run_dir: str | Path, attacks: Sequence[str] = ATTACK_NAMES) -> Path:
    """The run folder, if its current attack records cover every attack in every key setting of its defence."""
    folder = check_run_dir(run_dir)
    read_summary(folder)  # a damaged summary is named first: it is what training must redo
    if not read_attack_records(folder):
        raise InputError(
            f"{folder} has no attack outputs in {folder / ATTACKS_DIR}; run `hybridmask attack {folder}` first"
        )
    gaps = coverage_gaps(folder, attacks)
    if gaps:
        raise InputError(
            f"{folder}: no current attack record for {', '.join(gaps)} (missing, or made before the run or its data "
            f"last changed); run `hybridmask attack {folder} --key KEYFILE` so every attack covers every key setting"
        )
    return folder


def find_baseline(folders: Sequence[Path], baseline: str | Path | None) -> Path:
    """The unprotected run score_cls divides by: --baseline, or the one `none` run among the runs."""
    if baseline is not None:
        candidate = check_run_dir(baseline)
        if read_summary(candidate)["defense"] != UNPROTECTED:
            raise InputError(
                f"--baseline {candidate} is a {read_summary(candidate)['defense']!r} run; give the unprotected (`none`) run"
            )
        return candidate
    unprotected = [folder for folder in folders if read_summary(folder)["defense"] == UNPROTECTED]
    if len(unprotected) != 1:
        found = "none" if not unprotected else f"{len(unprotected)}"
        raise InputError(
            f"score_cls needs one unprotected baseline; {found} `none` runs among the runs given: "
            "include the `none` run trained on the same data, or pass --baseline RUN_DIR"
        )
    return unprotected[0]


def check_same_data(folder: Path, baseline_dir: Path) -> None:
    """score_cls compares accuracies on the same verification pairs, so both runs must come from one prepared set."""
    if _prepared_of(folder) != _prepared_of(baseline_dir):
        raise InputError(
            f"{folder} and the baseline {baseline_dir} were trained on different prepared data; "
            "compare runs on the same faces (pass --baseline with the `none` run of this data)"
        )


def _prepared_of(folder: Path) -> Path:
    saved = torch.load(folder / MODEL_FILE, map_location="cpu", weights_only=True)
    return prepared_folder_of(training_data_dir(saved["dataset"], folder)).resolve()


def saved_report(run_dir: Path) -> RunReport | None:
    """The run's report.json, if it has one (a baseline evaluated earlier)."""
    return read_run_report(run_dir) if (run_dir / REPORT_JSON).is_file() else None


def attack_proof(report: RunReport, proof_source: RunReport | None) -> dict[str, bool]:
    """Which attacks are proven, from the `none` run's outcomes (`measures.proven_on_none`), when it was attacked
    with the same budget and the same attacker faces; none is proven otherwise."""
    source = proof_source or report
    if source.defense != "none" or any(
        source.settings.get(name) != report.settings.get(name) for name in ("attack_budget", "attacker_faces")
    ):
        return {}
    return proven_on_none(source.attacks, source.calibration)


def evaluate_run(
    run_dir: Path,
    baseline_accuracy: float,
    caches: AttackCaches,
    say: Progress,
    attacks: Sequence[str] = ATTACK_NAMES,
    proof_source: RunReport | None = None,
) -> RunReport:
    """Score one run and write its report; proof_source: the `none` run's report (None: this run is it)."""
    records = [record for record in current_records(run_dir) if record["attack"] in attacks]
    budgets = budgets_of(records, run_dir)
    with torch_threads(budgets.threads):
        run = load_run(run_dir)
        defense = PublicDefenseConfig.from_run(run)
        say(f"{run_dir.name}: evaluators and renderings of the server view")
        judges = caches.judges.judges(run.private, run.public, budgets.evaluator, budgets.seed, budgets.dlib_processes)
        targets = build_server_targets(run, defense, budgets.max_targets, budgets.seed)
        sent = sent_appearances(run, sent_samples(run))
        renderings = server_renderings(targets, defense)
        if defense.masked:
            renderings.update(key_free_renderings(targets.inputs, defense, run.public, budgets.seed))
        rendering_outcomes = {
            name: judges.evaluator.outcome(images, targets.labels, targets.original_indices)
            for name, images in renderings.items()
        }
        outcomes: dict[str, dict[str, AttackOutcome]] = {}
        for record in records:
            outcomes.setdefault(record["attack"], {})[record["key_setting"]] = record_outcome(run_dir, record, judges)
    report = build_run_report(
        defense=run.defense,
        renderings=rendering_outcomes,
        attacks=outcomes,
        verification_accuracy=float(run.summary["verification_accuracy"]),
        baseline_verification_accuracy=baseline_accuracy,
        calibration=judges.check.calibration,
        synthetic_data=run.synthetic_data,
        settings={
            **report_settings(run_dir, defense, judges, budgets, records, run.summary),
            "server_view": sent,
            "attacker_faces": attacker_faces_summary(run),
        },
    )
    report = dataclasses.replace(report, proven=attack_proof(report, proof_source))
    write_run_report(report, run_dir, grid_images(run_dir, run.private.images, targets, renderings, records))
    return report


def attacker_faces_summary(run: RunData) -> dict[str, Any]:
    """Which public faces the attacks had: counts, and whether they are the data set's own public split or a
    `--public` folder's (told apart by its manifest's digest, never by its path)."""
    folder = attacker_faces_dir(run.prepared_dir)
    return {
        "images": len(run.public.labels),
        "identities": int(run.public.labels.unique().numel()),
        "source": "the data set's public split" if folder == run.prepared_dir else "another prepared folder (--public)",
        "manifest_sha256": hashlib.sha256((folder / MANIFEST_NAME).read_bytes()).hexdigest(),
    }


def budgets_of(records: Sequence[dict[str, Any]], run_dir: Path) -> BudgetConfig:
    budgets = {repr(sorted(record["budget"].items())) for record in records}
    if len(budgets) != 1:
        raise InputError(
            f"the attack outputs in {run_dir / ATTACKS_DIR} were made with different budgets; re-run `hybridmask attack` for all"
        )
    return from_dict(BudgetConfig, records[0]["budget"])


def record_outcome(run_dir: Path, record: dict[str, Any], judges: Judges) -> AttackOutcome:
    if record["judges"] == judges.fingerprint:
        values = dict(record["outcome"])
        values["psnr"] = float("inf") if values.get("psnr") is None else values["psnr"]
        return AttackOutcome.from_dict(values)
    saved = read_reconstructions(run_dir, record)
    indices = saved["original_indices"]
    return judges.evaluator.outcome(
        saved["reconstructions"].transpose(0, 2, 3, 1), saved["labels"], None if (indices < 0).all() else indices
    )


def report_settings(
    run_dir: Path,
    defense: PublicDefenseConfig,
    judges: Judges,
    budgets: BudgetConfig,
    records: Sequence[dict[str, Any]],
    summary: dict[str, Any],
) -> dict[str, Any]:
    return {
        "run_dir": str(run_dir),
        "defense": defense.summary(),
        "evaluators": {**judges.check.to_dict(), "dlib_weak": judges.check.dlib_is_weak},
        "attack_budget": to_dict(budgets),
        "attack_seconds": {f"{r['attack']}/{r['key_setting']}": round(r["seconds"], 1) for r in records},
        "attack_knowledge": {f"{r['attack']}/{r['key_setting']}": r["knowledge"]["masker"] for r in records},
        "training": {
            **{
                name: summary.get(name)
                for name in ("epochs", "backbone", "identities", "train_images", "tar_at_far_1e-3", "mean_k")
            },
            "wall_seconds": summary.get("wall_seconds_this_session"),
            "verification_curve": [list(point) for point in read_verification_curve(run_dir)],
        },
    }


def grid_images(
    run_dir: Path,
    originals: torch.Tensor,
    targets: ServerTargets,
    renderings: dict[str, torch.Tensor],
    records: Sequence[dict[str, Any]],
) -> GridImages:
    """One row per identity (the first target of each of the first GRID_ROWS identities): original | server
    view | each attack's reconstruction of that target (or of that person, for identity-level attacks). Only
    people every attack reconstructed are shown."""
    saved_sets = [read_reconstructions(run_dir, record) for record in records]
    shown = set(targets.labels.tolist())
    for record, saved in zip(records, saved_sets):
        if record["targets"]["kind"] == "identities":
            shown &= set(saved["labels"].tolist())
    first_rows = [
        int(np.flatnonzero(targets.labels.numpy() == label)[0]) for label in dict.fromkeys(targets.labels.tolist())
    ]
    rows = [row for row in first_rows if int(targets.labels[row]) in shown][:GRID_ROWS]
    if not rows:
        raise InputError(
            f"no person was attacked by every attack in {run_dir / ATTACKS_DIR}; re-run `hybridmask attack`"
        )
    labels = targets.labels[rows]
    columns = {}
    for record, saved in zip(records, saved_sets):
        if record["targets"]["kind"] == "images":
            picked = saved["reconstructions"][rows]
        else:
            picked = np.stack(
                [saved["reconstructions"][np.flatnonzero(saved["labels"] == label)[0]] for label in labels.tolist()]
            )
        columns[f"{record['attack']} (key {record['key_setting']})"] = picked.transpose(0, 2, 3, 1)
    return GridImages(
        originals=originals[targets.original_indices[rows]],
        server_view=next(iter(renderings.values()))[rows],
        reconstructions=columns,
        labels=labels.tolist(),
    )
