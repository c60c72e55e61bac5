"""PPFR-FD channel selection: drop the frequency channels that carry most of the image's energy.

What a person sees of a face lies in the DC and low frequencies, which hold nearly all the energy; what a face
recogniser needs survives in the rest. Channels are ranked by their energy (mean squared coefficient) on a
reference set of training images, and a *masking ratio* says which fraction of the channels is removed, highest
energy first. Every plane's DC channel is always removed, whatever the ratio.

Colour faces are ranked plane by plane (Y, Cb and Cr each lose the same share of their channels). Ranked all
together, the smooth chroma planes hold so little energy outside their lowest frequencies that every luma
channel would go first: on RGB photographs, one global ranking at ratio 0.5 keeps 0 luma channels and 96 chroma
ones, leaving a colour-noise residue and none of the face's structure. Per plane, ratio 0.5 keeps 32 of each.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from common.errors import InputError
from masking.dct import COEFFICIENTS_PER_PLANE
from masking.moments import ChannelMoments

DEFAULT_MASKING_RATIO = 0.5
"""Removes half of every plane's channels. Measured on all ORL and Extended Yale B faces at 112x112 gray
(`python -m benchmarks.masking_energy`, table in docs/masking.md): 99.94 % / 99.97 % of the image energy and
97.7 % / 99.3 % of the non-DC energy removed, while a linear probe on the masked Yale B faces still identifies
97.6 % (98.7 % on pixels); at 0.8 and 0.9 it falls to 93.6 % and 84.4 %. DC alone is ~96 % of the energy, so
every ratio clears PPFR-FD's 94 %: the choice rests on the non-DC energy and on accuracy."""


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
    def from_settings(cls, settings: dict) -> ChannelSelection:
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
            raise InputError(
                f"masking settings lack {missing}; they were not written by this version of hybridmask"
            ) from None


def check_ratio(ratio: float) -> float:
    ratio = float(ratio)
    if not 0.0 <= ratio < 1.0:
        raise InputError(f"masking ratio {ratio:g} is outside [0, 1); it is the fraction of channels removed")
    return ratio


def channels_to_drop(ratio: float) -> int:
    """How many of a plane's 64 channels a ratio removes (at least its DC); InputError when it leaves none."""
    ratio = check_ratio(ratio)
    num_dropped = max(round(ratio * COEFFICIENTS_PER_PLANE), 1)
    if num_dropped >= COEFFICIENTS_PER_PLANE:
        raise InputError(
            f"masking ratio {ratio:g} removes {num_dropped} of every plane's {COEFFICIENTS_PER_PLANE} channels and "
            "leaves none; use a lower ratio"
        )
    return num_dropped


def select_channels(energy: torch.Tensor, ratio: float, num_planes: int) -> ChannelSelection:
    """Remove round(ratio * 64) channels of every plane, highest energy first, DC always among them."""
    per_plane = channels_to_drop(ratio)
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
    by_plane = torch.argsort(ranking.reshape(num_planes, COEFFICIENTS_PER_PLANE), dim=1, descending=True, stable=True)
    offsets = torch.arange(num_planes)[:, None] * COEFFICIENTS_PER_PLANE
    dropped = (by_plane[:, :per_plane] + offsets).flatten()
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
