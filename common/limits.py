"""Limits on what untrusted input may cost, set once for every library that decodes it."""

from __future__ import annotations

import os

MAX_IMAGE_PIXELS = 40_000_000
"""Images with more pixels (width x height) are skipped as "too large" before they are decoded: 40 megapixels
is far more than a face needs, and a 12000x12000 image would take over half a gigabyte of memory per decoding
process."""


def limit_image_decoding() -> None:
    """Give OpenCV the same pixel limit (it reads OPENCV_IO_MAX_IMAGE_PIXELS once, when cv2 is first imported),
    for any format whose header the pre-decoding check cannot read. Call before anything imports cv2."""
    os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_IMAGE_PIXELS))
