"""The keyed shuffle-and-mix of the kept frequency channels, its inverse, and per-channel normalisation.

Shuffle-and-mix is a secret invertible linear map applied at every grid position: permute the K kept channels,
then multiply by a K x K orthogonal matrix (see `masking.keys.derive_obfuscation` for how both come from the
key). A first convolution layer absorbs any invertible channel map, so the FR network loses nothing; whoever
lacks the key sees channels that each blend every kept frequency. It is a secret linear map, not encryption:
a server that knows what faces look like can estimate it from the second-order statistics of many masked
samples, which is why the project measures recovery attacks instead of trusting the key alone.

Normalisation (per-channel mean and standard deviation fitted on the masked training data) is public and
stored with the model; it only puts every channel on the same scale for training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from common.errors import InputError
from masking.moments import ChannelMoments

STD_FLOOR = 1e-8
"""Channels whose spread is below this (constant on the training data) are divided by it instead of by ~0."""


@dataclass(frozen=True, eq=False, repr=False)
class KeyedObfuscation:
    """A secret channel permutation and orthogonal mixing matrix (float64) over `num_channels` channels.

    Made by `masking.keys.derive_obfuscation`. Its repr shows only the channel count and the key fingerprint,
    so it can be logged without giving the key or the matrix away.
    """

    permutation: torch.Tensor  # [K] long: shuffled[:, j] = x[:, permutation[j]]
    mixing: torch.Tensor  # [K, K] float64, orthogonal: mixed = mixing @ shuffled
    key_fingerprint: str

    def __post_init__(self) -> None:
        size = self.permutation.numel()
        if sorted(self.permutation.tolist()) != list(range(size)):
            raise InputError("permutation must hold every channel index exactly once")
        if self.mixing.shape != (size, size):
            raise InputError(f"mixing must be {size}x{size} for {size} channels, got {tuple(self.mixing.shape)}")

    @property
    def num_channels(self) -> int:
        return self.permutation.numel()

    def __repr__(self) -> str:
        return f"KeyedObfuscation(num_channels={self.num_channels}, key_fingerprint={self.key_fingerprint!r})"

    __str__ = __repr__


def _check_channels(x: torch.Tensor, num_channels: int, name: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != num_channels:
        raise InputError(f"{name} must be [batch, {num_channels}, height, width], got {getattr(x, 'shape', type(x))}")


def shuffle_and_mix(kept: torch.Tensor, obfuscation: KeyedObfuscation) -> torch.Tensor:
    """[B, K, h, w] kept channels in frequency order -> [B, K, h, w] permuted and mixed channels."""
    _check_channels(kept, obfuscation.num_channels, "kept channels")
    shuffled = kept[:, obfuscation.permutation.to(kept.device)]
    return torch.einsum("ij,bjhw->bihw", obfuscation.mixing.to(dtype=kept.dtype, device=kept.device), shuffled)


def unmix_and_unshuffle(mixed: torch.Tensor, obfuscation: KeyedObfuscation) -> torch.Tensor:
    """The inverse of `shuffle_and_mix` (the mixing matrix is orthogonal, so its inverse is its transpose)."""
    _check_channels(mixed, obfuscation.num_channels, "mixed channels")
    shuffled = torch.einsum("ji,bjhw->bihw", obfuscation.mixing.to(dtype=mixed.dtype, device=mixed.device), mixed)
    restored = torch.empty_like(shuffled)
    restored[:, obfuscation.permutation.to(mixed.device)] = shuffled
    return restored


@dataclass(frozen=True, eq=False)
class ChannelStats:
    """Per-channel mean and standard deviation of the masked training data (public, stored with the model)."""

    mean: torch.Tensor  # [K] float64
    std: torch.Tensor  # [K] float64, > 0

    def __post_init__(self) -> None:
        if self.mean.dim() != 1 or self.mean.shape != self.std.shape:
            raise InputError(
                f"mean and std must be 1-D of one length, got {tuple(self.mean.shape)} and {tuple(self.std.shape)}"
            )
        if not (torch.isfinite(self.mean).all() and torch.isfinite(self.std).all() and (self.std > 0).all()):
            raise InputError("channel statistics must be finite with positive standard deviations")

    @property
    def num_channels(self) -> int:
        return self.mean.numel()

    @classmethod
    def identity(cls, num_channels: int) -> ChannelStats:
        """Mean 0 and std 1: normalisation that changes nothing (before the statistics are fitted)."""
        return cls(torch.zeros(num_channels, dtype=torch.float64), torch.ones(num_channels, dtype=torch.float64))

    def to_settings(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_settings(cls, settings: dict) -> ChannelStats:
        try:
            return cls(
                torch.tensor(settings["mean"], dtype=torch.float64), torch.tensor(settings["std"], dtype=torch.float64)
            )
        except KeyError as missing:
            raise InputError(f"normalisation settings lack {missing}") from None


def stats_from_moments(moments: ChannelMoments) -> ChannelStats:
    return ChannelStats(moments.mean(), moments.std().clamp_min(STD_FLOOR))


def fit_channel_stats(x: torch.Tensor) -> ChannelStats:
    """Statistics of one [B, K, h, w] batch; for data that does not fit in memory, feed `ChannelMoments`."""
    return stats_from_moments(ChannelMoments().update(x))


def _broadcast_stats(x: torch.Tensor, stats: ChannelStats, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    _check_channels(x, stats.num_channels, name)
    return (
        stats.mean.to(dtype=x.dtype, device=x.device)[:, None, None],
        stats.std.to(dtype=x.dtype, device=x.device)[:, None, None],
    )


def normalize(x: torch.Tensor, stats: ChannelStats) -> torch.Tensor:
    mean, std = _broadcast_stats(x, stats, "channels to normalise")
    return (x - mean) / std


def denormalize(x: torch.Tensor, stats: ChannelStats) -> torch.Tensor:
    mean, std = _broadcast_stats(x, stats, "channels to denormalise")
    return x * std + mean
