"""The de-mixing attack: its least-squares solve, where it applies, and one end-to-end pass per kind of defence on
small fake runs (no training, no Ray)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from evaluation.attacks.base import KEY_SETTINGS
from evaluation.attacks.demixing import demix
from evaluation.attacks.gan import GanCache
from evaluation.attacks.knowledge import describe_knowledge
from evaluation.attacks.registry import ATTACKS
from evaluation.budgets import load_budgets
from evaluation.run_attacks import AttackPlan, attack_context, identity_targets
from evaluation.server_view import HeldBatch, PublicDefenseConfig, build_server_targets, held_samples
from masking.mixup import mixup
from tests.test_server_view import client_masker, fake_run, sent_record
from trainers.defenses import DEFENSES

PEOPLE, PER_PERSON, DIM = 8, 5, 64


def mixed_samples(labels: torch.Tensor, rows: torch.Tensor, k: int, draws: int) -> list[HeldBatch]:
    """`draws` MixUps of every row with k - 1 partners, as the server holds them: no partner rows."""
    generator = torch.Generator().manual_seed(1)
    batches = []
    for _ in range(draws):
        drawn = mixup(rows, labels, k, 1.0, generator)
        batches.append(HeldBatch(drawn.mixed, labels[drawn.partners], drawn.weights))
    return batches


def relative_errors(estimates: torch.Tensor, truths: torch.Tensor) -> torch.Tensor:
    return (estimates - truths).norm(dim=-1) / truths.norm(dim=-1)


def test_least_squares_recovers_each_persons_mean_far_better_than_any_single_sample() -> None:
    """Each of 8 people has 5 rows (a centre plus noise at 0.3 of its scale); every row is mixed with k = 3 in 60
    draws. The solve must land within a third of the error of the single sample closest to that person's mean,
    chosen with hindsight among all 2,400 (an oracle the attacker does not have): least squares averages out the
    partners and the person's own photos, one sample keeps both. It measures 0.19 of it at this seed, and labels
    shifted to the next person (a wrong Y) leave every estimate further from its person than its own norm."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(PEOPLE).repeat_interleave(PER_PERSON)
    rows = torch.randn(PEOPLE, DIM, generator=generator)[labels] + 0.3 * torch.randn(
        len(labels), DIM, generator=generator
    )
    means = torch.stack([rows[labels == person].mean(dim=0) for person in range(PEOPLE)])
    samples = mixed_samples(labels, rows, k=3, draws=60)
    sent = torch.cat([batch.inputs for batch in samples])
    best_single = relative_errors(sent[None], means[:, None]).min()
    assert relative_errors(demix(samples, PEOPLE), means).max() < best_single / 3
    shifted = [HeldBatch(b.inputs, (b.labels + 1) % PEOPLE, b.weights) for b in samples]
    assert relative_errors(demix(shifted, PEOPLE), means).min() > 1.0


@pytest.mark.parametrize("defense", list(DEFENSES))
def test_demixing_attacks_identities_under_every_defence_in_each_key_setting_it_has(defense: str) -> None:
    row = ATTACKS["demixing"]
    assert row.per_identity and not row.recovers_key
    settings = KEY_SETTINGS if DEFENSES[defense].masked else ("unknown",)
    jobs = AttackPlan(Path("run"), defense, ("demixing",), KEY_SETTINGS).jobs
    assert jobs == [("demixing", setting) for setting in settings]


CASES = [("none", None, 1), ("ppfr_fd", "unknown", 1), ("mixup", None, 3), ("hybrid_fixed", "known", 3),
         ("hybrid_fixed", "unknown", 3)]  # fmt: skip


KEY = bytes(range(32))
TINY_BUDGETS = ["max_identities=3", "recovery.steps=2", "recovery.batch_size=4", "recovery.width=4"]


def fitted_attack(attack_name: str, defense: str, setting: str | None, k: int):
    """`attack_name` fitted on a small fake run of `defense` (masked with KEY when `setting` is given): the
    attack, its context, the run and the target identities."""
    run = fake_run(defense, {"k": k}, client_masker(KEY) if setting is not None else None, sent_record([k] * 4))
    public = PublicDefenseConfig.from_run(run)
    budgets = load_budgets("small", TINY_BUDGETS)
    targets = build_server_targets(run, public, 8, budgets.seed)
    identities = identity_targets(targets, run.private.labels, budgets.max_identities)
    ctx = attack_context(
        run, public, attack_name, setting or "unknown", KEY, budgets, torch.device("cpu"), targets, identities
    )
    attack = ATTACKS[attack_name].build(budgets, 16, GanCache())
    attack.fit(ctx)
    return attack, ctx, run, identities


@pytest.mark.parametrize(("defense", "setting", "k"), CASES)
def test_the_attack_reconstructs_one_face_per_target_identity(defense: str, setting: str | None, k: int) -> None:
    attack, ctx, run, identities = fitted_attack("demixing", defense, setting, k)
    result = attack.reconstruct(ctx)
    assert result.reconstructions.shape == (3, *run.image_shape)
    assert torch.equal(result.target_labels, identities) and result.target_indices is None
    assert "samples sent" in describe_knowledge(ctx)["samples"]
    if defense == "none":  # k = 1, weight 1: each person's mean of the faces sent (each sent equally often)
        means = torch.stack([run.private.images[run.private.labels == person].mean(dim=0) for person in identities])
        assert torch.allclose(result.reconstructions, means, atol=1e-2)


def test_held_samples_are_the_samples_sent_with_their_faces_identities_and_weights() -> None:
    run = fake_run("mixup", {"k": 2}, None, sent_record([2, 2]))
    held = held_samples(run, PublicDefenseConfig.from_run(run), chunk=7)
    batches = list(held)
    assert held.people == 4 and held.count == sum(len(b.inputs) for b in batches) == 40
    assert all(len(b.inputs) <= 7 and b.labels.shape == b.weights.shape == (len(b.inputs), 2) for b in batches)
    assert torch.allclose(torch.cat([b.weights for b in batches]).sum(dim=1), torch.ones(40))
    assert len(list(held)) == len(batches)  # a fresh pass each time


@pytest.mark.parametrize("setting", KEY_SETTINGS)
def test_a_hybrids_demixing_decodes_with_the_decoder_ppfr_fds_recovery_trained(setting: str) -> None:
    """The unmixed masked view is ppfr_fd's: one decoder serves both, trained once per process."""
    recovery = fitted_attack("recovery", "ppfr_fd", setting, 3)[0]
    demixing = fitted_attack("demixing", "hybrid_fixed", setting, 3)[0]
    decoders = [recovery.decoder, demixing.recovery.decoder]
    assert decoders[0] is decoders[1]
