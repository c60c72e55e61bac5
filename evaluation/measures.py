"""The measures S1-S4 and the scores of README.md (Measures), as pure functions over small dataclasses.

Every measure is calibrated between two anchors, so it means the same on every data set: 0 when the server (or
attacker) gets the raw face, 1 when it gets no more than an attacker who never saw the data.

    q  = clip((SSIM - SSIM_prior) / (1 - SSIM_prior), 0, 1)     SSIM_prior: SSIM(originals, public mean face)
    p^ = clip((p - chance) / (p_orig - chance), 0, 1)           p: a top-1 rate, p_orig: the same evaluator's
                                                                 rate on untouched originals; highest evaluator
    p^'s 95 % interval: the Wilson interval of p over the images judged, calibrated the same way (reported only:
    with 24 images one image moves p by 0.042, so a p^ near PROVEN_P_HAT proves less than it seems)
    S1 = 1 - max over renderings of q          S2 = 1 - max over renderings of p^
    S3 = 1 - max over attacks x key settings (and the renderings, the zero-effort attack) of q
    S4 = 1 - max over the same of p^
    score_pp  = alpha * (S1 + S2) / 2 + beta * (S3 + S4) / 2          alpha = 0.4, beta = 0.6, alpha + beta = 1
    score_cls = clip((acc - 0.5) / (acc_none - 0.5), 0, 1)
    overall   = harmonic mean of score_pp and score_cls (weighted, or arithmetic, on request)

By default every key setting counts, the leaked-key one included, so the score is conservative;
`scored_settings=("unknown",)` scores the threat model alone. S3 and S4 take their worst cases independently
(the attack that recovers the most pixels need not be the one recognised most often). Every rate and SSIM is a
mean over the attacked images first, then a maximum over renderings or attacks, so one lucky image does not
decide a score. Raw SSIM, PSNR and top-1/top-5 stay in every `AttackOutcome` and report beside the measures.

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
from scipy.stats import binomtest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from common.errors import InputError
from evaluation.images import ImageBatch, as_float_nhwc

DEFAULT_ALPHA = 0.4  # visual level: "masking at the visual level is easier to achieve"
DEFAULT_BETA = 0.6  # attack level
TOP_K = 5
CHANCE_VERIFICATION = 0.5  # balanced genuine / impostor pairs
VIEW_PREFIX = "view: "  # S3/S4 worst-case names of renderings, the zero-effort attack
SCORE_CLS_IN_WORDS = "score_cls = (verification accuracy − 0.5) ÷ (the unprotected model's − 0.5), clipped to [0, 1]"
PROVEN_P_HAT = 0.3  # an attack is proven when it reaches this p-hat on `none` (same data, same budget)
INTERVAL_CONFIDENCE = 0.95  # of the reported interval around p-hat
_SSIM_WINDOW = 7  # scikit-image's default; shrunk (odd) for images smaller than it
Combine = Literal["harmonic", "arithmetic"]


@dataclass(frozen=True)
class AttackOutcome:
    """What SSIM and dlib say about a set of images shown in place of the private originals.

    Used for an attack's reconstructions, and for renderings of the masked data (the zero-effort attack: the
    server just looks). ssim is the mean over images; psnr is that of the whole set (`psnr_of_set`, inf only when
    every image is identical); top1/top5 are dlib's identification rates; knn_dist is the mean dlib distance to the
    nearest gallery descriptor of the true person. classifier_top1/top5 are the evaluation classifier's rates,
    when one was used. ssim_prior is the SSIM the public mean face gets against the same references (the
    data-free guess), the lower anchor of q. judged: how many images the rates are over (None in records made
    before it was kept).
    """

    ssim: float
    psnr: float
    top1: float
    top5: float
    knn_dist: float
    classifier_top1: float | None = None
    classifier_top5: float | None = None
    ssim_prior: float | None = None
    judged: int | None = None

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> AttackOutcome:
        fields: dict[str, Any] = {name: values.get(name) for name in cls.__dataclass_fields__}
        return cls(**fields)


@dataclass(frozen=True)
class Calibration:
    """The anchors of identification: chance top-1 (1 / identities in the gallery) and each evaluator's top-1 on
    untouched, held-out originals ({"dlib": ..., "classifier": ...}). An evaluator that does not beat chance on
    the originals proves nothing and is left out of p-hat."""

    chance: float
    originals_top1: Mapping[str, float]

    def __post_init__(self) -> None:
        _check_unit("chance", self.chance)
        for name, rate in self.originals_top1.items():
            _check_unit(f"{name} top-1 on originals", rate)
        if not any(rate > self.chance for rate in self.originals_top1.values()):
            raise InputError(
                f"no evaluator identifies the untouched originals above chance ({self.chance:.3f}): "
                f"{dict(self.originals_top1)}; identification cannot be measured on these faces"
            )

    def to_dict(self) -> dict[str, Any]:
        return {"chance": self.chance, "originals_top1": dict(self.originals_top1)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Calibration:
        return cls(float(values["chance"]), {k: float(v) for k, v in values["originals_top1"].items()})


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


def image_similarity(outcome: AttackOutcome, name: str = "outcome") -> float:
    """q = clip((SSIM - SSIM_prior) / (1 - SSIM_prior), 0, 1): 1 for the raw face, 0 for the public mean face."""
    if outcome.ssim_prior is None:
        raise InputError(
            f"{name} has no SSIM prior (SSIM of the originals to the public mean face); "
            "judge it again with `hybridmask evaluate`"
        )
    if outcome.ssim_prior >= 1.0:
        raise InputError(f"{name}: the public mean face equals the originals (SSIM prior 1); q is undefined")
    return _clip01((outcome.ssim - outcome.ssim_prior) / (1.0 - outcome.ssim_prior))


def identification(outcome: AttackOutcome, calibration: Calibration) -> tuple[float, str]:
    """p-hat = clip((p - chance) / (p_orig - chance), 0, 1) per evaluator; the highest, and which evaluator gave it."""
    name, rate = _deciding_rate(outcome, calibration)
    return _calibrated(rate, name, calibration), name


def identification_interval(outcome: AttackOutcome, calibration: Calibration) -> tuple[float, float] | None:
    """The INTERVAL_CONFIDENCE interval of p-hat: the Wilson interval of the deciding evaluator's top-1 rate over
    the images judged, calibrated like p-hat; None when the outcome does not say how many images were judged."""
    if not outcome.judged:
        return None
    name, rate = _deciding_rate(outcome, calibration)
    interval = binomtest(round(rate * outcome.judged), outcome.judged).proportion_ci(
        confidence_level=INTERVAL_CONFIDENCE, method="wilson"
    )
    return _calibrated(interval.low, name, calibration), _calibrated(interval.high, name, calibration)


def _deciding_rate(outcome: AttackOutcome, calibration: Calibration) -> tuple[str, float]:
    """The evaluator whose calibrated top-1 rate is highest, among those that judged the images and beat chance on
    the originals, and its raw rate."""
    judged = {"dlib": outcome.top1, "classifier": outcome.classifier_top1}
    rates = {
        name: rate
        for name, rate in judged.items()
        if rate is not None and calibration.originals_top1.get(name, 0.0) > calibration.chance
    }
    if not rates:
        raise InputError(
            f"no evaluator both judged these images and beats chance on the originals ({dict(calibration.originals_top1)})"
        )
    name = max(rates, key=lambda key: _calibrated(rates[key], key, calibration))
    return name, rates[name]


def _calibrated(rate: float, evaluator: str, calibration: Calibration) -> float:
    return _clip01((rate - calibration.chance) / (calibration.originals_top1[evaluator] - calibration.chance))


def proven_on_none(
    attacks_on_none: Mapping[str, Mapping[str, AttackOutcome]], calibration: Calibration
) -> dict[str, bool]:
    """{attack: whether its best key setting reaches p-hat >= PROVEN_P_HAT} against the unprotected model: an
    attack that cannot identify people there proves nothing by failing against a defence."""
    return {
        attack: max(identification(outcome, calibration)[0] for outcome in by_setting.values()) >= PROVEN_P_HAT
        for attack, by_setting in attacks_on_none.items()
    }


def privacy_measures(
    renderings: Mapping[str, AttackOutcome],
    attacks: Mapping[str, Mapping[str, AttackOutcome]],
    calibration: Calibration,
    alpha: float = DEFAULT_ALPHA,
    beta: float = DEFAULT_BETA,
    scored_settings: Collection[str] | None = None,
) -> PrivacyMeasures:
    """S1-S4 and score_pp from outcomes of renderings {name: outcome} and attacks {attack: {setting: outcome}}.

    The renderings are the zero-effort attack (the server just looks), so they count in S3/S4 too, as
    "view: NAME": for `none`, whose server holds the face, S3 = S4 = 0 whatever the attacks do.
    scored_settings: the key settings S3/S4 take their worst case over; None for every setting given.
    """
    _check_weights(alpha, beta)
    if not renderings:
        raise InputError("renderings: give at least one rendering of the masked data (e.g. the server view) for S1/S2")
    settings, flat_attacks = scored_attacks(attacks, scored_settings)
    flat_attacks.update({f"{VIEW_PREFIX}{name}": outcome for name, outcome in renderings.items()})
    similarity = {name: image_similarity(o, name) for name, o in {**renderings, **flat_attacks}.items()}
    identified = {name: identification(o, calibration)[0] for name, o in {**renderings, **flat_attacks}.items()}
    s1_from = max(renderings, key=lambda name: similarity[name])
    s2_from = max(renderings, key=lambda name: identified[name])
    s3_from = max(flat_attacks, key=lambda name: similarity[name])
    s4_from = max(flat_attacks, key=lambda name: identified[name])
    s1, s2 = 1 - similarity[s1_from], 1 - identified[s2_from]
    s3, s4 = 1 - similarity[s3_from], 1 - identified[s4_from]
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


def score_pp(
    s1: float, s2: float, s3: float, s4: float, alpha: float = DEFAULT_ALPHA, beta: float = DEFAULT_BETA
) -> float:
    """alpha * (S1 + S2) / 2 + beta * (S3 + S4) / 2; alpha + beta must be 1 so the score stays in [0, 1]."""
    _check_weights(alpha, beta)
    for name, value in (("S1", s1), ("S2", s2), ("S3", s3), ("S4", s4)):
        _check_unit(name, value)
    return alpha * (s1 + s2) / 2 + beta * (s3 + s4) / 2


def score_cls(verification_accuracy: float, baseline_accuracy: float) -> float:
    """clip((acc - 0.5) / (acc_none - 0.5), 0, 1): the share of the unprotected model's above-chance verification
    accuracy that the protected model keeps, on the same pairs (0.5 is chance on balanced pairs)."""
    _check_unit("verification_accuracy", verification_accuracy)
    _check_unit("baseline_accuracy", baseline_accuracy)
    if baseline_accuracy <= CHANCE_VERIFICATION:
        raise InputError(
            f"baseline_accuracy {baseline_accuracy:.3f} is at or below chance (0.5): the unprotected model learned "
            "nothing, so there is no utility to keep; train it longer before scoring utility"
        )
    return _clip01((verification_accuracy - CHANCE_VERIFICATION) / (baseline_accuracy - CHANCE_VERIFICATION))


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
