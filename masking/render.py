"""Masked data rendered as images, for the privacy measures and for people to look at.

Both renderings put channels back into their frequency slots (zeros in the dropped ones) and invert the block
DCT. They differ in what they know:
- the server view has no key: it can only take the masked channels as they are, in the public kept slots;
- the client view has the key: it undoes normalisation and shuffle-and-mix first, so it shows exactly what
  the kept frequencies hold of the face (all a perfect attacker could ever recover from the masked data).
"""

from __future__ import annotations

import torch

from common.errors import InputError
from masking.dct import BLOCK, from_frequency
from masking.masker import FrequencyMasker
from masking.ppfr import ChannelSelection


def place_kept_channels(kept: torch.Tensor, selection: ChannelSelection) -> torch.Tensor:
    """[B, K, h, w] channels -> [B, N, h, w] with channel j of `kept` in slot selection.kept[j], zeros elsewhere."""
    if kept.dim() != 4 or kept.shape[1] != len(selection.kept):
        raise InputError(f"expected [batch, {len(selection.kept)}, h, w] masked channels, got {tuple(kept.shape)}")
    batch, _, grid_h, grid_w = kept.shape
    full = kept.new_zeros(batch, selection.num_channels, grid_h, grid_w)
    full[:, list(selection.kept)] = kept
    return full


def stretch_contrast(images: torch.Tensor) -> torch.Tensor:
    """Map each image's own [min, max] to [0, 1] (all channels together); a flat image becomes all zeros."""
    flat = images.reshape(images.shape[0], -1)
    low = flat.min(dim=1).values.reshape(-1, 1, 1, 1)
    span = flat.max(dim=1).values.reshape(-1, 1, 1, 1) - low
    return torch.where(
        span > 0, (images - low) / span.clamp_min(torch.finfo(images.dtype).tiny), torch.zeros_like(images)
    )


def render_server_view(
    masked: torch.Tensor, selection: ChannelSelection, image_size: tuple[int, int] | None = None
) -> torch.Tensor:
    """What the server can see without the key: masked channels in the kept slots, inverse DCT, then each image
    contrast-stretched to [0, 1] (the masked values have no pixel scale of their own, so stretching is the
    fairest view). `image_size` (height, width), when given, is checked against the channel grid."""
    if image_size is not None and tuple(image_size) != (masked.shape[2] * BLOCK, masked.shape[3] * BLOCK):
        raise InputError(
            f"image_size {tuple(image_size)} does not match the masked grid {tuple(masked.shape[2:])} (8 pixels a cell)"
        )
    images = from_frequency(place_kept_channels(masked.float(), selection), selection.num_planes)
    return stretch_contrast(images)


def render_client_view(masked: torch.Tensor, masker: FrequencyMasker) -> torch.Tensor:
    """What the key holder sees: kept frequencies restored, inverse DCT, no stretching (so it compares with the
    original in pixel units; values may leave [0, 1] since the DC and low frequencies are gone)."""
    kept = masker.unmask(masked.float())
    return from_frequency(place_kept_channels(kept, masker.selection), masker.num_planes)
