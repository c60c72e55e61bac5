"""Reports: written, readable, complete, and free of the secret key."""

from __future__ import annotations

import base64
import json
import math
import secrets
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import torch

from common.errors import InputError
from evaluation.attacks.base import AttackContext, MeanFaceAttack
from evaluation.figures import GridImages
from evaluation.measures import AttackOutcome, Calibration, proven_on_none
from evaluation.report import (
    RunReport,
    build_run_report,
    comparison_markdown,
    public_settings,
    read_run_report,
    run_markdown,
    write_comparison,
    write_run_report,
)

REQUIRED_KEYS = {
    "defense", "S1", "S2", "S3", "S4", "score_pp", "score_cls", "overall",
    "verification_accuracy", "attacks", "synthetic_data",
}  # fmt: skip
OUTCOME_KEYS = {"ssim", "psnr", "top1", "top5", "knn_dist"}
SHAPE = (1, 24, 20)


CALIBRATION = Calibration(chance=0.0, originals_top1={"dlib": 1.0})  # q = SSIM, p-hat = top-1


def outcome(ssim: float, top1: float, psnr: float = 18.0) -> AttackOutcome:
    return AttackOutcome(
        ssim=ssim, psnr=psnr, top1=top1, top5=min(1.0, 2 * top1), knn_dist=0.55, ssim_prior=0.0, judged=20
    )


def sample_report(defense: str = "ppfr_fd", synthetic: bool = True, settings: dict | None = None) -> RunReport:
    return build_run_report(
        defense=defense,
        renderings={"server_view": outcome(0.2, 0.1)},
        attacks={"recovery": {"known": outcome(0.7, 0.6, psnr=math.inf), "unknown": outcome(0.3, 0.2)}},
        verification_accuracy=0.88,
        baseline_verification_accuracy=0.92,
        calibration=CALIBRATION,
        synthetic_data=synthetic,
        settings=settings or {"channel_ratio": 0.5},
    )


def grid_images(rows: int = 4) -> GridImages:
    generator = torch.Generator().manual_seed(0)
    return GridImages(
        originals=torch.rand(rows, *SHAPE, generator=generator),
        server_view=torch.rand(rows, *SHAPE, generator=generator),
        reconstructions={"recovery (key known)": torch.rand(rows, *SHAPE, generator=generator)},
        labels=list(range(rows)),
    )


def test_run_report_json_holds_every_required_key_and_round_trips(tmp_path: Path) -> None:
    report = sample_report()
    paths = write_run_report(report, tmp_path)
    data = json.loads(paths["json"].read_text())
    assert data.keys() >= REQUIRED_KEYS
    assert set(data["attacks"]["recovery"]) == {"known", "unknown"}
    assert data["attacks"]["recovery"]["unknown"].keys() >= OUTCOME_KEYS
    assert data["attacks"]["recovery"]["known"]["psnr"] is None  # infinite PSNR: JSON has no infinity
    assert data["S3"] == pytest.approx(0.3) and data["S4"] == pytest.approx(0.4)
    assert data["overall"] == pytest.approx(report.scores.overall)
    assert read_run_report(tmp_path) == report


def test_markdown_report_shows_the_table_and_a_banner_only_for_synthetic_data(tmp_path: Path) -> None:
    synthetic = write_run_report(sample_report(synthetic=True), tmp_path / "synthetic")["markdown"].read_text()
    real = write_run_report(sample_report(synthetic=False), tmp_path / "real")["markdown"].read_text()
    assert "SYNTHETIC DATA" in synthetic and "SYNTHETIC DATA" not in real
    for name in ("S1", "S2", "S3", "S4", "score_pp", "score_cls", "overall"):
        assert f"| {name} |" in real
    # p^ and its 95 % interval: 12 of 20 named (Wilson 0.387-0.781; this calibration leaves rates as they are)
    assert "| recovery (key known) | **no** | 0.700 | 0.600 (dlib) | 0.387–0.781 (20) | 0.700 | 0.000 | ∞ |" in real


