"""The judges of a run, built once per private set: dlib's gallery, the evaluation classifier, and how well each
identifies untouched originals (a judge that cannot name real photos of a person proves nothing about
reconstructions of them).

dlib check: the private originals of each person are split in half; one half is the gallery and the other half
the probes. The classifier's check is its held-out top-1 (30% of each person's originals). Both are reported
beside S2 and S4, so a reader sees when dlib is weak (as on synthetic faces, which dlib was never trained on) and
the classifier columns are the signal to read.

Built judges are cached in memory and, given a folder, on disk (descriptors, classifier weights and the check,
loaded with weights_only=True), keyed by the private images and the evaluator budget.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.files import atomic_output, read_cache
from evaluation.budgets import EvaluatorBudgetConfig
from evaluation.classifier import EvaluationClassifier, stratified_split
from evaluation.identification import DlibFaceDescriptor, IdentificationGallery
from evaluation.measures import TOP_K, Calibration, topk_rates
from evaluation.outcomes import PrivacyEvaluator
from evaluation.run_data import LabelledImages

WEAK_EVALUATOR_TOP1 = 0.9
"""Below this top-1 on untouched originals a judge misses photos it should name, so its rates on reconstructions
understate what they reveal (dlib names 100% of held-out ORL photos and about 75% of synthetic ones)."""


@dataclass(frozen=True)
class EvaluatorCheck:
    """Top-1 / top-5 of each judge on held-out private originals; chance_top1 = 1 / number of identities."""

    dlib_top1: float
    dlib_top5: float
    classifier_top1: float
    classifier_top5: float
    chance_top1: float
    num_identities: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def calibration(self) -> Calibration:
        """The anchors of p-hat: chance, and each judge's top-1 on held-out originals."""
        return Calibration(self.chance_top1, {"dlib": self.dlib_top1, "classifier": self.classifier_top1})

    @property
    def dlib_is_weak(self) -> bool:
        return self.dlib_top1 < WEAK_EVALUATOR_TOP1


@dataclass
class Judges:
    evaluator: PrivacyEvaluator
    check: EvaluatorCheck
    fingerprint: str  # names the private set, the prior face and the evaluator budget the judges were built from


def dlib_check(descriptors: np.ndarray, labels: np.ndarray, seed: int) -> tuple[float, float]:
    """dlib's top-1 / top-5 with half of each person's originals as gallery and the other half as probes."""
    gallery, probes = stratified_split(labels, 0.5, seed)
    ranked = IdentificationGallery(descriptors[gallery], labels[gallery]).identify(descriptors[probes], TOP_K)
    top1, top5 = topk_rates(ranked, labels[probes])
    return top1, top5


def prior_face(public: LabelledImages) -> torch.Tensor:
    """The best data-free guess of a private face: the mean of the attacker's public faces, [1, C, H, W]."""
    return public.images.float().mean(dim=0, keepdim=True)


def build_judges(
    private: LabelledImages, public: LabelledImages, budget: EvaluatorBudgetConfig, seed: int, dlib_processes: int = 1
) -> Judges:
    labels = private.labels.numpy()
    descriptor = DlibFaceDescriptor(mode=budget.dlib_mode, processes=dlib_processes)
    descriptors = descriptor.describe(private.images)
    classifier = EvaluationClassifier(int(labels.max()) + 1, private.images.shape[1], budget.classifier_size, seed)
    fit = classifier.fit(private.images, labels, epochs=budget.classifier_epochs)
    dlib_top1, dlib_top5 = dlib_check(descriptors, labels, seed)
    identities = len(np.unique(labels))
    check = EvaluatorCheck(
        dlib_top1, dlib_top5, float(fit.val_top1 or 0.0), float(fit.val_top5 or 0.0), 1.0 / identities, identities
    )
    evaluator = PrivacyEvaluator(
        private.images, labels, descriptor, classifier, gallery_descriptors=descriptors, prior_face=prior_face(public)
    )
    return Judges(evaluator, check, judges_fingerprint(private, public, budget, seed))


def judges_fingerprint(
    private: LabelledImages, public: LabelledImages, budget: EvaluatorBudgetConfig, seed: int
) -> str:
    digest = hashlib.sha256(private.images.numpy().tobytes())
    digest.update(private.labels.numpy().tobytes())
    digest.update(prior_face(public).numpy().tobytes())
    digest.update(repr((sorted(asdict(budget).items()), seed)).encode())
    return digest.hexdigest()[:16]


@dataclass
class JudgesCache:
    """Judges by fingerprint, in memory and, given a folder, on disk."""

    folder: Path | None = None
    _judges: dict[str, Judges] = field(default_factory=dict, repr=False)

    def judges(
        self,
        private: LabelledImages,
        public: LabelledImages,
        budget: EvaluatorBudgetConfig,
        seed: int,
        dlib_processes: int = 1,
    ) -> Judges:
        """dlib_processes: processes dlib describes faces in (it does not change a descriptor, so not the cache)."""
        fingerprint = judges_fingerprint(private, public, budget, seed)
        if fingerprint in self._judges:
            return self._judges[fingerprint]
        path = self.folder / f"judges-{fingerprint}.pt" if self.folder is not None else None
        judges = read_cache(
            path,
            lambda cached: _load(
                cached, private, public, DlibFaceDescriptor(budget.dlib_mode, processes=dlib_processes), fingerprint
            ),
        )
        if judges is None:
            judges = build_judges(private, public, budget, seed, dlib_processes)
            if path is not None:
                _save(judges, path)
        self._judges[fingerprint] = judges
        return judges


def _save(judges: Judges, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    evaluator = judges.evaluator
    assert evaluator.classifier is not None
    state = {
        "descriptors": torch.from_numpy(np.ascontiguousarray(evaluator.gallery_descriptors)),
        "classifier": evaluator.classifier.state_dict(),
        "check": judges.check.to_dict(),
    }
    with atomic_output(path) as temporary:
        torch.save(state, temporary)


def _load(
    path: Path, private: LabelledImages, public: LabelledImages, descriptor: DlibFaceDescriptor, fingerprint: str
) -> Judges:
    saved = torch.load(path, map_location="cpu", weights_only=True)
    evaluator = PrivacyEvaluator(
        private.images,
        private.labels.numpy(),
        descriptor,
        EvaluationClassifier.from_state_dict(saved["classifier"]),
        gallery_descriptors=saved["descriptors"].numpy(),
        prior_face=prior_face(public),
    )
    return Judges(evaluator, EvaluatorCheck(**saved["check"]), fingerprint)
