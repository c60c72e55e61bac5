"""FR building blocks: backbone shapes per stem, margin heads, the mixed-label loss, the verification protocol."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from common.errors import InputError
from trainers.backbones import build_backbone
from trainers.config import TrainConfig
from trainers.config_io import load_config
from trainers.heads import build_head, mixed_label_loss
from trainers.verification import best_threshold, tar_at_far, verify


@pytest.mark.parametrize(
    ("input_kind", "channels", "size"),
    [("pixels", 3, 112), ("pixels", 1, 32), ("frequency", 192, 14), ("frequency", 40, 4)],
)
def test_backbone_maps_each_input_kind_to_an_embedding(input_kind, channels, size) -> None:
    model = build_backbone(input_kind, channels, size, "tiny", embedding_size=64).eval()
    assert model(torch.randn(2, channels, size, size)).shape == (2, 64)


def test_backbone_rejects_unknown_preset_and_useless_embedding() -> None:
    with pytest.raises(InputError, match="preset"):
        build_backbone("pixels", 3, 32, "r7", 64)
    with pytest.raises(InputError, match="embedding size"):
        build_backbone("pixels", 3, 32, "tiny", 1)


def _final_grid(model: torch.nn.Module, channels: int, size: int) -> int:
    return model.stages(model.stem(torch.randn(2, channels, size, size))).shape[-1]


def test_frequency_strides_set_how_coarsely_the_block_grid_is_read_and_leave_pixels_alone() -> None:
    default = build_backbone("frequency", 32, 8, "tiny", 64)
    finer = build_backbone("frequency", 32, 8, "tiny", 64, frequency_strides=(1, 1, 1, 2))
    assert (_final_grid(default, 32, 8), _final_grid(finer, 32, 8)) == (2, 4)
    assert finer.eval()(torch.randn(2, 32, 8, 8)).shape == (2, 64)
    pixels = build_backbone("pixels", 1, 64, "tiny", 64, frequency_strides=(1, 1, 1, 1))
    assert _final_grid(pixels, 1, 64) == 4


def test_unfold_stem_lays_per_block_channels_out_as_the_image_they_came_from() -> None:
    """Masking is a per-block linear map; the unfold stem's 1x1 convolution set to its inverse gives back the image."""
    torch.manual_seed(0)
    image = torch.rand(2, 1, 16, 16)
    mix = torch.linalg.qr(torch.randn(64, 64))[0]  # a secret orthogonal mix of each block's 64 values
    blocks = F.pixel_unshuffle(image, 8)  # [2, 64, 2, 2]: one channel per position in the 8x8 block
    masked = torch.einsum("kc,bchw->bkhw", mix, blocks)
    model = build_backbone("frequency", 64, 2, "tiny", 32, frequency_stem="unfold").eval()
    unfold = model.stem[0]
    with torch.no_grad():
        unfold[0].weight.copy_(mix.T[:, :, None, None])
        torch.testing.assert_close(unfold(masked), image, atol=1e-5, rtol=0)
    assert model(masked).shape == (2, 32)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.frequency_strides=[1,3,1,2]", r"model\.frequency_strides \[1, 3, 1, 2\] must be four"),
        ("model.frequency_strides=[1,2,1]", r"model\.frequency_strides \[1, 2, 1\] must be four"),
        ("model.frequency_stem=upsample", r"model\.frequency_stem 'upsample' is not one of"),
    ],
)
def test_config_rejects_frequency_options_that_cannot_build(override, message) -> None:
    with pytest.raises(InputError, match=message):
        load_config(TrainConfig, None, [override])


@pytest.mark.parametrize("head_name", ["arcface", "cosface"])
def test_mixed_label_loss_with_k1_is_the_plain_margin_loss(head_name) -> None:
    torch.manual_seed(0)
    head = build_head(head_name, 16, 10, scale=32.0, margin=None)
    embeddings, labels = torch.randn(8, 16), torch.randint(0, 10, (8,))
    plain = F.cross_entropy(head.margin_logits(head.cosine(embeddings), labels), labels)
    mixed = mixed_label_loss(head, embeddings, labels[:, None], torch.ones(8, 1))
    torch.testing.assert_close(mixed, plain)


def test_mixed_label_loss_is_the_weighted_sum_of_per_label_losses() -> None:
    torch.manual_seed(1)
    head = build_head("arcface", 16, 10, scale=32.0, margin=0.5)
    embeddings = torch.randn(6, 16)
    labels = torch.randint(0, 10, (6, 3))
    weights = torch.distributions.Dirichlet(torch.ones(3)).sample((6,))
    cosine = head.cosine(embeddings)
    expected = sum(
        weights[:, j] * F.cross_entropy(head.margin_logits(cosine, labels[:, j]), labels[:, j], reduction="none")
        for j in range(3)
    ).mean()
    torch.testing.assert_close(mixed_label_loss(head, embeddings, labels, weights), expected)


def test_arcface_margin_lowers_only_the_target_logit() -> None:
    head = build_head("arcface", 8, 4, scale=1.0, margin=0.5)
    cosine = torch.tensor([[0.9, 0.2, -0.1, 0.5]])
    logits = head.margin_logits(cosine, torch.tensor([0]))
    assert logits[0, 0] < 0.9 and torch.equal(logits[0, 1:], cosine[0, 1:])
    np.testing.assert_allclose(float(logits[0, 0]), np.cos(np.arccos(0.9) + 0.5), rtol=1e-5)


def test_best_threshold_separates_separable_scores() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    same = np.array([False, False, False, True, True, True])
    assert 0.3 < best_threshold(scores, same) < 0.7


def test_verification_accuracy_is_perfect_on_separable_pairs_and_chance_on_noise() -> None:
    rng = np.random.default_rng(0)
    same = np.arange(400) % 2 == 0
    separable = np.where(same, rng.uniform(0.6, 1.0, 400), rng.uniform(-0.2, 0.4, 400))
    assert verify(separable, same).accuracy == 1.0
    noise = verify(rng.uniform(-1, 1, 400), same)
    assert 0.35 < noise.accuracy < 0.65


def test_tar_at_far_counts_genuines_above_the_impostor_quantile() -> None:
    impostor = np.linspace(0.0, 0.5, 1000)
    genuine = np.array([0.45, 0.499, 0.6, 0.7])
    scores = np.concatenate([impostor, genuine])
    same = np.concatenate([np.zeros(1000, bool), np.ones(4, bool)])
    # At FAR 1e-3 one impostor (0.5) may pass: threshold is the second highest impostor score (~0.4995).
    assert tar_at_far(scores, same, 1e-3) == 0.5
