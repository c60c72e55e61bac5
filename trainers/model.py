"""The trainable FR model (backbone + margin head) and how it is built from a config and the client's offer."""

from __future__ import annotations

import torch
from torch import nn

from trainers.backbones import build_backbone
from trainers.config import TrainConfig
from trainers.heads import MarginHead, build_head, mixed_label_loss
from trainers.window_source import ClientOffer


class FaceModel(nn.Module):
    """Backbone and head in one module, so DDP synchronises both and the loss is computed inside forward."""

    def __init__(self, backbone: nn.Module, head: MarginHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return mixed_label_loss(self.head, self.backbone(inputs), labels, weights)


def build_face_model(config: TrainConfig, info: ClientOffer) -> FaceModel:
    model = config.model
    backbone = build_backbone(
        info.input_kind,
        info.channels,
        info.size,
        model.backbone,
        model.embedding_size,
        model.dropout,
        tuple(model.frequency_strides),
        model.frequency_stem,
    )
    head = build_head(model.head, model.embedding_size, info.num_classes, model.scale, model.margin)
    return FaceModel(backbone, head)
