"""Key-free renderings of masked data: the same whatever the key, and more revealing than the server view on faces."""

from __future__ import annotations

import secrets
from pathlib import Path

import torch

from evaluation.measures import ssim_per_image
from evaluation.renderings import key_free_renderings
from evaluation.run_data import LabelledImages
from evaluation.server_view import PublicDefenseConfig
from masking.masker import FrequencyMasker
from masking.render import render_server_view
from tests.masking_faces import smooth_images
from tests.test_key_recovery import orl_at_64


def labelled(images: torch.Tensor, per_identity: int) -> LabelledImages:
    count = len(images)
    return LabelledImages(images, torch.arange(count) // per_identity, torch.arange(count))


def test_key_free_renderings_are_the_same_whatever_the_key() -> None:
    private, public = smooth_images(8, 1, seed=0, size=32), smooth_images(12, 1, seed=1, size=32)
    selection_source = FrequencyMasker.fit(private, secrets.token_bytes(32), 0.5)
    other_key = FrequencyMasker(
        selection_source.selection,
        FrequencyMasker.fit(private, secrets.token_bytes(32), 0.5).obfuscation,
        selection_source.stats,
    )
    for defense_name, k in (("ppfr_fd", 1), ("hybrid_fixed", 3)):
        defense = PublicDefenseConfig(defense_name, (k,), (1.0,), masking=selection_source.public_settings())
        first = key_free_renderings(selection_source.mask(private), defense, labelled(public, 3), seed=0)
        second = key_free_renderings(other_key.mask(private), defense, labelled(public, 3), seed=0)
        assert set(first) == {"energy map", "linear estimate"}
        for name in first:
            assert first[name].shape == private.shape and first[name].min() >= 0 and first[name].max() <= 1
            torch.testing.assert_close(first[name], second[name], atol=1e-4, rtol=0)


def test_on_real_faces_a_key_free_rendering_shows_more_than_the_server_view(orl_dir: Path) -> None:
    private, public = orl_at_64(orl_dir, range(1, 21)), orl_at_64(orl_dir, range(21, 41))
    masker = FrequencyMasker.fit(private, secrets.token_bytes(32), 0.5)
    defense = PublicDefenseConfig("ppfr_fd", masking=masker.public_settings())
    masked = masker.mask(private)
    renderings = key_free_renderings(masked, defense, labelled(public, 10), seed=0)
    server_view = ssim_per_image(private, render_server_view(masked, masker.selection).clamp(0, 1)).mean()
    best = max(ssim_per_image(private, images).mean() for images in renderings.values())
    assert best > server_view + 0.05, (best, server_view)
