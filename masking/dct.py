"""Colour conversion and the orthonormal 8x8 block DCT, batched on torch tensors.

Images are float tensors [B, C, H, W] with values in [0, 1], C = 1 (grayscale) or 3 (RGB). Colour images go to
YCbCr first (BT.601 full range, chroma offset 0.5, as JPEG does) because luma carries the face's structure and
chroma little, so the energy ranking of PPFR-FD sees them apart. Each plane is cut into 8x8 blocks and each block
gets an orthonormal DCT-II; the coefficient (u, v) of every block is gathered into one *frequency channel* of
shape (H/8, W/8). Channel index = plane * 64 + u * 8 + v, with u the vertical and v the horizontal frequency, so
a 112x112 RGB face becomes 192 channels of 14x14. The transform is orthonormal, so it keeps energy (Parseval) and
its inverse is its transpose: round trips are exact to float rounding.

These functions are the readable reference; `masking.masker.FrequencyMasker` composes them into one convolution.
"""

from __future__ import annotations

import math

import torch

from common.errors import InputError
from masking.layout import sample_rows

BLOCK = 8
COEFFICIENTS_PER_PLANE = BLOCK * BLOCK

_KR, _KB = 0.299, 0.114  # BT.601 luma weights of red and blue
_CHROMA_OFFSET = 0.5


def _rgb_to_ycbcr_matrix() -> torch.Tensor:
    """BT.601 full-range RGB -> YCbCr (before the chroma offset), built from its two constants, in float64."""
    kg = 1.0 - _KR - _KB
    luma = torch.tensor([_KR, kg, _KB], dtype=torch.float64)
    blue, red = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    cb = (blue - luma) / (2.0 * (1.0 - _KB))
    cr = (red - luma) / (2.0 * (1.0 - _KR))
    return torch.stack([luma, cb, cr])


_RGB_TO_YCBCR = _rgb_to_ycbcr_matrix()
_YCBCR_TO_RGB = torch.linalg.inv(_RGB_TO_YCBCR)
_YCBCR_OFFSET = torch.tensor([0.0, _CHROMA_OFFSET, _CHROMA_OFFSET], dtype=torch.float64)


