"""Block DCT and colour conversion: exact round trips, energy kept, the documented channel layout, bad input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from common.errors import InputError
from masking.dct import block_dct, block_idct, from_frequency, rgb_to_ycbcr, to_frequency, ycbcr_to_rgb
from tests.masking_faces import orl_faces, smooth_images


@pytest.mark.parametrize("channels", [1, 3])
def test_round_trip_of_random_images_is_exact_to_float32_rounding(channels: int) -> None:
    images = torch.rand(8, channels, 112, 112, generator=torch.Generator().manual_seed(1))
    freq = to_frequency(images)
    assert freq.shape == (8, channels * 64, 14, 14)
    assert (from_frequency(freq, channels) - images).abs().max() < 1e-5


def test_round_trip_of_real_orl_faces_is_exact_to_float32_rounding(orl_dir) -> None:
    faces = orl_faces(orl_dir, 10)
    assert (from_frequency(to_frequency(faces), 1) - faces).abs().max() < 1e-5
    rgb = faces.expand(-1, 3, -1, -1).contiguous()
    assert (from_frequency(to_frequency(rgb), 3) - rgb).abs().max() < 1e-5


def test_block_dct_keeps_energy_parseval() -> None:
    planes = smooth_images(4, 3, seed=2)
    freq = block_dct(planes.double())
    assert torch.allclose(freq.square().sum(), planes.double().square().sum(), rtol=1e-12)
    assert (block_idct(freq) - planes.double()).abs().max() < 1e-12


def test_block_dct_matches_opencv_per_block_with_vertical_frequency_first() -> None:
    plane = torch.rand(1, 1, 16, 24, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    freq = block_dct(plane)  # [1, 64, 2, 3]
    for row in range(2):
        for col in range(3):
            block = plane[0, 0, 8 * row : 8 * row + 8, 8 * col : 8 * col + 8].numpy()
            expected = cv2.dct(block)  # expected[u, v], u = vertical frequency
            got = freq[0, :, row, col].reshape(8, 8).numpy()
            np.testing.assert_allclose(got, expected, atol=1e-12)


def test_a_vertical_cosine_lands_in_channel_u1_v0_of_its_plane() -> None:
    rows = torch.arange(8, dtype=torch.float64)
    pattern = torch.cos(torch.pi * (2 * rows + 1) / 16)[:, None].expand(8, 8)
    plane = pattern.repeat(2, 2)[None, None]
    energy = block_dct(plane).square().sum(dim=(0, 2, 3))
    assert int(energy.argmax()) == 1 * 8 + 0
    assert energy[8] / energy.sum() > 1 - 1e-12


def test_ycbcr_is_bt601_full_range_with_chroma_offset_and_inverts_exactly() -> None:
    colours = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    ycbcr = rgb_to_ycbcr(colours[:, :, None, None])[:, :, 0, 0]
    torch.testing.assert_close(ycbcr[0], torch.tensor([1.0, 0.5, 0.5], dtype=torch.float64))
    torch.testing.assert_close(ycbcr[1], torch.tensor([0.299, 0.5 - 0.299 / 1.772, 1.0], dtype=torch.float64))
    torch.testing.assert_close(ycbcr[2], torch.tensor([0.114, 1.0, 0.5 - 0.114 / 1.402], dtype=torch.float64))
    images = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    assert (ycbcr_to_rgb(rgb_to_ycbcr(images)) - images).abs().max() < 1e-14


@pytest.mark.parametrize(
    "images, message",
    [
        (torch.rand(2, 1, 112, 100), "multiples of 8"),
        (torch.rand(2, 1, 60, 112), "multiples of 8"),
        (torch.rand(1, 112, 112), "4 dimensions"),
        (torch.rand(2, 2, 16, 16), "channels"),
        (torch.randint(0, 255, (2, 1, 16, 16), dtype=torch.uint8), "float tensor"),
        (torch.rand(2, 1, 16, 16) * 255, "expected [0, 1]"),
        (torch.zeros(0, 1, 16, 16), "empty"),
    ],
)
def test_to_frequency_rejects_bad_images_with_the_fix(images: torch.Tensor, message: str) -> None:
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        to_frequency(images)


@pytest.mark.parametrize("bad_value", [float("nan"), float("inf"), float("-inf")])
def test_to_frequency_rejects_nan_and_infinite_pixels(bad_value: float) -> None:
    images = torch.rand(2, 3, 16, 16)
    images[1, 2, 5, 7] = bad_value
    with pytest.raises(InputError, match="NaN or infinite"):
        to_frequency(images)


def test_from_frequency_rejects_a_channel_count_that_is_not_the_planes() -> None:
    with pytest.raises(InputError, match="192"):
        from_frequency(torch.zeros(1, 64, 2, 2), 3)
