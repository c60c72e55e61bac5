"""Black-box inversion answers each target with the mean of the prior's faces whose embeddings lie nearest the
target's, over the whole pool (every batch), using queries only."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from common.errors import InputError
from evaluation.attacks.base import AttackBudgetConfig, AttackContext
from evaluation.attacks.blackbox import BlackboxInversion, _keep_nearest
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


def test_each_target_gets_the_mean_of_the_pools_nearest_faces_across_every_batch() -> None:
    model, prior = QueryOnlyModel(), RecordingPrior()
    targets = torch.rand(5, *SHAPE, generator=torch.Generator().manual_seed(3))
    ctx = AttackContext(
        public_images=torch.rand(4, *SHAPE),
        public_labels=torch.tensor([0, 0, 1, 1]),
        target_labels=torch.tensor([2, 3, 4, 5, 6]),
        image_shape=SHAPE,
        target_indices=torch.arange(5),
        target_masked=targets,
        model=model,
        budget=AttackBudgetConfig(seed=0),
        extras={"defense": PublicDefenseConfig("none")},
    )
    attack = BlackboxInversion(BlackboxBudgetConfig(pool=40, nearest=3, batch_size=16), work_size=16)
    attack.prior = prior  # as fit() leaves it, without training a GAN
    result = attack.reconstruct(ctx)

    pool = torch.cat(prior.generated)
    assert len(pool) == 48, "the pool is drawn in whole batches"

    def embed(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return F.normalize(model.backbone(images * 2 - 1), dim=1)

    nearest = (embed(targets) @ embed(pool).T).topk(3, dim=1).indices
    assert torch.allclose(result.reconstructions, pool[nearest].mean(dim=1), atol=1e-6)
    assert result.reconstructions.shape == (5, *SHAPE)
    assert torch.equal(result.target_labels, ctx.target_labels)


def test_keeping_the_nearest_merges_kept_and_new_faces_by_score() -> None:
    kept_scores, kept_faces = torch.tensor([[0.9, 0.1]]), torch.tensor([[[[[1.0]]], [[[2.0]]]]])
    scores, faces = torch.tensor([[0.5, 0.95, 0.0]]), torch.tensor([[[[3.0]]], [[[4.0]]], [[[5.0]]]])
    best_scores, best_faces = _keep_nearest(kept_scores, kept_faces, scores, faces, nearest=2)
    assert torch.allclose(best_scores, torch.tensor([[0.95, 0.9]]))
    assert best_faces.flatten().tolist() == [4.0, 1.0]


def test_averaging_more_faces_than_the_pool_holds_is_refused_with_the_budget() -> None:
    with pytest.raises(InputError, match=r"blackbox\.nearest = 16 exceeds blackbox\.pool = 8"):
        load_budgets("small", ["blackbox.pool=8", "blackbox.nearest=16"])
