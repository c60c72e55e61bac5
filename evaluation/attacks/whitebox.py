"""White-box model inversion with a generative prior (GMI / PLG-MI style, scaled down).

A DCGAN learnt on the public faces (`attacks.gan`) limits the search to face-like images. For each private
identity y, several random latents are optimised so that the trained FR model, fed the generated face through
the defence's input transform, scores identity y: the loss is minus the cosine of the face's embedding to y's
prototype (the head's weight row y), weighted, plus the discriminator's realism term. Revision 2 used the margin
head's cross-entropy over every prototype instead; it saturates once y's cosine leads the others, and the search
then stops moving towards y (maximising the target's logit itself is the fix of Nguyen et al., CVPR 2023); on three
ORL models the cosine named more people (docs/results/README.md). Random flips
and shifts before the model at every step keep the search from adversarial pixel patterns that only this model
reads as y. The answer is the mean face of the `kept_restarts` latents the model scores highest for y (cosine to its
prototype, without augmentation). Revision 3 answered with the single highest: each restart also fits details that
this model alone reads as y, and they differ between restarts, so the mean keeps what the restarts share. On five
ORL runs (four models, two GAN seeds) the mean of the top 3 of 6 named people at p-hat 0.397-0.441 where the single
best face ranged from 0.221 to 0.529 (docs/results/README.md).

Input transforms: pixel models read [-1, 1] images; masked models read the attacker's masker's output (the
client's masker with a leaked key, the attacker's own otherwise). The masker is one linear convolution, so
gradients pass through it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from common.errors import InputError
from evaluation.attacks.base import AttackContext, AttackResult
from evaluation.attacks.gan import GanCache, GanPrior, differentiable_augment
from evaluation.attacks.knowledge import attacker_masker, device_of, images_to_model_input
from evaluation.attacks.networks import resize
from evaluation.attacks.training import counted_steps
from evaluation.budgets import WhiteboxBudgetConfig
from masking.masker import FrequencyMasker
from trainers.model import FaceModel


class WhiteboxInversion:
    name = "whitebox"

    def __init__(
        self, budget: WhiteboxBudgetConfig | None = None, work_size: int = 32, cache: GanCache | None = None
    ) -> None:
        self.budget = budget or WhiteboxBudgetConfig()
        self.work_size = work_size
        self.cache = cache or GanCache()
        self.prior: GanPrior | None = None
        self.masker: FrequencyMasker | None = None

    def fit(self, ctx: AttackContext) -> None:
        if ctx.model is None:
            raise InputError("white-box inversion needs the trained FR model (ctx.model)")
        self.prior = self.cache.prior(ctx.public_images, self.budget, self.work_size, ctx.budget.seed, device_of(ctx))
        self.masker = attacker_masker(ctx)

    def reconstruct(self, ctx: AttackContext) -> AttackResult:
        if self.prior is None:
            raise RuntimeError("WhiteboxInversion.reconstruct called before fit")
        device = device_of(ctx)
        model = ctx.model.to(device).eval()
        model.requires_grad_(False)
        identities = ctx.target_labels.to(device)
        restarts = self.budget.restarts
        labels = identities.repeat_interleave(restarts)
        # Each latent row is pulled towards its own identity's prototype only (the head's weight row, unit length).
        targets = F.normalize(model.head.weight.detach(), dim=1)[labels]
        generator = torch.Generator().manual_seed(ctx.budget.seed)
        latents = torch.randn(len(labels), self.prior.latent_size, generator=generator).to(device).requires_grad_(True)
        optimizer = torch.optim.Adam([latents], lr=self.budget.inversion_lr)
        size = ctx.image_shape[-1]
        for _ in counted_steps(self.budget.inversion_steps, "inversion"):
            generated = self.prior.generate(latents)
            faces = differentiable_augment(resize(generated, size).clamp(0, 1), generator)
            identity_loss = -self.budget.identity_weight * self._cosines(model, faces, targets).mean()
            realism_loss = -self.prior.discriminator(generated).mean()
            loss = identity_loss + self.budget.prior_weight * realism_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            faces = resize(self.prior.generate(latents), size).clamp(0, 1)
            score = self._cosines(model, faces, targets).view(-1, restarts)
            kept = score.topk(self.budget.kept_restarts, dim=1).indices
            rows = kept + torch.arange(len(identities), device=device)[:, None] * restarts
            answers = faces[rows.flatten()].view(len(identities), -1, *faces.shape[1:]).mean(dim=1)
        return AttackResult(answers.cpu(), ctx.target_labels.clone(), None)

    def _cosines(self, model: FaceModel, faces: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Row i's cosine to targets[i] only: the search never needs the other identities' prototypes."""
        embeddings = model.backbone(images_to_model_input(faces, self.masker))
        return (F.normalize(embeddings, dim=1) * targets).sum(dim=1)
