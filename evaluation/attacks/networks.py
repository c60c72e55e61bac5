"""The attacks' networks: a U-Net (recovery), an up-sampling decoder from a vector (the GAN generator) and a DCGAN
discriminator. Small by default; widths come from the budgets."""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.LeakyReLU(0.2, inplace=True),
    )


class GridToImageStem(nn.Module):
    """Features on the coarse block grid -> feature maps of `out_size`, by 2x pixel shuffles (and a final resize
    when out_size is not the grid side times a power of two)."""

    def __init__(self, in_channels: int, width: int, grid_size: int, out_size: int) -> None:
        super().__init__()
        self.out_size = out_size
        stages = max(1, round(math.log2(out_size / grid_size)))
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width * 4, 3, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        for stage in range(stages):
            out = (
                width * 4 if stage < stages - 1 else width
            )  # 4x channels feed the next shuffle; the last ends at width
            layers += [nn.PixelShuffle(2), nn.Conv2d(width, out, 3, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        self.layers = nn.Sequential(*layers)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        return resize(self.layers(grid), self.out_size)


class ImageToGridStem(nn.Module):
    """Images of in_size -> feature maps of out_size <= in_size without averaging detail away: resized to the
    nearest multiple of out_size, then space-to-depth (pixel unshuffle) and a convolution."""

    def __init__(self, in_channels: int, width: int, in_size: int, out_size: int) -> None:
        super().__init__()
        self.factor = max(1, in_size // out_size)
        self.out_size = out_size
        self.conv = nn.Conv2d(in_channels * self.factor**2, width, 3, padding=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pixel_unshuffle(resize(images, self.out_size * self.factor), self.factor))


class UNet(nn.Module):
    """Three down-sampling stages with skip connections; output [B, out_channels, out_size, out_size] in [0, 1].

    An input smaller than out_size lies on the block grid (frequency channels, key-free features) and is
    brought up to out_size by a `GridToImageStem`; a larger one is an image, folded down by an `ImageToGridStem`.
    """

    def __init__(self, in_channels: int, out_channels: int, width: int, in_size: int, out_size: int) -> None:
        super().__init__()
        self.stem: nn.Module = (
            GridToImageStem(in_channels, width, in_size, out_size)
            if in_size < out_size
            else ImageToGridStem(in_channels, width, in_size, out_size)
        )
        widths = (width, width * 2, width * 4, width * 8)
        self.down = nn.ModuleList(_conv_block(a, b) for a, b in zip((width, *widths[:-1]), widths))
        self.up = nn.ModuleList(nn.ConvTranspose2d(b, a, 2, stride=2) for a, b in itertools.pairwise(widths))
        self.merge = nn.ModuleList(_conv_block(2 * a, a) for a in widths[:-1])
        self.out = nn.Conv2d(width, out_channels, 1)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = self.stem(inputs)
        skips = []
        for index, block in enumerate(self.down):
            x = block(x if index == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for up, merge, skip in zip(reversed(self.up), reversed(self.merge), reversed(skips[:-1])):
            x = up(x)
            x = merge(torch.cat([_match(x, skip), skip], dim=1))
        return torch.sigmoid(self.out(x))


def _match(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Resize x to like's spatial size (odd sizes lose a row in pooling)."""
    return (
        x
        if x.shape[2:] == like.shape[2:]
        else F.interpolate(x, size=like.shape[2:], mode="bilinear", align_corners=False)
    )


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Square images (or feature maps) to size x size: area averaging down, bilinear up, unchanged if equal."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    if images.shape[-1] > size:
        return F.interpolate(images, size=(size, size), mode="area")
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)


class VectorDecoder(nn.Module):
    """A vector -> an image [B, C, size, size] in [0, 1] (size a multiple of 16): a linear layer to a size/16
    square map, then four 2x transposed-convolution stages (DCGAN's generator)."""

    def __init__(self, in_features: int, out_channels: int, width: int, size: int) -> None:
        super().__init__()
        self.base_size, self.top = size // 16, width * 8
        self.project = nn.Sequential(nn.Linear(in_features, self.top * self.base_size**2), nn.ReLU(inplace=True))
        layers: list[nn.Module] = [nn.BatchNorm2d(self.top)]
        channels = self.top
        for factor in (4, 2, 1):
            layers += [
                nn.ConvTranspose2d(channels, width * factor, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(width * factor),
                nn.ReLU(inplace=True),
            ]
            channels = width * factor
        layers += [nn.ConvTranspose2d(channels, out_channels, 4, stride=2, padding=1)]
        self.layers = nn.Sequential(*layers)

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        x = self.project(vectors).view(len(vectors), self.top, self.base_size, self.base_size)
        return torch.sigmoid(self.layers(x))


class Discriminator(nn.Module):
    """DCGAN discriminator with spectral normalisation (stable on small data sets); one realism score per image."""

    def __init__(self, in_channels: int, width: int, size: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for factor in (1, 2, 4, 8):
            layers += [
                spectral_norm(nn.Conv2d(channels, width * factor, 4, stride=2, padding=1)),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            channels = width * factor
        self.features = nn.Sequential(*layers)
        self.score = spectral_norm(nn.Linear(channels * (size // 16) ** 2, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.score(self.features(images * 2.0 - 1.0).flatten(1)).squeeze(1)
