"""Real faces for the benchmarks: every readable image under a folder, gray, resized to a square, as a tensor."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("HYBRIDMASK_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
ORL_DIR = SHARED_DATA / "orl"
YALEB_DIR = SHARED_DATA / "yaleb" / "CroppedYale"
FACE_SIZE = 112


def load_faces(root: Path, size: int = FACE_SIZE) -> tuple[torch.Tensor, list[str]]:
    """([N, 1, size, size] float32 in [0, 1], identity per image) for every PGM under root/<identity>/.

    Files OpenCV cannot decode (Yale B ships some junk beside its images) are left out."""
    if not root.is_dir():
        raise SystemExit(
            f"face folder {root} not found (set HYBRIDMASK_SHARED_DATA to the folder holding orl/ and yaleb/)"
        )
    faces, identities = [], []
    for path in sorted(root.glob("*/*.pgm")):
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            continue
        faces.append(cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA))
        identities.append(path.parent.name)
    return torch.from_numpy(np.stack(faces)).float().div_(255.0)[:, None], identities


DEMO_KEY = b"hybridmask-public-demonstration!"
"""A fixed, PUBLIC 32-byte key so that figures and benchmarks are reproducible.
Never mask real private data with it: use `hybridmask keygen`."""
