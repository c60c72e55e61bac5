"""One source file's bytes to one output face (or the reason it cannot be one).

Decoding goes by content, never by file name: OpenCV picks the codec from the bytes, and a file it cannot
decode is "corrupt or truncated" when it starts like a known image format, else "not an image". OpenCV 5
refuses truncated JPEG, PNG, GIF, BMP and PNM data outright (tests/test_prepare.py holds it to that).
Pure function of its inputs, so it can run in worker processes.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from common.limits import MAX_IMAGE_PIXELS, limit_image_decoding

limit_image_decoding()  # when this module is the first to import cv2

import cv2  # noqa: E402 -- after its pixel limit is set
import numpy as np  # noqa: E402
from PIL import Image, UnidentifiedImageError  # noqa: E402

from pipelines.data import alignment  # noqa: E402

COLOR_MODES = ("keep", "gray", "rgb")

EMPTY = "empty file"
NOT_AN_IMAGE = "not an image"
CORRUPT = "corrupt or truncated"
TOO_SMALL = "too small"
TOO_LARGE = "too large"

_IMAGE_SIGNATURES = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"BM",  # BMP
    b"II*\x00",  # TIFF, little-endian
    b"MM\x00*",  # TIFF, big-endian
    b"\x00\x00\x00\x0cjP  ",  # JPEG 2000
)
_PNM_MAGIC = tuple(f"P{digit}".encode() for digit in "1234567")  # PBM, PGM, PPM (plain, raw), PAM

cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # a bad file is reported in the manifest


@dataclass(frozen=True)
class ImageConfig:
    """What every output face looks like."""

    size: int
    color: str
    min_size: int
    align: bool
    crop: float = 1.0  # share of the centred square kept; LFW's deep-funneled faces fill about half (docs/lfw.md)


@dataclass(frozen=True)
class Face:
    """A usable image: `pixels` is size x size x channels uint8, RGB order when channels == 3."""

    pixels: np.ndarray
    alignment_fallback: bool  # --align found no face, so the plain centre crop was used


@dataclass(frozen=True)
class Rejection:
    kind: str  # one of EMPTY, NOT_AN_IMAGE, CORRUPT, TOO_SMALL, TOO_LARGE
    reason: str  # what the manifest says, with details


def looks_like_image(data: bytes) -> bool:
    """Whether the bytes start like an image format OpenCV reads: tells "corrupt" from "not an image"."""
    if data.startswith(_IMAGE_SIGNATURES):
        return True
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return True
    return data[:2] in _PNM_MAGIC and data[2:3].isspace()


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the image header alone, without decoding the pixels; None when it cannot be read."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit decides, below
            with Image.open(io.BytesIO(data)) as image:
                return image.size
    except Image.DecompressionBombError:
        return (MAX_IMAGE_PIXELS + 1, 1)  # larger than Pillow's own ceiling, so larger than ours
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None


def decode(data: bytes) -> np.ndarray | Rejection:
    """uint8 pixels, height x width (gray) or height x width x 3 (BGR), whatever the source depth or alpha."""
    if not data:
        return Rejection(EMPTY, EMPTY)
    size = header_size(data)
    if size is not None and size[0] * size[1] > MAX_IMAGE_PIXELS:
        width, height = size
        return Rejection(TOO_LARGE, f"{TOO_LARGE}: {width}x{height} pixels, at most {MAX_IMAGE_PIXELS} are decoded")
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_ANYCOLOR)
    except cv2.error as error:  # OpenCV's own pixel limit, for headers Pillow cannot read
        if "MAX_IMAGE_PIXELS" in str(error):
            return Rejection(TOO_LARGE, f"{TOO_LARGE}: more than {MAX_IMAGE_PIXELS} pixels")
        return Rejection(CORRUPT, CORRUPT)
    if image is None or image.size == 0:
        kind = CORRUPT if looks_like_image(data) else NOT_AN_IMAGE
        return Rejection(kind, kind)
    return image


def center_square(image: np.ndarray, size: int, crop: float = 1.0) -> np.ndarray:
    """Centre-crop to a square (`crop` of the short side), then resize to size x size (area interpolation: no
    aliasing when shrinking)."""
    height, width = image.shape[:2]
    side = max(1, round(min(height, width) * crop))
    top, left = (height - side) // 2, (width - side) // 2
    square = image[top : top + side, left : left + side]
    return cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA)


def to_color_mode(image: np.ndarray, color: str) -> np.ndarray:
    """OpenCV's gray or BGR to the output's channels: gray -> 1, rgb -> 3, keep -> as decoded (RGB order)."""
    if image.ndim == 2:
        image = image[:, :, None]
    if color == "gray" and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)[:, :, None]
    if color == "rgb" and image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


def make_face(data: bytes, options: ImageConfig) -> Face | Rejection:
    """Decode, check and reshape one source file into the face the shards store."""
    image = decode(data)
    if isinstance(image, Rejection):
        return image
    height, width = image.shape[:2]
    if min(height, width) < options.min_size:
        return Rejection(TOO_SMALL, f"{TOO_SMALL}: {width}x{height} pixels, --min-size is {options.min_size}")
    aligned = alignment.align_face(image, options.size) if options.align else None
    geometry = aligned if aligned is not None else center_square(image, options.size, options.crop)
    return Face(
        pixels=np.ascontiguousarray(to_color_mode(geometry, options.color)),
        alignment_fallback=options.align and aligned is None,
    )
