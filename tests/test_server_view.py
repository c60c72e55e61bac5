"""The server's view of each defence, the attacker's key-free readings, budgets and request checks (no training)."""

from __future__ import annotations

import dataclasses
import json
import secrets
from pathlib import Path

import pytest
import torch

from common.errors import InputError
from evaluation.attacks.base import AttackContext
from evaluation.attacks.knowledge import attacker_masker, gram_invariants
from evaluation.budgets import PRESETS, load_budgets
from evaluation.run_attacks import KNOWN_KEY_MISSING, parse_attack_names, plan_attacks
from evaluation.run_data import LabelledImages, RunData, SentRecord
from evaluation.server_view import (
    PublicDefenseConfig,
    build_server_targets,
    mix_rows,
    sent_appearances,
    sent_samples,
    server_renderings,
    simulate_server_view,
)
from masking.masker import FrequencyMasker
from masking.windows import WindowPlan, WindowRequest, window_mixtures
from pipelines.cli.main import main
from tests.masking_faces import smooth_images

SIZE = 32


def faces(identities: int = 4, per_identity: int = 5, channels: int = 1, seed: int = 0) -> LabelledImages:
    count = identities * per_identity
    return LabelledImages(
        images=smooth_images(count, channels, seed=seed, size=SIZE),
        labels=torch.arange(identities).repeat_interleave(per_identity),
        image_ids=torch.arange(count),
    )


SENT_PLAN = WindowPlan(batch_size=10, window_batches=1, batches_per_epoch=1, workers=2)


def sent_record(ks_by_epoch: list[int]) -> SentRecord:
    """A client record: every private row trained on, two workers, one window an epoch mixed with that epoch's k."""
    windows = tuple(WindowRequest(epoch, 0, rank, k) for epoch, k in enumerate(ks_by_epoch) for rank in range(2))
    return SentRecord(plan=SENT_PLAN, secret_seed=1234, windows=windows, train_rows=torch.arange(20))


def fake_run(
    defense: str,
    summary: dict | None = None,
    masker: FrequencyMasker | None = None,
    sent: SentRecord | None = None,
) -> RunData:
    """A run without a model: what the server-view functions read."""
    private = faces()
    k = (summary or {}).get("k", 1)
    return RunData(
        run_dir=Path("run"),
        model=None,  # type: ignore[arg-type]
        summary={"defense": defense, **(summary or {})},
        train_config={"defense": {"concentration": 1.0}},
        representation="masked" if masker is not None else "images",
        public_masking=masker.public_settings() if masker is not None else {},
        prepared_dir=Path("data"),
        private=private,
        masked=masker.mask(private.images).contiguous() if masker is not None else None,
        public=faces(seed=1),
        sent=sent or sent_record([k, k, k]),
    )


def client_masker(key: bytes | None = None, ratio: float = 0.5) -> FrequencyMasker:
    return FrequencyMasker.fit(faces().images, key or secrets.token_bytes(32), ratio)


def test_each_mixed_row_weighs_k_rows_and_itself_the_most() -> None:
    rows = torch.eye(12)  # row i is the indicator of i, so a mixture shows its weights directly
    ks = torch.tensor([1, 2, 3, 4] * 3)
    mixed = mix_rows(rows, torch.arange(12), ks, 1.0, torch.Generator().manual_seed(0))
    torch.testing.assert_close(mixed.sum(dim=1), torch.ones(12))
    assert ((mixed > 0).sum(dim=1) == ks).all()
    assert torch.equal(mixed.argmax(dim=1), torch.arange(12))
    assert (mixed.diagonal()[ks > 1] < 1).all()


def test_targets_are_deterministic_per_seed_cover_every_person_and_carry_the_dominant_label() -> None:
    run = fake_run("mixup", {"k": 3})
    defense = PublicDefenseConfig.from_run(run)
    first = build_server_targets(run, defense, count=8, seed=5)
    again = build_server_targets(run, defense, count=8, seed=5)
    other = build_server_targets(run, defense, count=8, seed=6)
    assert torch.equal(first.inputs, again.inputs) and not torch.equal(first.inputs, other.inputs)
    assert (first.ks == 3).all()
    assert set(run.private.labels[first.original_indices].tolist()) == set(range(4))  # every person of 4, 8 targets
    assert torch.equal(first.labels, run.private.labels[first.original_indices])


