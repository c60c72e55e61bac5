"""Black-box model inversion: an inversion network from the FR model's outputs (embeddings) back to faces.

The attacker only queries the model: inputs in, L2-normalised embeddings out, no gradients or weights. It
simulates the server view of its public faces (masked with the client's key when leaked, its own otherwise;
mixed like the defence), queries the model with them, and trains a decoder from each embedding to the dominant
original. The decoder is then applied to the embeddings of the private targets' server-held data.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from common.errors import InputError
from evaluation.attacks.base import AttackContext, AttackResult
from evaluation.attacks.knowledge import attacker_masker, augment, defense_of, device_of, server_inputs_to_model_input
from evaluation.attacks.networks import VectorDecoder, resize
from evaluation.attacks.training import optimize, seeded
from evaluation.budgets import BlackboxBudgetConfig
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

    def __init__(self, budget: BlackboxBudgetConfig | None = None, work_size: int = 32) -> None:
        self.budget = budget or BlackboxBudgetConfig()
        self.work_size = work_size
        self.decoder: VectorDecoder | None = None
        self.query: EmbeddingQuery | None = None

    def fit(self, ctx: AttackContext) -> None:
        if ctx.model is None:
            raise InputError("black-box inversion needs query access to the trained FR model (ctx.model)")
        defense, device = defense_of(ctx), device_of(ctx)
        masker = attacker_masker(ctx)
        mask = masker.mask if masker is not None else None
        self.query = query = EmbeddingQuery(ctx.model, device)
        generator = torch.Generator().manual_seed(ctx.budget.seed)
        images, labels = ctx.public_images.float(), ctx.public_labels

        def embeddings_and_faces() -> tuple[torch.Tensor, torch.Tensor]:
            rows = torch.randint(len(images), (self.budget.batch_size,), generator=generator)
            faces = augment(images[rows], generator)
            view = simulate_server_view(faces, labels[rows], defense, mask, generator)
            return query(server_inputs_to_model_input(view, defense)), resize(faces, self.work_size).to(device)

        embedding_size = embeddings_and_faces()[0].shape[1]
        self.decoder = decoder = seeded(
            ctx.budget.seed, lambda: VectorDecoder(embedding_size, images.shape[1], self.budget.width, self.work_size)
        ).to(device)

        def loss_of_batch() -> torch.Tensor:
            embeddings, faces = embeddings_and_faces()
            return F.l1_loss(decoder(embeddings), faces)

        optimize(decoder, loss_of_batch, self.budget.steps, self.budget.lr)

    def reconstruct(self, ctx: AttackContext) -> AttackResult:
        if self.decoder is None or self.query is None or ctx.target_masked is None:
            raise RuntimeError(
                "BlackboxInversion needs fit() first and the targets' server-held data (ctx.target_masked)"
            )
        defense = defense_of(ctx)
        with torch.no_grad():
            outputs = [
                self.decoder(self.query(server_inputs_to_model_input(chunk, defense))).cpu()
                for chunk in ctx.target_masked.split(64)
            ]
        images = resize(torch.cat(outputs), ctx.image_shape[-1]).clamp(0, 1)
        return AttackResult(images, ctx.target_labels.clone(), ctx.target_indices)
