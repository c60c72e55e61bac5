"""Turning a set of images shown in place of the private originals into an `AttackOutcome`.

`PrivacyEvaluator` holds the private originals, dlib's gallery of them and, optionally, the evaluation classifier,
and judges renderings of the masked data and attack reconstructions the same way: SSIM and PSNR against the
original each image stands for, and identification of its person by dlib (and the classifier). Beside each SSIM
it records the SSIM of the data-free guess (the public mean face) against the same references, the lower anchor
of the calibrated image similarity q (`evaluation.measures.image_similarity`).
"""

from __future__ import annotations

import numpy as np
import torch

from common.errors import InputError
from evaluation.attacks.base import AttackResult
from evaluation.classifier import EvaluationClassifier
from evaluation.identification import DlibFaceDescriptor, IdentificationGallery
from evaluation.images import ImageBatch, as_float_nhwc
from evaluation.measures import TOP_K, AttackOutcome, psnr_of_set, ssim_per_image, topk_rates


class PrivacyEvaluator:
    """dlib's gallery over the private originals (labels 0..n-1), plus an optional evaluation classifier."""

    def __init__(
        self,
        originals: ImageBatch,
        labels: np.ndarray | torch.Tensor,
        descriptor: DlibFaceDescriptor | None = None,
        classifier: EvaluationClassifier | None = None,
        gallery_descriptors: np.ndarray | None = None,
        prior_face: ImageBatch | None = None,
    ) -> None:
        """gallery_descriptors: dlib's descriptors of the originals, when already computed (they cost ~0.15 s each).
        prior_face: the best data-free guess [1, C, H, W] (the public mean face); None leaves ssim_prior unset."""
        self.originals = as_float_nhwc(originals, "private originals")
        self.prior_face = None if prior_face is None else as_float_nhwc(prior_face, "prior face")
        if self.prior_face is not None and self.prior_face.shape != (1, *self.originals.shape[1:]):
            raise InputError(
                f"prior face {self.prior_face.shape} (NHWC) must be one image of the originals' size and channels"
            )
        self.labels = _as_label_array(labels, len(self.originals), "private labels")
        self.descriptor = descriptor if descriptor is not None else DlibFaceDescriptor()
        self.classifier = classifier
        if gallery_descriptors is None:
            gallery_descriptors = self.descriptor.describe(self.originals)
        elif len(gallery_descriptors) != len(self.originals):
            raise InputError(
                f"{len(gallery_descriptors)} gallery descriptors for {len(self.originals)} originals; give one each"
            )
        self.gallery_descriptors = np.asarray(gallery_descriptors)
        self.gallery = IdentificationGallery(self.gallery_descriptors, self.labels)

    def outcome(
        self,
        images: ImageBatch,
        labels: np.ndarray | torch.Tensor,
        original_indices: np.ndarray | torch.Tensor | None = None,
    ) -> AttackOutcome:
        """Judge images standing for private faces of the given labels.

        original_indices: the row of the original each image stands for (renderings, recovery); None to compare
        each image with the most similar original of its label (identity-level model inversion).
        """
        shown = as_float_nhwc(images, "images judged")
        truth = _as_label_array(labels, len(shown), "labels of the images judged")
        if shown.shape[1:] != self.originals.shape[1:]:
            raise InputError(
                f"images judged are {shown.shape[1:]} (HWC) but the originals are {self.originals.shape[1:]}; "
                "return images at the originals' size and channels"
            )
        references = self._references(shown, truth, original_indices)
        descriptors = self.descriptor.describe(shown)
        top1, top5 = topk_rates(self.gallery.identify(descriptors, TOP_K), truth)
        classifier_top1 = classifier_top5 = None
        if self.classifier is not None:
            classifier_top1, classifier_top5 = topk_rates(self.classifier.predict_topk(shown, TOP_K), truth)
        return AttackOutcome(
            ssim=float(ssim_per_image(references, shown).mean()),
            psnr=psnr_of_set(references, shown),
            top1=top1,
            top5=top5,
            knn_dist=float(self.gallery.knn_distance(descriptors, truth).mean()),
            classifier_top1=classifier_top1,
            classifier_top5=classifier_top5,
            ssim_prior=self._prior_ssim(truth, original_indices),
            judged=len(shown),
        )

    def attack_outcome(self, result: AttackResult) -> AttackOutcome:
        return self.outcome(result.reconstructions, result.target_labels, result.target_indices)

    def _prior_ssim(self, truth: np.ndarray, original_indices: np.ndarray | torch.Tensor | None) -> float | None:
        """Mean SSIM of the prior face judged like the images: against the same originals, or against the most
        similar original of each label for identity-level images."""
        if self.prior_face is None:
            return None
        shown = np.broadcast_to(self.prior_face, (len(truth), *self.prior_face.shape[1:]))
        return float(ssim_per_image(self._references(shown, truth, original_indices), shown).mean())

    def _references(
        self, shown: np.ndarray, truth: np.ndarray, original_indices: np.ndarray | torch.Tensor | None
    ) -> np.ndarray:
        if original_indices is not None:
            rows = _as_label_array(original_indices, len(shown), "original indices")
            if rows.min() < 0 or rows.max() >= len(self.originals):
                raise InputError(f"original indices must lie in 0..{len(self.originals) - 1}")
            if not np.array_equal(self.labels[rows], truth):
                raise InputError("labels disagree with the labels of the originals at original_indices")
            return self.originals[rows]
        return np.stack([self._most_similar_original(image, label) for image, label in zip(shown, truth)])

    def _most_similar_original(self, image: np.ndarray, label: int) -> np.ndarray:
        candidates = self.originals[self.labels == label]
        if len(candidates) == 0:
            raise InputError(f"label {label} has no private original to compare with")
        similarity = ssim_per_image(candidates, np.broadcast_to(image, candidates.shape))
        return candidates[int(similarity.argmax())]


def _as_label_array(values: np.ndarray | torch.Tensor, count: int, name: str) -> np.ndarray:
    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    if array.shape != (count,) or not np.issubdtype(array.dtype, np.integer):
        raise InputError(f"{name}: expected {count} integers, got shape {array.shape} dtype {array.dtype}")
    return array.astype(np.int64)
