"""Black-box model inversion: faces of the public prior searched, by queries alone, to embed like the target.

The attacker only queries the model: inputs in, L2-normalised embeddings out, no gradients or weights. It draws a
pool of faces from the white-box attack's GAN prior (learnt from the public faces, and shared with it through
`GanCache`), simulates the server view of each (masked with the client's key when leaked, its own otherwise;
mixed like the defence, the pool face dominating its view) and queries their embeddings. Each target's server-held
data is queried too. The `nearest` pool faces whose views embed closest to it each start a query-only search in
the prior's latent space (a greedy evolution strategy), and the mean of the faces the searches end at answers.

Revision 3 added the search: on three ORL models it named people at p-hat 0.40, 0.44 and 0.44 where revision 2
(the mean of the nearest pool faces, still given by `search_steps=0`) had 0.31, 0.31 and 0.38 (docs/results). Revision
2 replaced a decoder trained from embeddings back to faces, which answered every embedding with a blur of the few
public people.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from common.errors import InputError
from evaluation.attacks.base import AttackContext, AttackResult
from evaluation.attacks.gan import GanCache, GanPrior
from evaluation.attacks.knowledge import attacker_masker, defense_of, device_of, server_inputs_to_model_input
from evaluation.attacks.networks import resize
from evaluation.attacks.training import counted_steps
from evaluation.budgets import BlackboxBudgetConfig, WhiteboxBudgetConfig
from evaluation.server_view import PublicDefenseConfig, simulate_server_view
from trainers.model import FaceModel

SEARCH_SIGMA = 0.5  # the search's first step, in units of the prior's standard normal latents


class EmbeddingQuery:
    """Query access to an FR model: the normalised embeddings of model inputs, computed without gradients."""

    def __init__(self, model: FaceModel, device: torch.device) -> None:
        self._backbone = model.backbone.to(device).eval()
        self.device = device

    @torch.no_grad()
    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        return F.normalize(self._backbone(inputs.to(self.device)).float(), dim=1)


@dataclass(frozen=True)
class _Kept:
    """Per target, the faces kept so far: scores [T, m] (cosine of their views' embeddings to the target's),
    latents [T, m, L] and faces [T, m, C, H, W]."""

    scores: torch.Tensor
    latents: torch.Tensor
    faces: torch.Tensor

    def merge(self, scores: torch.Tensor, latents: torch.Tensor, faces: torch.Tensor, nearest: int) -> _Kept:
        """The `nearest` highest-scoring among those kept and a new batch (scores [T, B], latents [B, L], faces
        [B, C, H, W]), gathered without copying the batch once per target."""
        kept = self.scores.shape[1]
        top = torch.cat([self.scores, scores], dim=1).topk(min(nearest, kept + scores.shape[1]), dim=1)
        if kept == 0:
            return _Kept(top.values, latents[top.indices.cpu()], faces[top.indices])
        from_old = top.indices < kept
        new = (top.indices - kept).clamp(min=0)
        old = top.indices.clamp(max=kept - 1)
        rows = torch.arange(len(scores))[:, None]
        return _Kept(
            top.values,
            torch.where(from_old.cpu()[..., None], self.latents[rows, old.cpu()], latents[new.cpu()]),
            torch.where(from_old[..., None, None, None], self.faces[rows, old], faces[new]),
        )

    def flattened(self) -> _Kept:
        """The same faces as one row each ([T * m], [T * m, L], [T * m, C, H, W]), target-major."""
        return _Kept(self.scores.flatten(), self.latents.flatten(0, 1), self.faces.flatten(0, 1))

    def improve(self, rows: torch.Tensor, scores: torch.Tensor, latents: torch.Tensor, faces: torch.Tensor) -> None:
        """In place: rows (of a flattened _Kept) whose candidate (scores [R], latents [R, L], faces [R, C, H, W])
        scores higher take it. A row named several times (tries of one start in one batch) takes its best."""
        order = scores.argsort(descending=True).cpu()
        unique, slot = torch.unique(rows[order], return_inverse=True)
        first = torch.full((len(unique),), len(order)).scatter_reduce(0, slot, torch.arange(len(order)), "amin")
        best = order[first]
        rows, scores, latents, faces = rows[best], scores[best], latents[best], faces[best]
        better = scores > self.scores[rows]
        taken = rows[better.cpu()]
        self.scores[taken] = scores[better]
        self.latents[taken] = latents[better.cpu()]
        self.faces[taken] = faces[better]


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
        query = EmbeddingQuery(ctx.model, device)
        targets = torch.cat(
            [query(server_inputs_to_model_input(chunk, defense)) for chunk in ctx.target_masked.split(64)]
        )
        generator = torch.Generator().manual_seed(ctx.budget.seed)
        queried = _PriorQueries(
            self.prior, query, defense, masker.mask if masker is not None else None, ctx.image_shape, generator
        )
        kept = self._pool(queried, targets, device)
        if self.budget.search_steps:
            kept = self._search(queried, targets, kept)
        return AttackResult(kept.faces.mean(dim=1).cpu(), ctx.target_labels.clone(), ctx.target_indices)

    def _pool(self, queried: _PriorQueries, targets: torch.Tensor, device: torch.device) -> _Kept:
        """The `nearest` pool faces per target whose views embed closest to it, with their latents and scores."""
        count, latent_size = self.budget.batch_size, queried.prior.latent_size
        kept = _Kept(
            torch.empty(len(targets), 0, device=device),
            torch.empty(len(targets), 0, latent_size),
            torch.empty(len(targets), 0, *queried.face_shape, device=device),
        )
        # whole batches: the generator normalises by the batch, and mixing needs k rows
        for _ in counted_steps(-(-self.budget.pool // count), "prior pool"):
            latents = torch.randn(count, latent_size, generator=queried.generator)
            faces, embeddings = queried(latents)
            kept = kept.merge(targets @ embeddings.T, latents, faces, self.budget.nearest)
        return kept

    def _search(self, queried: _PriorQueries, targets: torch.Tensor, kept: _Kept) -> _Kept:
        """Query-only latent search, a greedy evolution strategy: each step perturbs every kept latent
        `search_candidates` ways and keeps a perturbation whose view embeds closer to the target; the step shrinks
        from SEARCH_SIGMA to a fifth. The tries are queried in batches of different starts, as the pool was: the
        generator normalises by the batch, and a batch of near-copies of a few latents gives other faces."""
        per_target = kept.latents.shape[1]
        flat = kept.flattened()
        target_of_row = targets.repeat_interleave(per_target, dim=0)
        tries = self.budget.search_candidates
        # try-major: consecutive rows (and so each batch) hold different starts
        batches = torch.arange(len(flat.scores) * tries).split(self.budget.batch_size)
        for step in counted_steps(self.budget.search_steps, "query search"):
            sigma = SEARCH_SIGMA * (1.0 - 0.8 * step / self.budget.search_steps)
            noise = torch.randn(tries * len(flat.scores), flat.latents.shape[1], generator=queried.generator)
            candidates = flat.latents.repeat(tries, 1) + sigma * noise
            for batch in batches:
                faces, embeddings = queried(candidates[batch], pad_to=self.budget.batch_size)
                rows = batch % len(flat.scores)
                flat.improve(rows, (embeddings * target_of_row[rows]).sum(dim=1), candidates[batch], faces)
        return _Kept(
            flat.scores.view(len(targets), per_target),
            flat.latents.view(len(targets), per_target, -1),
            flat.faces.view(len(targets), per_target, *flat.faces.shape[1:]),
        )


class _PriorQueries:
    """Faces of the prior for latents, and the model's embeddings of their simulated server views."""

    def __init__(
        self,
        prior: GanPrior,
        query: EmbeddingQuery,
        defense: PublicDefenseConfig,
        mask: Callable[[torch.Tensor], torch.Tensor] | None,
        face_shape: tuple[int, ...],
        generator: torch.Generator,
    ) -> None:
        self.prior, self.query, self.defense, self.mask = prior, query, defense, mask
        self.face_shape, self.generator = face_shape, generator

    @torch.no_grad()
    def __call__(self, latents: torch.Tensor, pad_to: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows past `latents` (fresh random latents up to `pad_to`) fill the batch the generator normalises by and
        are dropped."""
        rows = len(latents)
        if rows < pad_to:
            latents = torch.cat([latents, torch.randn(pad_to - rows, latents.shape[1], generator=self.generator)])
        device = self.query.device
        faces = resize(self.prior.generate(latents.to(device)), self.face_shape[-1]).clamp(0, 1)
        views = simulate_server_view(faces.cpu(), torch.arange(len(faces)), self.defense, self.mask, self.generator)
        embeddings = self.query(server_inputs_to_model_input(views, self.defense))
        return faces[:rows], embeddings[:rows]