def test_grid_and_scatter_figures_are_written_as_images(tmp_path: Path) -> None:
    paths = write_run_report(sample_report(), tmp_path / "run", grid=grid_images())
    grid = matplotlib.image.imread(paths["grid"])
    assert grid.shape[0] > grid.shape[1] > 200  # 4 rows by 3 columns of faces
    compared = write_comparison([sample_report("none", False), sample_report("hybrid", True)], tmp_path / "all")
    assert matplotlib.image.imread(compared["scatter"]).shape[1] > 400
    table = compared["markdown"].read_text()
    assert "| none |" in table and "| hybrid |" in table
    assert [row["defense"] for row in json.loads(compared["json"].read_text())] == ["none", "hybrid"]


def test_the_scatter_gives_each_defence_its_own_marker_and_names_every_one_in_its_legend() -> None:
    import matplotlib.pyplot as plt

    from evaluation.figures import privacy_utility_figure

    # three masked defences at nearly the same point: names written beside the points would cover each other
    reports = [sample_report(name, synthetic=False) for name in ("ppfr_fd", "hybrid_fixed", "hybrid_adaptive")]
    figure = privacy_utility_figure([*reports, sample_report("none", synthetic=False)])
    try:
        points = figure.axes[0].collections
        assert len(points) == 4
        markers = {tuple(map(tuple, point.get_paths()[0].vertices.round(3))) for point in points}
        assert len(markers) == 4, "two defences share a marker"
        named = [text.get_text() for legend in figure.legends for text in legend.get_texts()]
        assert named == ["ppfr_fd", "hybrid_fixed", "hybrid_adaptive", "none"]
    finally:
        plt.close(figure)


def test_grid_needs_one_image_per_row(tmp_path: Path) -> None:
    short = GridImages(torch.rand(4, *SHAPE), torch.rand(2, *SHAPE), {}, [0, 1, 2, 3])
    with pytest.raises(InputError, match="server view"):
        write_run_report(sample_report(), tmp_path, grid=short)


