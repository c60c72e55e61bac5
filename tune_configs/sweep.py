"""`hybridmask tune`: a Ray Tune sweep of pipeline runs over a search space, ranked by the overall score.

Layout of OUT:

    OUT/sweep_key.json        the fingerprint of the key the sweep masks with (never the key, which lives outside
                              OUT: --key, or one made under $XDG_CONFIG_HOME like `run`'s), checked on --resume
    OUT/baseline/             the unprotected run every trial's score_cls divides by, attacked with the trials'
                              budget so that it proves their attacks (trained, attacked and evaluated once)
    OUT/trials/<defence>-<digest>/   one pipeline run per trial: run/ (training, attacks, report) and client/
                              (the client's masked data, which keeps the names; like every run's run/client/)
    OUT/tune/                 Tune's experiment state, what `--resume` restores
    OUT/results.csv, results.md, pareto.png, best_config.yaml

ASHA stops trials on verification accuracy per epoch (the only signal before the attacks); finished trials are
ranked by `overall`. Trials run one at a time per CPU budget of one training run, so they never over-subscribe.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common.errors import InputError
from common.files import atomic_write_json, read_json
from evaluation.attacks.registry import ATTACK_NAMES
from masking.keys import key_fingerprint
from pipelines.client.keyfile import read_key_file
from pipelines.runs.run_pipeline import PipelineConfig, attack_defense, client_key, train_defense
from trainers.defenses import UNPROTECTED
from trainers.local_ray import cluster_totals, start_ray
from trainers.schema import MANIFEST_NAME
from tune_configs.cleanup import ReleaseStoppedTrials
from tune_configs.results import TrialRow, write_results
from tune_configs.space import SearchSpace
from tune_configs.trial import TrialSetup, run_trial

EXPERIMENT = "tune"
KEY_RECORD = "sweep_key.json"
BASELINE_DIR = "baseline"
TRIAL_DRIVER_CPUS = 0.01
Say = Callable[[str], None]


@dataclass
class SweepConfig:
    space: SearchSpace
    data_dir: Path
    out: Path
    key_file: Path
    base_config: Path | None = None
    samples: int | None = None  # None: the space's own
    resume: bool = False
    budget_preset: str = "small"
    budget_overrides: tuple[str, ...] = ()
    attacks: tuple[str, ...] = ATTACK_NAMES
    key_setting: str = "both"  # the same worst case as `hybridmask run`: leaked key included

    def validate(self) -> None:
        if not (self.data_dir / MANIFEST_NAME).is_file():
            raise InputError(
                f"--data {self.data_dir}: not a prepared folder (no {MANIFEST_NAME}); run `hybridmask prepare` first"
            )
        if self.samples is not None and self.samples < 1:
            raise InputError(f"--samples {self.samples}: give at least 1")
        state = self.out / EXPERIMENT
        if self.resume and not state.is_dir():
            raise InputError(
                f"--resume: {self.out} holds no sweep to resume ({state} is missing); run without --resume"
            )
        if not self.resume and state.is_dir():
            raise InputError(f"{self.out} already holds a sweep; add --resume to continue it, or choose another --out")


def run_sweep(spec: SweepConfig, say: Say = print) -> list[TrialRow]:
    """Run (or resume) the sweep; returns every trial, best overall first, and writes the results files."""
    from ray import tune

    spec.validate()
    spec.out = spec.out.resolve()
    spec.out.mkdir(parents=True, exist_ok=True)
    key = client_key(spec.key_file, say)  # on --resume, `tune` checked it against KEY_RECORD before any work
    atomic_write_json(spec.out / KEY_RECORD, {"key_fingerprint": key_fingerprint(key)})
    baseline = _train_baseline(spec, say)
    start_ray()
    setup = _trial_setup(spec, baseline)
    # A token CPU share (Tune refuses an empty request): the trial's Ray Train workers reserve the real CPUs.
    trainable = tune.with_resources(tune.with_parameters(run_trial, setup=setup), {"cpu": TRIAL_DRIVER_CPUS})
    state = spec.out / EXPERIMENT
    if spec.resume:
        say(f"resuming the sweep in {state} ...")
        tuner = tune.Tuner.restore(str(state), trainable, resume_unfinished=True, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable,
            param_space=spec.space.param_space(),
            tune_config=tune.TuneConfig(
                num_samples=spec.samples or spec.space.samples,
                scheduler=_scheduler(spec),
                max_concurrent_trials=concurrent_trials(spec, cluster_totals()),
                trial_dirname_creator=lambda trial: trial.trial_id,
            ),
            run_config=tune.RunConfig(
                storage_path=str(spec.out), name=EXPERIMENT, verbose=1, callbacks=[ReleaseStoppedTrials()]
            ),
        )
    grid = tuner.fit()
    interrupted = _unfinished_trial_ids(state)
    rows = [TrialRow.from_result(grid[index], interrupted) for index in range(len(grid))]
    write_results(rows, spec.out, spec.space, setup, say)
    if interrupted:
        finished = sum(row.status == "finished" for row in rows)
        say(f"the sweep was interrupted with {finished} of {len(rows)} trials finished; `--resume` continues it")
    return rows


def _unfinished_trial_ids(state: Path) -> set[str]:
    """The trials Tune's saved state holds as neither terminated nor errored: those an interruption (Ctrl-C) left,
    which `--resume` runs. fit()'s own results cannot tell them from finished ones: stopping, Tune marks the trials
    it had started as terminated in memory, after saving them as they were."""
    from ray.tune import ExperimentAnalysis

    trials = ExperimentAnalysis(str(state)).trials
    return {trial.trial_id for trial in trials if trial.status not in ("TERMINATED", "ERROR")}


def check_sweep_key(out: Path, key_file: Path, resume: bool) -> None:
    """Before any work: a resumed sweep masks its remaining trials with the key its first trials were masked with
    (a new key would be made for a missing file, and a different one would make trials incomparable)."""
    if not resume:
        return
    if not key_file.is_file():
        raise InputError(
            f"--key {key_file}: no key file there; a resumed sweep needs the key it began with (pass it with --key)"
        )
    record = out / KEY_RECORD
    if not record.is_file():
        return  # a sweep begun before the record existed
    fix = f"delete {record} if --key is the key the sweep began with"
    expected = read_json(record, fix)
    if not isinstance(expected, dict) or "key_fingerprint" not in expected:
        raise InputError(f"{record} names no key fingerprint; {fix}")
    actual = key_fingerprint(read_key_file(key_file))
    if actual != expected["key_fingerprint"]:
        raise InputError(
            f"--key {key_file}: its fingerprint {actual} is not the sweep's ({expected['key_fingerprint']}, "
            f"{record}); pass the key the sweep began with"
        )


def _trial_setup(spec: SweepConfig, baseline: Path) -> TrialSetup:
    return TrialSetup(
        space_file=str(spec.space.path),
        data_dir=str(spec.data_dir.resolve()),
        out=str(spec.out),
        key_file=str(spec.key_file.resolve()),
        baseline_dir=str(baseline),
        base_config=str(spec.base_config.resolve()) if spec.base_config else None,
        budget_preset=spec.budget_preset,
        budget_overrides=list(spec.budget_overrides),
        attacks=list(spec.attacks),
        key_setting=spec.key_setting,
    )


def _train_baseline(spec: SweepConfig, say: Say) -> Path:
    """The unprotected model on the same data and learner settings, trained once for every trial's score_cls, and
    attacked and evaluated with the trials' budget: its report proves (or not) the attacks every trial is judged by."""
    from evaluation.budgets import load_budgets
    from evaluation.evaluate_runs import evaluate_runs
    from evaluation.run_attacks import AttackCaches

    config = spec.space.config({}, spec.base_config, [f"defense.name={UNPROTECTED}"])
    pipeline = PipelineConfig(
        out=spec.out,
        config=config,
        budgets=load_budgets(spec.budget_preset, list(spec.budget_overrides)),
        defenses=(UNPROTECTED,),
        attacks=spec.attacks,
    )
    run_dir = spec.out / BASELINE_DIR
    train_defense(pipeline, UNPROTECTED, spec.data_dir, run_dir, say)
    caches = AttackCaches(spec.out / "attack-cache")
    attack_defense(pipeline, run_dir, b"", caches, say)  # no key: `none` is attacked in the unknown setting only
    evaluate_runs([run_dir], baseline=run_dir, caches=caches, attacks=spec.attacks)
    return run_dir


def _scheduler(spec: SweepConfig):
    from ray.tune.schedulers import ASHAScheduler

    epochs = spec.space.config({}, spec.base_config).optim.epochs
    return ASHAScheduler(
        time_attr="epoch",
        metric="verification_accuracy",
        mode="max",
        max_t=epochs,
        grace_period=min(spec.space.scheduler.grace_period, epochs),
        reduction_factor=spec.space.scheduler.reduction_factor,
    )


def concurrent_trials(spec: SweepConfig, cluster: dict[str, float]) -> int:
    """As many trials at once as the cluster fits training runs (workers × CPUs each + Ray Data's reserve)."""
    from trainers.run import resolve_resources

    config = spec.space.config({}, spec.base_config).train_config()
    resources = resolve_resources(config, cluster)
    per_trial = resources.cpus_per_worker * config.scale.workers + config.scale.data_cpus
    return max(1, math.floor(cluster.get("CPU", 0.0) / per_trial + 1e-9))
