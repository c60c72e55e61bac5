"""The measures S1-S4 and the scores of README.md (Measures), as pure functions over arrays and small dataclasses.

    S1 = 1 - SSIM(original, best visual rendering of the masked data), clipped to [0, 1]
    S2 = 1 - top-1 identification rate of the renderings by dlib
    S3 = 1 - SSIM(original, reconstruction), worst case over attacks (PSNR beside it), clipped to [0, 1]
    S4 = 1 - top-1 attack accuracy by dlib, worst case over attacks (top-5 and KNN distance beside it)
    score_pp  = alpha * (S1 + S2) / 2 + beta * (S3 + S4) / 2          alpha = 0.4, beta = 0.6, alpha + beta = 1
    score_cls = min(1, verification accuracy protected / verification accuracy unprotected)
    overall   = harmonic mean of score_pp and score_cls (weighted, or arithmetic, on request)

"Worst case" is the defence's worst case: for S1/S2 the rendering, and for S3/S4 the (attack, key setting), whose
set-mean SSIM or top-1 rate is highest. By default every key setting counts, the leaked-key one included, so the
score is conservative; `scored_settings=("unknown",)` scores the threat model alone. S3 and S4 take their worst cases independently (the attack that recovers
the most pixels need not be the one recognised most often). Every measure is a mean over the attacked images
first, then a maximum over renderings or attacks, so one lucky image does not decide a score.

SSIM and PSNR are scikit-image's, with data_range=1 on float images in [0, 1]. SSIM is computed per image (gray,
or RGB with channel_axis) and averaged: scikit-image loops over channels internally, so stacking images as
channels gains nothing, and the loop costs about a millisecond a 64x64 image. PSNR is one call on the stacked set.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from common.errors import InputError
from evaluation.images import ImageBatch, as_float_nhwc

DEFAULT_ALPHA = 0.4  # visual level: "masking at the visual level is easier to achieve"
DEFAULT_BETA = 0.6  # attack level
TOP_K = 5
_SSIM_WINDOW = 7  # scikit-image's default; shrunk (odd) for images smaller than it
Combine = Literal["harmonic", "arithmetic"]


@dataclass(frozen=True)
class AttackOutcome:
    """What SSIM and dlib say about a set of images shown in place of the private originals.

    Used for an attack's reconstructions, and for renderings of the masked data (the zero-effort attack: the
    server just looks). ssim is the mean over images; psnr is that of the whole set (`psnr_of_set`, inf only when
    every image is identical); top1/top5 are dlib's identification rates; knn_dist is the mean dlib distance to the
    nearest gallery descriptor of the true person. classifier_top1/top5 are the evaluation classifier's rates,
    when one was used.
    """

    ssim: float
    psnr: float
    top1: float
    top5: float
    knn_dist: float
    classifier_top1: float | None = None
    classifier_top5: float | None = None

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> AttackOutcome:
        fields: dict[str, Any] = {name: values.get(name) for name in cls.__dataclass_fields__}
        return cls(**fields)


@dataclass(frozen=True)
class PrivacyMeasures:
    """S1-S4, score_pp, which rendering / attack gave each worst case ("attack/setting"), the key settings scored."""

    S1: float
    S2: float
    S3: float
    S4: float
    score_pp: float
    alpha: float
    beta: float
    S1_from: str
    S2_from: str
    S3_from: str
    S4_from: str
    scored_settings: tuple[str, ...]


@dataclass(frozen=True)
class Scores:
    score_pp: float
    score_cls: float
    overall: float
    combine: Combine
    privacy_weight: float


def ssim_per_image(originals: ImageBatch, others: ImageBatch) -> np.ndarray:
    """[N] SSIM of each image pair, data_range=1; gray compared as 2-D, RGB with channel_axis."""
    first, second = _matched_pair(originals, others)
    window = min(_SSIM_WINDOW, _largest_odd_at_most(min(first.shape[1:3])))
    if window < 3:
        raise InputError(f"images of {first.shape[1]}x{first.shape[2]} px are too small for SSIM (need 3x3 or more)")
    channel_axis = -1 if first.shape[-1] == 3 else None
    if channel_axis is None:
        first, second = first[..., 0], second[..., 0]
    return np.array(
        [
            structural_similarity(a, b, data_range=1.0, win_size=window, channel_axis=channel_axis)
            for a, b in zip(first, second)
        ],
        dtype=np.float64,
    )


def psnr_of_set(originals: ImageBatch, others: ImageBatch) -> float:
    """PSNR in dB of the whole set as one signal (from the mean squared error over all images), data_range=1.

    One scikit-image call over the stacked batch; inf only when every pair is identical, so one perfect
    reconstruction does not make the mean infinite, as a mean of per-image PSNRs would.
    """
    first, second = _matched_pair(originals, others)
    if np.array_equal(first, second):
        return math.inf
    return float(peak_signal_noise_ratio(first, second, data_range=1.0))


def topk_rates(
    ranked_labels: np.ndarray, true_labels: np.ndarray, ks: tuple[int, ...] = (1, TOP_K)
) -> tuple[float, ...]:
    """Fraction of rows whose true label is among the first k ranked labels, for each k."""
    ranked = np.asarray(ranked_labels)
    truth = np.asarray(true_labels)
    if ranked.ndim != 2 or truth.shape != (ranked.shape[0],) or ranked.shape[0] == 0:
        raise InputError(f"ranked labels {ranked.shape} and true labels {truth.shape} must be [M, k] and [M], M > 0")
    hits = ranked == truth[:, None]
    return tuple(float(hits[:, :k].any(axis=1).mean()) for k in ks)


def privacy_measures(
    renderings: Mapping[str, AttackOutcome],
    attacks: Mapping[str, Mapping[str, AttackOutcome]],
    alpha: float = DEFAULT_ALPHA,
    beta: float = DEFAULT_BETA,
    scored_settings: Collection[str] | None = None,
) -> PrivacyMeasures:
    """S1-S4 and score_pp from outcomes of renderings {name: outcome} and attacks {attack: {setting: outcome}}.

    scored_settings: the key settings S3/S4 take their worst case over; None for every setting given.
    """
    _check_weights(alpha, beta)
    if not renderings:
        raise InputError("renderings: give at least one rendering of the masked data (e.g. the server view) for S1/S2")
    settings, flat_attacks = scored_attacks(attacks, scored_settings)
    s1_from, s1_ssim = _worst(renderings, "ssim")
    s2_from, s2_top1 = _worst(renderings, "top1")
    s3_from, s3_ssim = _worst(flat_attacks, "ssim")
    s4_from, s4_top1 = _worst(flat_attacks, "top1")
    s1, s2, s3, s4 = _clip01(1 - s1_ssim), _clip01(1 - s2_top1), _clip01(1 - s3_ssim), _clip01(1 - s4_top1)
    return PrivacyMeasures(
        S1=s1, S2=s2, S3=s3, S4=s4,
        score_pp=score_pp(s1, s2, s3, s4, alpha, beta),
        alpha=alpha, beta=beta,
        S1_from=s1_from, S2_from=s2_from, S3_from=s3_from, S4_from=s4_from,
        scored_settings=settings,
    )  # fmt: skip


def scored_attacks(
    attacks: Mapping[str, Mapping[str, AttackOutcome]], scored_settings: Collection[str] | None = None
) -> tuple[tuple[str, ...], dict[str, AttackOutcome]]:
    """The key settings scored and the outcomes in them, flattened to {"attack/setting": outcome}."""
    given = sorted({setting for by_setting in attacks.values() for setting in by_setting})
    settings = tuple(given if scored_settings is None else sorted(set(scored_settings)))
    flat = {
        f"{attack}/{setting}": outcome
        for attack, by_setting in attacks.items()
        for setting, outcome in by_setting.items()
        if setting in settings
    }
    if not flat:
        raise InputError(
            f"attacks: no outcome in the scored key settings {list(settings)} (given: {given}); "
            "an unattacked defence has no privacy score"
        )
    return settings, flat


def classifier_measures(
    renderings: Mapping[str, AttackOutcome],
    attacks: Mapping[str, Mapping[str, AttackOutcome]],
    scored_settings: Collection[str] | None = None,
) -> tuple[float | None, float | None]:
    """S2 and S4 judged by the evaluation classifier instead of dlib (same worst cases); None where it did not judge.

    Shown beside the dlib measures: dlib is the measures' judge (README.md), the classifier the MIA convention's, and on faces
    dlib was not trained for (synthetic ones) the classifier is the one that still tells people apart.
    """
    flat = scored_attacks(attacks, scored_settings)[1]
    return _classifier_measure(renderings), _classifier_measure(flat)


def _classifier_measure(outcomes: Mapping[str, AttackOutcome]) -> float | None:
    rates = [o.classifier_top1 for o in outcomes.values() if o.classifier_top1 is not None]
    return _clip01(1 - max(rates)) if rates else None


def score_pp(
    s1: float, s2: float, s3: float, s4: float, alpha: float = DEFAULT_ALPHA, beta: float = DEFAULT_BETA
) -> float:
    """alpha * (S1 + S2) / 2 + beta * (S3 + S4) / 2; alpha + beta must be 1 so the score stays in [0, 1]."""
    _check_weights(alpha, beta)
    for name, value in (("S1", s1), ("S2", s2), ("S3", s3), ("S4", s4)):
        _check_unit(name, value)
    return alpha * (s1 + s2) / 2 + beta * (s3 + s4) / 2


def score_cls(verification_accuracy: float, baseline_accuracy: float) -> float:
    """Protected over unprotected verification accuracy on the same pairs, capped at 1."""
    _check_unit("verification_accuracy", verification_accuracy)
    _check_unit("baseline_accuracy", baseline_accuracy)
    if baseline_accuracy == 0:
        raise InputError("baseline_accuracy is 0: the unprotected model must be evaluated before scoring utility")
    return min(1.0, verification_accuracy / baseline_accuracy)


def overall_score(privacy: float, utility: float, combine: Combine = "harmonic", privacy_weight: float = 0.5) -> float:
    """Weighted harmonic (default, equal weights) or arithmetic mean of score_pp and score_cls.

    The harmonic mean is 0 when either score is 0, so Tune cannot win by giving up privacy or utility entirely.
    """
    _check_unit("score_pp", privacy)
    _check_unit("score_cls", utility)
    _check_unit("privacy_weight", privacy_weight)
    if combine == "arithmetic":
        return privacy_weight * privacy + (1 - privacy_weight) * utility
    if combine != "harmonic":
        raise InputError(f"combine={combine!r}: choose 'harmonic' or 'arithmetic'")
    if privacy == 0 or utility == 0:
        return 0.0
    return 1.0 / (privacy_weight / privacy + (1 - privacy_weight) / utility)


def scores(
    measures: PrivacyMeasures,
    verification_accuracy: float,
    baseline_accuracy: float,
    combine: Combine = "harmonic",
    privacy_weight: float = 0.5,
) -> Scores:
    utility = score_cls(verification_accuracy, baseline_accuracy)
    return Scores(
        score_pp=measures.score_pp,
        score_cls=utility,
        overall=overall_score(measures.score_pp, utility, combine, privacy_weight),
        combine=combine,
        privacy_weight=privacy_weight,
    )


def _worst(outcomes: Mapping[str, AttackOutcome], field: str) -> tuple[str, float]:
    name = max(outcomes, key=lambda key: getattr(outcomes[key], field))
    return name, float(getattr(outcomes[name], field))


def _matched_pair(originals: ImageBatch, others: ImageBatch) -> tuple[np.ndarray, np.ndarray]:
    first = as_float_nhwc(originals, "originals")
    second = as_float_nhwc(others, "compared images")
    if first.shape != second.shape:
        raise InputError(
            f"originals {first.shape} and compared images {second.shape} (NHWC) differ; "
            "give one compared image per original, resized to the originals' size and channels"
        )
    return first, second


def _largest_odd_at_most(size: int) -> int:
    return size if size % 2 else size - 1


def _check_weights(alpha: float, beta: float) -> None:
    if alpha < 0 or beta < 0 or not math.isclose(alpha + beta, 1.0, abs_tol=1e-9):
        raise InputError(f"alpha={alpha}, beta={beta}: weights must be non-negative and sum to 1 (default 0.4, 0.6)")


def _check_unit(name: str, value: float) -> None:
    if not (0.0 <= value <= 1.0):
        raise InputError(f"{name}={value}: must lie in [0, 1]")


def _clip01(value: float) -> float:
    return min(1.0, max(0.0, value))
