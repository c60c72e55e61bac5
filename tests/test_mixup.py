"""MixUp of k samples: convex weights, matching labels, distinct partners from the batch, k = 1 identity."""

from __future__ import annotations

import pytest
import torch

from common.errors import InputError
from masking.mixup import mixup


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("shape", [(16, 96, 14, 14), (16, 3, 112, 112), (16, 10)])
def test_each_sample_is_the_weighted_sum_of_its_partners_in_any_domain(shape) -> None:
    batch = torch.randn(*shape, generator=seeded(1))
    labels = torch.arange(100, 116)
    result = mixup(batch, labels, k=3, generator=seeded(2))
    expected = torch.stack(
        [sum(result.weights[i, j] * batch[result.partners[i, j]] for j in range(3)) for i in range(shape[0])]
    )
    torch.testing.assert_close(result.mixed, expected, atol=1e-5, rtol=1e-5)
    assert result.mixed.shape == batch.shape


def test_channels_last_batches_are_mixed_in_their_own_layout() -> None:
    batch = torch.randn(6, 4, 3, 5).contiguous(memory_format=torch.channels_last)
    channels_last = mixup(batch, torch.arange(6), k=3, generator=seeded(11))
    plain = mixup(batch.contiguous(), torch.arange(6), k=3, generator=seeded(11))
    torch.testing.assert_close(channels_last.mixed, plain.mixed)
    assert channels_last.mixed.is_contiguous(memory_format=torch.channels_last)


def test_weights_are_positive_and_sum_to_one_per_sample() -> None:
    result = mixup(torch.randn(64, 8), torch.zeros(64, dtype=torch.long), k=4, generator=seeded(3))
    assert result.weights.shape == (64, 4)
    assert bool((result.weights > 0).all())
    torch.testing.assert_close(result.weights.sum(dim=1), torch.ones(64), atol=1e-6, rtol=0)


def test_labels_are_the_partners_labels_in_the_order_of_their_weights() -> None:
    labels = torch.randint(0, 1000, (32,), generator=seeded(4))
    result = mixup(torch.randn(32, 5), labels, k=5, generator=seeded(5))
    assert result.labels.dtype == torch.long and result.labels.shape == (32, 5)
    assert torch.equal(result.labels, labels[result.partners])
    assert torch.equal(result.labels[:, 0], labels)


def test_partners_are_other_distinct_samples_of_the_batch() -> None:
    size, k = 12, 6
    result = mixup(torch.randn(size, 2), torch.arange(size), k=k, generator=seeded(6))
    assert torch.equal(result.partners[:, 0], torch.arange(size))
    for row in range(size):
        others = result.partners[row, 1:].tolist()
        assert row not in others and len(set(others)) == k - 1 and all(0 <= p < size for p in others)


def test_every_other_sample_can_be_drawn_as_a_partner() -> None:
    size = 8
    seen = torch.zeros(size, size, dtype=torch.long)
    generator = seeded(7)
    for _ in range(200):
        partners = mixup(torch.randn(size, 1), torch.arange(size), k=2, generator=generator).partners
        seen[partners[:, 0], partners[:, 1]] += 1
    off_diagonal = ~torch.eye(size, dtype=torch.bool)
    assert int(seen.diagonal().sum()) == 0 and int(seen[off_diagonal].min()) > 0


def test_k_equal_to_the_batch_size_mixes_every_sample() -> None:
    result = mixup(torch.randn(5, 3), torch.arange(5), k=5, generator=seeded(8))
    assert torch.equal(result.partners.sort(dim=1).values, torch.arange(5).expand(5, 5))


def test_k_one_is_the_identity() -> None:
    batch, labels = torch.randn(7, 4), torch.arange(7)
    result = mixup(batch, labels, k=1)
    assert torch.equal(result.mixed, batch)
    assert torch.equal(result.labels, labels[:, None]) and torch.equal(result.weights, torch.ones(7, 1))


def test_concentration_changes_how_evenly_samples_are_mixed() -> None:
    def weight_spread(concentration: float) -> float:
        weights = mixup(
            torch.randn(256, 1), torch.arange(256), k=3, concentration=concentration, generator=seeded(9)
        ).weights
        return float(weights.std(dim=1).mean())

    assert weight_spread(100.0) < 0.05 < weight_spread(1.0) < weight_spread(0.2)


def test_the_generator_makes_draws_reproducible_and_leaves_the_global_generator_alone() -> None:
    batch, labels = torch.randn(10, 3), torch.arange(10)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = mixup(batch, labels, k=3, generator=seeded(10))
    assert torch.equal(torch.get_rng_state(), before)
    second = mixup(batch, labels, k=3, generator=seeded(10))
    assert torch.equal(first.mixed, second.mixed) and torch.equal(first.partners, second.partners)


@pytest.mark.parametrize(
    "k, labels, concentration, message",
    [
        (0, torch.arange(4), 1.0, "k is 0"),
        (5, torch.arange(4), 1.0, "batch size 4"),
        (2.0, torch.arange(4), 1.0, "integer"),
        (2, torch.arange(3), 1.0, "one label per sample"),
        (2, torch.arange(4).int(), 1.0, "long tensor"),
        (2, torch.arange(4), 0.0, "positive"),
        (2, torch.arange(4), float("nan"), "positive"),
    ],
)
def test_bad_arguments_are_refused_with_the_fix(k, labels, concentration, message) -> None:
    with pytest.raises(InputError, match=message):
        mixup(torch.randn(4, 2), labels, k=k, concentration=concentration)
