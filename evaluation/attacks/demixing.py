"""De-mixing: undo the MixUp by solving for each private identity's mean representation over every sample sent
(Carlini et al., "Is Private Learning Possible with Instance Encoding?", 2021), then decode it into a face.

The server holds, for every sample, the mixture M_i and, for the loss, the identity label and MixUp weight of each
face in it (not which face). Let Y [N, people] hold each sample's total weight per identity; each face appears in
many samples, so least squares P = argmin ||Y P - M||^2 (streamed normal equations, a small ridge for identities
seen rarely or never) gives row p ~ person p's mean representation, the mixing averaged out. Under `none` and
`ppfr_fd` (k = 1, weight 1) it is each person's mean of what was sent.

Pixel defences: P is already an image. Masked defences: P is decoded by the recovery attack's U-Net, trained on
the unmixed (k = 1) view of the same defence, since P is de-mixed. A mean is not a single face: the attack recovers
what identifies a person, blurred over their photos, not any one photo.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import torch

from common.errors import InputError
from evaluation.attacks.base import AttackContext, AttackResult
from evaluation.attacks.knowledge import defense_of
from evaluation.attacks.recovery import RecoveryAttack
from evaluation.budgets import RecoveryBudgetConfig
from evaluation.server_view import HeldBatch, HeldSamples, PublicDefenseConfig

RIDGE = 1e-3  # times the mean diagonal of Y^T Y: negligible for a person seen in many samples, keeps Y^T Y invertible


def identity_weights(labels: torch.Tensor, weights: torch.Tensor, people: int) -> torch.Tensor:
    """Y [b, people] float64: each sample's total MixUp weight per identity label (two faces of one person add)."""
    return torch.zeros(len(labels), people, dtype=torch.float64).scatter_add_(1, labels, weights.double())


def demix(samples: Iterable[HeldBatch], people: int, ridge: float = RIDGE) -> torch.Tensor:
    """P [people, ...] float32, the ridge least-squares solution of Y P = M over every sample (module docstring)."""
    gram = torch.zeros(people, people, dtype=torch.float64)
    moments: torch.Tensor | None = None
    shape: tuple[int, ...] = ()
    for batch in samples:
        y = identity_weights(batch.labels, batch.weights, people)
        flat = y.T @ batch.inputs.double().flatten(1)
        gram += y.T @ y
        moments = flat if moments is None else moments + flat
        shape = tuple(batch.inputs.shape[1:])
    if moments is None:
        raise InputError("de-mixing needs at least one sample the client sent; none were given")
    regularised = gram + ridge * gram.diagonal().mean().clamp_min(1e-12) * torch.eye(people, dtype=torch.float64)
    return torch.linalg.solve(regularised, moments).reshape(people, *shape).float()


class DemixingAttack:
    """Reads ctx.extras["held_samples"] (a `HeldSamples`); reconstructs one face per target identity."""

    name = "demixing"

    def __init__(self, budget: RecoveryBudgetConfig | None = None, work_size: int = 32) -> None:
        self.budget = budget or RecoveryBudgetConfig()
        self.recovery = RecoveryAttack(self.budget, work_size)
        self.means: torch.Tensor | None = None

    def fit(self, ctx: AttackContext) -> None:
        held = ctx.extras.get("held_samples")
        if not isinstance(held, HeldSamples):
            raise InputError(
                "de-mixing needs extras['held_samples'] (every sample sent); build its context with evaluation.run_attacks"
            )
        self.means = demix(held, held.people)
        if defense_of(ctx).masked:
            self.recovery.fit(_unmixed(ctx))

    def reconstruct(self, ctx: AttackContext) -> AttackResult:
        if self.means is None:
            raise RuntimeError("DemixingAttack.reconstruct called before fit")
        rows = self.means[ctx.target_labels]
        if defense_of(ctx).masked:
            images = self.recovery.reconstruct(dataclasses.replace(_unmixed(ctx), target_masked=rows)).reconstructions
        else:
            images = rows.clamp(0, 1)
        return AttackResult(images, ctx.target_labels.clone(), None)


def _unmixed(ctx: AttackContext) -> AttackContext:
    """The context with the defence viewed unmixed: the decoder learns single masked faces, as the de-mixed rows
    are. That view is `ppfr_fd`'s with the same masking, so the recovery's decoder for it is reused when one was
    trained in this process (`recovery.py`)."""
    defense = PublicDefenseConfig("ppfr_fd", masking=defense_of(ctx).masking)
    return dataclasses.replace(ctx, extras={**ctx.extras, "defense": defense})
