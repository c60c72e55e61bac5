"""`run` and `tune` refuse an unprotected baseline that verifies at chance as soon as it is trained or reused, before
any attack or other defence is spent on scores that would fail at the end (every score_cls divides by its lead)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.errors import InputError
from evaluation.budgets import load_budgets
from pipelines.runs.experiment_config import load_experiment
from pipelines.runs.run_pipeline import PipelineConfig, train_defense
from trainers.config_io import save_config
from trainers.defenses import UNPROTECTED
from trainers.run import CONFIG_FILE, SUMMARY_FILE


def finished_baseline(run_dir: Path, spec: PipelineConfig, accuracy: float) -> None:
    """A run folder that `train_defense` takes for a finished `none` run of this spec, verifying at `accuracy`."""
    config = spec.config_for(UNPROTECTED)
    run_dir.mkdir(parents=True)
    save_config(config.train_config(), run_dir / CONFIG_FILE)
    summary = {"epochs": config.optim.epochs, "verification_accuracy": accuracy}
    (run_dir / SUMMARY_FILE).write_text(json.dumps(summary), encoding="utf-8")


@pytest.mark.usefixtures("ray_must_not_start")
def test_a_baseline_at_chance_is_refused_before_its_attacks(tmp_path: Path) -> None:
    spec = PipelineConfig(out=tmp_path, config=load_experiment(None, []), budgets=load_budgets("small", []))
    said: list[str] = []
    finished_baseline(tmp_path / "chance", spec, 0.489)
    with pytest.raises(InputError, match=r"verifies at 0\.489, at or below chance.*--epochs"):
        train_defense(spec, UNPROTECTED, tmp_path / "data", tmp_path / "chance", said.append)
    finished_baseline(tmp_path / "learned", spec, 0.61)
    train_defense(spec, UNPROTECTED, tmp_path / "data", tmp_path / "learned", said.append)
    assert said == [f"none: trained earlier, reusing {tmp_path / name}" for name in ("chance", "learned")]
