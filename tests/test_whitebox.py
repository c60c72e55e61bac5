"""White-box inversion moves each identity's latents towards the FR model's prototype for it and answers with a face
the model scores closer to that prototype than any of the random starts."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from evaluation.attacks.base import AttackBudgetConfig, AttackContext
from evaluation.attacks.whitebox import WhiteboxInversion
from evaluation.budgets import WhiteboxBudgetConfig
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


def test_each_identity_gets_a_face_closer_to_its_prototype_than_any_random_start() -> None:
    model, prior = TinyFaceModel(), LinearPrior()
    labels = torch.arange(IDENTITIES)
    budget = WhiteboxBudgetConfig(inversion_steps=60, restarts=3)
    ctx = AttackContext(
        public_images=torch.rand(4, *SHAPE),
        public_labels=torch.tensor([0, 0, 1, 1]),
        target_labels=labels,
        image_shape=SHAPE,
        model=model,
        budget=AttackBudgetConfig(seed=0),
        extras={"defense": PublicDefenseConfig("none")},
    )
    attack = WhiteboxInversion(budget, work_size=16)
    attack.prior = prior  # as fit() leaves it for a pixel defence, without training a GAN
    result = attack.reconstruct(ctx)

    # The attack's random starts: the same seeded draw it makes, one row per (identity, restart).
    starts = torch.randn(IDENTITIES * budget.restarts, LATENT, generator=torch.Generator().manual_seed(0))
    start_cosines = cosine_to_prototype(model, prior.generate(starts), labels.repeat_interleave(budget.restarts))
    best_start = start_cosines.view(IDENTITIES, budget.restarts).max(dim=1).values
    found = cosine_to_prototype(model, result.reconstructions, labels)
    assert result.reconstructions.shape == (IDENTITIES, *SHAPE)
    assert torch.equal(result.target_labels, labels)
    assert (found > best_start + 0.05).all(), (found, best_start)
