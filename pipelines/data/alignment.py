"""Face alignment with dlib: frontal detector, 5-point landmarks, similarity warp to the standard template.

The five-point template is the one ArcFace-style FR models are trained on (112 x 112 pixels); we fit the two eye
centres and the nose to it with a similarity transform (rotation, uniform scale, shift: faces are not sheared).
dlib's fifth point is the base of the nose, a little below the template's nose tip, so aligned faces sit a
few pixels higher than insightface crops; every face of a data set is aligned the same way, which is what counts.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import cv2
import numpy as np

TEMPLATE_SIZE = 112
TEMPLATE_EYES_NOSE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366]], dtype=np.float32
)  # left eye centre, right eye centre, nose (image coordinates, x right, y down)
_SMALL_IMAGE = 160  # below this short side, the detector looks at a 2x upsampled image (its faces start at 80 px)
_PAD_FRACTION = 0.25  # tightly cropped faces (Yale B) are found far more often with a margin around them
# Histogram equalisation before detection finds half again as many faces in Yale B's side-lit, dark images.


def _models_folder() -> Path:
    # face_recognition_models' __init__ imports pkg_resources, so locate its data without importing it.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("--align needs the face-recognition-models package (pip install face-recognition-models)")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


@functools.lru_cache(maxsize=1)
def _dlib_models():
    """Detector and 5-point predictor, loaded once per process."""
    import dlib

    predictor = dlib.shape_predictor(str(_models_folder() / "shape_predictor_5_face_landmarks.dat"))
    return dlib.get_frontal_face_detector(), predictor


def eyes_and_nose(image: np.ndarray) -> np.ndarray | None:
    """Left eye centre, right eye centre and nose of the largest face (3 x 2 float32), or None when none is found."""
    gray = cv2.equalizeHist(image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    detector, predictor = _dlib_models()
    pad = round(max(gray.shape) * _PAD_FRACTION)
    attempts = (
        (gray, 0, 1 if min(gray.shape) < _SMALL_IMAGE else 0),
        (cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0), pad, 0),
    )
    for candidate, offset, upsample in attempts:
        faces = detector(candidate, upsample)
        if len(faces):
            face = max(faces, key=lambda rect: rect.area())
            parts = np.array([[p.x, p.y] for p in predictor(candidate, face).parts()], dtype=np.float32) - offset
            eye_a, eye_b = parts[0:2].mean(axis=0), parts[2:4].mean(axis=0)
            left, right = (eye_a, eye_b) if eye_a[0] < eye_b[0] else (eye_b, eye_a)
            return np.stack([left, right, parts[4]])
    return None


def align_face(image: np.ndarray, size: int) -> np.ndarray | None:
    """The face warped onto the five-point template scaled to size x size, or None when no face is found."""
    points = eyes_and_nose(image)
    if points is None:
        return None
    # A threshold no point can miss makes every point an inlier: the fit is least squares over all three, where a
    # robust estimator would fit two points exactly and let the third (say, the nose) tilt the face.
    matrix, _ = cv2.estimateAffinePartial2D(
        points,
        TEMPLATE_EYES_NOSE * (size / TEMPLATE_SIZE),
        method=cv2.RANSAC,
        ransacReprojThreshold=10.0 * size,
        refineIters=20,
    )
    if matrix is None:
        return None
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
