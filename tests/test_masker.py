"""PPFR-FD selection, keyed shuffle-and-mix, normalisation and the composed masker, with the key and without."""

from __future__ import annotations

import json

import pytest
import torch

from common.errors import InputError
from masking.dct import from_frequency, to_frequency
from masking.keys import KEY_BYTES, derive_obfuscation, generate_key, key_fingerprint, validate_key
from masking.masker import FrequencyMasker
from masking.obfuscation import ChannelStats, denormalize, fit_channel_stats, normalize
from masking.ppfr import channel_energy, select_channels
from masking.render import render_client_view, render_server_view
from tests.masking_faces import orl_faces, smooth_images

KEY_A = bytes(range(32))
KEY_B = bytes(range(1, 33))


@pytest.fixture(scope="module")
def reference() -> torch.Tensor:
    return smooth_images(24, 3, seed=10)


@pytest.fixture(scope="module")
def masker(reference: torch.Tensor) -> FrequencyMasker:
    return FrequencyMasker.fit(reference, KEY_A, ratio=0.5, batch_size=10)


# --- channel selection ---------------------------------------------------------------------------------------


def test_masking_removes_the_energy_fraction_it_reports(reference: torch.Tensor) -> None:
    freq = to_frequency(reference).double()
    selection = select_channels(channel_energy(freq), 0.5, num_planes=3)
    dropped = list(selection.dropped)
    measured = freq[:, dropped].square().sum() / freq.square().sum()
    assert selection.energy_removed == pytest.approx(float(measured), rel=1e-9)
    assert len(selection.kept) == 192 - 96


def test_energy_removed_grows_with_the_ratio_and_dc_is_always_dropped(reference: torch.Tensor) -> None:
    energy = channel_energy(to_frequency(reference))
    selections = [select_channels(energy, ratio, 3) for ratio in (0.0, 0.25, 0.5, 0.75, 0.9)]
    removed = [s.energy_removed for s in selections]
    assert removed == sorted(removed) and len(set(removed)) == len(removed)
    assert selections[0].dropped == (0, 64, 128)
    for selection in selections:
        assert {0, 64, 128} <= set(selection.dropped)


def test_the_highest_energy_channels_are_dropped_first() -> None:
    energy = torch.rand(64, generator=torch.Generator().manual_seed(4))
    selection = select_channels(energy, 0.4, num_planes=1)
    assert len(selection.dropped) == round(0.4 * 64)
    ac_dropped = [i for i in selection.dropped if i != 0]
    assert float(energy[ac_dropped].min()) >= float(energy[list(selection.kept)].max())


