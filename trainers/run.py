"""The driver side of a training run: checks, Ray Train set-up, live metrics, the exported model and summary.

The data comes from the client through a `WindowSource` (offer, plan, windows); nothing here reads the client's
files, and nothing written here names a person, a path of the client's or the key.

RUN_DIR holds: config.yaml (the validated config), client_offer.json (the server's manifest of its data: the
client's public settings and counts), metrics.jsonl (one line per finished epoch, written live by a
controller callback and rewritten from the final checkpoint's history), summary.json, model.pt, and ray/ (Ray
Train's storage: checkpoints). Re-running into the same RUN_DIR resumes from the latest checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from common.errors import InputError
from common.files import atomic_write_json, atomic_write_text
from masking.windows import WindowPlan
from trainers.checkpoints import MODEL_FILE, export_model, load_state
from trainers.config import TrainConfig
from trainers.config_io import from_dict, save_config, to_dict
from trainers.k_source import FixedK, KSource
from trainers.local_ray import cluster_totals, start_ray
from trainers.progress import PROGRESS_EVERY_S
from trainers.window_source import ClientOffer, WindowSource

MIN_CPUS_PER_WORKER = 0.5  # below this, workers only take turns on the same cores
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
OFFER_FILE = "client_offer.json"  # the server's manifest of its data: what the client offered (shapes, counts)


def ray_run_name(run_dir: Path, shared_storage: bool) -> str:
    """Ray Train's run name. In a shared --storage it is unique per run folder, so runs never resume each other;
    in the run folder's own storage it is fixed, so a run folder can be moved and still resume."""
    if not shared_storage:
        return "train"
    return f"{run_dir.name}-{hashlib.sha256(str(run_dir).encode()).hexdigest()[:10]}"


@dataclass(frozen=True)
class WorkerResources:
    cpus_per_worker: float
    torch_threads: int


def check_representation(config: TrainConfig, representation: str, where: str) -> None:
    """The defence trains on what the data holds: raw images for pixel defences, masked channels for the others."""
    if config.uses_pixels and representation != "images":
        raise InputError(
            f"defence {config.defense.name!r} trains on raw images, but {where} holds masked data; "
            "pass the prepared folder (from `hybridmask prepare` or `synth`)"
        )
    if not config.uses_pixels and representation != "masked":
        raise InputError(
            f"defence {config.defense.name!r} trains on masked data, but {where} holds raw images; "
            "mask it first (`hybridmask mask DATA --key KEYFILE --out DIR`) or pass --key to `hybridmask train`"
        )


