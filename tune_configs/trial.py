"""One Tune trial: a pipeline run of one defence, reporting every epoch and, last, the overall score.

Epochs 1 … E−1 are reported as training finishes them (verification accuracy, loss, mean k), so ASHA can stop a
trial whose learner falls behind before its attacks spend time on it. The report of epoch E waits for the attacks
and the evaluation and carries the privacy measures and `overall` too.

A trial's folder is named by a digest of its settings, so a trial that Tune restarts after an interruption finds
its own training checkpoints and attack records and goes on from them. The key is read from its file inside the
trial; neither the key nor the client's data folder is ever part of a trial's config or results.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.runs.experiment_config import ExperimentConfig
from pipelines.runs.run_pipeline import PipelineConfig, attack_defense, finished_run
from tune_configs.space import SearchSpace

TRIALS_DIR = "trials"
RUN_DIR = "run"  # the trial's training run, inside its folder
CLIENT_DIR = "client"  # the client's side of a trial: its masked data, which keeps the names (never the server's)
EPOCH_FIELDS = ("epoch", "verification_accuracy", "tar_at_far_1e-3", "train_loss", "mean_k")
SCORE_FIELDS = ("overall", "score_pp", "score_cls", "S1", "S2", "S3", "S4")
POLL_SECONDS = 2.0
TRIAL_DIR_FIELD = "trial_dir"  # in every report: the trial's folder, for the callback that frees a stopped run


@dataclass
class TrialSetup:
    """What every trial shares. It reaches the trials through Ray's object store (`tune.with_parameters`), never
    through the param space: Tune writes the param space into every trial's results, and this holds the client's
    data folder and key file paths."""

    space_file: str
    data_dir: str
    out: str
    key_file: str
    baseline_dir: str
    base_config: str | None
    budget_preset: str
    budget_overrides: list[str]
    attacks: list[str]
    key_setting: str

    def space(self) -> SearchSpace:
        from tune_configs.space import load_space

        return load_space(self.space_file)


def trial_config(setup: TrialSetup, params: dict[str, Any]) -> ExperimentConfig:
    base = Path(setup.base_config) if setup.base_config else None
    return setup.space().config(params, base)


def trial_dir(setup: TrialSetup, config: ExperimentConfig) -> Path:
    from trainers.config_io import to_dict

    digest = hashlib.sha256(json.dumps(to_dict(config), sort_keys=True).encode()).hexdigest()[:12]
    return Path(setup.out) / TRIALS_DIR / f"{config.defense.name}-{digest}"


def run_trial(params: dict[str, Any], setup: TrialSetup) -> None:
    """The Tune trainable: `params` are the sampled values, `setup` what every trial shares."""
    from ray import tune

    scores = run_defense_trial(setup, dict(params), tune.report)
    print(f"trial finished: overall {scores['overall']:.3f}", flush=True)


def run_defense_trial(
    setup: TrialSetup, params: dict[str, Any], report: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """Train (reporting epochs), attack and evaluate one trial's defence; returns the last report."""
    from evaluation.budgets import load_budgets
    from evaluation.evaluate_runs import evaluate_runs
    from evaluation.run_attacks import AttackCaches
    from pipelines.client.keyfile import read_key_file
    from pipelines.runs.training import masked_data_for

    config = trial_config(setup, params)
    folder = trial_dir(setup, config)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.json").write_text(json.dumps(params, indent=2) + "\n", encoding="utf-8")
    key = read_key_file(Path(setup.key_file))
    data_dir = Path(setup.data_dir)
    if not config.uses_pixels:
        (folder / CLIENT_DIR).mkdir(exist_ok=True)
        data_dir = masked_data_for(data_dir, key, config.masking.ratio, folder / CLIENT_DIR / "masked")
    run_dir = folder / RUN_DIR

    def report_with_folder(row: dict[str, Any]) -> None:
        report({**row, TRIAL_DIR_FIELD: str(folder)})

    last_epoch = train_reporting_epochs(data_dir, run_dir, config, report_with_folder)

    spec = PipelineConfig(
        out=folder,
        config=config,
        budgets=load_budgets(setup.budget_preset, setup.budget_overrides),
        defenses=(config.defense.name,),
        attacks=tuple(setup.attacks),
        key_setting=setup.key_setting,
        key_file=Path(setup.key_file),
    )
    caches = AttackCaches(Path(setup.out) / "attack-cache")
    attack_defense(spec, run_dir, key, caches, print)
    (run_report,) = evaluate_runs([run_dir], baseline=setup.baseline_dir, caches=caches, attacks=spec.attacks)
    measures = run_report.to_dict()
    final = {
        **last_epoch,
        **{name: measures[name] for name in SCORE_FIELDS},
        "defense": config.defense.name,
    }
    report_with_folder(final)
    return final


def train_reporting_epochs(
    data_dir: Path, run_dir: Path, config: ExperimentConfig, report: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """Train in a thread while this one reports each finished epoch but the last; returns the last epoch's row."""
    from pipelines.runs.training import run_training

    epochs = config.optim.epochs
    reported: set[int] = set()
    if not finished_run(run_dir, config):
        failure: list[BaseException] = []

        def train() -> None:
            try:
                run_training(data_dir, run_dir, config)
            except BaseException as error:  # handed to the trial's thread, which raises it
                failure.append(error)

        worker = threading.Thread(target=train, name="trial-training", daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(POLL_SECONDS)
            _report_new_epochs(run_dir, epochs, reported, report)
        if failure:
            raise failure[0]
    rows = _report_new_epochs(run_dir, epochs, reported, report)
    return rows[epochs]


def _report_new_epochs(
    run_dir: Path, epochs: int, reported: set[int], report: Callable[[dict[str, Any]], None]
) -> dict[int, dict]:
    from trainers.run import METRICS_FILE

    path = run_dir / METRICS_FILE
    rows: dict[int, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:  # a line being written right now
                    continue
                rows[int(row["epoch"])] = {name: row[name] for name in EPOCH_FIELDS if name in row}
    for epoch in sorted(rows):
        if epoch < epochs and epoch not in reported:
            report(rows[epoch])
            reported.add(epoch)
    return rows
