"""What an attacker makes of what it knows: its masker, the model's inputs, and key-free readings of masked data.

Key settings (see `evaluation.attacks.base`):
- known: the client's key leaked; the attacker masks its public faces exactly as the client did.
- unknown: the attacker masks with a key of its own, over the public channel selection, and matches what it can
  estimate from the masked data: every masked channel is standardised (the public normalisation makes the
  server's data mean 0, variance 1 per channel, so the attacker fits its own statistics to do the same).
  Estimating the secret mixing itself from second-order statistics failed at this project's data scale (public
  sets of tens to hundreds of faces; see docs/evaluation.md), so the realistic attacker does not rely on it.
  What no key can hide is kept: denormalised with the public statistics, masked data is R x with R orthogonal,
  so inner products between grid positions are those of the kept frequencies themselves (`gram_invariants`).
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
import torch.nn.functional as F

from common.errors import InputError
from evaluation.attacks.base import AttackContext
from evaluation.server_view import PublicDefenseConfig
from masking.keys import derive_obfuscation
from masking.masker import FrequencyMasker
from masking.obfuscation import ChannelStats, denormalize, fit_channel_stats

_ATTACKER_KEY_DOMAIN = b"hybridmask/attacker-own-key/"


def defense_of(ctx: AttackContext) -> PublicDefenseConfig:
    defense = ctx.extras.get("defense")
    if not isinstance(defense, PublicDefenseConfig):
        raise InputError(
            "the attack context lacks extras['defence'] (a PublicDefenseConfig): build it with evaluation.run_attacks"
        )
    return defense


def device_of(ctx: AttackContext) -> torch.device:
    return torch.device(ctx.extras.get("device", "cpu"))


def attacker_own_key(seed: int) -> bytes:
    """The attacker's own key: deterministic per seed, so runs repeat; it is not the client's and is no secret."""
    return hashlib.sha256(_ATTACKER_KEY_DOMAIN + str(seed).encode()).digest()


def attacker_masker(ctx: AttackContext) -> FrequencyMasker | None:
    """The masker the attacker applies to its own faces: the client's (known key), its own standardised one
    (unknown key), or None for pixel defences."""
    defense = defense_of(ctx)
    if not defense.masked:
        return None
    if ctx.key_setting == "known":
        assert ctx.key is not None  # AttackContext guarantees it
        return FrequencyMasker.from_settings(defense.masking, ctx.key)
    selection = defense.selection
    obfuscation = derive_obfuscation(attacker_own_key(ctx.budget.seed), len(selection.kept))
    unscaled = FrequencyMasker(selection, obfuscation, ChannelStats.identity(len(selection.kept)))
    return FrequencyMasker(selection, obfuscation, fit_channel_stats(unscaled.mask(ctx.public_images.float())))


def images_to_model_input(images: torch.Tensor, masker: FrequencyMasker | None) -> torch.Tensor:
    """Faces [B, C, H, W] in [0, 1] as the FR model reads them: [-1, 1] pixels, or masked channels."""
    if masker is None:
        return images * 2.0 - 1.0
    return masker.mask(images).contiguous()


def server_inputs_to_model_input(inputs: torch.Tensor, defense: PublicDefenseConfig) -> torch.Tensor:
    """Server-held targets as model inputs: pixels are rescaled; masked channels already are model inputs."""
    return inputs if defense.masked else inputs * 2.0 - 1.0


def public_stats(defense: PublicDefenseConfig) -> ChannelStats:
    return ChannelStats.from_settings(defense.masking["normalisation"])


def gram_invariants(masked: torch.Tensor, stats: ChannelStats) -> torch.Tensor:
    """[B, P, h, w] key-free features of masked channels [B, K, h, w] (P = h * w grid positions).

    Denormalised masked data is R k at every position, R the secret orthogonal map and k the kept frequencies;
    so <y(p), y(q)> = <k(p), k(q)> for every pair of positions whatever the key. Channel q of position p holds
    that inner product (divided by the image's mean energy), which fixes the kept frequencies up to one rotation.
    """
    values = denormalize(masked.float(), stats)
    batch, _, height, width = values.shape
    vectors = values.flatten(2)  # [B, K, P]
    gram = torch.einsum("bkp,bkq->bpq", vectors, vectors)
    scale = gram.diagonal(dim1=1, dim2=2).mean(dim=1).clamp_min(1e-12)
    return (gram / scale[:, None, None]).reshape(batch, height * width, height, width)


def standardised(channels: torch.Tensor) -> torch.Tensor:
    """Each image's channels [B, K, h, w] divided by their own root-mean-square over the grid, so that the tiny
    high-frequency coefficients reach a network on the scale of the large ones."""
    return channels / channels.square().mean(dim=(2, 3), keepdim=True).sqrt().clamp_min(1e-8)


def augment(images: torch.Tensor, generator: torch.Generator, shift: int = 3) -> torch.Tensor:
    """Random horizontal flips and shifts of up to `shift` pixels: more views of a small public set."""
    flips = torch.rand(len(images), generator=generator) < 0.5
    images = torch.where(flips.to(images.device)[:, None, None, None], images.flip(3), images)
    if shift == 0:
        return images
    padded = F.pad(images, [shift] * 4, mode="replicate")
    dy, dx = torch.randint(0, 2 * shift + 1, (2,), generator=generator).tolist()
    return padded[:, :, dy : dy + images.shape[2], dx : dx + images.shape[3]]


def describe_knowledge(ctx: AttackContext) -> dict[str, Any]:
    """What the attack used, for its result file (no key)."""
    held = ctx.extras.get("held_samples")
    samples = {} if held is None else {"samples": f"per-identity least squares over the {held.count} samples sent"}
    return {**_masker_knowledge(ctx), **samples}


def _masker_knowledge(ctx: AttackContext) -> dict[str, Any]:
    defense = defense_of(ctx)
    if not defense.masked:
        return {"masker": "none (pixel defence)"}
    if "server_masked" in ctx.extras:
        return {"masker": "key map estimated from second and third order statistics of the masked data vs public faces"}
    if "known_pairs" in ctx.extras:
        count = len(ctx.extras["known_pairs"][0])
        return {"masker": f"key map solved by least squares from {count} known private face(s) and their masked forms"}
    return {"masker": "client key (leaked)" if ctx.key_setting == "known" else "own key, standardised channels"}
