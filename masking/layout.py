"""Per-sample views of batches in any dense memory layout (NCHW, channels_last, ...), without copies."""

from __future__ import annotations

import torch


def sample_rows(batch: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """A [B, D] view of a dense batch whatever its layout, and the dim order that maps it back.

    Dims after the batch dim are taken outermost-first by stride, so for a dense tensor (contiguous, or
    channels_last as decoded height x width x channels pixels are) the reshape is a view. Element-wise and
    per-sample work on the rows then runs at full speed, where the same op on a permuted 4-D tensor may not."""
    strides = batch.stride()
    order = [0, *sorted(range(1, batch.dim()), key=lambda dim: -strides[dim])]
    return batch.permute(order).reshape(batch.shape[0], -1), order


def restore_layout(rows: torch.Tensor, like: torch.Tensor, order: list[int]) -> torch.Tensor:
    """The inverse of `sample_rows`: [B, D] rows back to `like`'s shape, in `like`'s memory layout."""
    permuted = rows.view([like.shape[dim] for dim in order])
    return permuted.permute([order.index(dim) for dim in range(like.dim())])
