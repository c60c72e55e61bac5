"""White-box inversion moves each identity's latents towards the FR model's prototype for it, and answers with the mean
face of the restarts the model scores highest."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from common.errors import InputError
from evaluation.attacks.base import AttackBudgetConfig, AttackContext, AttackResult
from evaluation.attacks.whitebox import WhiteboxInversion
from evaluation.budgets import WhiteboxBudgetConfig, load_budgets
from evaluation.server_view import PublicDefenseConfig

SHAPE = (1, 16, 16)
LATENT = 8
IDENTITIES = 4


class LinearPrior:
    """A fixed linear generator and a discriminator that has no opinion: the search is steered by identity alone."""

    latent_size = LATENT

    def __init__(self) -> None:
        self.weights = torch.randn(LATENT, 16 * 16, generator=torch.Generator().manual_seed(1))

    def generate(self, latents: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(latents @ self.weights).view(-1, *SHAPE)

    def discriminator(self, images: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(images))


class MarginHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(IDENTITIES, 12, generator=torch.Generator().manual_seed(2)))
        self.scale = 30.0


class MirrorSymmetric(nn.Module):
    """Reads a face and its mirror image alike, as a face model roughly does (the search flips its faces)."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (images + images.flip(3)) / 2


class TinyFaceModel(nn.Module):
    """What the attack reads of the FR model: a backbone giving embeddings and the head's prototype rows. Coarse
    pooling makes it, like a face model, little moved by the search's shifts of a pixel or two."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.backbone = nn.Sequential(MirrorSymmetric(), nn.AvgPool2d(4), nn.Flatten(), nn.Linear(16, 12))
        self.head = MarginHead()


def cosine_to_prototype(model: TinyFaceModel, faces: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        embeddings = F.normalize(model.backbone(faces * 2 - 1), dim=1)
        prototypes = F.normalize(model.head.weight, dim=1)
    return (embeddings * prototypes[labels]).sum(dim=1)


def invert(model: TinyFaceModel, budget: WhiteboxBudgetConfig) -> AttackResult:
    ctx = AttackContext(
        public_images=torch.rand(4, *SHAPE),
        public_labels=torch.tensor([0, 0, 1, 1]),
        target_labels=torch.arange(IDENTITIES),
        image_shape=SHAPE,
        model=model,
        budget=AttackBudgetConfig(seed=0),
        extras={"defense": PublicDefenseConfig("none")},
    )
    attack = WhiteboxInversion(budget, work_size=16)
    attack.prior = LinearPrior()  # as fit() leaves it for a pixel defence, without training a GAN
    return attack.reconstruct(ctx)


def test_each_identity_gets_a_face_closer_to_its_prototype_than_any_random_start() -> None:
    model, prior = TinyFaceModel(), LinearPrior()
    labels = torch.arange(IDENTITIES)
    budget = WhiteboxBudgetConfig(inversion_steps=60, restarts=3, kept_restarts=1)
    result = invert(model, budget)

    # The attack's random starts: the same seeded draw it makes, one row per (identity, restart).
    starts = torch.randn(IDENTITIES * budget.restarts, LATENT, generator=torch.Generator().manual_seed(0))
    start_cosines = cosine_to_prototype(model, prior.generate(starts), labels.repeat_interleave(budget.restarts))
    best_start = start_cosines.view(IDENTITIES, budget.restarts).max(dim=1).values
    found = cosine_to_prototype(model, result.reconstructions, labels)
    assert result.reconstructions.shape == (IDENTITIES, *SHAPE)
    assert torch.equal(result.target_labels, labels)
    assert (found > best_start + 0.05).all(), (found, best_start)


def test_the_answer_is_the_mean_of_the_restarts_the_model_scores_highest() -> None:
    """The same seeded search answered with the best 1, 2 and 3 of its 3 restarts: the differences of those means give
    each restart's face back, and the model must score them in the order they were kept."""
    model, labels = TinyFaceModel(), torch.arange(IDENTITIES)
    means = [
        invert(model, WhiteboxBudgetConfig(inversion_steps=20, restarts=3, kept_restarts=kept)).reconstructions
        for kept in (1, 2, 3)
    ]
    first, second, third = means[0], 2 * means[1] - means[0], 3 * means[2] - 2 * means[1]
    cosines = [cosine_to_prototype(model, faces, labels) for faces in (first, second, third)]
    assert (cosines[0] >= cosines[1] - 1e-4).all() and (cosines[1] >= cosines[2] - 1e-4).all(), cosines
    assert not torch.allclose(first, third, atol=1e-3), "the restarts must end at different faces"


def test_keeping_more_restarts_than_are_searched_is_refused_with_the_budget() -> None:
    with pytest.raises(InputError, match=r"whitebox\.kept_restarts = 7 exceeds whitebox\.restarts = 6"):
        load_budgets("small", ["whitebox.kept_restarts=7"])
