"""`prepare --align`: dlib's landmarks land on the five-point template; faceless images fall back, listed."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np

from pipelines.data.alignment import TEMPLATE_EYES_NOSE, align_face, eyes_and_nose
from pipelines.data.prepare import PrepareConfig, prepare_folder


def test_aligned_real_faces_have_eyes_and_nose_on_the_template(orl_dir: Path) -> None:
    for name in ("s1/1.pgm", "s10/3.pgm", "s20/7.pgm"):
        image = cv2.imread(str(orl_dir / name), cv2.IMREAD_ANYCOLOR)
        aligned = align_face(image, 112)
        assert aligned is not None and aligned.shape == (112, 112)
        found = eyes_and_nose(aligned)
        assert found is not None and np.abs(found - TEMPLATE_EYES_NOSE).max() < 5.0, name


def test_image_without_a_face_is_not_aligned() -> None:
    texture = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 256, (120, 100), dtype=np.uint8), (9, 9), 0)
    assert align_face(texture, 112) is None


def test_prepare_align_centre_crops_faceless_images_and_lists_them(orl_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "src"
    for person in ("s1", "s2", "s3", "s4", "s5", "s6"):
        (source / person).mkdir(parents=True)
        for image in ("1.pgm", "2.pgm"):
            shutil.copy(orl_dir / person / image, source / person / image)
    texture = cv2.GaussianBlur(np.random.default_rng(1).integers(0, 256, (112, 92), dtype=np.uint8), (9, 9), 0)
    cv2.imwrite(str(source / "s6" / "wall.png"), texture)
    manifest = prepare_folder(source, tmp_path / "out", PrepareConfig(size=64, align=True, splits=(0.34, 0.33, 0.33)))
    assert manifest["alignment_fallbacks"] == ["s6/wall.png"]
    assert manifest["num_images"] == 13 and manifest["parameters"]["align"] is True
