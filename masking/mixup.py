"""MixUp of k samples within a batch: each sample becomes a convex combination of itself and k-1 partners.

Domain-agnostic: the same function mixes masked frequency channels (the defence) and pixel images (the
pixel-domain baseline), since both are tensors [B, ...] whose first dimension is the batch. The labels come back
as [B, k] with the matching weights [B, k], for the loss sum_j w_ij * loss(output_i, label_ij).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from common.errors import InputError
from masking.layout import restore_layout, sample_rows


@dataclass(frozen=True)
class MixUpBatch:
    mixed: torch.Tensor  # [B, ...], same shape and dtype as the input batch
    labels: torch.Tensor  # [B, k] long; column 0 is the sample's own label
    weights: torch.Tensor  # [B, k], each row on the simplex (non-negative, sums to 1)
    partners: torch.Tensor  # [B, k] long batch indices; column 0 is the sample itself


def _check_inputs(batch: torch.Tensor, labels: torch.Tensor, k: int, concentration: float) -> None:
    if not isinstance(batch, torch.Tensor) or batch.dim() < 1 or not batch.is_floating_point():
        raise InputError(f"batch must be a float tensor [batch, ...], got {getattr(batch, 'dtype', type(batch))}")
    size = batch.shape[0]
    if not isinstance(labels, torch.Tensor) or labels.shape != (size,) or labels.dtype != torch.long:
        raise InputError(f"labels must be a long tensor of shape ({size},), one label per sample")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= size:
        raise InputError(f"k is {k!r}; it must be an integer from 1 to the batch size {size} (use a larger batch)")
    if not (isinstance(concentration, (int, float)) and math.isfinite(concentration) and concentration > 0):
        raise InputError(f"concentration is {concentration!r}; the Dirichlet concentration must be a positive number")


def _draw_partners(size: int, k: int, generator: torch.Generator | None) -> torch.Tensor:
    """[size, k] indices: column 0 is i itself, the others k-1 distinct other samples, a uniformly random subset.

    Robert Floyd's sampling, vectorised over the batch: k-1 steps of O(size * k) each, where ranking random keys
    would cost O(size^2). Offsets 1..size-1 from i are drawn, so a sample is never its own partner. The subset is
    uniform; its order is not, which does not matter since the Dirichlet weights are exchangeable."""
    others = size - 1
    offsets = torch.empty(size, k - 1, dtype=torch.long)
    for step, top in enumerate(range(others - (k - 1), others)):
        draw = (torch.rand(size, generator=generator) * (top + 1)).long().clamp_max(top)
        taken = (offsets[:, :step] == draw[:, None]).any(dim=1)
        offsets[:, step] = torch.where(taken, torch.full_like(draw, top), draw)
    own = torch.arange(size)[:, None]
    return torch.cat([own, (own + offsets + 1) % size], dim=1)


def _draw_weights(size: int, k: int, concentration: float, generator: torch.Generator | None) -> torch.Tensor:
    """[size, k] Dirichlet(concentration * ones(k)) rows. torch's Gamma sampler takes no generator, so the
    global one is forked and seeded from `generator`: reproducible, and the caller's global state is untouched."""
    alpha = torch.full((size, k), float(concentration), dtype=torch.float64)
    if generator is None:
        return torch.distributions.Dirichlet(alpha).sample()
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.distributions.Dirichlet(alpha).sample()


def mixup(
    batch: torch.Tensor,
    labels: torch.Tensor,
    k: int,
    concentration: float = 1.0,
    generator: torch.Generator | None = None,
) -> MixUpBatch:
    """mixed[i] = sum_j weights[i, j] * batch[partners[i, j]], partners[i, 0] = i, weights[i] ~ Dirichlet.

    k = 1 returns the batch itself with weight 1. Randomness (partners and weights) is drawn on the CPU from
    `generator` (or the global generator) and moved to the batch's device. No NaN check: the batch comes from
    the masker, which has checked its input already.
    """
    _check_inputs(batch, labels, k, concentration)
    size = batch.shape[0]
    if k == 1:
        ones = torch.ones(size, 1, dtype=batch.dtype, device=batch.device)
        own = torch.arange(size, device=batch.device)[:, None]
        return MixUpBatch(mixed=batch, labels=labels[:, None], weights=ones, partners=own)
    partners = _draw_partners(size, k, generator).to(batch.device)
    weights = _draw_weights(size, k, concentration, generator).to(dtype=batch.dtype, device=batch.device)
    rows, order = sample_rows(batch)
    mixed = rows * weights[:, :1]
    for j in range(1, k):  # a loop over the k partners, not over samples: k-1 vectorised gathers
        mixed.addcmul_(rows.index_select(0, partners[:, j]), weights[:, j : j + 1])
    mixed_labels = labels[partners.to(labels.device)]
    return MixUpBatch(
        mixed=restore_layout(mixed, batch, order), labels=mixed_labels, weights=weights, partners=partners
    )
