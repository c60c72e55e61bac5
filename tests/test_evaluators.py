"""The evaluators: dlib's face descriptor and its gallery, the evaluation classifier, and the PrivacyEvaluator that joins them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from common.errors import InputError
from evaluation.classifier import EvaluationClassifier, stratified_split
from evaluation.identification import DESCRIPTOR_DIMENSION, DlibFaceDescriptor, IdentificationGallery
from evaluation.measures import ssim_per_image, topk_rates
from evaluation.outcomes import PrivacyEvaluator

ORL_IDENTITIES = 10  # chance level of top-1 identification is 0.1


def read_orl(orl_dir: Path, identities: int, shots: range) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [N, 112, 92] faces and labels 0..identities-1 from the ORL folders s1..sN."""
    images, labels = [], []
    for label in range(identities):
        for shot in shots:
            images.append(cv2.imread(str(orl_dir / f"s{label + 1}" / f"{shot}.pgm"), cv2.IMREAD_GRAYSCALE))
            labels.append(label)
    return np.stack(images), np.array(labels)


@pytest.fixture(scope="module")
def descriptor() -> DlibFaceDescriptor:
    return DlibFaceDescriptor()


@pytest.fixture(scope="module")
def orl_gallery(orl_dir: Path, descriptor: DlibFaceDescriptor) -> IdentificationGallery:
    images, labels = read_orl(orl_dir, ORL_IDENTITIES, range(1, 4))
    return IdentificationGallery(descriptor.describe(images), labels)


def test_dlib_identifies_real_faces_from_other_photos_of_the_same_people(orl_dir, descriptor, orl_gallery) -> None:
    probes, labels = read_orl(orl_dir, ORL_IDENTITIES, range(6, 8))
    top1, top5 = topk_rates(orl_gallery.identify(descriptor.describe(probes)), labels)
    assert top1 >= 0.7, f"dlib top-1 {top1:.2f} on ORL (chance 0.1)"
    assert top5 >= top1


def test_dlib_does_not_identify_pure_noise(orl_dir, descriptor, orl_gallery) -> None:
    probes, labels = read_orl(orl_dir, ORL_IDENTITIES, range(6, 7))
    noise = np.random.default_rng(0).integers(0, 256, probes.shape, dtype=np.uint8)
    noise_descriptors, face_descriptors = descriptor.describe(noise), descriptor.describe(probes)
    top1, _ = topk_rates(orl_gallery.identify(noise_descriptors), labels)
    assert top1 <= 0.3, f"dlib named the true person for {top1:.0%} of noise images (chance 10%)"
    assert (
        orl_gallery.knn_distance(noise_descriptors, labels).mean()
        > orl_gallery.knn_distance(face_descriptors, labels).mean()
    )


def test_dlib_reads_gray_rgb_uint8_and_float_alike(orl_dir, descriptor) -> None:
    faces, _ = read_orl(orl_dir, 2, range(1, 2))
    gray_uint8 = descriptor.describe(faces)
    assert gray_uint8.shape == (2, DESCRIPTOR_DIMENSION)
    np.testing.assert_allclose(descriptor.describe(faces.astype(np.float32) / 255), gray_uint8, atol=1e-6)
    np.testing.assert_allclose(descriptor.describe(np.repeat(faces[..., None], 3, axis=-1)), gray_uint8, atol=1e-6)


def test_dlib_describes_images_of_different_sizes_in_one_call(orl_dir, descriptor) -> None:
    faces, _ = read_orl(orl_dir, 1, range(1, 2))
    small = cv2.resize(faces[0], (46, 56), interpolation=cv2.INTER_AREA)
    assert descriptor.describe([faces[0], small]).shape == (2, DESCRIPTOR_DIMENSION)


def test_dlib_describing_in_two_processes_gives_the_same_descriptors_in_the_same_order(orl_dir, descriptor) -> None:
    faces, _ = read_orl(orl_dir, 1, range(1, 9))
    batch = np.concatenate([faces, faces[:1]])  # 9 chips: the fewest split over both processes (5 and 4)
    two = DlibFaceDescriptor(processes=2)
    in_two = two.describe(batch)
    assert two._pool is not None, "a batch of 9 chips was not split over the processes"
    in_one = descriptor.describe(faces)
    np.testing.assert_allclose(in_two, np.concatenate([in_one, in_one[:1]]), atol=1e-6)


def test_dlib_refuses_an_unknown_mode_and_fewer_than_one_process() -> None:
    with pytest.raises(InputError, match="mode"):
        DlibFaceDescriptor(mode="crop")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="processes=0"):
        DlibFaceDescriptor(processes=0)