def dct_matrix(dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
    """The orthonormal 8-point DCT-II matrix D[u, x] (rows are frequencies): coefficients = D @ block @ D.T."""
    index = torch.arange(BLOCK, dtype=torch.float64)
    matrix = torch.cos(math.pi * (2.0 * index[None, :] + 1.0) * index[:, None] / (2.0 * BLOCK))
    matrix[0] *= math.sqrt(1.0 / BLOCK)
    matrix[1:] *= math.sqrt(2.0 / BLOCK)
    return matrix.to(dtype=dtype, device=device)


def _check_float_rank4(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{name} must be a torch tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise InputError(f"{name} must have 4 dimensions [batch, channels, height, width], got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise InputError(
            f"{name} must be a float tensor with values in [0, 1], got {x.dtype}; divide uint8 pixels by 255"
        )
    if x.numel() == 0:
        raise InputError(f"{name} is empty (shape {tuple(x.shape)}); pass at least one image")


def _check_block_grid(height: int, width: int, name: str) -> None:
    if height % BLOCK or width % BLOCK:
        raise InputError(
            f"{name} is {height}x{width} pixels; height and width must be multiples of {BLOCK} "
            f"(resize or crop the faces, e.g. to 112x112)"
        )


def check_images(images: torch.Tensor, name: str = "images") -> None:
    """Raise InputError unless `images` is a float [B, C, H, W] batch, C in {1, 3}, H and W multiples of 8, all
    values finite and in [0, 1]. One min/max pass checks NaN, infinity and range together."""
    _check_float_rank4(images, name)
    if images.shape[1] not in (1, 3):
        raise InputError(f"{name} has {images.shape[1]} channels; expected 1 (grayscale) or 3 (RGB) in dimension 1")
    _check_block_grid(images.shape[2], images.shape[3], name)
    low, high = (float(v) for v in torch.aminmax(sample_rows(images.detach())[0]))  # layout-free: fast on channels_last
    if not (math.isfinite(low) and math.isfinite(high)):
        raise InputError(f"{name} contains NaN or infinite values; check the decoding of the source images")
    if low < 0.0 or high > 1.0:
        raise InputError(f"{name} has values in [{low:g}, {high:g}]; expected [0, 1] (divide uint8 pixels by 255)")


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] RGB in [0, 1] -> YCbCr (BT.601 full range, Cb and Cr offset by 0.5, so also in [0, 1])."""
    matrix = _RGB_TO_YCBCR.to(dtype=x.dtype, device=x.device)
    offset = _YCBCR_OFFSET.to(dtype=x.dtype, device=x.device)
    return torch.einsum("pc,bchw->bphw", matrix, x) + offset[:, None, None]


def ycbcr_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """The exact inverse of `rgb_to_ycbcr`."""
    matrix = _YCBCR_TO_RGB.to(dtype=x.dtype, device=x.device)
    offset = _YCBCR_OFFSET.to(dtype=x.dtype, device=x.device)
    return torch.einsum("cp,bphw->bchw", matrix, x - offset[:, None, None])


def block_dct(planes: torch.Tensor) -> torch.Tensor:
    """[B, P, H, W] planes -> [B, P*64, H/8, W/8] frequency channels (orthonormal 8x8 DCT-II per block)."""
    _check_float_rank4(planes, "planes")
    batch, num_planes, height, width = planes.shape
    _check_block_grid(height, width, "planes")
    blocks = planes.reshape(batch, num_planes, height // BLOCK, BLOCK, width // BLOCK, BLOCK)
    d = dct_matrix(planes.dtype, planes.device)
    coefficients = torch.einsum("ui,bpyixj,vj->bpuvyx", d, blocks, d)
    return coefficients.reshape(batch, num_planes * COEFFICIENTS_PER_PLANE, height // BLOCK, width // BLOCK)


def block_idct(channels: torch.Tensor) -> torch.Tensor:
    """[B, P*64, h, w] frequency channels -> [B, P, 8h, 8w] planes: the exact inverse of `block_dct`."""
    _check_float_rank4(channels, "channels")
    batch, num_channels, grid_h, grid_w = channels.shape
    if num_channels % COEFFICIENTS_PER_PLANE:
        raise InputError(f"channels has {num_channels} channels; expected a multiple of 64 (64 per plane)")
    num_planes = num_channels // COEFFICIENTS_PER_PLANE
    coefficients = channels.reshape(batch, num_planes, BLOCK, BLOCK, grid_h, grid_w)
    d = dct_matrix(channels.dtype, channels.device)
    blocks = torch.einsum("ui,bpuvyx,vj->bpyixj", d, coefficients, d)
    return blocks.reshape(batch, num_planes, grid_h * BLOCK, grid_w * BLOCK)


def to_frequency(images: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] images in [0, 1] (C = 1 gray, 3 RGB) -> [B, C*64, H/8, W/8] frequency channels."""
    check_images(images)
    planes = rgb_to_ycbcr(images) if images.shape[1] == 3 else images
    return block_dct(planes)


def from_frequency(channels: torch.Tensor, num_planes: int) -> torch.Tensor:
    """[B, num_planes*64, h, w] frequency channels -> [B, num_planes, 8h, 8w] images (RGB when 3 planes)."""
    if num_planes not in (1, 3):
        raise InputError(f"num_planes is {num_planes}; expected 1 (grayscale) or 3 (YCbCr)")
    _check_float_rank4(channels, "channels")
    if channels.shape[1] != num_planes * COEFFICIENTS_PER_PLANE:
        raise InputError(
            f"channels has {channels.shape[1]} channels; {num_planes} plane(s) need {num_planes * COEFFICIENTS_PER_PLANE}"
        )
    planes = block_idct(channels)
    return ycbcr_to_rgb(planes) if num_planes == 3 else planes