def test_unmixed_targets_are_the_private_rows_themselves() -> None:
    masker = client_masker()
    run = fake_run("ppfr_fd", masker=masker)
    targets = build_server_targets(run, PublicDefenseConfig.from_run(run), count=6, seed=0)
    assert torch.equal(targets.inputs, run.masked[targets.original_indices])
    pixel_run = fake_run("none")
    pixel_targets = build_server_targets(pixel_run, PublicDefenseConfig.from_run(pixel_run), count=6, seed=0)
    assert torch.equal(pixel_targets.inputs, pixel_run.private.images[pixel_targets.original_indices])


def test_adaptive_targets_carry_the_k_each_sent_window_was_mixed_with() -> None:
    masker = client_masker()
    run = fake_run("hybrid_adaptive", {"k_histogram": {"2": 6, "5": 2}}, masker=masker, sent=sent_record([2, 2, 2, 5]))
    targets = build_server_targets(run, PublicDefenseConfig.from_run(run), count=20, seed=0)
    assert set(targets.ks.tolist()) == {2, 5}
    with pytest.raises(InputError, match="k_histogram"):
        PublicDefenseConfig.from_run(fake_run("hybrid_adaptive", masker=masker))


@pytest.mark.parametrize("defense", ["mixup", "hybrid_fixed"])
def test_mixed_targets_are_samples_the_client_sent_and_their_label_is_the_dominant_face(defense) -> None:
    masker = client_masker() if defense == "hybrid_fixed" else None
    run = fake_run(defense, {"k": 3}, masker=masker)
    targets = build_server_targets(run, PublicDefenseConfig.from_run(run), count=8, seed=0)
    rows = run.masked if masker is not None else run.private.images
    sent = [
        batch
        for request in run.sent.windows
        for batch in window_mixtures(rows, run.private.labels, SENT_PLAN, run.sent.secret_seed, request)
    ]
    sent_inputs = torch.cat([batch.mixed for batch in sent]).flatten(1)
    nearest = (
        torch.cdist(targets.inputs.flatten(1), sent_inputs, compute_mode="donot_use_mm_for_euclid_dist")
        .min(dim=1)
        .values
    )
    assert (nearest < 1e-4).all(), "a target that the client never sent"
    dominant = torch.cat([b.partners.gather(1, b.weights.argmax(1, keepdim=True)) for b in sent]).flatten()
    assert set(targets.original_indices.tolist()) <= set(dominant.tolist())
    assert torch.equal(targets.labels, run.private.labels[targets.original_indices])


def test_the_report_counts_how_many_sent_samples_held_each_face() -> None:
    run = fake_run("hybrid_fixed", {"k": 3}, masker=client_masker())
    summary = sent_appearances(run, sent_samples(run))
    reuse = summary["appearances_per_training_face"]
    assert summary["samples_sent"] == 60 and summary["windows_sent"] == 6 and summary["faces_per_sample"] == [3]
    assert reuse["mean"] == pytest.approx(3 * 60 / 20)  # every sample holds 3 of the 20 faces
    assert reuse["min"] >= 3, "each epoch sends every face at least once, as its own sample's first face"


def test_renderings_are_the_image_the_mixed_image_or_the_keyless_server_view() -> None:
    none_run = fake_run("none")
    targets = build_server_targets(none_run, PublicDefenseConfig.from_run(none_run), 4, 0)
    assert list(server_renderings(targets, PublicDefenseConfig.from_run(none_run))) == ["image"]
    mixup_run = fake_run("mixup", {"k": 2})
    assert list(
        server_renderings(
            build_server_targets(mixup_run, PublicDefenseConfig.from_run(mixup_run), 4, 0),
            PublicDefenseConfig.from_run(mixup_run),
        )
    ) == ["mixed image"]
    masked_run = fake_run("hybrid_fixed", {"k": 4}, masker=client_masker())
    defense = PublicDefenseConfig.from_run(masked_run)
    view = server_renderings(build_server_targets(masked_run, defense, 4, 0), defense)["server view"]
    assert view.shape == (4, 1, SIZE, SIZE) and view.min() >= 0 and view.max() <= 1


def test_simulated_view_masks_with_the_given_masker_then_mixes() -> None:
    masker = client_masker()
    images, labels = faces().images[:8], torch.arange(8)
    plain = PublicDefenseConfig("ppfr_fd", masking=masker.public_settings())
    view = simulate_server_view(images, labels, plain, masker.mask, torch.Generator().manual_seed(0))
    torch.testing.assert_close(view, masker.mask(images))
    mixing = PublicDefenseConfig("hybrid_fixed", (4,), (1.0,), masking=masker.public_settings())
    mixed = simulate_server_view(images, labels, mixing, masker.mask, torch.Generator().manual_seed(0))
    assert mixed.shape == view.shape and not torch.allclose(mixed, view)
    with pytest.raises(InputError, match="needs a masker"):
        simulate_server_view(images, labels, plain, None, torch.Generator())


