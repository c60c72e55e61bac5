"""`hybridmask tune`: a Ray Tune sweep of pipeline runs over a search space, ranked by the overall score.

Layout of OUT:

    OUT/client.key            the client's key (made when missing; never in a trial's config or results)
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
from evaluation.attacks.registry import ATTACK_NAMES
from pipelines.runs.run_pipeline import KEY_FILE, PipelineConfig, attack_defense, client_key, train_defense
from trainers.defenses import UNPROTECTED
from trainers.local_ray import cluster_totals, start_ray
from trainers.schema import MANIFEST_NAME
from tune_configs.cleanup import ReleaseStoppedTrials
from tune_configs.results import TrialRow, write_results
from tune_configs.space import SearchSpace
from tune_configs.trial import TrialSetup, run_trial

EXPERIMENT = "tune"
BASELINE_DIR = "baseline"
TRIAL_DRIVER_CPUS = 0.01
Say = Callable[[str], None]


@dataclass
class SweepConfig:
    space: SearchSpace
    data_dir: Path
    out: Path
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
    client_key(spec.out / KEY_FILE, say)
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
    rows = [TrialRow.from_result(grid[index]) for index in range(len(grid))]
    write_results(rows, spec.out, spec.space, setup, say)
    return rows


def _trial_setup(spec: SweepConfig, baseline: Path) -> TrialSetup:
    return TrialSetup(
        space_file=str(spec.space.path),
        data_dir=str(spec.data_dir.resolve()),
        out=str(spec.out),
        key_file=str(spec.out / KEY_FILE),
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
