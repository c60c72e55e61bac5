"""Key-free renderings of masked data, beside the server view, so that S1 and S2 count the most revealing one.

The server view (`server_view.server_renderings`) puts the mixed channels in the frequency slots as they come,
which shows little; a server can do better without the key. Denormalised, a masked grid position is A k with A
orthogonal, so its energy ||A k||^2 = ||k||^2 is the energy of the kept frequencies of that 8x8 block, whatever
the key: edges and texture show where a face has them. Two renderings use it, both fitted on the attacker's
public faces viewed as the defence views private ones (mixed like it, in the kept-frequency domain, where the
energies are the same as in the masked one):

    energy map       per block, a + b * sqrt(energy) fitted to that block's mean intensity, upsampled
    linear estimate  the best linear estimate of the whole face from every block's sqrt(energy) (ridge regression)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from evaluation.attacks.key_recovery import kept_frequencies
from evaluation.attacks.knowledge import public_stats
from evaluation.run_data import LabelledImages
from evaluation.server_view import PublicDefenseConfig, mix_rows
from masking.dct import BLOCK
from masking.obfuscation import denormalize

RIDGE = 1e-3  # relative to the mean feature energy
VIEWS_PER_PUBLIC_FACE = 4  # mixing draws per public face for the fit


def block_energy_features(channels: torch.Tensor) -> torch.Tensor:
    """[B, K, h, w] kept frequencies (or denormalised masked channels) -> [B, h, w] sqrt of each block's energy."""
    return channels.double().square().sum(dim=1).sqrt()


def key_free_renderings(
    masked_targets: torch.Tensor, defense: PublicDefenseConfig, public: LabelledImages, seed: int
) -> dict[str, torch.Tensor]:
    """{"energy map", "linear estimate"}: [M, C, H, W] in [0, 1] for the masked targets (module docstring)."""
    features = block_energy_features(denormalize(masked_targets.double(), public_stats(defense)))
    public_features, public_faces = _public_views(defense, public, seed)
    return {
        "energy map": _energy_map(features, public_features, public_faces),
        "linear estimate": _linear_estimate(features, public_features, public_faces),
    }


def _public_views(defense: PublicDefenseConfig, public: LabelledImages, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Block features of the public faces mixed as the defence mixes, and the dominant face of each view."""
    generator = torch.Generator().manual_seed(seed)
    frequencies = kept_frequencies(public.images, defense)
    features, faces = [], []
    for _ in range(VIEWS_PER_PUBLIC_FACE):
        ks = defense.draw_ks(len(frequencies), generator)
        mixed = mix_rows(frequencies, public.labels, ks, defense.concentration, generator)
        features.append(block_energy_features(mixed))
        faces.append(public.images.double())
    return torch.cat(features), torch.cat(faces)


def _energy_map(features: torch.Tensor, public_features: torch.Tensor, public_faces: torch.Tensor) -> torch.Tensor:
    """Per block and colour plane, least squares of the block's mean intensity on its sqrt(energy), upsampled."""
    block_means = F.avg_pool2d(public_faces, BLOCK)  # [P, C, h, w]
    x = public_features[:, None]  # [P, 1, h, w]
    x_centred, y_centred = x - x.mean(dim=0), block_means - block_means.mean(dim=0)
    slope = (x_centred * y_centred).sum(dim=0) / x_centred.square().sum(dim=0).clamp_min(1e-12)
    intercept = block_means.mean(dim=0) - slope * x.mean(dim=0)
    blocks = intercept + slope * features[:, None]
    size = (features.shape[1] * BLOCK, features.shape[2] * BLOCK)
    return F.interpolate(blocks, size=size, mode="bilinear", align_corners=False).clamp(0, 1).float()


def _linear_estimate(features: torch.Tensor, public_features: torch.Tensor, public_faces: torch.Tensor) -> torch.Tensor:
    """Ridge regression from all blocks' sqrt(energy) (and a constant) to every pixel, fitted on the public views."""
    design = torch.cat([public_features.flatten(1), torch.ones(len(public_features), 1, dtype=torch.float64)], dim=1)
    targets = public_faces.flatten(1)
    gram = design.T @ design
    ridge = RIDGE * gram.diagonal().mean() * torch.eye(len(gram), dtype=torch.float64)
    weights = torch.linalg.solve(gram + ridge, design.T @ targets)
    queries = torch.cat([features.flatten(1), torch.ones(len(features), 1, dtype=torch.float64)], dim=1)
    return (queries @ weights).reshape(len(features), *public_faces.shape[1:]).clamp(0, 1).float()