def test_gallery_ranks_identities_by_their_nearest_image() -> None:
    gallery = IdentificationGallery(np.array([[0.0, 0.0], [5.0, 0.0], [1.0, 0.0], [0.0, 3.0]]), np.array([7, 7, 2, 4]))
    query = np.array([[4.0, 0.0], [0.1, 2.5]])
    np.testing.assert_array_equal(gallery.identify(query, k=3), [[7, 2, 4], [4, 7, 2]])
    np.testing.assert_allclose(gallery.knn_distance(query, np.array([2, 7])), [3.0, np.hypot(0.1, 2.5)])
    with pytest.raises(InputError, match="no gallery image"):
        gallery.knn_distance(query, np.array([2, 9]))


def test_stratified_split_holds_out_each_identity_and_keeps_one_to_train() -> None:
    labels = np.array([0] * 10 + [1] * 4 + [2])
    train, val = stratified_split(labels, 0.3, seed=0)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(len(labels)))
    assert np.bincount(labels[val], minlength=3).tolist() == [3, 1, 0]


def test_evaluation_classifier_beats_chance_on_held_out_orl_faces(orl_dir, tmp_path) -> None:
    images, labels = read_orl(orl_dir, ORL_IDENTITIES, range(1, 11))
    classifier = EvaluationClassifier(num_classes=ORL_IDENTITIES, channels=1, image_size=32)
    report = classifier.fit(images, labels, epochs=10, batch_size=16)
    assert report.num_val == 3 * ORL_IDENTITIES
    assert report.val_top1 >= 0.5, f"held-out top-1 {report.val_top1:.2f} (chance 0.1)"
    classifier.save(tmp_path / "classifier.pt")
    restored = EvaluationClassifier.load(tmp_path / "classifier.pt")
    np.testing.assert_array_equal(restored.predict_topk(images[:8], 3), classifier.predict_topk(images[:8], 3))


class PixelDescriptor:
    """A stand-in for dlib (same `describe` contract): downsampled pixels, so evaluator logic tests run in milliseconds."""

    def describe(self, images) -> np.ndarray:
        array = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images, dtype=np.float32)
        return array.reshape(len(array), -1)[:, ::7].astype(np.float64)


def test_privacy_evaluator_scores_originals_as_perfect_and_pairs_by_index() -> None:
    rng = np.random.default_rng(0)
    originals = rng.random((6, 16, 16), dtype=np.float32)
    labels = np.array([0, 0, 1, 1, 2, 2])
    evaluator = PrivacyEvaluator(originals, labels, descriptor=PixelDescriptor())
    exact = evaluator.outcome(originals, labels, original_indices=np.arange(6))
    assert (exact.ssim, exact.top1, exact.knn_dist) == (pytest.approx(1.0), 1.0, pytest.approx(0.0))
    swapped = evaluator.outcome(originals[[1, 0]], labels[:2], original_indices=np.array([0, 1]))
    assert swapped.ssim < 0.5  # paired with the other photo of the person, not its own
    with pytest.raises(InputError, match="disagree"):
        evaluator.outcome(originals[:2], np.array([1, 1]), original_indices=np.array([0, 1]))


def test_identity_level_reconstructions_meet_their_most_similar_original() -> None:
    rng = np.random.default_rng(1)
    originals = rng.random((4, 16, 16), dtype=np.float32)
    labels = np.array([0, 0, 1, 1])
    evaluator = PrivacyEvaluator(originals, labels, descriptor=PixelDescriptor())
    result = evaluator.outcome(torch.from_numpy(originals[[1, 2]])[:, None], np.array([0, 1]))
    assert result.ssim == pytest.approx(1.0)  # each found the original it copies among its identity's photos
    with pytest.raises(InputError, match="originals' size"):
        evaluator.outcome(originals[:, :8, :8], labels)


def test_the_prior_face_is_judged_like_the_images_it_anchors() -> None:
    rng = np.random.default_rng(2)
    originals = rng.random((4, 16, 16), dtype=np.float32)
    labels = np.array([0, 0, 1, 1])
    mean_face = originals.mean(axis=0, keepdims=True)
    evaluator = PrivacyEvaluator(originals, labels, descriptor=PixelDescriptor(), prior_face=mean_face)
    per_image = evaluator.outcome(originals[[3, 0]], labels[[3, 0]], original_indices=np.array([3, 0]))
    expected = ssim_per_image(originals[[3, 0]], np.repeat(mean_face, 2, axis=0)).mean()
    assert per_image.ssim_prior == pytest.approx(expected) and per_image.ssim == pytest.approx(1.0)
    guessed = evaluator.outcome(np.repeat(mean_face, 2, axis=0), np.array([0, 1]))  # identity-level: best match
    assert guessed.ssim == pytest.approx(guessed.ssim_prior)  # the mean face itself sits exactly on the anchor
    assert (
        PrivacyEvaluator(originals, labels, descriptor=PixelDescriptor()).outcome(originals, labels).ssim_prior is None
    )
