"""The FR learner on Ray Train: it learns, resumes, survives a killed worker, and refuses bad input before Ray."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from common.errors import InputError
from pipelines.runs.experiment_config import load_experiment
from pipelines.runs.training import run_training
from trainers.config import TrainConfig
from trainers.config_io import load_config
from trainers.dataset_info import inspect_dataset
from trainers.run import METRICS_FILE, SUMMARY_FILE, plan_epoch, resolve_resources

SUMMARY_KEYS = {
    "defense",
    "epochs",
    "verification_accuracy",
    "tar_at_far_1e-3",
    "train_images",
    "workers",
    "synthetic_data",
}
SMALL = ["optim.batch_size=16", "model.embedding_size=64", "window_batches=2"]


def epochs_in(run_dir: Path) -> list[dict]:
    return [
        json.loads(line) for line in (run_dir / METRICS_FILE).read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def training_worker_pids(ray_module) -> list[int]:
    """PIDs of this Ray instance's Ray Train workers: descendants of our own raylet, never another user's Ray."""
    import psutil

    raylet = ray_module._private.worker._global_node.all_processes["raylet"][0].process.pid
    return [
        p.pid for p in psutil.Process(raylet).children(recursive=True) if p.name().startswith("ray::RayTrainWorker")
    ]


def unprotected_config(epochs: int):
    """The 2-worker `none` run of this module; resuming it with more epochs must give the same config otherwise."""
    return load_experiment(
        None, ["defense.name=none", f"optim.epochs={epochs}", "scale.workers=2", "scale.max_failures=1", *SMALL]
    )


@pytest.fixture(scope="module")
def killed_worker_run(
    ray_cluster, synthetic_faces: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict]:
    """A 4-epoch `none` run on 2 workers, one of which is killed once the first epoch is checkpointed: the fault
    test reads how it recovered, the learning and resuming tests read the run it still finished (one Ray Train run
    for the three, each of which costs seconds of process starts)."""
    run_dir = tmp_path_factory.mktemp("runs") / "none"
    config = unprotected_config(epochs=4)
    outcome: dict = {}
    learner = threading.Thread(target=lambda: outcome.update(summary=run_training(synthetic_faces, run_dir, config)))
    learner.start()
    deadline = time.monotonic() + 300
    while not ((run_dir / METRICS_FILE).is_file() and epochs_in(run_dir)):  # wait for the first checkpointed epoch
        assert learner.is_alive() and time.monotonic() < deadline, "training ended or stalled before its first epoch"
        time.sleep(0.2)
    workers = training_worker_pids(ray_cluster)
    assert len(workers) == 2
    os.kill(workers[-1], signal.SIGKILL)
    learner.join(timeout=600)
    assert "summary" in outcome, "the run did not finish after one worker was killed"
    return run_dir, outcome["summary"]


def test_a_killed_worker_is_restarted_and_no_epoch_is_lost_or_repeated(killed_worker_run) -> None:
    run_dir, summary = killed_worker_run
    epochs = epochs_in(run_dir)
    assert [epoch["epoch"] for epoch in epochs] == [1, 2, 3, 4]
    assert any("resumed_from_epoch" in epoch for epoch in epochs), (
        "the restarted workers did not resume from a checkpoint"
    )
    assert summary["epochs"] == 4


def test_two_cpu_workers_lift_verification_clearly_above_chance(killed_worker_run) -> None:
    run_dir, summary = killed_worker_run
    assert set(summary) >= SUMMARY_KEYS
    assert summary["workers"] == 2 and summary["synthetic_data"] is True
    assert summary["verification_accuracy"] > 0.7, summary  # chance is 0.5 on balanced pairs
    assert json.loads((run_dir / SUMMARY_FILE).read_text()) == summary
    assert [epoch["epoch"] for epoch in epochs_in(run_dir)] == [1, 2, 3, 4]
    assert (run_dir / "model.pt").is_file() and (run_dir / "config.yaml").is_file()


def test_rerunning_a_finished_run_with_more_epochs_continues_from_its_checkpoint(
    killed_worker_run, synthetic_faces
) -> None:
    run_dir, _ = killed_worker_run
    before = epochs_in(run_dir)
    config = unprotected_config(epochs=5)
    summary = run_training(synthetic_faces, run_dir, config)
    after = epochs_in(run_dir)
    assert after[:4] == before, "finished epochs must be kept as they were, not retrained"
    assert [epoch["epoch"] for epoch in after] == [1, 2, 3, 4, 5]
    assert after[4]["resumed_from_epoch"] == 4
    assert summary["epochs"] == 5


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["defense.name=adversarial"], "unknown defence"),
        (["defense.name=mixup", "defense.k=40", "optim.batch_size=16"], "larger than the batch"),
        (["model.embedding_size=1"], "embedding_size"),
        (["optim.batch_size=1"], "batch_size"),
        (["scale.workers=0"], "scale.workers"),
    ],
)
def test_config_errors_name_the_key_before_ray_starts(overrides, message) -> None:
    with pytest.raises(InputError, match=message):
        load_config(TrainConfig, None, overrides)


def test_more_workers_than_the_cluster_can_place_is_an_error_not_a_hang() -> None:
    config = load_config(TrainConfig, None, ["scale.workers=4"])
    with pytest.raises(InputError, match=r"needs .* CPUs .* the cluster has 2"):
        resolve_resources(config, {"CPU": 2.0})
    gpu = load_config(TrainConfig, None, ["scale.workers=2", "scale.use_gpu=true"])
    with pytest.raises(InputError, match="GPUs"):
        resolve_resources(gpu, {"CPU": 16.0, "GPU": 1.0})
    assert resolve_resources(load_config(TrainConfig, None, ["scale.workers=2"]), {"CPU": 2.0}).cpus_per_worker == 0.5


def test_runs_are_sized_from_the_cpus_the_node_registered(ray_cluster) -> None:
    from trainers.local_ray import cluster_totals

    totals = cluster_totals()
    assert totals["CPU"] == 2.0 and totals["CPU"] == ray_cluster.cluster_resources()["CPU"]
    assert resolve_resources(load_config(TrainConfig, None, ["scale.workers=2"]), totals).cpus_per_worker == 0.5


def test_data_without_a_verify_split_is_refused(synthetic_faces: Path, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "no-verify"
    shutil.copytree(synthetic_faces, broken)
    shutil.rmtree(broken / "verify")
    with pytest.raises(InputError, match="no 'verify' split"):
        inspect_dataset(broken)


def test_defense_and_data_representation_must_match(
    synthetic_faces: Path, masked_synthetic_faces: Path, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match="pass --key"):
        run_training(synthetic_faces, tmp_path / "a", load_experiment(None, ["defense.name=ppfr_fd"]))
    with pytest.raises(InputError, match="trains on raw images"):
        run_training(masked_synthetic_faces, tmp_path / "b", load_experiment(None, ["defense.name=none"]))


def test_a_batch_larger_than_the_data_is_refused(synthetic_faces: Path) -> None:
    config = load_config(TrainConfig, None, ["optim.batch_size=512"])
    with pytest.raises(InputError, match="cannot give each of 2 workers one batch"):
        plan_epoch(config, inspect_dataset(synthetic_faces).num_train_rows)


def test_a_run_written_before_a_setting_existed_resumes_as_the_same_run_and_a_changed_one_does_not(
    tmp_path: Path,
) -> None:
    import yaml

    from pipelines.runs.run_pipeline import finished_run
    from trainers.config_io import to_dict
    from trainers.run import CONFIG_FILE, check_same_run

    config = load_experiment(None, ["defense.name=ppfr_fd", "optim.epochs=2"])
    written_then = to_dict(config.train_config())
    del written_then["scale"]["stream_above_mb"]  # a setting this version added, at its default
    (tmp_path / CONFIG_FILE).write_text(yaml.safe_dump(written_then), encoding="utf-8")
    (tmp_path / SUMMARY_FILE).write_text(json.dumps({"epochs": 2}), encoding="utf-8")
    check_same_run(tmp_path, config.train_config())
    assert finished_run(tmp_path, config), "a finished run is reused, not trained again"
    changed = load_experiment(None, ["defense.name=ppfr_fd", "optim.epochs=2", "scale.stream_above_mb=1"])
    assert not finished_run(tmp_path, changed)
    with pytest.raises(InputError, match="holds a run with a different config"):
        check_same_run(tmp_path, changed.train_config())
