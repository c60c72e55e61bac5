"""The attacks work, through the CLI, on real trained runs of synthetic faces.

The runs are the reduced demo's (tests/demo_run.py), shared with the demo's tests: synthetic people at 32 px,
masked at ratio 0.1 (so a leaked key has something to recover), every defence trained for a few epochs and
attacked at test-sized budgets. This module then runs `attack` and `evaluate` on them itself. "Recognisable" means
named well above the mean face's rate by an independent judge: dlib or the evaluation classifier (the MIA
convention), both of which tell these synthetic people apart on untouched originals.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest

from common.errors import InputError
from evaluation.attacks.base import MeanFaceAttack
from evaluation.budgets import load_budgets
from evaluation.evaluate_runs import evaluate_runs
from evaluation.measures import PROVEN_P_HAT, AttackOutcome, identification
from evaluation.report import REPORT_JSON, read_run_report
from evaluation.run_attacks import AttackCaches, attack_context, identity_targets, plan_attacks, read_attack_records
from evaluation.run_data import load_run
from evaluation.server_view import PublicDefenseConfig, build_server_targets
from pipelines.cli.main import main
from pipelines.client.keyfile import read_key_file
from tests.demo_run import BUDGET, DemoRun

pytestmark = pytest.mark.slow

REQUIRED_REPORT_KEYS = {
    "defense", "S1", "S2", "S3", "S4", "score_pp", "score_cls", "overall", "verification_accuracy", "attacks",
    "synthetic_data", "calibration", "renderings", "settings",
}  # fmt: skip


def budget_flags() -> list[str]:
    return [flag for value in BUDGET for flag in ("--set", f"budget.{value}")]


@pytest.fixture(scope="module")
def evaluated(reduced_demo: DemoRun) -> dict[str, Path]:
    """The demo's runs, the key-known recovery attacked again through `attack`, and both runs compared by `evaluate`."""
    runs = {defense: reduced_demo.run_dir(defense) for defense in ("none", "ppfr_fd")}
    cache, compared = reduced_demo.cache, reduced_demo.out.parent / "compared"
    record = runs["ppfr_fd"] / "attacks" / "recovery-known.json"
    before = record.stat().st_mtime_ns
    attack = ["attack", str(runs["ppfr_fd"]), "--key", str(reduced_demo.key), "--attacks", "recovery"]
    assert main([*attack, "--key-setting", "known", "--cache-dir", str(cache), "--quiet", *budget_flags()]) == 0
    assert record.stat().st_mtime_ns > before, "`attack` must redo the attack it is asked for"
    evaluate = ["evaluate", str(runs["none"]), str(runs["ppfr_fd"]), "--out", str(compared)]
    assert main([*evaluate, "--cache-dir", str(cache), "--quiet"]) == 0
    return {**runs, "key": reduced_demo.key, "cache": cache, "compared": compared, "out": reduced_demo.out}


def outcomes(run_dir: Path) -> dict[tuple[str, str], dict]:
    return {(r["attack"], r["key_setting"]): r["outcome"] for r in read_attack_records(run_dir)}


def mean_face_outcome(run_dir: Path, cache: Path):
    """The trivial baseline on the same targets, judged by the same (cached) evaluators."""
    budgets = load_budgets("small", BUDGET)
    run = load_run(run_dir)
    defense = PublicDefenseConfig.from_run(run)
    targets = build_server_targets(run, defense, budgets.max_targets, budgets.seed)
    ctx = attack_context(run, defense, "recovery", "unknown", None, budgets, budgets.torch_device(), targets,
                         identity_targets(targets, run.private.labels, budgets.max_identities))  # fmt: skip
    attack = MeanFaceAttack()
    attack.fit(ctx)
    return (
        AttackCaches(cache)
        .judges.judges(run.private, run.public, budgets.evaluator, budgets.seed)
        .evaluator.attack_outcome(attack.reconstruct(ctx))
    )


def test_recovery_is_proven_on_the_unprotected_model_and_beats_the_mean_face(evaluated: dict[str, Path]) -> None:
    baseline = mean_face_outcome(evaluated["none"], evaluated["cache"])
    assert baseline.ssim == pytest.approx(baseline.ssim_prior)  # the mean face is the lower anchor: q = 0
    found = outcomes(evaluated["none"])
    assert set(found) == {(name, "unknown") for name in ("recovery", "whitebox", "blackbox", "demixing")}
    recovery = found[("recovery", "unknown")]
    assert recovery["ssim"] >= baseline.ssim + 0.2
    report = read_run_report(evaluated["none"])
    assert report.proven["recovery"] is True
    assert report.proven["demixing"] is True  # each person's mean face sent (measured: classifier top-1 1.0)
    assert identification(AttackOutcome.from_dict(recovery), report.calibration)[0] >= PROVEN_P_HAT