def test_gram_invariants_are_the_same_whatever_the_key() -> None:
    images = faces().images
    first, second = client_masker(), client_masker()
    assert not torch.allclose(first.mask(images), second.mask(images), atol=1e-2)
    torch.testing.assert_close(
        gram_invariants(first.mask(images), first.stats),
        gram_invariants(second.mask(images), second.stats),
        atol=1e-4,
        rtol=1e-3,
    )


def test_the_unknown_key_attacker_masks_with_its_own_key_and_standardises_its_channels() -> None:
    key = secrets.token_bytes(32)
    client = client_masker(key)
    defense = PublicDefenseConfig("ppfr_fd", masking=client.public_settings())
    public = faces(seed=3)
    ctx = AttackContext(public.images, public.labels, torch.tensor([0]), (1, SIZE, SIZE), extras={"defense": defense})
    own = attacker_masker(ctx)
    assert own is not None and own.key_fingerprint != client.key_fingerprint
    masked = own.mask(public.images).double()
    torch.testing.assert_close(
        masked.mean(dim=(0, 2, 3)), torch.zeros(masked.shape[1], dtype=torch.float64), atol=1e-4, rtol=0
    )
    torch.testing.assert_close(
        masked.std(dim=(0, 2, 3), unbiased=False), torch.ones(masked.shape[1], dtype=torch.float64), atol=1e-3, rtol=0
    )
    leaked = attacker_masker(dataclasses.replace(ctx, key_setting="known", key=key))
    assert leaked is not None
    torch.testing.assert_close(leaked.mask(public.images), client.mask(public.images))


def test_budgets_take_overrides_and_refuse_bad_values() -> None:
    budgets = load_budgets("small", ["recovery.steps=7", "work_size=64", "device=cpu"])
    assert budgets.recovery.steps == 7 and budgets.size_for(112) == 64 and budgets.size_for(32) == 32
    assert load_budgets("paper").size_for(112) == 112
    assert PRESETS["paper"].whitebox.gan_steps > PRESETS["small"].whitebox.gan_steps
    for bad, message in (
        ("recovery.steps=0", "positive"),
        ("work_size=40", "multiple of 16"),
        ("recovery.stepz=3", "stepz"),
    ):
        with pytest.raises(InputError, match=message):
            load_budgets("small", [bad])
    with pytest.raises(InputError, match="unknown budget"):
        load_budgets("huge")


def fake_run_dir(tmp_path: Path, defense: str) -> Path:
    folder = tmp_path / defense
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps({"defense": defense}), encoding="utf-8")
    (folder / "model.pt").write_bytes(b"")
    return folder


def test_bad_attack_requests_fail_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        plan_attacks(tmp_path / "missing")
    masked_run = fake_run_dir(tmp_path, "ppfr_fd")
    with pytest.raises(InputError, match="unknown attack 'rekovery'"):
        plan_attacks(masked_run, "recovery,rekovery", "unknown")
    with pytest.raises(InputError, match="leaked key; pass --key KEYFILE"):
        plan_attacks(masked_run, "recovery", "both", key=None)
    with pytest.raises(InputError, match="--key-setting"):
        plan_attacks(masked_run, "recovery", "sometimes")
    assert plan_attacks(masked_run, "whitebox", "unknown").settings == ("unknown",)
    assert plan_attacks(fake_run_dir(tmp_path, "none"), "recovery", "both").settings == ("unknown",)
    assert parse_attack_names(" blackbox , recovery,blackbox") == ("blackbox", "recovery")
    assert not (masked_run / "attacks").exists()


def test_cli_reports_bad_input_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    masked_run = fake_run_dir(tmp_path, "ppfr_fd")
    assert main(["attack", str(masked_run), "--key-setting", "known", "--quiet"]) == 2
    assert KNOWN_KEY_MISSING in capsys.readouterr().err
    assert main(["attack", str(tmp_path / "nowhere")]) == 2
    assert main(["attack", str(masked_run), "--set", "budget.recovery.steps=-1"]) == 2
    assert main(["evaluate", str(masked_run)]) == 2
    assert "run `hybridmask attack" in capsys.readouterr().err
