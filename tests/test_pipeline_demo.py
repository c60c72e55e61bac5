"""`hybridmask demo` end to end at a reduced size: it finishes, its report lists every defence's measures and says the
faces are synthetic, and running it again reuses every finished step instead of redoing it."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainers.local_ray import PREEMPTION_WATCHER_ENV

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
MEASURES = ("S1", "S2", "S3", "S4", "score_pp", "score_cls", "overall", "verification_accuracy")
# The demo's own pipeline, with fewer faces, epochs and attack steps: the pipeline is under test, not the scale.
REDUCED = [
    "--identities", "16", "--images-per-identity", "8", "--epochs", "4", "--set", "optim.batch_size=8",
    "--set", "budget.max_targets=8", "--set", "budget.max_identities=4", "--set", "budget.threads=2",
    "--set", "budget.recovery.steps=15", "--set", "budget.whitebox.gan_steps=15", "--set", "budget.whitebox.inversion_steps=4",
    "--set", "budget.whitebox.restarts=1", "--set", "budget.blackbox.steps=15", "--set", "budget.evaluator.classifier_epochs=2",
]  # fmt: skip
TIMEOUT_S = 600


def run_demo(out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(REPO_ROOT)}
    env.pop(PREEMPTION_WATCHER_ENV, None)  # other test modules set it in this process: the demo must set it itself
    command = [sys.executable, "-m", "pipelines.cli", "demo", "--out", str(out), *REDUCED]
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("demo") / "out"
    return out, run_demo(out)


def test_demo_reports_every_defense_with_all_measures(demo) -> None:
    out, done = demo
    assert f"report: {out / 'report.md'}" in done.stdout
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    rows = {row["defense"]: row for row in report["defenses"]}
    assert list(rows) == ["none", "ppfr_fd", "hybrid_adaptive"]
    for name, row in rows.items():
        for measure in MEASURES:
            assert math.isfinite(row[measure]) and 0.0 <= row[measure] <= 1.0, (name, measure, row[measure])
    assert rows["none"]["score_cls"] == 1.0 and rows["none"]["S1"] == 0.0  # the baseline's own data, shown raw
    assert rows["hybrid_adaptive"]["mean_k"] >= 2.0 and rows["hybrid_adaptive"]["k_histogram"]
    assert report["best_overall"] == max(rows.values(), key=lambda row: row["overall"])["defense"]
    assert (out / "privacy_utility.png").stat().st_size > 10_000
    assert (out / "accuracy_per_epoch.png").stat().st_size > 10_000 and "accuracy_per_epoch.png" in (
        out / "report.md"
    ).read_text(encoding="utf-8")
    for name, row in rows.items():  # every epoch verified (4 in the reduced demo), recorded for the figure
        assert [epoch for epoch, _ in row["settings"]["training"]["verification_curve"]] == [1, 2, 3, 4], name
    for name in rows:
        assert (out / "runs" / name / "report.md").is_file() and (out / "runs" / name / "grid.png").is_file()


def test_demo_report_says_the_faces_are_synthetic(demo) -> None:
    out, done = demo
    assert json.loads((out / "report.json").read_text(encoding="utf-8"))["synthetic_data"] is True
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert "Synthetic faces" in markdown and "SYNTHETIC" in done.stdout
    for name in ("none", "ppfr_fd", "hybrid_adaptive"):
        assert f"| {name} |" in markdown


def test_a_local_ray_starts_no_preemption_watcher_whose_start_prints_an_error_line(demo) -> None:
    _, done = demo
    assert "PreemptionWatcher" not in done.stdout + done.stderr


def test_demo_run_again_reuses_training_and_attacks(demo) -> None:
    out, _ = demo
    models = {path: path.stat().st_mtime_ns for path in out.glob("runs/*/model.pt")}
    records = {path: path.stat().st_mtime_ns for path in out.glob("runs/*/attacks/*.json")}
    assert len(models) == 3 and records
    again = run_demo(out)
    for name in ("none", "ppfr_fd", "hybrid_adaptive"):
        assert f"{name}: trained earlier, reusing" in again.stdout
        assert f"{name}: attacked earlier with the same budget, reusing its records" in again.stdout
    assert {path: path.stat().st_mtime_ns for path in models} == models
    assert {path: path.stat().st_mtime_ns for path in records} == records
