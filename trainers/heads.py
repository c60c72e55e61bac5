"""Additive margin heads (ArcFace, CosFace) and the mixed-label loss of frequency MixUp.

A head holds one prototype per identity. `margin_logits(embeddings, target)` returns the scaled cosine logits with
the margin applied to each sample's `target` column only, so one cosine matrix serves the k labels of a MixUp
sample: the mixed-label loss is sum_j w_j * CE(margin_logits(e, y_j), y_j).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from common.errors import InputError

DEFAULT_MARGINS = {"arcface": 0.5, "cosface": 0.35}


class MarginHead(nn.Module):
    """Normalised prototypes; subclasses define how the margin changes the target cosine."""

    def __init__(self, embedding_size: int, num_classes: int, scale: float, margin: float) -> None:
        super().__init__()
        if num_classes < 2:
            raise InputError(f"the training split has {num_classes} identity; a margin head needs at least 2")
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_size))
        nn.init.normal_(self.weight, std=0.01)
        self.scale = scale
        self.margin = margin

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(embeddings), F.normalize(self.weight)).clamp(-1.0, 1.0)

    def apply_margin(self, target_cosine: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def margin_logits(self, cosine: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scaled logits with the margin on column `target[i]` of row i."""
        target_cosine = cosine.gather(1, target[:, None])
        adjusted = cosine.scatter(1, target[:, None], self.apply_margin(target_cosine))
        return adjusted * self.scale


class ArcFaceHead(MarginHead):
    """cos(theta + m) on the target, falling back to a CosFace-style penalty where theta + m would pass pi."""

    def apply_margin(self, target_cosine: torch.Tensor) -> torch.Tensor:
        sine = torch.sqrt((1.0 - target_cosine.square()).clamp_min(1e-7))
        with_margin = target_cosine * math.cos(self.margin) - sine * math.sin(self.margin)
        threshold = math.cos(math.pi - self.margin)
        fallback = target_cosine - math.sin(math.pi - self.margin) * self.margin
        return torch.where(target_cosine > threshold, with_margin, fallback)


class CosFaceHead(MarginHead):
    """cos(theta) - m on the target."""

    def apply_margin(self, target_cosine: torch.Tensor) -> torch.Tensor:
        return target_cosine - self.margin


HEADS = {"arcface": ArcFaceHead, "cosface": CosFaceHead}


def build_head(name: str, embedding_size: int, num_classes: int, scale: float, margin: float | None) -> MarginHead:
    if name not in HEADS:
        raise InputError(f"unknown margin head {name!r}; choose one of {sorted(HEADS)}")
    return HEADS[name](embedding_size, num_classes, scale, DEFAULT_MARGINS[name] if margin is None else margin)


def mixed_label_loss(
    head: MarginHead, embeddings: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Mean over the batch of sum_j weights[:, j] * margin-CE(embeddings, labels[:, j]).

    labels and weights are (B, k); with k = 1 and weight 1 this is the plain margin loss.
    """
    if labels.shape != weights.shape or labels.ndim != 2 or labels.shape[0] != embeddings.shape[0]:
        raise ValueError(f"labels {tuple(labels.shape)} and weights {tuple(weights.shape)} must both be (batch, k)")
    cosine = head.cosine(embeddings)
    per_label = torch.stack(
        [
            F.cross_entropy(head.margin_logits(cosine, labels[:, j]), labels[:, j], reduction="none")
            for j in range(labels.shape[1])
        ],
        dim=1,
    )
    return (per_label * weights).sum(dim=1).mean()
