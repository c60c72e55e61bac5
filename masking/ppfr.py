"""PPFR-FD channel selection: drop the frequency channels that carry most of the image's energy.

What a person sees of a face lies in the DC and low frequencies, which hold nearly all the energy; what a face
recogniser needs survives in the rest. Channels are ranked by their energy (mean squared coefficient) on a
reference set of training images, and a *masking ratio* says which fraction of all channels is removed, highest
energy first. Every plane's DC channel is always removed, whatever the ratio.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from masking.dct import COEFFICIENTS_PER_PLANE
from masking.errors import InputError
from masking.moments import ChannelMoments

DEFAULT_MASKING_RATIO = 0.5
"""Removes half of the channels. Measured on all faces at 112x112 grayscale (docs/masking.md): DC alone is already
~95 % of the image energy, so every ratio removes > 94 %; at 0.5 the removed share of the non-DC (AC) energy is
about 93 % on ORL and Yale B, while 0.8 and above leave only the faintest, noise-like frequencies to learn from."""


def channel_energy(freq: torch.Tensor) -> torch.Tensor:
    """[B, N, h, w] frequency channels of a reference batch -> [N] mean squared coefficient per channel (float64)."""
    return ChannelMoments().update(freq).mean_square()


def dc_channels(num_planes: int) -> tuple[int, ...]:
    """The DC channel of every plane (u = v = 0)."""
    return tuple(plane * COEFFICIENTS_PER_PLANE for plane in range(num_planes))


@dataclass(frozen=True)
class ChannelSelection:
    """Which frequency channels survive masking, and how much of the reference energy the others carried.

    Public: it is stored in the masked data's manifest and with the model. `energy_removed` is the dropped share
    of the total energy (DC included), the figure PPFR-FD reports; `ac_energy_removed` the dropped share of the
    energy outside the DC channels, which tells ratios apart (DC alone holds most of the total).
    """

    kept: tuple[int, ...]
    num_channels: int
    num_planes: int
    ratio: float
    energy_removed: float
    ac_energy_removed: float

    def __post_init__(self) -> None:
        if self.num_channels != self.num_planes * COEFFICIENTS_PER_PLANE:
            raise InputError(f"num_channels {self.num_channels} does not match num_planes {self.num_planes} (64 each)")
        if not self.kept or list(self.kept) != sorted(set(self.kept)):
            raise InputError("kept must be a non-empty, strictly ascending tuple of channel indices")
        if self.kept[0] < 0 or self.kept[-1] >= self.num_channels:
            raise InputError(f"kept holds channel indices outside [0, {self.num_channels})")
        if set(self.kept) & set(dc_channels(self.num_planes)):
            raise InputError("kept holds a DC channel; PPFR-FD always removes every plane's DC channel")

    @property
    def dropped(self) -> tuple[int, ...]:
        kept = set(self.kept)
        return tuple(index for index in range(self.num_channels) if index not in kept)

    def to_settings(self) -> dict:
        """JSON-ready public settings; `from_settings` reads them back."""
        return {
            "ratio": self.ratio,
            "num_planes": self.num_planes,
            "num_channels": self.num_channels,
            "num_kept": len(self.kept),
            "kept_channels": list(self.kept),
            "energy_removed": self.energy_removed,
            "ac_energy_removed": self.ac_energy_removed,
        }

    @classmethod
    def from_settings(cls, settings: dict) -> "ChannelSelection":
        try:
            return cls(
                kept=tuple(int(i) for i in settings["kept_channels"]),
                num_channels=int(settings["num_channels"]),
                num_planes=int(settings["num_planes"]),
                ratio=float(settings["ratio"]),
                energy_removed=float(settings["energy_removed"]),
                ac_energy_removed=float(settings["ac_energy_removed"]),
            )
        except KeyError as missing:
            raise InputError(f"masking settings lack {missing}; they were not written by this version of hybridmask")


def check_ratio(ratio: float) -> float:
    ratio = float(ratio)
    if not 0.0 <= ratio < 1.0:
        raise InputError(f"masking ratio {ratio:g} is outside [0, 1); it is the fraction of channels removed")
    return ratio


def channels_to_drop(ratio: float, num_planes: int) -> int:
    """How many channels a ratio removes from `num_planes` planes; InputError when it leaves none."""
    ratio = check_ratio(ratio)
    num_channels = num_planes * COEFFICIENTS_PER_PLANE
    num_dropped = max(round(ratio * num_channels), num_planes)
    if num_dropped >= num_channels:
        raise InputError(
            f"masking ratio {ratio:g} removes {num_dropped} of {num_channels} channels and leaves none; use a lower ratio"
        )
    return num_dropped


def select_channels(energy: torch.Tensor, ratio: float, num_planes: int) -> ChannelSelection:
    """Remove round(ratio * N) channels, highest energy first (at least every plane's DC channel)."""
    num_dropped = channels_to_drop(ratio, num_planes)
    energy = torch.as_tensor(energy, dtype=torch.float64).flatten().cpu()
    num_channels = num_planes * COEFFICIENTS_PER_PLANE
    if energy.numel() != num_channels:
        raise InputError(f"energy has {energy.numel()} channels; {num_planes} plane(s) have {num_channels}")
    if not torch.isfinite(energy).all() or (energy < 0).any():
        raise InputError("energy must be finite and non-negative (mean squared coefficients)")
    total = float(energy.sum())
    dc = list(dc_channels(num_planes))
    dc_energy = float(energy[dc].sum())
    if total <= 0.0:
        raise InputError("the reference images carry no energy (all black?); fit on real training images")
    ranking = energy.clone()
    ranking[dc] = float("inf")  # DC first, whatever its energy
    dropped = torch.argsort(ranking, descending=True, stable=True)[:num_dropped]
    kept = sorted(set(range(num_channels)) - set(dropped.tolist()))
    dropped_energy = float(energy[dropped].sum())
    return ChannelSelection(
        kept=tuple(kept),
        num_channels=num_channels,
        num_planes=num_planes,
        ratio=float(ratio),
        energy_removed=dropped_energy / total,
        ac_energy_removed=(dropped_energy - dc_energy) / (total - dc_energy) if total > dc_energy else 0.0,
    )
