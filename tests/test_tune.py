"""`hybridmask tune`: search spaces are checked before work, a two-trial sweep ranks its trials by overall and writes
its results, and a sweep interrupted mid-way resumes without redoing its finished trial."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from common.errors import InputError
from pipelines.client.keyfile import default_key_path, read_key_file
from pipelines.runs.experiment_config import load_experiment
from tests.server_side_search import leaks, private_secrets, server_side_files
from tune_configs.results import TrialRow, pareto_front, ranked
from tune_configs.space import load_space
from tune_configs.space_files import available_spaces

REPO_ROOT = Path(__file__).resolve().parents[1]
# The recovery attack alone, in both key settings, at a few steps: the sweep machinery is under test here. A trial
# attacks through the same `attack_defense` as `run`, whose every attack the reduced demo's tests run (test_attacks).
ATTACKS = "recovery"
TINY_BUDGET = [
    "budget.max_targets=8", "budget.max_identities=4", "budget.threads=2", "budget.recovery.steps=15",
    "budget.evaluator.classifier_epochs=2",
]  # fmt: skip
SWEEP_TIMEOUT_S = 600


def two_trial_space(folder: Path) -> Path:
    """Two grid points of the masking ratio for a fixed-k hybrid on one Ray Train worker: no RL in the loop and one
    worker process to start, so trials are short (two-worker training is tested in test_training and the demo)."""
    space = {
        "description": "two masking ratios (test)",
        "samples": 1,
        "fixed": {
            "defense.name": "hybrid_fixed",
            "defense.k": 2,
            "optim.epochs": 2,
            "optim.batch_size": 8,
            "model.embedding_size": 64,
            "window_batches": 2,
            "scale.workers": 1,
        },
        "search": {"masking.ratio": {"grid": [0.3, 0.7]}},
        "scheduler": {"grace_period": 2, "reduction_factor": 2},
    }
    path = folder / "two_ratios.yaml"
    path.write_text(yaml.safe_dump(space), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def few_faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 synthetic people x 10 images at 32 px: quick to train and judge, and the baseline learns. With 6 images a
    person its 2-epoch baseline verified 90 pairs at 0.48-0.69 over training seeds, at chance on one CI machine; with 10
    it verified 270 pairs at 0.63-0.79."""
    from pipelines.data.prepare import PrepareConfig
    from pipelines.data.synth import prepare_synthetic

    out = tmp_path_factory.mktemp("few") / "faces"
    prepare_synthetic(out, identities=16, images_per_identity=10, options=PrepareConfig(size=32))
    return out


def tune_command(space: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", "tune", "--space", str(space), "--data", str(data), "--out", str(out),
            "--attacks", ATTACKS, *(f"--set={value}" for value in TINY_BUDGET), *extra]  # fmt: skip


def test_every_shipped_space_loads_and_makes_valid_configs() -> None:
    assert {"k_sets", "smoke"} <= set(available_spaces())
    for name in available_spaces():
        space = load_space(name)
        assert space.search, f"space {name} searches nothing"
        assert set(space.param_space()) == set(space.search)


def test_k_sets_space_covers_the_candidate_sets_ratios_algorithms_and_reward_weights() -> None:
    search = load_space("k_sets").search
    assert search["adaptive.candidate_set"]["choice"] == [[2, 3], [2, 3, 4], [2, 3, 4, 5, 6], [3, 4, 5, 6, 7, 8]]
    assert set(search["strategy.algorithm"]["choice"]) == {"ppo", "reinforce"}
    assert {"masking.ratio", "adaptive.loss_weight", "adaptive.utility_penalty"} <= set(search)


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ({"masking.ratio": {"choice": [0.5, 1.5]}}, "masking.ratio = 1.5"),
        ({"optim.nonsense": {"choice": [1]}}, "nonsense"),
        ({"masking.ratio": {"between": [0.1, 0.9]}}, "must be one of"),
        ({"adaptive.loss_weight": {"uniform": [0.5]}}, "[low, high]"),
    ],
)
def test_a_bad_space_is_refused_naming_the_key(tmp_path: Path, search: dict, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"samples": 2, "search": search}), encoding="utf-8")
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_space(str(path))


def test_pareto_front_keeps_the_points_nothing_beats_on_both_axes() -> None:
    points = [(0.9, 0.2), (0.5, 0.5), (0.4, 0.4), (0.2, 0.9), (0.9, 0.1)]
    assert pareto_front(points) == [0, 1, 3]


def test_ranking_puts_finished_trials_first_by_overall() -> None:
    def row(trial_id: str, status: str, overall: float | None) -> TrialRow:
        metrics = {} if overall is None else {"overall": overall}
        return TrialRow(trial_id, {}, status, metrics)

    rows = [row("a", "stopped early at epoch 1", None), row("b", "finished", 0.4), row("c", "finished", 0.7)]
    assert [r.trial_id for r in ranked(rows)] == ["c", "b", "a"]


