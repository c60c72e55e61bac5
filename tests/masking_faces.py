"""Images for the masking tests: smooth random images (energy in the low frequencies, like faces) and real ORL faces."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

FACE_SIZE = 112


def smooth_images(batch: int, channels: int, seed: int = 0, size: int = FACE_SIZE) -> torch.Tensor:
    """[batch, channels, size, size] in [0, 1]: coarse random shapes upsampled, plus a little fine noise."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, channels, size // 16, size // 16, generator=generator)
    smooth = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    noise = 0.03 * torch.randn(batch, channels, size, size, generator=generator)
    return (0.8 * smooth + 0.1 + noise).clamp(0.0, 1.0)


def orl_faces(orl_dir: Path, count: int) -> torch.Tensor:
    """The first image of the first `count` ORL people, gray, resized to 112x112, as [count, 1, 112, 112] in [0, 1]."""
    people = sorted(p for p in orl_dir.iterdir() if p.is_dir())[:count]
    faces = [cv2.resize(cv2.imread(str(p / "1.pgm"), cv2.IMREAD_GRAYSCALE), (FACE_SIZE, FACE_SIZE)) for p in people]
    return torch.from_numpy(np.stack(faces)).float().div(255.0)[:, None]
