"""Black-box model inversion: the public prior's faces whose embeddings lie nearest the target's.

The attacker only queries the model: inputs in, L2-normalised embeddings out, no gradients or weights. It draws a
pool of faces from the white-box attack's GAN prior (learnt from the public faces, and shared with it through
`GanCache`), simulates the server view of each (masked with the client's key when leaked, its own otherwise;
mixed like the defence, the pool face dominating its view) and queries their embeddings. Each target's server-held
data is queried too, and answered with the mean of the `nearest` pool faces whose views embed closest to it.

Revision 2 replaced a decoder trained from embeddings back to faces: on three ORL models the selection named
people at p-hat 0.35 on average, the decoder at 0.20 (docs/results/README.md). A decoder learnt on a few public
people answers every embedding with a blur of those people; the selection answers with whole prior faces.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from common.errors import InputError
from evaluation.attacks.base import AttackContext, AttackResult
from evaluation.attacks.gan import GanCache, GanPrior
from evaluation.attacks.knowledge import attacker_masker, defense_of, device_of, server_inputs_to_model_input
from evaluation.attacks.networks import resize
from evaluation.attacks.training import counted_steps
from evaluation.budgets import BlackboxBudgetConfig, WhiteboxBudgetConfig
from evaluation.server_view import simulate_server_view
from trainers.model import FaceModel


class EmbeddingQuery:
    """Query access to an FR model: the normalised embeddings of model inputs, computed without gradients."""

    def __init__(self, model: FaceModel, device: torch.device) -> None:
        self._backbone = model.backbone.to(device).eval()
        self._device = device

    @torch.no_grad()
    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        return F.normalize(self._backbone(inputs.to(self._device)).float(), dim=1)


class BlackboxInversion:
    name = "blackbox"

    def __init__(
        self,
        budget: BlackboxBudgetConfig | None = None,
        work_size: int = 32,
        cache: GanCache | None = None,
        prior_budget: WhiteboxBudgetConfig | None = None,
    ) -> None:
        self.budget = budget or BlackboxBudgetConfig()
        self.work_size = work_size
        self.cache = cache or GanCache()
        self.prior_budget = prior_budget or WhiteboxBudgetConfig()
        self.prior: GanPrior | None = None

    def fit(self, ctx: AttackContext) -> None:
        if ctx.model is None:
            raise InputError("black-box inversion needs query access to the trained FR model (ctx.model)")
        self.prior = self.cache.prior(
            ctx.public_images, self.prior_budget, self.work_size, ctx.budget.seed, device_of(ctx)
        )

    def reconstruct(self, ctx: AttackContext) -> AttackResult:
        if self.prior is None or ctx.model is None or ctx.target_masked is None:
            raise RuntimeError(
                "BlackboxInversion needs fit() first and the targets' server-held data (ctx.target_masked)"
            )
        defense, device = defense_of(ctx), device_of(ctx)
        masker = attacker_masker(ctx)
        mask = masker.mask if masker is not None else None
        query = EmbeddingQuery(ctx.model, device)
        targets = torch.cat(
            [query(server_inputs_to_model_input(chunk, defense)) for chunk in ctx.target_masked.split(64)]
        )
        generator = torch.Generator().manual_seed(ctx.budget.seed)
        size, nearest = ctx.image_shape[-1], self.budget.nearest
        best_scores = torch.empty(len(targets), 0, device=device)
        best_faces = torch.empty(len(targets), 0, *ctx.image_shape, device=device)
        count = self.budget.batch_size  # whole batches: the generator normalises by the batch, and mixing needs k rows
        for _ in counted_steps(-(-self.budget.pool // count), "prior pool"):
            with torch.no_grad():
                latents = torch.randn(count, self.prior.latent_size, generator=generator).to(device)
                faces = resize(self.prior.generate(latents), size).clamp(0, 1)
                views = simulate_server_view(faces.cpu(), torch.arange(count), defense, mask, generator)
                scores = targets @ query(server_inputs_to_model_input(views, defense)).T
            best_scores, best_faces = _keep_nearest(best_scores, best_faces, scores, faces, nearest)
        return AttackResult(best_faces.mean(dim=1).cpu(), ctx.target_labels.clone(), ctx.target_indices)


def _keep_nearest(
    best_scores: torch.Tensor, best_faces: torch.Tensor, scores: torch.Tensor, faces: torch.Tensor, nearest: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The `nearest` highest-scoring faces per target among those kept so far ([T, m], [T, m, C, H, W]) and a new
    batch (scores [T, B], faces [B, C, H, W]), gathered without copying the batch once per target."""
    kept = best_scores.shape[1]
    top = torch.cat([best_scores, scores], dim=1).topk(min(nearest, kept + scores.shape[1]), dim=1)
    new_faces = faces[(top.indices - kept).clamp(min=0)]
    if kept == 0:
        return top.values, new_faces
    old_faces = best_faces[torch.arange(len(scores))[:, None], top.indices.clamp(max=kept - 1)]
    from_old = (top.indices < kept)[:, :, None, None, None]
    return top.values, torch.where(from_old, old_faces, new_faces)