def test_an_interrupted_sweeps_unstarted_and_part_way_trials_say_so() -> None:
    from types import SimpleNamespace

    def result(metrics: dict | None, config: dict | None, path: str = "/sweep/tune/a_00001") -> SimpleNamespace:
        return SimpleNamespace(metrics=metrics, config=config, error=None, path=path)

    unstarted = TrialRow.from_result(result({}, None), interrupted={"a_00001"})
    assert (unstarted.status, unstarted.params, unstarted.trial_id) == ("not started", {}, "a_00001")
    assert unstarted.interrupted
    part_way = TrialRow.from_result(result({"epoch": 1, "trial_id": "b"}, {"masking.ratio": 0.3}), interrupted={"b"})
    assert part_way.status == "interrupted at epoch 1" and part_way.params == {"masking.ratio": 0.3}
    assert part_way.interrupted
    stopped = TrialRow.from_result(result({"epoch": 1, "trial_id": "b"}, {"masking.ratio": 0.3}), interrupted={"c"})
    assert stopped.status == "stopped early at epoch 1" and not stopped.interrupted


def wait_for(predicate, process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise AssertionError(
                f"the sweep exited (code {process.returncode}) before the awaited step:\n{output[-4000:]}"
            )
        if time.monotonic() > deadline:
            raise AssertionError("the awaited step of the sweep did not come in time")
        time.sleep(1.0)


def tune_recorded_a_final_result(out: Path) -> bool:
    """Tune's driver appends each result it has processed to the trial's result.json; a sleep after the trial's own
    report.json raced it on a loaded machine."""
    return any('"overall"' in path.read_text(encoding="utf-8") for path in out.glob("tune/*/result.json"))


@pytest.mark.slow
def test_sweep_ranks_two_trials_and_resumes_after_an_interruption(few_faces: Path, tmp_path: Path) -> None:
    space, out = two_trial_space(tmp_path), tmp_path / "sweep"
    # HYBRIDMASK_DEBUG: an input error shows its traceback, so a failure here says where it came from.
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(REPO_ROOT), "HYBRIDMASK_DEBUG": "1"}
    first = subprocess.Popen(tune_command(space, few_faces, out), cwd=REPO_ROOT, env=env, start_new_session=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        # Interrupt (Ctrl-C) as soon as Tune has recorded one trial's final result (its `overall`), which the trial
        # reports after writing its run's report: the other trial is unstarted or part-way.
        wait_for(lambda: tune_recorded_a_final_result(out), first, SWEEP_TIMEOUT_S)
        os.killpg(first.pid, signal.SIGINT)
        first.wait(timeout=120)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    first_log = first.stdout.read()
    assert first.returncode == 130, f"an interrupted sweep exits as a shell reports Ctrl-C:\n{first_log[-3000:]}"
    finished_report = next(out.glob("trials/*/run/report.json"))
    stamp = finished_report.stat().st_mtime_ns
    # An interrupted sweep writes the results it has (nothing lost) and says how to go on; it must not have
    # finished both trials.
    assert "the sweep was interrupted with 1 of 2 trials finished; `--resume` continues it" in first_log, first_log[
        -3000:
    ]
    with (out / "results.csv").open(encoding="utf-8") as handle:
        statuses = [row["status"] for row in csv.DictReader(handle)]
    assert statuses[0] == "finished" and statuses[1] != "finished", statuses

    resumed = subprocess.run(tune_command(space, few_faces, out, "--resume"), cwd=REPO_ROOT, env=env,
                             capture_output=True, text=True, timeout=SWEEP_TIMEOUT_S)  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert finished_report.stat().st_mtime_ns == stamp, "the trial finished before the interruption was redone"

    with (out / "results.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["status"] for row in rows] == ["finished", "finished"]
    assert sorted(row["masking.ratio"] for row in rows) == ["0.3", "0.7"]
    overall = [float(row["overall"]) for row in rows]
    # 0 is a fair score: a 2-epoch trial may keep none of the baseline's above-chance accuracy (score_cls 0)
    assert overall == sorted(overall, reverse=True) and all(0.0 <= value <= 1.0 for value in overall)
    assert (out / "pareto.png").stat().st_size > 10_000
    assert "| 1 |" in (out / "results.md").read_text(encoding="utf-8")
    best = load_experiment(out / "best_config.yaml", [])
    assert best.defense.name == "hybrid_fixed" and best.masking.ratio == float(rows[0]["masking.ratio"])
    # Tune's state and results, the trials' masked data, runs, checkpoints and attack caches: none of it may hold
    # the key, a name or the client's data folder.
    written = server_side_files(out)
    assert any(path.parent.parent == out / "tune" for path in written), "Tune's per-trial results must be searched"
    key_file = default_key_path(out)  # made outside OUT, whose results people share
    assert not list(out.rglob("*.key")) and key_file.is_file()
    found = leaks(out, written, private_secrets([few_faces], read_key_file(key_file)))
    assert not found, "\n".join(found[:20])
