"""`FrequencyMasker`: the client-side transform from face images to the masked channels sent to the server.

Step by step (`mask_reference`, the readable definition): block DCT -> keep the selected channels ->
shuffle-and-mix -> normalise. Every step is linear or affine and acts on one 8x8 block at a time, so together
they are one affine map from each 8x8 block of pixels to K numbers: one strided convolution (kernel 8, stride 8)
with weight [K, C, 8, 8] and bias [K]. `mask` runs that convolution; the weight is found by pushing an all-zero
block (the bias) and each one-pixel block (one weight column) through the reference steps, so the two paths
cannot drift apart.

The composed weight contains the secret mixing matrix: treat a masker object like the key and never save it.
What may be saved is `public_settings()`; `from_settings(settings, key)` rebuilds the masker with the key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F

from common.errors import InputError
from masking.dct import BLOCK, check_images, to_frequency
from masking.keys import derive_obfuscation, key_fingerprint
from masking.moments import ChannelMoments
from masking.obfuscation import (
    ChannelStats,
    KeyedObfuscation,
    denormalize,
    normalize,
    shuffle_and_mix,
    stats_from_moments,
    unmix_and_unshuffle,
)
from masking.ppfr import DEFAULT_MASKING_RATIO, ChannelSelection, select_channels

ReferenceImages = torch.Tensor | Callable[[], Iterable[torch.Tensor]]
"""A [N, C, H, W] tensor, or a function returning a fresh iterable of such batches (fitting reads them twice)."""

TRANSFORM_NAME = "BT.601 full-range YCbCr (RGB) or gray; orthonormal 8x8 block DCT-II; channel = plane*64 + u*8 + v"


class FrequencyMasker:
    """PPFR-FD selection + keyed shuffle-and-mix + normalisation, as one object (see the module docstring)."""

    def __init__(self, selection: ChannelSelection, obfuscation: KeyedObfuscation, stats: ChannelStats) -> None:
        num_kept = len(selection.kept)
        if obfuscation.num_channels != num_kept or stats.num_channels != num_kept:
            raise InputError(
                f"the selection keeps {num_kept} channels but the obfuscation has {obfuscation.num_channels} and the "
                f"statistics {stats.num_channels}; build all three for the same selection"
            )
        self.selection = selection
        self.obfuscation = obfuscation
        self.stats = stats
        self._weight64, self._bias64 = self._compose()
        self._weight, self._bias = self._weight64.float(), self._bias64.float()

    @property
    def num_planes(self) -> int:
        return self.selection.num_planes

    @property
    def num_kept(self) -> int:
        return len(self.selection.kept)

    @property
    def key_fingerprint(self) -> str:
        return self.obfuscation.key_fingerprint

    def __repr__(self) -> str:
        return (
            f"FrequencyMasker(ratio={self.selection.ratio:g}, kept={self.num_kept}/{self.selection.num_channels}, "
            f"key_fingerprint={self.key_fingerprint!r})"
        )

    def mask_reference(self, images: torch.Tensor) -> torch.Tensor:
        """The transform step by step: [B, C, H, W] in [0, 1] -> [B, K, H/8, W/8]."""
        return self.mask_frequency_channels(to_frequency(images))

    def mask_frequency_channels(self, freq: torch.Tensor) -> torch.Tensor:
        """The steps after the DCT: [B, N, h, w] frequency channels -> [B, K, h, w] masked channels."""
        kept = freq[:, list(self.selection.kept)]
        return normalize(shuffle_and_mix(kept, self.obfuscation), self.stats)

    def _compose(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Weight [K, C, 8, 8] and bias [K] of the one convolution equal to `mask_reference` (in float64)."""
        planes, pixels = self.num_planes, self.num_planes * BLOCK * BLOCK
        probes = torch.cat([torch.zeros(1, pixels), torch.eye(pixels)]).to(torch.float64)
        responses = self.mask_reference(probes.reshape(1 + pixels, planes, BLOCK, BLOCK))[:, :, 0, 0]
        bias = responses[0]
        weight = (responses[1:] - bias).T.reshape(self.num_kept, planes, BLOCK, BLOCK)
        return weight.contiguous(), bias.contiguous()

    def _conv_parameters(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if images.dtype == torch.float64:
            weight, bias = self._weight64, self._bias64
        else:
            weight, bias = self._weight, self._bias
        return weight.to(dtype=images.dtype, device=images.device), bias.to(dtype=images.dtype, device=images.device)

    def mask(self, images: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] images in [0, 1] -> [B, K, H/8, W/8] masked channels, in one strided convolution.

        The convolution runs in channels_last layout (the layout of pixels decoded from height x width x
        channels storage), about three times faster on CPU than NCHW here, so other inputs are converted first;
        the output is channels_last too."""
        check_images(images)
        if images.shape[1] != self.num_planes:
            raise InputError(
                f"images have {images.shape[1]} channels but this masker was fitted on {self.num_planes}-channel images"
            )
        weight, bias = self._conv_parameters(images)
        return F.conv2d(images.contiguous(memory_format=torch.channels_last), weight, bias, stride=BLOCK)

    def unmask(self, masked: torch.Tensor) -> torch.Tensor:
        """With the key: [B, K, h, w] masked channels -> the kept frequency channels in ascending channel order."""
        return unmix_and_unshuffle(denormalize(masked, self.stats), self.obfuscation)

    def public_settings(self) -> dict:
        """Everything a server may know (JSON-ready): selection, energy removed, statistics, key fingerprint.
        Never the key, the permutation or the matrix."""
        return {
            **self.selection.to_settings(),
            "normalisation": self.stats.to_settings(),
            "key_fingerprint": self.key_fingerprint,
            "transform": TRANSFORM_NAME,
        }

    @classmethod
    def from_settings(cls, settings: dict, key: bytes) -> FrequencyMasker:
        """Rebuild the masker of `public_settings()` with its key (InputError when the key is another one)."""
        expected = settings.get("key_fingerprint")
        if expected != key_fingerprint(key):
            raise InputError(
                f"the key's fingerprint {key_fingerprint(key)} differs from the masked data's {expected}; "
                "use the key file these data were masked with"
            )
        selection = ChannelSelection.from_settings(settings)
        if "normalisation" not in settings:
            raise InputError(
                "masking settings lack 'normalisation'; they were not written by this version of hybridmask"
            )
        stats = ChannelStats.from_settings(settings["normalisation"])
        return cls(selection, derive_obfuscation(key, len(selection.kept)), stats)

    @classmethod
    def fit(
        cls,
        reference: ReferenceImages,
        key: bytes,
        ratio: float = DEFAULT_MASKING_RATIO,
        batch_size: int = 256,
    ) -> FrequencyMasker:
        """Rank channels by energy on the reference (training) images, select, and fit the normalisation on the
        masked reference. Two passes over the reference; batches keep memory flat for large training sets."""
        batches = _batch_source(reference, batch_size)
        energy = ChannelMoments()
        num_planes = None
        for batch in batches():
            if num_planes is not None and batch.shape[1] != num_planes:
                raise InputError(f"reference batches mix {num_planes}- and {batch.shape[1]}-channel images")
            num_planes = batch.shape[1]
            energy.update(to_frequency(batch))
        if num_planes is None:
            raise InputError("the reference images are empty; fit on at least one training image")
        selection = select_channels(energy.mean_square(), ratio, num_planes)
        obfuscation = derive_obfuscation(key, len(selection.kept))
        unnormalized = cls(selection, obfuscation, ChannelStats.identity(len(selection.kept)))
        masked = ChannelMoments()
        for batch in batches():
            masked.update(unnormalized.mask(batch))
        return cls(selection, obfuscation, stats_from_moments(masked))


def _batch_source(reference: ReferenceImages, batch_size: int) -> Callable[[], Iterable[torch.Tensor]]:
    if isinstance(reference, torch.Tensor):
        if batch_size < 1:
            raise InputError(f"batch_size is {batch_size}; it must be at least 1")
        return lambda: reference.split(batch_size)
    if callable(reference):
        return reference
    raise InputError(
        f"reference must be an image tensor or a function returning batches, got {type(reference).__name__}"
    )
