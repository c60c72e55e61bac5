"""`hybridmask demo` end to end at a reduced size: it finishes, its report lists every defence's measures and says the
faces are synthetic, and running it again reuses every finished step instead of redoing it."""

from __future__ import annotations

import json
import math

import pytest

from tests.demo_run import DEMO_DEFENSES, DEMO_EPOCHS, DemoRun, run_demo

pytestmark = pytest.mark.slow

MEASURES = ("S1", "S2", "S3", "S4", "score_pp", "score_cls", "overall", "verification_accuracy")


@pytest.fixture(scope="module")
def demo(reduced_demo: DemoRun):
    return reduced_demo.out, reduced_demo.done


def test_demo_reports_every_defense_with_all_measures(demo) -> None:
    out, done = demo
    assert f"report: {out / 'report.md'}" in done.stdout
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    rows = {row["defense"]: row for row in report["defenses"]}
    assert tuple(rows) == DEMO_DEFENSES
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
    for name, row in rows.items():  # every epoch verified, recorded for the figure
        curve = row["settings"]["training"]["verification_curve"]
        assert [epoch for epoch, _ in curve] == list(range(1, DEMO_EPOCHS + 1)), name
    for name in rows:
        assert (out / "runs" / name / "report.md").is_file() and (out / "runs" / name / "grid.png").is_file()


def test_demo_report_says_the_faces_are_synthetic(demo) -> None:
    out, done = demo
    assert json.loads((out / "report.json").read_text(encoding="utf-8"))["synthetic_data"] is True
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert "Synthetic faces" in markdown and "SYNTHETIC" in done.stdout
    for name in DEMO_DEFENSES:
        assert f"| {name} |" in markdown


def test_a_local_ray_starts_no_preemption_watcher_whose_start_prints_an_error_line(demo) -> None:
    _, done = demo
    assert "PreemptionWatcher" not in done.stdout + done.stderr


def test_demo_run_again_reuses_training_and_attacks(reduced_demo: DemoRun) -> None:
    out = reduced_demo.out
    models = {path: path.stat().st_mtime_ns for path in out.glob("runs/*/model.pt")}
    records = {path: path.stat().st_mtime_ns for path in out.glob("runs/*/attacks/*.json")}
    assert len(models) == 3 and records
    again = run_demo(out, reduced_demo.key)
    for name in DEMO_DEFENSES:
        assert f"{name}: trained earlier, reusing" in again.stdout
        assert f"{name}: attacked earlier with the same budget, reusing its records" in again.stdout
    assert {path: path.stat().st_mtime_ns for path in models} == models
    assert {path: path.stat().st_mtime_ns for path in records} == records