def plan_epoch(config: TrainConfig, train_rows: int) -> WindowPlan:
    """Batches and windows per epoch for each worker; an error if the data cannot fill one batch per worker."""
    batches = (train_rows // config.scale.workers) // config.optim.batch_size
    if batches == 0:
        raise InputError(
            f"{train_rows} training images cannot give each of {config.scale.workers} workers one batch of "
            f"{config.optim.batch_size}; lower optim.batch_size or --workers"
        )
    return WindowPlan(
        batch_size=config.optim.batch_size,
        window_batches=config.window_batches,
        batches_per_epoch=batches,
        workers=config.scale.workers,
        concentration=config.defense.concentration,
    )


def resolve_resources(config: TrainConfig, cluster: dict[str, float]) -> WorkerResources:
    """CPUs per worker that leave the client (the data) its reserve; an error instead of a hang when the cluster is too small."""
    scale = config.scale
    total_cpus = cluster.get("CPU", 0.0)
    if scale.use_gpu and cluster.get("GPU", 0.0) < scale.workers:
        raise InputError(
            f"--workers {scale.workers} with GPUs needs {scale.workers} GPUs; the cluster has {cluster.get('GPU', 0.0):g}"
        )
    cpus = (
        scale.cpus_per_worker
        if scale.cpus_per_worker is not None
        else min(1.0, (total_cpus - scale.data_cpus) / scale.workers)
    )
    cpus_needed = max(cpus, MIN_CPUS_PER_WORKER) * scale.workers + scale.data_cpus
    if cpus < MIN_CPUS_PER_WORKER or cpus_needed > total_cpus + 1e-9:
        raise InputError(
            f"--workers {scale.workers} needs {cpus_needed:g} CPUs (at least {MIN_CPUS_PER_WORKER:g} a worker, "
            f"{scale.data_cpus:g} kept for the client); the cluster has {total_cpus:g}. Use fewer workers or a larger cluster"
        )
    return WorkerResources(cpus_per_worker=cpus, torch_threads=max(1, math.floor(cpus)))


def saved_run_config(run_dir: Path) -> dict[str, Any] | None:
    """RUN_DIR's config.yaml as a whole config, keys added to the config since it was written at their defaults (so a
    run trained before a new setting existed still resumes and is reused); None when there is none yet."""
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        saved = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        saved = None
    if not isinstance(saved, dict):
        raise InputError(f"{path} is damaged; choose a new --out, or delete {run_dir} to train it again")
    try:
        return to_dict(from_dict(TrainConfig, saved))
    except InputError:
        return saved  # keys this version does not know: compared as written, so it differs


def check_same_run(run_dir: Path, config: TrainConfig) -> None:
    """A RUN_DIR resumes only the run it holds: everything but the number of epochs must match."""
    saved = saved_run_config(run_dir)
    if saved is None:
        return
    current = to_dict(config)
    saved.get("optim", {}).pop("epochs", None)
    current["optim"].pop("epochs")
    if saved != current:
        defense = (saved.get("defense") or {}).get("name")
        raise InputError(
            f"{run_dir} holds a run with a different config (defence {defense!r}, {run_dir / CONFIG_FILE}); "
            "choose a new --out to start another run"
        )


def train(
    client: WindowSource,
    run_dir: str | Path,
    config: TrainConfig,
    k_source: KSource | None = None,
    storage_path: str | None = None,
    summary_extra: dict[str, Any] | None = None,
    write_summary: bool = True,
    quiet: bool = False,
) -> dict[str, Any]:
    """Train one defence on what the client sends; returns the summary (also in RUN_DIR/summary.json).

    summary.json marks a finished run, so it is written once, whole; a caller that adds to the summary after
    training (the adaptive defence) passes write_summary=False and writes it itself."""
    import ray
    import ray.train
    from ray.train.torch import TorchTrainer

    from trainers.loop import WorkerConfig, train_loop_per_worker
    from trainers.metrics_callback import MetricsFileCallback

    config.validate()
    # Ray Train re-routes worker print() through its logger, which echoes every progress line twice.
    os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
    offer = client.offer()
    check_representation(config, offer.representation, "the client's data")
    plan = plan_epoch(config, offer.train_rows)
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    check_same_run(run_dir, config)
    start_ray()
    resources = resolve_resources(config, cluster_totals())
    save_config(config, run_dir / CONFIG_FILE)
    atomic_write_json(run_dir / OFFER_FILE, vars(offer))
    client.accept_plan(plan)
    worker = WorkerConfig(
        config=config,
        offer=offer,
        plan=plan,
        k_source=k_source or FixedK(config.defense.k if config.mixes else 1),
        window_source=client,
        torch_threads=resources.torch_threads,
        progress_every_s=0.0 if quiet else PROGRESS_EVERY_S,
    )
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"worker": worker},
        scaling_config=ray.train.ScalingConfig(
            num_workers=config.scale.workers,
            use_gpu=config.scale.use_gpu,
            resources_per_worker={"CPU": resources.cpus_per_worker},
        ),
        # ray.train exports Ray Train v2's RunConfig at run time; mypy reads v1's, without logging_config and with
        # v1 callbacks: the two ignores below are for that.
        run_config=ray.train.RunConfig(  # type: ignore[call-arg]
            storage_path=storage_path or str(run_dir / "ray"),
            name=ray_run_name(run_dir, shared_storage=storage_path is not None),
            failure_config=ray.train.FailureConfig(max_failures=config.scale.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            callbacks=[MetricsFileCallback(str(run_dir / METRICS_FILE))],  # type: ignore[list-item]
            # Ray Train's own per-report INFO lines repeat every metric; the loop prints its own progress line.
            logging_config=ray.train.LoggingConfig(log_level="WARNING"),
        ),
    )
    started = time.perf_counter()
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"training in {run_dir} ended without a checkpoint: {result.error}")
    with result.checkpoint.as_directory() as directory:
        state = load_state(directory)
    export_model(state, config, offer, run_dir / MODEL_FILE)
    write_metrics(run_dir / METRICS_FILE, state["history"])
    summary = summarise(config, offer, state["history"], plan, time.perf_counter() - started)
    summary.update(summary_extra or {})
    if write_summary:
        atomic_write_json(run_dir / SUMMARY_FILE, summary)
    return summary


def write_metrics(path: Path, history: list[dict[str, Any]]) -> None:
    """metrics.jsonl from the checkpoint's history: exactly the finished epochs, each once."""
    atomic_write_text(path, "".join(json.dumps(epoch) + "\n" for epoch in history))


def summarise(
    config: TrainConfig, offer: ClientOffer, history: list[dict[str, Any]], plan: WindowPlan, seconds: float
) -> dict[str, Any]:
    last_verified = next(epoch for epoch in reversed(history) if "verification_accuracy" in epoch)
    return {
        "defense": config.defense.name,
        "k": config.defense.k if config.defense_row.fixed_k else None,
        "epochs": len(history),
        "verification_accuracy": last_verified["verification_accuracy"],
        "tar_at_far_1e-3": last_verified["tar_at_far_1e-3"],
        "verification_pairs": last_verified["verification_pairs"],
        "train_images": plan.batches_per_epoch * config.optim.batch_size * config.scale.workers,
        "identities": offer.num_classes,
        "workers": config.scale.workers,
        "backbone": config.model.backbone,
        "representation": offer.representation,
        "mean_k": float(np.mean([epoch["mean_k"] for epoch in history])),
        "synthetic_data": offer.synthetic_data,
        "wall_seconds_this_session": seconds,
    }