def test_each_attack_is_marked_proven_exactly_when_it_identifies_people_on_the_unprotected_model(
    evaluated: dict[str, Path],
) -> None:
    """Model inversion at this test's tiny budget may or may not identify people; whatever it does, the report must
    say so: an attack counts as proven only with p-hat >= PROVEN_P_HAT against `none`."""
    report = read_run_report(evaluated["none"])
    found = outcomes(evaluated["none"])
    for (attack, _), outcome in found.items():
        p_hat = identification(AttackOutcome.from_dict(outcome), report.calibration)[0]
        assert report.proven[attack] is (p_hat >= PROVEN_P_HAT), (attack, p_hat)
    masked = read_run_report(evaluated["ppfr_fd"])
    assert {a: masked.proven[a] for a in report.proven} == report.proven  # the defence's report carries none's proof


def test_the_masked_defense_scores_more_privacy_than_none(evaluated: dict[str, Path]) -> None:
    none, masked = read_run_report(evaluated["none"]), read_run_report(evaluated["ppfr_fd"])
    assert masked.scores.score_pp > none.scores.score_pp + 0.2
    assert masked.measures.S1 > none.measures.S1 and none.measures.S1 == 0.0  # the server sees the raw image under none


def test_a_leaked_key_recovers_at_least_as_well_as_no_key_against_ppfr_fd(evaluated: dict[str, Path]) -> None:
    found = outcomes(evaluated["ppfr_fd"])
    known, unknown = found[("recovery", "known")], found[("recovery", "unknown")]
    # SSIM is the honest signal here: on 16 blurred 32 px reconstructions the identification rates move by
    # one or two images between settings (measured: SSIM 0.67 known vs 0.44 unknown).
    assert known["ssim"] >= unknown["ssim"] + 0.1
    assert known["psnr"] >= unknown["psnr"]


def test_reports_are_written_readable_and_hold_every_required_key(evaluated: dict[str, Path]) -> None:
    for defense in ("none", "ppfr_fd"):
        folder = evaluated[defense]
        data = json.loads((folder / REPORT_JSON).read_text(encoding="utf-8"))
        assert set(data) >= REQUIRED_REPORT_KEYS and data["defense"] == defense and data["synthetic_data"] is True
        for by_setting in data["attacks"].values():
            for outcome in by_setting.values():
                assert {"ssim", "psnr", "top1", "top5", "knn_dist", "classifier_top1"} <= set(outcome)
        assert {"dlib_top1", "classifier_top1", "chance_top1"} <= set(data["settings"]["evaluators"])
        report = read_run_report(folder)
        assert report.defense == defense and 0.0 <= report.scores.overall <= 1.0
        markdown = (folder / "report.md").read_text(encoding="utf-8")
        assert "SYNTHETIC DATA" in markdown and "| proven | q | p^ |" in markdown and "## Evaluators" in markdown
        assert (folder / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert read_run_report(evaluated["none"]).scores.score_cls == 1.0
    compared = evaluated["compared"]
    assert len(json.loads((compared / "comparison.json").read_text(encoding="utf-8"))) == 2
    assert (compared / "privacy_utility.png").stat().st_size > 0 and "ppfr_fd" in (
        compared / "comparison.md"
    ).read_text(encoding="utf-8")
    with np.load(evaluated["ppfr_fd"] / "attacks" / "recovery-known.npz") as saved:
        assert saved["reconstructions"].shape == (16, 3, 32, 32) and saved["reconstructions"].dtype == np.uint8


def test_the_key_appears_in_no_written_file(evaluated: dict[str, Path]) -> None:
    key = read_key_file(evaluated["key"])
    forms = [key, key.hex().encode(), key.hex().upper().encode(), base64.b64encode(key), base64.urlsafe_b64encode(key)]
    forms += [base64.b64encode(key).rstrip(b"="), base64.b32encode(key)]
    folders = [evaluated["out"], evaluated["compared"]]  # the demo's whole output: data, runs, caches, reports
    files = [path for folder in folders for path in folder.rglob("*") if path.is_file()]
    assert any(path.name == "recovery-known.json" for path in files)
    leaking = [str(path) for path in files if any(form in path.read_bytes() for form in forms)]
    assert not leaking


def test_attacking_with_a_wrong_key_or_evaluating_without_a_baseline_fails_early(
    evaluated: dict[str, Path], tmp_path: Path
) -> None:
    assert main(["keygen", "--out", str(tmp_path / "other")]) == 0
    with pytest.raises(InputError, match="fingerprint"):
        plan_attacks(evaluated["ppfr_fd"], "recovery", "known", read_key_file(tmp_path / "other"))
    with pytest.raises(InputError, match="baseline"):
        evaluate_runs([evaluated["ppfr_fd"]])
