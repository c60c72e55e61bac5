"""The measures and scores of README.md (Measures) and docs/evaluation.md on constructed cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from common.errors import InputError
from evaluation.images import as_float_nhwc
from evaluation.measures import (
    AttackOutcome,
    Calibration,
    PrivacyMeasures,
    identification,
    identification_interval,
    image_similarity,
    overall_score,
    privacy_measures,
    psnr_of_set,
    score_cls,
    score_pp,
    ssim_per_image,
    topk_rates,
)


def smooth_faces(count: int, height: int = 48, width: int = 40, seed: int = 0) -> np.ndarray:
    """Smooth, structured images in [0, 1] (blurred random fields): what SSIM sees in a face, without the data."""
    rng = np.random.default_rng(seed)
    fields = gaussian_filter(rng.normal(size=(count, height, width)), sigma=(0, 3, 3))
    fields -= fields.min(axis=(1, 2), keepdims=True)
    return (fields / fields.max(axis=(1, 2), keepdims=True)).astype(np.float32)


CALIBRATION = Calibration(chance=0.0, originals_top1={"dlib": 1.0})  # anchors that leave rates as they are


def outcome(ssim: float, top1: float, psnr: float = 20.0, prior: float = 0.0) -> AttackOutcome:
    return AttackOutcome(ssim=ssim, psnr=psnr, top1=top1, top5=min(1.0, top1 + 0.1), knn_dist=0.5, ssim_prior=prior)


def measures(
    renderings: dict[str, AttackOutcome],
    attacks: dict[str, dict[str, AttackOutcome]],
    scored_settings: tuple[str, ...] | None = None,
) -> PrivacyMeasures:
    """privacy_measures with anchors that leave SSIM and top-1 as they are (q = SSIM, p-hat = top-1)."""
    return privacy_measures(renderings, attacks, CALIBRATION, scored_settings=scored_settings)


def test_perfect_reconstruction_gives_s3_zero() -> None:
    originals = smooth_faces(4)
    ssim = ssim_per_image(originals, originals.copy())
    np.testing.assert_allclose(ssim, 1.0)
    perfect = AttackOutcome(
        ssim=float(ssim.mean()),
        psnr=psnr_of_set(originals, originals),
        top1=1.0,
        top5=1.0,
        knn_dist=0.0,
        ssim_prior=0.2,
    )
    result = measures({"server_view": outcome(0.1, 0.1)}, {"recovery": {"known": perfect}})
    assert result.S3 == 0.0
    assert result.S4 == 0.0
    assert math.isinf(perfect.psnr)


def test_random_noise_reconstruction_gives_s3_near_one() -> None:
    originals = smooth_faces(6)
    noise = np.random.default_rng(1).random(originals.shape, dtype=np.float32)
    ssim = ssim_per_image(originals, noise)
    result = measures({"server_view": outcome(0.0, 0.0)}, {"noise": {"unknown": outcome(float(ssim.mean()), 0.1)}})
    assert result.S3 > 0.9


def test_ssim_falls_as_the_reconstruction_degrades() -> None:
    originals = smooth_faces(3)
    rng = np.random.default_rng(2)
    noisy = [
        np.clip(originals + rng.normal(0, sigma, originals.shape), 0, 1).astype(np.float32)
        for sigma in (0.02, 0.1, 0.3)
    ]
    means = [ssim_per_image(originals, image).mean() for image in noisy]
    assert means[0] > means[1] > means[2]


def test_psnr_of_set_matches_the_mean_squared_error_formula() -> None:
    originals = np.full((3, 16, 16), 0.5, dtype=np.float32)
    shifted = originals + 0.1  # every pixel off by 0.1: MSE 0.01, PSNR 20 dB
    assert psnr_of_set(originals, shifted) == pytest.approx(20.0, abs=1e-4)
    assert math.isinf(psnr_of_set(originals, originals))


def test_rgb_ssim_is_the_mean_of_its_channel_ssims() -> None:
    rgb = np.stack([smooth_faces(2, seed=s) for s in (3, 4, 5)], axis=-1)
    other = np.stack([smooth_faces(2, seed=s) for s in (6, 7, 8)], axis=-1)
    per_channel = np.mean([ssim_per_image(rgb[..., c], other[..., c]) for c in range(3)], axis=0)
    np.testing.assert_allclose(ssim_per_image(rgb, other), per_channel, rtol=1e-6)


def test_uint8_float_and_nchw_tensor_inputs_read_alike() -> None:
    as_uint8 = np.rint(smooth_faces(2) * 255).astype(np.uint8)
    as_float = as_uint8.astype(np.float32) / 255
    as_tensor = torch.from_numpy(as_float)[:, None]
    np.testing.assert_array_equal(as_float_nhwc(as_uint8), as_float_nhwc(as_tensor))
    np.testing.assert_allclose(ssim_per_image(as_uint8, as_float), 1.0)


def test_the_documented_formulas_on_hand_computed_outcomes() -> None:
    renderings = {"server_view": outcome(0.3, 0.2), "mixed": outcome(0.5, 0.1)}
    attacks = {
        "recovery": {"known": outcome(0.6, 0.7), "unknown": outcome(0.2, 0.1)},
        "whitebox": {"unknown": outcome(0.1, 0.9)},
    }
    m = measures(renderings, attacks)
    assert (m.S1, m.S1_from) == (pytest.approx(0.5), "mixed")  # the most revealing rendering by SSIM
    assert (m.S2, m.S2_from) == (pytest.approx(0.8), "server_view")  # ... and by identification
    assert (m.S3, m.S3_from) == (pytest.approx(0.4), "recovery/known")  # worst case over attacks and settings
    assert (m.S4, m.S4_from) == (pytest.approx(0.1), "whitebox/unknown")
    assert m.score_pp == pytest.approx(0.4 * (0.5 + 0.8) / 2 + 0.6 * (0.4 + 0.1) / 2)  # 0.41


def test_negative_ssim_clips_s1_to_one() -> None:
    m = measures({"view": outcome(-0.2, 0.0)}, {"a": {"unknown": outcome(1.0, 1.0)}})
    assert m.S1 == 1.0 and m.S2 == 1.0 and m.S3 == 0.0 and m.S4 == 0.0
    assert m.score_pp == pytest.approx(0.4)


def test_score_pp_weights_must_sum_to_one() -> None:
    assert score_pp(1, 1, 0, 0, alpha=0.5, beta=0.5) == pytest.approx(0.5)
    with pytest.raises(InputError, match="sum to 1"):
        score_pp(0.5, 0.5, 0.5, 0.5, alpha=0.4, beta=0.4)


def test_score_cls_is_the_share_of_above_chance_accuracy_kept() -> None:
    assert score_cls(0.70, 0.90) == pytest.approx(0.5)
    assert score_cls(0.50, 0.90) == 0.0  # a chance-level model keeps no utility (the ratio gave it 0.56)
    assert score_cls(0.40, 0.90) == 0.0
    assert score_cls(0.95, 0.90) == 1.0
    with pytest.raises(InputError, match="chance"):
        score_cls(0.9, 0.5)


def test_overall_is_the_harmonic_mean_unless_configured() -> None:
    assert overall_score(0.41, 0.5) == pytest.approx(2 * 0.41 * 0.5 / (0.41 + 0.5))
    assert overall_score(0.0, 0.9) == 0.0
    assert overall_score(0.4, 0.8, privacy_weight=0.75) == pytest.approx(1 / (0.75 / 0.4 + 0.25 / 0.8))
    assert overall_score(0.4, 0.8, combine="arithmetic", privacy_weight=0.25) == pytest.approx(0.25 * 0.4 + 0.75 * 0.8)
    with pytest.raises(InputError, match="combine"):
        overall_score(0.4, 0.8, combine="geometric")  # type: ignore[arg-type]


def test_topk_rates_count_the_true_label_among_the_first_k() -> None:
    ranked = np.array([[3, 1, 2, 0, 4], [1, 3, 2, 0, 4], [0, 1, 2, 3, 4]])
    assert topk_rates(ranked, np.array([3, 3, 4])) == pytest.approx((1 / 3, 1.0))


def test_measures_refuse_missing_or_mismatched_inputs() -> None:
    with pytest.raises(InputError, match="attacks"):
        measures({"view": outcome(0.1, 0.1)}, {})
    with pytest.raises(InputError, match="renderings"):
        measures({}, {"a": {"known": outcome(0.1, 0.1)}})
    with pytest.raises(InputError, match="differ"):
        ssim_per_image(smooth_faces(2), smooth_faces(3))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        ssim_per_image(smooth_faces(2) * 255, smooth_faces(2))
    with pytest.raises(InputError, match="NaN"):
        ssim_per_image(np.full((1, 8, 8), np.nan, dtype=np.float32), smooth_faces(1, 8, 8))


def test_scored_settings_restrict_the_worst_case_to_chosen_key_settings() -> None:
    attacks = {"recovery": {"known": outcome(0.9, 0.9), "unknown": outcome(0.2, 0.3)}}
    everything = measures({"view": outcome(0.1, 0.1)}, attacks)
    threat_model = measures({"view": outcome(0.1, 0.1)}, attacks, scored_settings=("unknown",))
    assert pytest.approx(0.1) == everything.S3 and everything.scored_settings == ("known", "unknown")
    assert pytest.approx(0.8) == threat_model.S3 and pytest.approx(0.7) == threat_model.S4
    with pytest.raises(InputError, match="scored key settings"):
        measures({"view": outcome(0.1, 0.1)}, attacks, scored_settings=("leaked",))


def test_q_and_p_hat_run_between_the_anchors() -> None:
    assert image_similarity(outcome(0.6, 0.0, prior=0.2)) == pytest.approx(0.5)
    assert image_similarity(outcome(0.1, 0.0, prior=0.2)) == 0.0  # worse than the mean face
    assert image_similarity(outcome(1.0, 0.0, prior=0.2)) == 1.0
    calibration = Calibration(chance=0.1, originals_top1={"dlib": 0.6, "classifier": 0.9})
    judged = AttackOutcome(ssim=0.3, psnr=12.0, top1=0.35, top5=0.5, knn_dist=0.6, classifier_top1=0.3)
    assert identification(judged, calibration) == (pytest.approx(0.5), "dlib")  # 0.25 / 0.5 beats 0.2 / 0.8
    assert identification(outcome(0.1, 0.05, prior=0.1), calibration)[0] == 0.0  # below chance


def test_p_hat_interval_is_the_deciding_evaluators_wilson_interval_calibrated_and_narrows_with_more_images() -> None:
    calibration = Calibration(chance=0.1, originals_top1={"dlib": 0.6, "classifier": 0.9})
    rates = {"ssim": 0.3, "psnr": 12.0, "top5": 0.5, "knn_dist": 0.6, "top1": 0.35, "classifier_top1": 0.3}
    few, many = AttackOutcome(**rates, judged=20), AttackOutcome(**rates, judged=2000)
    # dlib decides (p-hat 0.5): 7 of 20 named, Wilson 95 % interval 0.181-0.567, calibrated by (p - 0.1) / 0.5
    low, high = identification_interval(few, calibration)
    assert (low, high) == (
        pytest.approx((0.18119 - 0.1) / 0.5, abs=1e-4),
        pytest.approx((0.56714 - 0.1) / 0.5, abs=1e-4),
    )
    assert low < identification(few, calibration)[0] < high
    narrow = identification_interval(many, calibration)
    assert low < narrow[0] < 0.5 < narrow[1] < high
    assert identification_interval(AttackOutcome(**rates), calibration) is None  # a record without its image count


def test_none_scores_zero_on_all_four_measures_by_construction() -> None:
    """The server of `none` holds the face: its rendering is the image, so S1-S4 are 0 whatever the attacks do."""
    calibration = Calibration(chance=1 / 40, originals_top1={"dlib": 0.9, "classifier": 0.95})
    the_face = AttackOutcome(
        ssim=1.0, psnr=math.inf, top1=1.0, top5=1.0, knn_dist=0.0, classifier_top1=1.0, ssim_prior=0.35
    )
    weak_attack = AttackOutcome(
        ssim=0.3, psnr=11.0, top1=0.05, top5=0.2, knn_dist=0.7, classifier_top1=0.05, ssim_prior=0.35
    )
    m = privacy_measures({"image": the_face}, {"recovery": {"unknown": weak_attack}}, calibration)
    assert (m.S1, m.S2, m.S3, m.S4) == (0.0, 0.0, 0.0, 0.0)
    assert m.S3_from == "view: image" and m.score_pp == 0.0


def test_a_mean_face_reconstruction_scores_s3_one() -> None:
    originals = smooth_faces(6)
    mean_face = np.broadcast_to(smooth_faces(20, seed=9).mean(axis=0), originals.shape)
    prior = float(ssim_per_image(originals, mean_face).mean())
    judged = AttackOutcome(ssim=prior, psnr=14.0, top1=0.0, top5=0.1, knn_dist=0.8, ssim_prior=prior)
    server_view = outcome(0.0, 0.0, prior=prior)
    m = measures({"server view": server_view}, {"mean_face": {"unknown": judged}})
    assert m.S3 == 1.0 and m.S4 == 1.0


def test_an_evaluator_no_better_than_chance_on_originals_is_refused() -> None:
    with pytest.raises(InputError, match="above chance"):
        Calibration(chance=0.25, originals_top1={"dlib": 0.25, "classifier": 0.1})
    with pytest.raises(InputError, match="SSIM prior"):
        image_similarity(AttackOutcome(ssim=0.5, psnr=10.0, top1=0.1, top5=0.2, knn_dist=0.5))
