"""IResNet face backbones with two input stems: full-size pixels (the unprotected baseline) and frequency channels.

The frequency stem reads masked DCT channels at (H/8)x(W/8), so it starts where the pixel network is after three
down-samplings; its stages therefore down-sample less. Both end in the same embedding layer, so defences differ
only in what the network sees, not in its capacity after the stem.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from common.errors import InputError


@dataclass(frozen=True)
class BackbonePreset:
    blocks: tuple[int, int, int, int]
    width: int


PRESETS: dict[str, BackbonePreset] = {
    # Small presets train in minutes on two CPU cores (demo, tests); r18-r100 are the usual IResNet depths.
    "tiny": BackbonePreset(blocks=(1, 1, 1, 1), width=16),
    "small": BackbonePreset(blocks=(1, 2, 2, 1), width=32),
    "r18": BackbonePreset(blocks=(2, 2, 2, 2), width=64),
    "r34": BackbonePreset(blocks=(3, 4, 6, 3), width=64),
    "r50": BackbonePreset(blocks=(3, 4, 14, 3), width=64),
    "r100": BackbonePreset(blocks=(3, 13, 30, 3), width=64),
}

PIXEL_STAGE_STRIDES = (2, 2, 2, 2)
FREQUENCY_STAGE_STRIDES = (1, 2, 1, 2)
FREQUENCY_STEMS = ("grid", "unfold")
"""grid: the stages read the (H/8)x(W/8) block grid with frequency_strides. unfold: a learned per-block linear map
(a 1x1 convolution) from the K channels back to 8x8 values per plane, laid out as an HxW map (depth-to-space),
then the pixel network: the masking is a per-block linear map, so this stem can learn to undo its mixing on the
kept channels and read them as the pixel network reads images."""
BLOCK = 8


def check_frequency_options(stem: str, strides: tuple[int, ...]) -> None:
    if stem not in FREQUENCY_STEMS:
        raise InputError(f"model.frequency_stem {stem!r} is not one of {list(FREQUENCY_STEMS)}")
    if len(strides) != 4 or any(stride not in (1, 2) for stride in strides):
        raise InputError(
            f"model.frequency_strides {list(strides)} must be four stage strides of 1 or 2, e.g. [1, 2, 1, 2]"
        )


class IBasicBlock(nn.Module):
    """The IResNet residual block: BN-conv-BN-PReLU-conv-BN, with a projected shortcut when the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.PReLU(out_channels),
            nn.Conv2d(out_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class IResNet(nn.Module):
    """Stem, four residual stages, then BN-dropout-FC-BN to an embedding (the ArcFace "E" output layer)."""

    def __init__(
        self,
        in_channels: int,
        input_size: int,
        preset: BackbonePreset,
        stage_strides: tuple[int, ...],
        embedding_size: int,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        widths = [preset.width * factor for factor in (1, 2, 4, 8)]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0]), nn.PReLU(widths[0])
        )
        stages: list[nn.Module] = []
        channels = widths[0]
        for width, num_blocks, stride in zip(widths, preset.blocks, stage_strides):
            blocks = [IBasicBlock(channels, width, stride)]
            blocks += [IBasicBlock(width, width, 1) for _ in range(num_blocks - 1)]
            stages.append(nn.Sequential(*blocks))
            channels = width
        self.stages = nn.Sequential(*stages)
        final_size = input_size
        for stride in stage_strides:
            final_size = (final_size + stride - 1) // stride
        self.output = nn.Sequential(
            nn.BatchNorm2d(channels),
            nn.Dropout(dropout),
            nn.Flatten(),
            nn.Linear(channels * final_size * final_size, embedding_size),
            nn.BatchNorm1d(embedding_size),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.stages(self.stem(x)))


def build_backbone(
    input_kind: str,
    in_channels: int,
    input_size: int,
    preset: str,
    embedding_size: int,
    dropout: float = 0.0,
    frequency_strides: tuple[int, ...] = FREQUENCY_STAGE_STRIDES,
    frequency_stem: str = "grid",
) -> IResNet:
    """A backbone for `input_kind` "pixels" (images of input_size) or "frequency" (channels on an input_size grid);
    `frequency_strides` are the frequency network's stage strides (how coarsely it reads the 8x8-block grid)."""
    if preset not in PRESETS:
        raise InputError(f"unknown backbone preset {preset!r}; choose one of {sorted(PRESETS)}")
    if input_kind not in ("pixels", "frequency"):
        raise InputError(f"unknown input kind {input_kind!r}; expected 'pixels' or 'frequency'")
    if embedding_size < 2:
        raise InputError(f"embedding size {embedding_size} cannot work; use at least 2 (512 is the usual choice)")
    check_frequency_options(frequency_stem, frequency_strides)
    if input_kind == "frequency" and frequency_stem == "unfold":
        planes = -(-in_channels // (BLOCK * BLOCK))  # enough 8x8 planes to hold the K channels
        network = IResNet(planes, input_size * BLOCK, PRESETS[preset], PIXEL_STAGE_STRIDES, embedding_size, dropout)
        unfold = nn.Sequential(nn.Conv2d(in_channels, planes * BLOCK * BLOCK, 1, bias=False), nn.PixelShuffle(BLOCK))
        network.stem = nn.Sequential(unfold, *network.stem)
        return network
    strides = PIXEL_STAGE_STRIDES if input_kind == "pixels" else frequency_strides
    return IResNet(in_channels, input_size, PRESETS[preset], strides, embedding_size, dropout)