def test_colour_planes_are_ranked_each_on_its_own_and_lose_the_same_share() -> None:
    energy = torch.cat([torch.rand(64) * 100, torch.rand(64), torch.rand(64) * 0.01])  # Y >> Cb >> Cr
    selection = select_channels(energy, 0.5, num_planes=3)
    dropped = torch.tensor(selection.dropped)
    assert [int(((dropped // 64) == plane).sum()) for plane in range(3)] == [32, 32, 32]
    for plane in range(3):
        plane_dropped = [i for i in selection.dropped if i // 64 == plane and i % 64]
        plane_kept = [i for i in selection.kept if i // 64 == plane]
        assert float(energy[plane_dropped].min()) >= float(energy[plane_kept].max())


def test_energy_removed_on_real_orl_faces_exceeds_94_percent(orl_dir) -> None:
    energy = channel_energy(to_frequency(orl_faces(orl_dir, 40)))
    assert select_channels(energy, 0.5, 1).energy_removed > 0.94


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5, float("nan")])
def test_ratio_outside_zero_to_one_is_refused(ratio: float) -> None:
    with pytest.raises(InputError, match=r"outside \[0, 1\)"):
        select_channels(torch.ones(64), ratio, 1)


def test_ratio_that_leaves_no_channel_is_refused() -> None:
    with pytest.raises(InputError, match="leaves none"):
        select_channels(torch.ones(64), 0.995, 1)


def test_selection_settings_round_trip(masker: FrequencyMasker) -> None:
    settings = json.loads(json.dumps(masker.selection.to_settings()))
    assert type(masker.selection).from_settings(settings) == masker.selection


# --- keys and obfuscation ------------------------------------------------------------------------------------


def test_generated_keys_are_32_random_bytes() -> None:
    first, second = generate_key(), generate_key()
    assert len(first) == KEY_BYTES and first != second


def test_short_or_non_bytes_keys_are_refused() -> None:
    with pytest.raises(InputError, match="at least 32"):
        validate_key(b"x" * 31)
    with pytest.raises(InputError, match="bytes"):
        validate_key("a" * 64)


def test_fingerprint_is_short_stable_distinct_and_not_part_of_the_key() -> None:
    fingerprint = key_fingerprint(KEY_A)
    assert fingerprint == key_fingerprint(KEY_A) != key_fingerprint(KEY_B)
    assert len(fingerprint) == 16 and fingerprint not in KEY_A.hex()


def test_obfuscation_is_determined_by_the_key_and_hides_it_in_repr() -> None:
    first, again, other = derive_obfuscation(KEY_A, 40), derive_obfuscation(KEY_A, 40), derive_obfuscation(KEY_B, 40)
    assert torch.equal(first.permutation, again.permutation) and torch.equal(first.mixing, again.mixing)
    assert not torch.equal(first.mixing, other.mixing)
    for text in (repr(first), str(first)):
        assert KEY_A.hex() not in text and "tensor" not in text and key_fingerprint(KEY_A) in text


def test_mixing_is_orthogonal_and_no_mixed_channel_is_mostly_one_frequency() -> None:
    mixing = derive_obfuscation(KEY_A, 96).mixing
    torch.testing.assert_close(mixing @ mixing.T, torch.eye(96, dtype=torch.float64), atol=1e-12, rtol=0)
    assert float(mixing.square().max()) < 0.25  # every row's energy is spread: no frequency gives > 25 %


def test_normalisation_inverts_and_gives_unit_statistics() -> None:
    x = torch.randn(6, 5, 4, 4, dtype=torch.float64) * torch.arange(1, 6, dtype=torch.float64)[:, None, None] + 3
    stats = fit_channel_stats(x)
    normalized = normalize(x, stats)
    torch.testing.assert_close(normalized.mean(dim=(0, 2, 3)), torch.zeros(5, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(denormalize(normalized, stats), x)
    with pytest.raises(InputError, match="positive"):
        ChannelStats(torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64))


# --- the masker ----------------------------------------------------------------------------------------------


def test_composed_convolution_equals_the_step_by_step_reference(masker: FrequencyMasker, reference) -> None:
    torch.testing.assert_close(masker.mask(reference), masker.mask_reference(reference), atol=1e-4, rtol=1e-4)
    exact = reference.double()
    torch.testing.assert_close(masker.mask(exact), masker.mask_reference(exact), atol=1e-10, rtol=0)


def test_masked_training_data_is_normalized_per_channel(masker: FrequencyMasker, reference) -> None:
    masked = masker.mask(reference).double()
    torch.testing.assert_close(
        masked.mean(dim=(0, 2, 3)), torch.zeros(masker.num_kept, dtype=torch.float64), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(
        masked.std(dim=(0, 2, 3), correction=0), torch.ones(masker.num_kept, dtype=torch.float64), atol=1e-4, rtol=0
    )


def test_the_key_brings_the_kept_channels_back_exactly(masker: FrequencyMasker) -> None:
    images = smooth_images(5, 3, seed=11)
    kept = to_frequency(images)[:, list(masker.selection.kept)]
    scale = kept.abs().max()
    assert (masker.unmask(masker.mask(images)) - kept).abs().max() < 1e-5 * max(1.0, float(scale))


def test_two_keys_give_different_outputs_and_one_key_the_same(reference: torch.Tensor) -> None:
    images = smooth_images(3, 3, seed=12)
    first = FrequencyMasker.fit(reference, KEY_A, ratio=0.5).mask(images)
    again = FrequencyMasker.fit(reference, KEY_A, ratio=0.5).mask(images)
    other = FrequencyMasker.fit(reference, KEY_B, ratio=0.5).mask(images)
    assert torch.equal(first, again)
    assert (first - other).abs().mean() > 0.1


def test_a_masked_channel_alone_does_not_match_any_frequency_channel(masker: FrequencyMasker, reference) -> None:
    masked = masker.mask(reference).flatten(2).transpose(0, 1).flatten(1)  # [K, values]
    kept = to_frequency(reference)[:, list(masker.selection.kept)].flatten(2).transpose(0, 1).flatten(1)
    correlation = torch.corrcoef(torch.cat([masked, kept]))[: masker.num_kept, masker.num_kept :]
    assert float(correlation.abs().max()) < 0.9


def test_public_settings_are_json_and_rebuild_the_masker_with_the_key(masker: FrequencyMasker) -> None:
    settings = json.loads(json.dumps(masker.public_settings()))
    text = json.dumps(settings) + repr(masker)
    assert KEY_A.hex() not in text and "permutation" not in text and "mixing" not in text
    assert settings["key_fingerprint"] == key_fingerprint(KEY_A)
    assert settings["num_kept"] == masker.num_kept and 0.9 < settings["energy_removed"] < 1
    rebuilt = FrequencyMasker.from_settings(settings, KEY_A)
    images = smooth_images(2, 3, seed=13)
    torch.testing.assert_close(rebuilt.mask(images), masker.mask(images), atol=1e-5, rtol=0)
    with pytest.raises(InputError, match="fingerprint"):
        FrequencyMasker.from_settings(settings, KEY_B)


def test_fit_reads_batches_from_a_function_like_from_a_tensor(reference: torch.Tensor, masker) -> None:
    streamed = FrequencyMasker.fit(lambda: iter(reference.split(7)), KEY_A, ratio=0.5)
    assert streamed.selection.kept == masker.selection.kept
    assert streamed.selection.energy_removed == pytest.approx(masker.selection.energy_removed, rel=1e-12)
    torch.testing.assert_close(streamed.stats.std, masker.stats.std)


def test_mask_refuses_images_of_another_channel_count_and_nan(masker: FrequencyMasker) -> None:
    with pytest.raises(InputError, match="3-channel"):
        masker.mask(torch.rand(1, 1, 16, 16))
    broken = torch.rand(1, 3, 16, 16)
    broken[0, 0, 0, 0] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        masker.mask(broken)


# --- renderings ----------------------------------------------------------------------------------------------


def test_client_view_is_the_face_without_its_dropped_frequencies(masker: FrequencyMasker) -> None:
    images = smooth_images(2, 3, seed=14)
    freq = to_frequency(images)
    freq[:, list(masker.selection.dropped)] = 0
    expected = from_frequency(freq, 3)
    assert (render_client_view(masker.mask(images), masker) - expected).abs().max() < 1e-4


def test_server_view_is_stretched_to_unit_range_and_differs_from_the_client_view(masker: FrequencyMasker) -> None:
    images = smooth_images(2, 3, seed=15)
    masked = masker.mask(images)
    server = render_server_view(masked, masker.selection, image_size=(112, 112))
    assert server.shape == images.shape
    assert float(server.amin(dim=(1, 2, 3)).max()) == 0.0 and float(server.amax(dim=(1, 2, 3)).min()) == 1.0
    client = render_client_view(masked, masker)
    client = (client - client.amin(dim=(1, 2, 3), keepdim=True)) / (
        client.amax(dim=(1, 2, 3), keepdim=True) - client.amin(dim=(1, 2, 3), keepdim=True)
    )
    assert (server - client).abs().mean() > 0.05
    with pytest.raises(InputError, match="image_size"):
        render_server_view(masked, masker.selection, image_size=(96, 96))
