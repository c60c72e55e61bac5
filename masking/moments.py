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
        self._sum: torch.Tensor | None = None
        self._sum_of_squares: torch.Tensor | None = None

    def update(self, x: torch.Tensor) -> ChannelMoments:
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            raise InputError(f"expected a [batch, channels, height, width] tensor, got {getattr(x, 'shape', type(x))}")
        if self._sum is not None and x.shape[1] != self._sum.numel():
            raise InputError(f"batch has {x.shape[1]} channels; earlier batches had {self._sum.numel()}")
        values = x.detach().to(torch.float64).transpose(0, 1).reshape(x.shape[1], -1)
        if not torch.isfinite(values).all():
            raise InputError("batch contains NaN or infinite values; check the images it came from")
        batch_sum, batch_squares = values.sum(dim=1).cpu(), values.square().sum(dim=1).cpu()
        if self._sum is None:
            self._sum, self._sum_of_squares = batch_sum, batch_squares
        else:
            self._sum += batch_sum
            self._sum_of_squares += batch_squares
        self.count += values.shape[1]
        return self

    def _require_data(self) -> None:
        if self.count == 0:
            raise InputError("no values were seen; pass at least one non-empty batch of reference images")

    def mean(self) -> torch.Tensor:
        self._require_data()
        return self._sum / self.count

    def mean_square(self) -> torch.Tensor:
        self._require_data()
        return self._sum_of_squares / self.count

    def std(self) -> torch.Tensor:
        """Population standard deviation (never negative despite rounding)."""
        return (self.mean_square() - self.mean().square()).clamp_min(0.0).sqrt()
