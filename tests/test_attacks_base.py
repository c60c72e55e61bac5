"""The attack interface: what a context accepts, that the key stays out of sight, and the mean-face baseline."""

from __future__ import annotations

import secrets

import pytest
import torch

from common.errors import InputError
from evaluation.attacks.base import Attack, AttackBudgetConfig, AttackContext, AttackResult, MeanFaceAttack

SHAPE = (1, 8, 6)


def context(**overrides) -> AttackContext:
    generator = torch.Generator().manual_seed(0)
    fields = {
        "public_images": torch.rand(5, *SHAPE, generator=generator),
        "public_labels": torch.tensor([0, 0, 1, 2, 2]),
        "target_labels": torch.tensor([3, 4, 4]),
        "image_shape": SHAPE,
    }
    return AttackContext(**{**fields, **overrides})


def test_mean_face_attack_returns_the_mean_public_face_for_every_target() -> None:
    ctx = context(target_indices=torch.tensor([0, 5, 6]))
    attack = MeanFaceAttack()
    assert isinstance(attack, Attack)
    attack.fit(ctx)
    result = attack.reconstruct(ctx)
    assert result.reconstructions.shape == (3, *SHAPE)
    for image in result.reconstructions:
        torch.testing.assert_close(image, ctx.public_images.mean(dim=0))
    assert result.target_labels.tolist() == [3, 4, 4]
    assert result.target_indices.tolist() == [0, 5, 6]


def test_the_key_is_only_given_in_the_known_setting_and_never_summarised() -> None:
    key = secrets.token_bytes(32)
    with pytest.raises(InputError, match="pass key=None"):
        context(key=key)
    with pytest.raises(InputError, match="needs the key"):
        context(key_setting="known")
    ctx = context(key_setting="known", key=key, masking_settings={"channel_ratio": 0.5})
    assert key.hex() not in repr(ctx) and repr(key) not in repr(ctx)
    summary = ctx.public_summary()
    assert summary["key_setting"] == "known" and summary["num_targets"] == 3
    assert key not in repr(summary).encode() and key.hex() not in repr(summary)


def test_context_and_result_refuse_misshapen_inputs() -> None:
    with pytest.raises(InputError, match="public_images"):
        context(image_shape=(3, 8, 6))
    with pytest.raises(InputError, match="target_masked"):
        context(target_masked=torch.zeros(2, 4, 2, 2))
    with pytest.raises(InputError, match="steps"):
        AttackBudgetConfig(steps=0)
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        AttackResult(reconstructions=torch.full((1, *SHAPE), 1.5), target_labels=torch.tensor([0]))
