"""Per-channel running moments over batches, for the energy ranking and the normalisation statistics.

Both are fitted on a whole training set that may not fit in memory, so they accumulate batch by batch, in
float64 (a float32 sum over millions of coefficients would lose the small channels' digits).
"""

from __future__ import annotations

import torch

from common.errors import InputError


class ChannelMoments:
    """Running count, sum and sum of squares per channel of [B, N, h, w] tensors."""

    def __init__(self) -> None:
        self.count = 0
        self._sums: tuple[torch.Tensor, torch.Tensor] | None = None  # of values and of their squares

    def update(self, x: torch.Tensor) -> ChannelMoments:
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            raise InputError(f"expected a [batch, channels, height, width] tensor, got {getattr(x, 'shape', type(x))}")
        if self._sums is not None and x.shape[1] != self._sums[0].numel():
            raise InputError(f"batch has {x.shape[1]} channels; earlier batches had {self._sums[0].numel()}")
        values = x.detach().to(torch.float64).transpose(0, 1).reshape(x.shape[1], -1)
        if not torch.isfinite(values).all():
            raise InputError("batch contains NaN or infinite values; check the images it came from")
        batch_sum, batch_squares = values.sum(dim=1).cpu(), values.square().sum(dim=1).cpu()
        if self._sums is None:
            self._sums = batch_sum, batch_squares
        else:
            self._sums[0].add_(batch_sum)
            self._sums[1].add_(batch_squares)
        self.count += values.shape[1]
        return self

    def _seen_sums(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._sums is None or self.count == 0:
            raise InputError("no values were seen; pass at least one non-empty batch of reference images")
        return self._sums

    def mean(self) -> torch.Tensor:
        return self._seen_sums()[0] / self.count

    def mean_square(self) -> torch.Tensor:
        return self._seen_sums()[1] / self.count

    def std(self) -> torch.Tensor:
        """Population standard deviation (never negative despite rounding)."""
        return (self.mean_square() - self.mean().square()).clamp_min(0.0).sqrt()