def test_no_written_file_contains_the_key(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    ctx = AttackContext(
        public_images=torch.rand(6, *SHAPE),
        public_labels=torch.arange(6),
        target_labels=torch.tensor([0, 1, 2, 3]),
        image_shape=SHAPE,
        key_setting="known",
        key=key,
        masking_settings={"channel_ratio": 0.5, "key_fingerprint": "0123456789abcdef"},
    )
    attack = MeanFaceAttack()
    attack.fit(ctx)
    result = attack.reconstruct(ctx)
    report = sample_report(settings={"attack": ctx.public_summary()})
    grid = GridImages(
        result.reconstructions, result.reconstructions, {"mean face": result.reconstructions}, [0, 1, 2, 3]
    )
    write_run_report(report, tmp_path / "run", grid=grid)
    write_comparison([report], tmp_path / "compare")
    forms = [key, key.hex().encode(), key.hex().upper().encode(), base64.b64encode(key), repr(key).encode()]
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert len(written) == 7  # report.json, report.md, grid.png; comparison .md, .json and two figures
    for path in written:
        content = path.read_bytes()
        assert not any(form in content for form in forms), f"{path.name} contains the key"


def test_settings_refuse_binary_values_and_key_named_entries() -> None:
    with pytest.raises(InputError, match="binary"):
        public_settings({"masking": {"seed_material": b"\x00\x01"}})
    with pytest.raises(InputError, match="fingerprint"):
        public_settings({"masking": {"key": "00ff"}})
    with pytest.raises(InputError, match="not a public JSON value"):
        public_settings({"weights": np.zeros(3)})
    assert public_settings({"k": [2, 3], "name": "hybrid", "ratio": 0.5, "flag": None}) == {
        "k": [2, 3], "name": "hybrid", "ratio": 0.5, "flag": None,
    }  # fmt: skip


def test_p_hat_takes_the_stronger_calibrated_evaluator_and_a_weak_dlib_is_named(tmp_path: Path) -> None:
    judged = AttackOutcome(
        ssim=0.5, psnr=15.0, top1=0.1, top5=0.3, knn_dist=0.5, classifier_top1=0.7, classifier_top5=0.9, ssim_prior=0.3
    )
    check = {
        "dlib_top1": 0.6,
        "dlib_top5": 0.8,
        "classifier_top1": 0.95,
        "classifier_top5": 1.0,
        "chance_top1": 0.05,
        "num_identities": 20,
    }
    calibration = Calibration(0.05, {"dlib": 0.6, "classifier": 0.95})
    report = build_run_report(
        defense="ppfr_fd",
        renderings={"server view": judged},
        attacks={"recovery": {"unknown": judged}},
        verification_accuracy=0.8,
        baseline_verification_accuracy=0.9,
        calibration=calibration,
        synthetic_data=True,
        settings={"evaluators": {**check, "dlib_weak": True}},
    )
    data = json.loads(write_run_report(report, tmp_path)["json"].read_text(encoding="utf-8"))
    p_hat = (0.7 - 0.05) / (0.95 - 0.05)  # the classifier's, above dlib's (0.1 - 0.05) / (0.6 - 0.05)
    assert data["S4"] == pytest.approx(1 - p_hat) and data["S2"] == pytest.approx(1 - p_hat)
    assert data["S3"] == pytest.approx(1 - (0.5 - 0.3) / (1 - 0.3))
    assert data["score_cls"] == pytest.approx((0.8 - 0.5) / (0.9 - 0.5))
    assert data["calibration"] == {"chance": 0.05, "originals_top1": {"dlib": 0.6, "classifier": 0.95}}
    assert read_run_report(tmp_path) == report
    markdown = run_markdown(report)
    assert f"| {p_hat:.3f} (classifier) |" in markdown and "dlib is weak on these faces" in markdown
    strong = build_run_report("ppfr_fd", {"server view": judged}, {"recovery": {"unknown": judged}}, 0.8, 0.9,
                              calibration, True, settings={"evaluators": {**check, "dlib_top1": 1.0, "dlib_weak": False}})  # fmt: skip
    assert "## Evaluators" in run_markdown(strong) and "dlib is weak" not in run_markdown(strong)


def test_comparison_tells_fixed_k_runs_of_one_defense_apart_by_their_k(tmp_path: Path) -> None:
    def fixed(k: int) -> RunReport:
        return sample_report(
            "hybrid_fixed", False, {"defense": {"defense": "hybrid_fixed", "k_distribution": {str(k): 1.0}}}
        )

    adaptive = sample_report(
        "hybrid_adaptive", False, {"defense": {"defense": "hybrid_adaptive", "k_distribution": {"2": 0.4, "6": 0.6}}}
    )
    assert [report.label for report in (fixed(2), fixed(4), adaptive)] == [
        "hybrid_fixed k=2",
        "hybrid_fixed k=4",
        "hybrid_adaptive",
    ]
    table = write_comparison([fixed(2), fixed(4), adaptive], tmp_path)["markdown"].read_text()
    assert "| hybrid_fixed k=2 |" in table and "| hybrid_fixed k=4 |" in table and "| hybrid_adaptive |" in table


def test_attacks_are_proven_on_none_and_the_report_says_whether_the_worst_case_rests_on_proven_ones() -> None:
    calibration = Calibration(chance=0.1, originals_top1={"dlib": 0.9})
    on_none = {"recovery": {"unknown": outcome(0.8, 0.9)}, "whitebox": {"unknown": outcome(0.2, 0.3)}}
    proven = proven_on_none(on_none, calibration)
    assert proven == {"recovery": True, "whitebox": False}  # p^ 1.0 and (0.3 - 0.1) / 0.8 = 0.25 < 0.3
    attacks = {"recovery": {"known": outcome(0.3, 0.2)}, "whitebox": {"known": outcome(0.2, 0.5)}}
    unproven_worst = build_run_report(
        "ppfr_fd", {"server view": outcome(0.0, 0.0)}, attacks, 0.8, 0.9, calibration, False, proven=proven
    )
    assert unproven_worst.measures.S4_from == "whitebox/known" and not unproven_worst.worst_case_proven
    assert "**The worst case is not proven**: whitebox/known" in run_markdown(unproven_worst)
    assert "| **no** | real |" in comparison_markdown([unproven_worst])
    attacks["known_plaintext"] = {"unknown": outcome(0.1, 0.9)}  # a key-recovery attack: proven by the recovery
    proven_worst = build_run_report(
        "ppfr_fd", {"server view": outcome(0.0, 0.0)}, attacks, 0.8, 0.9, calibration, False, proven=proven
    )
    assert (
        proven_worst.measures.S4_from == "known_plaintext/unknown" and proven_worst.measures.S3_from == "recovery/known"
    )
    assert proven_worst.worst_case_proven and "Both rest on proven attacks" in run_markdown(proven_worst)
    assert RunReport.from_dict(proven_worst.to_dict()) == proven_worst


def test_a_comparison_shows_each_runs_training_and_its_accuracy_per_epoch(tmp_path: Path) -> None:
    def trained(defense: str, curve: list[list[float]], seconds: float) -> RunReport:
        training = {"epochs": len(curve), "tar_at_far_1e-3": 0.25, "wall_seconds": seconds, "verification_curve": curve}
        return sample_report(defense, False, {"training": training})

    still_rising = trained("none", [[1, 0.6], [2, 0.7], [3, 0.8]], 90.0)
    levelled = trained("ppfr_fd", [[1, 0.65], [2, 0.72], [3, 0.69]], 30.0)
    assert read_run_report(write_run_report(levelled, tmp_path / "run")["json"]).verification_curve == [
        (1, 0.65), (2, 0.72), (3, 0.69)
    ]  # fmt: skip
    compared = write_comparison([still_rising, levelled, sample_report("mixup", False)], tmp_path / "all")
    table = compared["markdown"].read_text()
    assert "| none | 0.880 | 0.250 | 3 | 3 (0.800) | 1.5 min |" in table
    assert "| ppfr_fd | 0.880 | 0.250 | 3 | 2 (0.720) | 0.5 min |" in table
    assert "| mixup | 0.880 | - | - | - | - |" in table  # a report without a training record still gets its row
    assert "](accuracy_per_epoch.png)" in table
    assert matplotlib.image.imread(compared["curves"]).shape[1] > 400


def test_a_none_run_proves_attacks_only_for_runs_attacked_with_its_budget_and_attacker_faces() -> None:
    from evaluation.evaluate_runs import attack_proof

    calibration = Calibration(chance=0.1, originals_top1={"dlib": 0.9})
    view = {"server view": outcome(0.0, 0.0)}
    own = {"attack_budget": {"seed": 0}, "attacker_faces": {"images": 80, "manifest_sha256": "a" * 64}}
    on_none = build_run_report(
        "none", view, {"whitebox": {"unknown": outcome(0.2, 0.9)}}, 0.9, 0.9, calibration, False, settings=own
    )

    def masked_run(settings: dict) -> RunReport:
        return build_run_report(
            "ppfr_fd", view, {"whitebox": {"known": outcome(0.1, 0.1)}}, 0.8, 0.9, calibration, False, settings=settings
        )

    assert attack_proof(masked_run(own), on_none) == {"whitebox": True}
    lfw = {**own, "attacker_faces": {"images": 8243, "manifest_sha256": "b" * 64}}  # `--public` for this run only
    assert attack_proof(masked_run(lfw), on_none) == {}
    assert attack_proof(masked_run({**own, "attack_budget": {"seed": 1}}), on_none) == {}
