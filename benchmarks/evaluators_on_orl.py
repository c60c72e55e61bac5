"""How well the evaluators judge real faces: dlib identification and the evaluation classifier on all of ORL.

Run: python benchmarks/evaluators_on_orl.py [--orl ../shared/data/orl] [--epochs 30]
dlib: gallery = photos 1-5 of each of the 40 people, probes = photos 6-10 (200 probes, chance top-1 = 2.5%).
Classifier: trained on 7 photos a person, scored on the 3 held out (stratified, seed 0), 32x32 px.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation.classifier import EvaluationClassifier
from evaluation.identification import DlibFaceDescriptor, IdentificationGallery
from evaluation.measures import topk_rates

DEFAULT_ORL = (
    Path(os.environ.get("HYBRIDMASK_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "orl"
)


def read_orl(orl_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Faces [400, 112, 92], labels 0..39 and photo numbers 1..10."""
    people = sorted((p for p in orl_dir.glob("s*") if p.is_dir()), key=lambda p: int(p.name[1:]))
    if not people:
        sys.exit(f"no ORL faces under {orl_dir}; pass --orl")
    faces, labels, shots = [], [], []
    for label, person in enumerate(people):
        for shot in range(1, 11):
            faces.append(cv2.imread(str(person / f"{shot}.pgm"), cv2.IMREAD_GRAYSCALE))
            labels.append(label)
            shots.append(shot)
    return np.stack(faces), np.array(labels), np.array(shots)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orl", type=Path, default=DEFAULT_ORL)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    faces, labels, shots = read_orl(args.orl)
    gallery_rows, probe_rows = shots <= 5, shots > 5
    print("| evaluator | top-1 | top-5 | images/s or training s |\n|---|---|---|---|")
    for mode in ("full", "detect_or_full"):
        descriptor = DlibFaceDescriptor(mode)
        started = time.perf_counter()
        descriptors = descriptor.describe(faces)
        speed = len(faces) / (time.perf_counter() - started)
        gallery = IdentificationGallery(descriptors[gallery_rows], labels[gallery_rows])
        top1, top5 = topk_rates(gallery.identify(descriptors[probe_rows]), labels[probe_rows])
        print(f"| dlib, mode={mode} | {top1:.3f} | {top5:.3f} | {speed:.2f} images/s |")
    classifier = EvaluationClassifier(num_classes=int(labels.max()) + 1, channels=1, image_size=32)
    report = classifier.fit(faces, labels, epochs=args.epochs)
    print(
        f"| evaluation classifier (held out) | {report.val_top1:.3f} | {report.val_top5:.3f} | {report.seconds:.1f} s training |"
    )


if __name__ == "__main__":
    main()
