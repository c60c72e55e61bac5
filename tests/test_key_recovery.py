"""Key recovery by known plaintext: one face and its masked form solve the secret map, and recovery with the solved
map is the leaked-key recovery."""

from __future__ import annotations

import secrets
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from common.errors import InputError
from evaluation.attacks.base import AttackBudgetConfig, AttackContext
from evaluation.attacks.key_recovery import (
    KnownPlaintextRecovery,
    estimate_map_from_statistics,
    relative_error,
    solve_map,
    true_map,
)
from evaluation.attacks.knowledge import public_stats
from evaluation.attacks.recovery import RecoveryAttack
from evaluation.budgets import RecoveryBudgetConfig
from evaluation.server_view import PublicDefenseConfig, simulate_server_view
from masking.masker import FrequencyMasker
from tests.masking_faces import smooth_images

SIZE = 64  # 8 x 8 = 64 grid positions: 64 equations per row of the 32 x 32 map at ratio 0.5


def client(seed: int = 0) -> tuple[FrequencyMasker, PublicDefenseConfig, torch.Tensor]:
    faces = smooth_images(12, 1, seed=seed, size=SIZE)
    masker = FrequencyMasker.fit(faces, secrets.token_bytes(32), 0.5)
    return masker, PublicDefenseConfig("ppfr_fd", masking=masker.public_settings()), faces


def test_one_known_face_solves_the_map_to_a_relative_error_below_1e_minus_6() -> None:
    masker, defense, faces = client()
    estimate = solve_map(faces[:1], masker.mask(faces[:1].double()), defense)
    assert estimate.shape == (32, 32)
    assert relative_error(estimate, true_map(masker.obfuscation)) < 1e-6
    stored = masker.mask(faces[:1]).half()  # masked shards store float16
    assert relative_error(solve_map(faces[:1], stored, defense), true_map(masker.obfuscation)) < 1e-2
    wrong_pair = solve_map(faces[:1], masker.mask(faces[1:2].double()), defense)  # a face with another's masked form
    assert relative_error(wrong_pair, true_map(masker.obfuscation)) > 0.1
    with pytest.raises(InputError, match="more known faces"):
        solve_map(faces[:1, :, :32, :32], masker.mask(faces[:1, :, :32, :32].double()), defense)


def test_recovery_with_the_solved_map_matches_the_key_known_recovery() -> None:
    key = secrets.token_bytes(32)
    faces = smooth_images(12, 1, seed=0, size=SIZE)
    masker = FrequencyMasker.fit(faces, key, 0.5)
    defense = PublicDefenseConfig("ppfr_fd", masking=masker.public_settings())
    public = smooth_images(16, 1, seed=5, size=SIZE)
    targets = faces[4:8]
    common = {
        "public_images": public,
        "public_labels": torch.arange(16),
        "target_labels": torch.arange(4),
        "image_shape": (1, SIZE, SIZE),
        "target_indices": torch.arange(4, 8),
        "target_masked": masker.mask(targets),
        "budget": AttackBudgetConfig(steps=3, max_targets=4, batch_size=4, seed=0),
    }
    budget = RecoveryBudgetConfig(steps=3, batch_size=4, width=4)
    leaked = AttackContext(**common, key_setting="known", key=key, extras={"defense": defense})
    solved = AttackContext(
        **common, key_setting="unknown", extras={"defense": defense, "known_pairs": (faces[:1], masker.mask(faces[:1]))}
    )
    readings, results, decoders = [], [], []
    for attack, ctx in ((RecoveryAttack(budget, 32), leaked), (KnownPlaintextRecovery(budget, 32), solved)):
        attack.fit(ctx)
        decoders.append(attack.decoder)
        readings.append(attack._reading(common["target_masked"], public_stats(defense)))
        results.append(attack.reconstruct(ctx).reconstructions)
    # the decoder reads the server's data as the key holder does (the client view), so it learns the same map
    torch.testing.assert_close(readings[1], readings[0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(results[1], results[0], atol=1e-4, rtol=0)
    # masked and unmixed with one map, the attacker's own faces read the same whatever the map: one decoder serves
    assert decoders[1] is decoders[0]
    with pytest.raises(InputError, match="known_pairs"):
        KnownPlaintextRecovery(budget, 32).fit(AttackContext(**common, extras={"defense": defense}))


@pytest.mark.parametrize(("defense_name", "k"), [("ppfr_fd", 1), ("hybrid_fixed", 3)])
def test_faces_masked_and_read_with_one_map_read_the_same_whatever_the_map(defense_name: str, k: int) -> None:
    """Why recovery with the key and the key-recovery attacks may share one decoder: its training data do not
    depend on the map, only on the public channel selection."""
    faces = smooth_images(12, 1, seed=0, size=SIZE)
    readings = []
    for key in (secrets.token_bytes(32), secrets.token_bytes(32)):
        masker = FrequencyMasker.fit(faces, key, 0.5)
        defense = PublicDefenseConfig(defense_name, k_values=(k,), masking=masker.public_settings())
        attack = RecoveryAttack(RecoveryBudgetConfig(), 32)
        attack.masker, attack.reads_with_key = masker, True
        view = simulate_server_view(faces, torch.arange(12), defense, masker.mask, torch.Generator().manual_seed(0))
        readings.append(attack._reading(view, masker.stats))
    torch.testing.assert_close(readings[1], readings[0], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(readings[0], readings[0].roll(1, dims=0), atol=1e-2)  # the faces differ: not vacuous


def orl_at_64(orl_dir: Path, people: range) -> torch.Tensor:
    paths = [path for person in people for path in sorted((orl_dir / f"s{person}").glob("*.pgm"))]
    images = [
        cv2.resize(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE), (SIZE, SIZE), interpolation=cv2.INTER_AREA) for p in paths
    ]
    return torch.from_numpy(np.stack(images)).float().div(255.0)[:, None]


def test_statistics_estimate_the_map_when_public_and_private_statistics_agree_and_not_otherwise(orl_dir: Path) -> None:
    private, public = orl_at_64(orl_dir, range(1, 21)), orl_at_64(orl_dir, range(21, 41))
    masker = FrequencyMasker.fit(private, secrets.token_bytes(32), 0.5)
    defense = PublicDefenseConfig("ppfr_fd", masking=masker.public_settings())
    stored, truth = masker.mask(private).half(), true_map(masker.obfuscation)
    assert relative_error(estimate_map_from_statistics(stored, private, defense), truth) < 1e-2  # same statistics
    from_public = relative_error(estimate_map_from_statistics(stored, public, defense), truth)
    assert from_public > 1.0  # other people's statistics: no better than a random rotation (sqrt 2 = 1.41)
