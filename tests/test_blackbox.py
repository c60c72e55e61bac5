"""Black-box inversion, by queries only: the prior's faces whose embeddings lie nearest the target's, over the whole
pool (every batch), then a latent search from them that answers with a face embedding closer still."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from common.errors import InputError
from evaluation.attacks.base import AttackBudgetConfig, AttackContext
from evaluation.attacks.blackbox import BlackboxInversion, _Kept
from evaluation.budgets import BlackboxBudgetConfig, load_budgets
from evaluation.server_view import PublicDefenseConfig

SHAPE = (1, 16, 16)
LATENT = 8


class RecordingPrior:
    """A fixed linear prior that remembers every face it generated, so a test can rank the whole pool itself."""

    latent_size = LATENT

    def __init__(self) -> None:
        self.weights = torch.randn(LATENT, 16 * 16, generator=torch.Generator().manual_seed(1))
        self.generated: list[torch.Tensor] = []

    def generate(self, latents: torch.Tensor) -> torch.Tensor:
        faces = torch.sigmoid(latents @ self.weights).view(-1, *SHAPE)
        self.generated.append(faces)
        return faces


class QueryOnlyModel:
    """The black-box attacker's handle: a fixed projection of the pixels standing in for the FR backbone."""

    def __init__(self) -> None:
        torch.manual_seed(2)
        self.backbone = nn.Sequential(nn.Flatten(), nn.Linear(16 * 16, 12))


def query_context(model: QueryOnlyModel, targets: torch.Tensor) -> AttackContext:
    return AttackContext(
        public_images=torch.rand(4, *SHAPE),
        public_labels=torch.tensor([0, 0, 1, 1]),
        target_labels=torch.arange(len(targets)) + 2,
        image_shape=SHAPE,
        target_indices=torch.arange(len(targets)),
        target_masked=targets,
        model=model,
        budget=AttackBudgetConfig(seed=0),
        extras={"defense": PublicDefenseConfig("none")},
    )


def embed(model: QueryOnlyModel, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return F.normalize(model.backbone(images * 2 - 1), dim=1)


def test_without_a_search_each_target_gets_the_mean_of_the_pools_nearest_faces_across_every_batch() -> None:
    model, prior = QueryOnlyModel(), RecordingPrior()
    targets = torch.rand(5, *SHAPE, generator=torch.Generator().manual_seed(3))
    ctx = query_context(model, targets)
    attack = BlackboxInversion(BlackboxBudgetConfig(pool=40, nearest=3, batch_size=16, search_steps=0), work_size=16)
    attack.prior = prior  # as fit() leaves it, without training a GAN
    result = attack.reconstruct(ctx)

    pool = torch.cat(prior.generated)
    assert len(pool) == 48, "the pool is drawn in whole batches"
    nearest = (embed(model, targets) @ embed(model, pool).T).topk(3, dim=1).indices
    assert torch.allclose(result.reconstructions, pool[nearest].mean(dim=1), atol=1e-6)
    assert result.reconstructions.shape == (5, *SHAPE)
    assert torch.equal(result.target_labels, ctx.target_labels)


def test_the_search_answers_with_faces_embedding_closer_than_the_pools_best() -> None:
    model, prior = QueryOnlyModel(), RecordingPrior()
    targets = torch.rand(6, *SHAPE, generator=torch.Generator().manual_seed(4))
    budget = BlackboxBudgetConfig(pool=32, nearest=1, batch_size=16, search_steps=6, search_candidates=4)
    attack = BlackboxInversion(budget, work_size=16)
    attack.prior = prior
    result = attack.reconstruct(query_context(model, targets))  # nearest = 1: the answer is the one searched face

    pool = torch.cat(prior.generated[:2])  # the pool's two batches; the search's batches come after
    assert len(prior.generated) == 2 + 6 * 2, "6 steps, each querying 4 tries of the 6 kept faces in 2 batches"
    assert all(len(batch) == 16 for batch in prior.generated), "every batch is whole: the generator normalises by it"
    pool_best = (embed(model, targets) @ embed(model, pool).T).max(dim=1).values
    answered = (embed(model, targets) * embed(model, result.reconstructions)).sum(dim=1)
    assert (answered >= pool_best - 1e-6).all(), "the search kept a face that embeds farther than where it started"
    assert (answered > pool_best + 1e-3).float().mean() >= 0.5, (answered, pool_best)
    searched = torch.cat(prior.generated[2:])
    assert all((searched - face).abs().amax(dim=(1, 2, 3)).min() < 1e-6 for face in result.reconstructions), (
        "each answer is a face the prior generated"
    )


def test_keeping_the_nearest_merges_kept_and_new_faces_by_score() -> None:
    kept = _Kept(torch.tensor([[0.9, 0.1]]), torch.tensor([[[1.0], [2.0]]]), torch.tensor([[[[[1.0]]], [[[2.0]]]]]))
    scores, latents = torch.tensor([[0.5, 0.95, 0.0]]), torch.tensor([[3.0], [4.0], [5.0]])
    merged = kept.merge(scores, latents, latents.view(3, 1, 1, 1), nearest=2)
    assert torch.allclose(merged.scores, torch.tensor([[0.95, 0.9]]))
    assert merged.faces.flatten().tolist() == [4.0, 1.0] and merged.latents.flatten().tolist() == [4.0, 1.0]


def test_averaging_more_faces_than_the_pool_holds_is_refused_with_the_budget() -> None:
    with pytest.raises(InputError, match=r"blackbox\.nearest = 16 exceeds blackbox\.pool = 8"):
        load_budgets("small", ["blackbox.pool=8", "blackbox.nearest=16"])


def test_a_start_tried_several_times_in_one_batch_keeps_its_best_try() -> None:
    kept = _Kept(torch.tensor([0.5, 0.5]), torch.zeros(2, 1), torch.zeros(2, 1, 1, 1))
    rows, scores = torch.tensor([0, 1, 0, 0]), torch.tensor([0.7, 0.4, 0.9, 0.6])
    tries = torch.arange(1.0, 5.0).view(4, 1)
    kept.improve(rows, scores, tries, tries.view(4, 1, 1, 1))
    assert kept.scores.tolist() == pytest.approx([0.9, 0.5]) and kept.latents.flatten().tolist() == [3.0, 0.0]
