"""Attack records name the run they attacked: stale ones are redone, and incomplete coverage is never scored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from common.errors import InputError
from evaluation.attacks.registry import ATTACK_NAMES, ATTACKS
from evaluation.budgets import load_budgets
from evaluation.evaluate_runs import evaluate_runs
from evaluation.run_attacks import ATTACKS_DIR, coverage_gaps, current_records, record_paths
from evaluation.run_data import DataLocations, data_locations, run_fingerprint
from pipelines.runs.experiment_config import load_experiment
from pipelines.runs.run_pipeline import PipelineConfig, attack_defense
from trainers.checkpoints import MODEL_FILE
from trainers.client_record import CLIENT_MANIFEST, CLIENT_RECORD_DIR
from trainers.config_io import to_dict
from trainers.run import SUMMARY_FILE
from trainers.schema import MANIFEST_NAME


def fake_run(root: Path, defense: str, weights: float = 0.0) -> Path:
    """A run folder with the files fingerprints read: a checkpoint, the client's record naming its data folder, a
    summary, and the data's manifest."""
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / MANIFEST_NAME).write_text(json.dumps({"kind": "prepared", "created_at": "then"}), encoding="utf-8")
    run_dir = root / defense
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CLIENT_RECORD_DIR).mkdir(exist_ok=True)
    (run_dir / CLIENT_RECORD_DIR / CLIENT_MANIFEST).write_text(json.dumps({"data_dir": str(data)}), encoding="utf-8")
    dataset = {"representation": "images"}
    torch.save({"dataset": dataset, "weights": torch.full((3,), weights)}, run_dir / MODEL_FILE)
    (run_dir / SUMMARY_FILE).write_text(json.dumps({"defense": defense}), encoding="utf-8")
    return run_dir


def write_record(
    run_dir: Path, attack: str, setting: str, attacked: dict[str, str], budget: dict, revision: int | None = None
) -> None:
    path = record_paths(run_dir, attack, setting)[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    revision = ATTACKS[attack].revision if revision is None else revision
    record = {"attack": attack, "key_setting": setting, "attacked": attacked, "budget": budget, "revision": revision}
    path.write_text(json.dumps(record), encoding="utf-8")


def test_a_record_names_the_checkpoint_and_data_it_attacked(tmp_path: Path) -> None:
    run_dir = fake_run(tmp_path, "none")
    before = run_fingerprint(run_dir)
    assert set(before) == {"checkpoint_sha256", "data_sha256"} and len(before["checkpoint_sha256"]) == 64
    fake_run(tmp_path, "none", weights=1.0)  # retrained
    assert run_fingerprint(run_dir)["checkpoint_sha256"] != before["checkpoint_sha256"]
    assert run_fingerprint(run_dir)["data_sha256"] == before["data_sha256"]
    (tmp_path / "data" / MANIFEST_NAME).write_text(json.dumps({"kind": "prepared", "created_at": "now"}))
    assert run_fingerprint(run_dir)["data_sha256"] != before["data_sha256"]  # data prepared again
    again = run_fingerprint(run_dir)
    public = tmp_path / "lfw"
    public.mkdir()
    (public / MANIFEST_NAME).write_text(json.dumps({"kind": "prepared", "created_at": "elsewhere"}))
    with data_locations(DataLocations.from_folders([], str(public))):  # the attacker given other public faces
        assert run_fingerprint(run_dir)["data_sha256"] != again["data_sha256"]
    assert run_fingerprint(run_dir) == again


def test_a_stale_record_is_redone_and_a_current_one_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = fake_run(tmp_path, "none")
    budgets = load_budgets("small")
    budget = to_dict(budgets)
    for attack in ATTACK_NAMES:
        write_record(run_dir, attack, "unknown", run_fingerprint(run_dir), budget)
    old = {**run_fingerprint(run_dir), "checkpoint_sha256": "0" * 64}
    write_record(run_dir, "whitebox", "unknown", old, budget)  # made on an earlier checkpoint
    redone: list[tuple[str, ...]] = []
    monkeypatch.setattr(
        "evaluation.run_attacks.attack_run", lambda run, names, setting, *rest: redone.append((*names, setting))
    )
    spec = PipelineConfig(out=tmp_path, config=load_experiment(None, []), budgets=budgets)
    attack_defense(spec, run_dir, b"", None, lambda message: None)
    assert redone == [("whitebox", "unknown")]
    older_method = ATTACKS["whitebox"].revision - 1  # made on this checkpoint, by the attack before its last change
    write_record(run_dir, "whitebox", "unknown", run_fingerprint(run_dir), budget, revision=older_method)
    redone.clear()
    attack_defense(spec, run_dir, b"", None, lambda message: None)
    assert redone == [("whitebox", "unknown")]
    fake_run(tmp_path, "none", weights=2.0)  # retrained: every record is stale now
    redone.clear()
    attack_defense(spec, run_dir, b"", None, lambda message: None)
    assert redone == [("recovery", "whitebox", "blackbox", "demixing", "unknown")]  # no key to recover under none


def test_an_incomplete_comparison_is_refused_in_one_line(tmp_path: Path) -> None:
    budget = to_dict(load_budgets("small"))
    none_run = fake_run(tmp_path, "none")
    masked_run = fake_run(tmp_path, "ppfr_fd")
    for attack in ATTACK_NAMES:
        write_record(none_run, attack, "unknown", run_fingerprint(none_run), budget)
        write_record(masked_run, attack, "unknown", run_fingerprint(masked_run), budget)
    write_record(masked_run, "recovery", "known", run_fingerprint(masked_run), budget)
    assert coverage_gaps(none_run) == []
    assert coverage_gaps(masked_run) == [
        "whitebox/known",
        "blackbox/known",
        "demixing/known",
    ]  # key recovery: unknown only
    with pytest.raises(InputError, match=r"whitebox/known, blackbox/known, demixing/known") as refused:
        evaluate_runs([none_run, masked_run])
    assert "\n" not in str(refused.value) and "hybridmask attack" in str(refused.value)
    write_record(none_run, "blackbox", "unknown", {"checkpoint_sha256": "old", "data_sha256": "old"}, budget)
    assert "blackbox" not in [r["attack"] for r in current_records(none_run)]
    with pytest.raises(InputError, match="blackbox/unknown"):  # a stale record does not count as coverage
        evaluate_runs([none_run])
    assert (none_run / ATTACKS_DIR).is_dir()
