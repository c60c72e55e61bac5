"""One way to read a batch of face images, whatever form a caller holds them in.

Evaluators, measures and figures all take images from different producers (decoded Parquet rows, masked
renderings, attack reconstructions), so they agree here on one in-memory form: float32, NHWC, values in [0, 1],
one or three channels. Layout follows the container: a torch tensor is NCHW (torch's convention, what attacks
return), a numpy array is NHW or NHWC (what decoders and OpenCV give).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from common.errors import InputError

ImageBatch = np.ndarray | torch.Tensor | Sequence[np.ndarray]
"""A tensor [N, C, H, W], an array [N, H, W] or [N, H, W, C], or a list of [H, W] / [H, W, C] arrays."""

_RANGE_TOLERANCE = 1e-4  # float images from a sigmoid or an IDCT may overshoot [0, 1] by rounding only


def as_float_nhwc(images: ImageBatch, name: str = "images") -> np.ndarray:
    """The batch as float32 [N, H, W, C] in [0, 1]; uint8 is scaled by 1/255, floats must already be in [0, 1]."""
    if isinstance(images, torch.Tensor):
        if images.ndim != 4:
            raise InputError(f"{name}: a tensor must be [N, C, H, W], got shape {tuple(images.shape)}")
        array = images.detach().cpu().permute(0, 2, 3, 1).numpy()
    elif isinstance(images, np.ndarray):
        array = images[..., None] if images.ndim == 3 else images
    elif isinstance(images, Sequence) and len(images) > 0 and all(isinstance(x, np.ndarray) for x in images):
        return _stack_same_size([as_float_nhwc(np.asarray(x)[None], name) for x in images], name)
    else:
        raise InputError(
            f"{name}: expected a torch tensor, a numpy array or a list of arrays, got {type(images).__name__}"
        )
    if array.ndim != 4 or array.shape[0] == 0 or array.shape[-1] not in (1, 3):
        raise InputError(
            f"{name}: expected N>0 images of 1 or 3 channels as [N, H, W] / [N, H, W, C] arrays or [N, C, H, W] tensors, "
            f"got shape {array.shape}"
        )
    return _to_unit_float(array, name)


def as_float_hwc_list(images: ImageBatch, name: str = "images") -> list[np.ndarray]:
    """Images that may differ in size, each float32 [H, W, C] in [0, 1] (for per-image tools such as dlib)."""
    if isinstance(images, Sequence) and not isinstance(images, np.ndarray):
        if len(images) == 0:
            raise InputError(f"{name}: the list of images is empty")
        return [as_float_nhwc(np.asarray(x)[None], f"{name}[{i}]")[0] for i, x in enumerate(images)]
    return list(as_float_nhwc(images, name))


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Float images in [0, 1] as uint8, rounded (not truncated) so a uint8 round trip is exact."""
    return np.clip(np.rint(images * 255.0), 0, 255).astype(np.uint8)


def to_rgb(images: np.ndarray) -> np.ndarray:
    """Gray images (last axis 1) repeated to three channels; RGB images unchanged."""
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images


def _to_unit_float(array: np.ndarray, name: str) -> np.ndarray:
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if not np.issubdtype(array.dtype, np.floating):
        raise InputError(f"{name}: images must be uint8 (0-255) or float in [0, 1], got dtype {array.dtype}")
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        raise InputError(f"{name}: images contain NaN or infinity; check the model or renderer that produced them")
    low, high = float(array.min()), float(array.max())
    if low < -_RANGE_TOLERANCE or high > 1 + _RANGE_TOLERANCE:
        raise InputError(
            f"{name}: float images must lie in [0, 1], found values in [{low:.3g}, {high:.3g}]; "
            "divide uint8-range floats by 255 or clamp the output"
        )
    return np.clip(array, 0.0, 1.0)


def _stack_same_size(batches: list[np.ndarray], name: str) -> np.ndarray:
    shapes = {b.shape[1:] for b in batches}
    if len(shapes) != 1:
        raise InputError(f"{name}: images differ in size or channels {sorted(shapes)}; resize them to one shape first")
    return np.concatenate(batches, axis=0)
