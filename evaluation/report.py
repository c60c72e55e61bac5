"""Per-run privacy reports (report.json, report.md, grid figure) and the comparison across runs.

Reports are built only from public fields: outcomes, scores and a settings dictionary of JSON scalars. Settings
are checked before anything is written: binary values and entries named like key material are refused, so a
secret key cannot slip into a report through a careless caller (a key fingerprint is fine, and is a string).

report.json keys: defense, S1, S2, S3, S4, score_pp, score_cls, overall, verification_accuracy,
baseline_verification_accuracy, calibration {chance, originals_top1 {dlib, classifier}}, attacks {attack:
{setting: {ssim, ssim_prior, psnr, top1, top5, knn_dist, classifier_top1, classifier_top5}}}, renderings {name:
same fields}, worst_case {S1..S4: "name" or "attack/setting"}, alpha, beta, scored_settings, combine,
privacy_weight, synthetic_data, settings. A psnr of null means infinite (identical images); JSON has no infinity.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from common.errors import InputError
from common.files import atomic_write_text, read_json
from evaluation.measures import (
    DEFAULT_ALPHA,
    DEFAULT_BETA,
    PROVEN_P_HAT,
    VIEW_PREFIX,
    AttackOutcome,
    Calibration,
    Combine,
    PrivacyMeasures,
    Scores,
    identification,
    identification_interval,
    image_similarity,
    privacy_measures,
    scores,
)
from trainers.defenses import DEFENSES

if TYPE_CHECKING:
    from evaluation.figures import GridImages

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
GRID_PNG = "grid.png"
COMPARISON_MD = "comparison.md"
COMPARISON_JSON = "comparison.json"
SCATTER_PNG = "privacy_utility.png"
CURVES_PNG = "accuracy_per_epoch.png"

_SECRET_NAMES = {"key", "secret", "masking_key", "key_bytes", "secret_key", "client_key", "password", "token"}
_SYNTHETIC_BANNER = (
    "> **SYNTHETIC DATA.** These numbers were measured on generated faces, not on real people: they show that the "
    "pipeline works, not how private a real deployment is."
)
MEASURE_EXPLANATIONS = {
    "S1": "masking, image level: 1 - q of the most revealing rendering of the masked data",
    "S2": "masking, feature level: 1 - p^ of the most recognised rendering",
    "S3": "attack, image level: 1 - q of the best reconstruction (attacks x key settings, the server view included)",
    "S4": "attack, feature level: 1 - p^ of the most recognised reconstruction (same worst case)",
    "score_pp": "privacy: alpha*(S1+S2)/2 + beta*(S3+S4)/2; 1 is perfect privacy",
    "score_cls": "utility: clip((acc - 0.5) / (acc_none - 0.5), 0, 1), the unprotected model's above-chance accuracy kept",
    "overall": "the balance of privacy and utility that tuning maximises",
}
PROVEN_BY = {"known_plaintext": "recovery", "statistics_key": "recovery"}
"""Key-recovery attacks run the recovery with a key they estimated; on `none` (no key) they are the recovery."""
ANCHOR_EXPLANATIONS = (
    "q = clip((SSIM - SSIM_prior) / (1 - SSIM_prior), 0, 1) is 1 for the raw face and 0 for the public mean face "
    "(SSIM_prior: the mean face's SSIM to the same originals); p^ = clip((top-1 - chance) / (top-1 on originals - "
    "chance), 0, 1), the highest over dlib and the evaluation classifier."
)


@dataclass(frozen=True)
class RunReport:
    """Everything the report of one run says; built from public fields only (see `build_run_report`)."""

    defense: str
    measures: PrivacyMeasures
    scores: Scores
    verification_accuracy: float
    baseline_verification_accuracy: float
    calibration: Calibration
    attacks: dict[str, dict[str, AttackOutcome]]
    renderings: dict[str, AttackOutcome]
    synthetic_data: bool
    settings: dict[str, Any] = field(default_factory=dict)
    proven: dict[str, bool] = field(default_factory=dict)  # attack -> proven on `none` (`measures.proven_on_none`)

    def attack_proven(self, name: str) -> bool:
        """Whether a worst-case source is proven: a rendering (the server's own data) always is; key-recovery
        attacks are as proven as the recovery they run (on `none` there is no key to recover)."""
        if name.startswith(VIEW_PREFIX):
            return True
        attack = name.split("/")[0]
        return self.proven.get(PROVEN_BY.get(attack, attack), False)

    @property
    def worst_case_proven(self) -> bool:
        """Whether S3 and S4 rest on proven attacks only."""
        return self.attack_proven(self.measures.S3_from) and self.attack_proven(self.measures.S4_from)

    @property
    def verification_curve(self) -> list[tuple[int, float]]:
        """(epoch, verification accuracy) after each verified epoch, as training recorded it (empty if unknown)."""
        curve = self.settings.get("training", {}).get("verification_curve") or []
        return [(int(epoch), float(accuracy)) for epoch, accuracy in curve]

    @property
    def label(self) -> str:
        """The defence's name, with its k when it mixes a fixed number of images (runs differing in k told apart)."""
        k_distribution = self.settings.get("defense", {}).get("k_distribution", {})
        row = DEFENSES.get(self.defense)  # None for a name this version does not know: its report still reads
        if row is not None and row.fixed_k and len(k_distribution) == 1:
            return f"{self.defense} k={next(iter(k_distribution))}"
        return self.defense

    def to_dict(self) -> dict[str, Any]:
        m = self.measures
        return {
            "defense": self.defense,
            "S1": m.S1, "S2": m.S2, "S3": m.S3, "S4": m.S4,
            "score_pp": self.scores.score_pp,
            "score_cls": self.scores.score_cls,
            "overall": self.scores.overall,
            "verification_accuracy": self.verification_accuracy,
            "baseline_verification_accuracy": self.baseline_verification_accuracy,
            "calibration": self.calibration.to_dict(),
            "attacks": {name: {s: o.to_dict() for s, o in by_setting.items()} for name, by_setting in self.attacks.items()},
            "renderings": {name: outcome.to_dict() for name, outcome in self.renderings.items()},
            "worst_case": {"S1": m.S1_from, "S2": m.S2_from, "S3": m.S3_from, "S4": m.S4_from},
            "alpha": m.alpha, "beta": m.beta, "scored_settings": list(m.scored_settings),
            "combine": self.scores.combine, "privacy_weight": self.scores.privacy_weight,
            "synthetic_data": self.synthetic_data,
            "proven": self.proven, "worst_case_proven": self.worst_case_proven,
            "settings": self.settings,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunReport:
        """Rebuild a report from report.json (to compare runs without re-running their attacks)."""
        return build_run_report(
            defense=data["defense"],
            renderings={name: _outcome_from_json(v) for name, v in data["renderings"].items()},
            attacks={a: {s: _outcome_from_json(v) for s, v in by.items()} for a, by in data["attacks"].items()},
            verification_accuracy=data["verification_accuracy"],
            baseline_verification_accuracy=data["baseline_verification_accuracy"],
            calibration=Calibration.from_dict(data["calibration"]),
            synthetic_data=data["synthetic_data"],
            settings=data.get("settings", {}),
            proven=data.get("proven", {}),
            alpha=data["alpha"],
            beta=data["beta"],
            scored_settings=data["scored_settings"],
            combine=data["combine"],
            privacy_weight=data["privacy_weight"],
        )


def build_run_report(
    defense: str,
    renderings: Mapping[str, AttackOutcome],
    attacks: Mapping[str, Mapping[str, AttackOutcome]],
    verification_accuracy: float,
    baseline_verification_accuracy: float,
    calibration: Calibration,
    synthetic_data: bool,
    settings: Mapping[str, Any] | None = None,
    proven: Mapping[str, bool] | None = None,
    alpha: float = DEFAULT_ALPHA,
    beta: float = DEFAULT_BETA,
    scored_settings: Sequence[str] | None = None,
    combine: Combine = "harmonic",
    privacy_weight: float = 0.5,
) -> RunReport:
    """Compute the measures and scores of one run and gather them with its public settings."""
    measures = privacy_measures(renderings, attacks, calibration, alpha, beta, scored_settings)
    return RunReport(
        defense=defense,
        measures=measures,
        scores=scores(measures, verification_accuracy, baseline_verification_accuracy, combine, privacy_weight),
        verification_accuracy=verification_accuracy,
        baseline_verification_accuracy=baseline_verification_accuracy,
        calibration=calibration,
        attacks={name: dict(by_setting) for name, by_setting in attacks.items()},
        renderings=dict(renderings),
        synthetic_data=bool(synthetic_data),
        settings=public_settings(settings or {}),
        proven=dict(proven or {}),
    )


def public_settings(settings: Mapping[str, Any], path: str = "settings") -> dict[str, Any]:
    """A JSON-ready copy of settings; InputError on binary values or entries named like key material."""
    clean: dict[str, Any] = {}
    for name, value in settings.items():
        where = f"{path}[{name!r}]"
        if not isinstance(name, str):
            raise InputError(f"{where}: setting names must be strings")
        if name.lower() in _SECRET_NAMES:
            raise InputError(f"{where}: reports never hold key material; report the key fingerprint instead")
        clean[name] = _public_value(value, where)
    return clean


def _public_value(value: Any, where: str) -> Any:
    if isinstance(value, Mapping):
        return public_settings(value, where)
    if isinstance(value, (list, tuple)):
        return [_public_value(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise InputError(
        f"{where}: {type(value).__name__} is not a public JSON value (str, number, bool, list, dict); "
        "reports hold no binary data or objects"
    )


def write_run_report(report: RunReport, out_dir: str | Path, grid: GridImages | None = None) -> dict[str, Path]:
    """Write report.json, report.md and, given grid images, grid.png into out_dir; return their paths."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / REPORT_JSON, "markdown": folder / REPORT_MD}
    _write_text(paths["json"], json.dumps(json_ready(report.to_dict()), indent=2, allow_nan=False) + "\n")
    _write_text(paths["markdown"], run_markdown(report))
    if grid is not None:
        from evaluation.figures import save_reconstruction_grid  # matplotlib only when a figure is asked for

        paths["grid"] = save_reconstruction_grid(
            grid, folder / GRID_PNG, title=f"{report.label}: what an attacker sees and recovers"
        )
    return paths


def read_run_report(path: str | Path) -> RunReport:
    """Load report.json (or the folder holding it)."""
    file = Path(path)
    file = file / REPORT_JSON if file.is_dir() else file
    if not file.is_file():
        raise InputError(f"{file}: no report here; run `hybridmask evaluate` on the run first")
    return RunReport.from_dict(read_json(file, "run `hybridmask evaluate` on the run again"))


def write_comparison(reports: Sequence[RunReport], out_dir: str | Path) -> dict[str, Path]:
    """Write comparison.md, comparison.json, the privacy-utility scatter and the accuracy-per-epoch figure for
    several runs."""
    if not reports:
        raise InputError("no reports to compare; give at least one run folder")
    from evaluation.figures import save_accuracy_per_epoch, save_privacy_utility_scatter

    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": folder / COMPARISON_MD, "json": folder / COMPARISON_JSON}
    _write_text(paths["markdown"], comparison_markdown(reports))
    rows = [json_ready(report.to_dict()) for report in reports]
    _write_text(paths["json"], json.dumps(rows, indent=2, allow_nan=False) + "\n")
    paths["scatter"] = save_privacy_utility_scatter(reports, folder / SCATTER_PNG)
    paths["curves"] = save_accuracy_per_epoch(
        [(r.label, r.verification_curve) for r in reports],
        folder / CURVES_PNG,
        synthetic=all(r.synthetic_data for r in reports),
    )
    return paths


def run_markdown(report: RunReport) -> str:
    m, s = report.measures, report.scores
    worst = {"S1": m.S1_from, "S2": m.S2_from, "S3": m.S3_from, "S4": m.S4_from}
    lines = [f"# Privacy report: {report.defense}", ""]
    if report.synthetic_data:
        lines += [_SYNTHETIC_BANNER, ""]
    lines += ["| measure | value | worst case from | what it says |", "|---|---|---|---|"]
    for name in ("S1", "S2", "S3", "S4"):
        lines.append(f"| {name} | {_fmt(getattr(m, name))} | {worst[name]} | {MEASURE_EXPLANATIONS[name]} |")
    lines.append(
        f"| score_pp | {_fmt(s.score_pp)} | | {MEASURE_EXPLANATIONS['score_pp']} (alpha={m.alpha:g}, beta={m.beta:g}) |"
    )
    lines.append(f"| score_cls | {_fmt(s.score_cls)} | | {MEASURE_EXPLANATIONS['score_cls']} |")
    lines.append(f"| overall | {_fmt(s.overall)} | | {MEASURE_EXPLANATIONS['overall']} ({_combine_words(s)}) |")
    lines += [
        "",
        f"Verification accuracy: {_fmt(report.verification_accuracy)} "
        f"(unprotected baseline {_fmt(report.baseline_verification_accuracy)}). "
        f"S3 and S4 take the worst case over the key settings: {', '.join(m.scored_settings)}. "
        f"{_proof_words(report)}",
        "",
        ANCHOR_EXPLANATIONS,
        "",
        "## Attacks",
        "",
        "Each attack is judged against the private originals: SSIM and PSNR (higher = more recovered), "
        "dlib top-1/top-5 identification rates (higher = more recognised) and the mean dlib distance to the true "
        "person's nearest original (lower = closer; dlib counts below 0.6 as the same person); q and p^ are the "
        "calibrated forms the measures use. p^'s 95 % interval is the Wilson interval of the deciding evaluator's "
        "rate over the images judged, calibrated alike: on a few dozen images a p^ near the proof bar is uncertain.",
        "",
        *_outcome_table(
            {f"{a} (key {s_})": o for a, by in report.attacks.items() for s_, o in by.items()},
            "attack",
            report.calibration,
            {f"{a} (key {s_})": report.attack_proven(a) for a, by in report.attacks.items() for s_ in by},
        ),
        "",
        "## Renderings of the masked data",
        "",
        "What the server can look at without any attack.",
        "",
        *_outcome_table(report.renderings, "rendering", report.calibration),
        *_sent_lines(report.settings.get("server_view")),
    ]
    lines += _evaluator_lines(report.settings.get("evaluators"))
    if report.settings:
        lines += ["", "## Settings", "", "```json", json.dumps(report.settings, indent=2, sort_keys=True), "```"]
    return "\n".join(lines) + "\n"


def _sent_lines(sent: dict[str, Any] | None) -> list[str]:
    """What the client sent over the run: de-mixing attacks exploit each face's reuse across samples."""
    if not sent:
        return []
    reuse = sent["appearances_per_training_face"]
    return [
        "",
        f"The client sent {sent['samples_sent']} training samples in {sent['windows_sent']} windows, each mixing "
        f"{', '.join(map(str, sent['faces_per_sample']))} face(s); each private training face appeared in "
        f"{reuse['min']}–{reuse['max']} of them (median {reuse['median']:g}, mean {reuse['mean']:.1f}). "
        f"Held-out faces sent unmixed for the validation signal: {sent['holdout_faces_sent_unmixed']}.",
    ]


def comparison_markdown(reports: Sequence[RunReport]) -> str:
    lines = ["# Defences compared", ""]
    if any(r.synthetic_data for r in reports):
        lines += [_SYNTHETIC_BANNER.replace("These numbers", "Rows marked synthetic"), ""]
    lines += [
        "| defence | S1 | S2 | S3 | S4 | score_pp | score_cls | overall | verification acc. | worst case proven | data |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in reports:
        m, s = r.measures, r.scores
        values = [m.S1, m.S2, m.S3, m.S4, s.score_pp, s.score_cls, s.overall, r.verification_accuracy]
        data = "synthetic" if r.synthetic_data else "real"
        proof = "yes" if r.worst_case_proven else "**no**"
        lines.append(f"| {r.label} | " + " | ".join(_fmt(v) for v in values) + f" | {proof} | {data} |")
    columns = sorted({(a, s_) for r in reports for a, by in r.attacks.items() for s_ in by})
    lines += [
        "",
        "## Attacks: SSIM / dlib top-1 / classifier top-1 (✗: not proven on `none`)",
        "",
        "| defence | " + " | ".join(f"{a} (key {s_})" for a, s_ in columns) + " |",
    ]
    lines.append("|---" * (len(columns) + 1) + "|")
    for r in reports:
        cells = [
            _ssim_top1(r.attacks.get(a, {}).get(s_)) + ("" if a not in r.attacks or r.attack_proven(a) else " ✗")
            for a, s_ in columns
        ]
        lines.append(f"| {r.label} | " + " | ".join(cells) + " |")
    lines += ["", *_training_table(reports)]
    lines += ["", *(f"- **{name}**: {text}" for name, text in MEASURE_EXPLANATIONS.items()), "", ANCHOR_EXPLANATIONS]
    return "\n".join(lines) + "\n"


def _training_table(reports: Sequence[RunReport]) -> list[str]:
    """Utility beside the privacy: accuracy, TAR at FAR 1e-3, epochs and training time of each run."""
    lines = [
        "## Training",
        "",
        "| defence | verification acc. | TAR@FAR=1e-3 | epochs | best epoch (acc.) | training wall time |",
        "|---|---|---|---|---|---|",
    ]
    for r in reports:
        training = r.settings.get("training", {})
        curve = r.verification_curve
        best = "-"
        if curve:
            best_epoch, best_accuracy = max(curve, key=lambda point: point[1])
            best = f"{best_epoch} ({best_accuracy:.3f})"
        seconds = training.get("wall_seconds")
        wall = f"{seconds / 60:.1f} min" if isinstance(seconds, (int, float)) else "-"
        lines.append(
            f"| {r.label} | {_fmt(r.verification_accuracy)} | {_fmt(training.get('tar_at_far_1e-3'))} | "
            f"{training.get('epochs', '-')} | {best} | {wall} |"
        )
    return [
        *lines,
        "",
        "Wall time is that of the last training command (a resumed run counts its last part only).",
        "",
        f"![verification accuracy per epoch]({CURVES_PNG})",
    ]


def _proof_words(report: RunReport) -> str:
    if report.worst_case_proven:
        return f"Both rest on proven attacks (p^ >= {PROVEN_P_HAT:g} against `none`, same data and budget)."
    unproven = sorted(
        {name for name in (report.measures.S3_from, report.measures.S4_from) if not report.attack_proven(name)}
    )
    return (
        f"**The worst case is not proven**: {', '.join(unproven)} did not reach p^ >= {PROVEN_P_HAT:g} against `none` "
        "(same data and budget), so failing here shows nothing about the defence."
    )


def _evaluator_lines(check: Mapping[str, Any] | None) -> list[str]:
    """How well each judge names untouched private originals, and what that means for S2 and S4."""
    if not check:
        return []
    lines = [
        "",
        "## Evaluators",
        "",
        f"On held-out private originals ({check['num_identities']} people, chance top-1 {_fmt(check['chance_top1'])}): "
        f"dlib top-1 {_fmt(check['dlib_top1'])}, top-5 {_fmt(check['dlib_top5'])}; evaluation classifier top-1 "
        f"{_fmt(check['classifier_top1'])}, top-5 {_fmt(check['classifier_top5'])}.",
    ]
    if check.get("dlib_weak"):
        lines += [
            "",
            f"**dlib is weak on these faces**: it names only {_fmt(check['dlib_top1'])} of untouched photos of these "
            "people. p^ divides by that rate and takes the higher of dlib's and the classifier's, so a weak dlib "
            "does not flatter S2 and S4; the raw rates beside them are not comparable across evaluators.",
        ]
    return lines


def _outcome_table(
    outcomes: Mapping[str, AttackOutcome],
    what: str,
    calibration: Calibration,
    proven: Mapping[str, bool] | None = None,
) -> list[str]:
    with_classifier = any(o.classifier_top1 is not None for o in outcomes.values())
    header = f"| {what} |" + (" proven |" if proven is not None else "")
    header += " q | p^ | p^ 95 % interval (images) | SSIM | SSIM prior | PSNR (dB) | dlib top-1 | dlib top-5 | dlib KNN dist |"
    header += " classifier top-1 | classifier top-5 |" if with_classifier else ""
    rows = [header, "|---" * header.count(" |") + "|"]
    for name, o in outcomes.items():
        p_hat, judge = identification(o, calibration)
        cells: list[float | None] = [o.ssim, o.ssim_prior, o.psnr, o.top1, o.top5, o.knn_dist]
        cells += [o.classifier_top1, o.classifier_top5] if with_classifier else []
        proof = "" if proven is None else (" yes |" if proven[name] else " **no** |")
        rows.append(
            f"| {name} |{proof} {_fmt(image_similarity(o, name))} | {_fmt(p_hat)} ({judge}) | "
            f"{_interval_cell(o, calibration)} | " + " | ".join(_fmt(v) for v in cells) + " |"
        )
    return rows


def _interval_cell(outcome: AttackOutcome, calibration: Calibration) -> str:
    interval = identification_interval(outcome, calibration)
    return "-" if interval is None else f"{_fmt(interval[0])}–{_fmt(interval[1])} ({outcome.judged})"


def _ssim_top1(outcome: AttackOutcome | None) -> str:
    return "-" if outcome is None else f"{_fmt(outcome.ssim)} / {_fmt(outcome.top1)} / {_fmt(outcome.classifier_top1)}"


def _combine_words(s: Scores) -> str:
    weighting = "equal weights" if s.privacy_weight == 0.5 else f"privacy weight {s.privacy_weight:g}"
    return f"{s.combine} mean, {weighting}"


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return "∞" if math.isinf(value) else f"{value:.3f}"


def json_ready(value: Any) -> Any:
    """Non-finite floats as null (JSON has no infinity); everything else unchanged."""
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_ready(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _outcome_from_json(values: Mapping[str, Any]) -> AttackOutcome:
    restored = dict(values)
    if restored.get("psnr") is None:
        restored["psnr"] = math.inf
    return AttackOutcome.from_dict(restored)


def _write_text(path: Path, text: str) -> None:
    """Write through a temporary file and rename, so a reader never sees half a report."""
    atomic_write_text(path, text)
