"""The per-worker Ray Train loop: windows of W batches, each asked of the client with the k its KSource gives.

A worker's only data path is its `WindowSource` (the client): it asks for window (epoch, window, rank, k) and
trains on what comes back, already mixed. Each epoch ends with a verification pass on rank 0 and one
`ray.train.report` carrying the epoch's metrics, the whole metrics history so far, and (from rank 0) a
checkpoint. A restarted worker group resumes from that checkpoint and asks for the same windows again, which the
client answers identically (seeded), so an epoch is either fully recorded or redone from its start.

The worker receives one frozen `WorkerConfig`; `setup_worker`, `train_window` and `end_epoch` are its steps,
callable from tests.
"""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import ray.train
import ray.train.torch
import ray.util
import torch
import torch.distributed as dist

from masking.windows import WindowPlan, WindowRequest
from trainers.checkpoints import load_state, save_state
from trainers.config import TrainConfig
from trainers.k_source import KSource, WindowReport
from trainers.model import FaceModel, build_face_model
from trainers.progress import PROGRESS_EVERY_S, StepProgress
from trainers.verification import pair_scores, verify
from trainers.window_source import ClientOffer, SentBatch, VerificationSet, WindowSource


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a Train worker is handed, typed and fixed by the driver before training."""

    config: TrainConfig
    offer: ClientOffer
    plan: WindowPlan
    k_source: KSource
    window_source: WindowSource
    torch_threads: int
    progress_every_s: float = PROGRESS_EVERY_S  # 0: no step lines (--quiet)


@dataclass
class WorkerState:
    """A worker's model, optimiser and progress; `history` holds every finished epoch's metrics."""

    model: torch.nn.Module  # as prepared by Ray Train (DDP-wrapped with more than one worker)
    inner: FaceModel
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    device: torch.device
    rank: int
    world: int
    progress: StepProgress = field(default_factory=lambda: StepProgress(0, every_s=0.0))  # step lines on rank 0
    start_epoch: int = 0
    resumed: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    holdout: SentBatch | None = None
    verification: VerificationSet | None = None
    worker_placement_group: str | None = None


def _to_input(inputs: torch.Tensor) -> torch.Tensor:
    return inputs.float().contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def embed_inputs(
    backbone: torch.nn.Module, inputs: torch.Tensor, mirrored: torch.Tensor | None, device: torch.device
) -> np.ndarray:
    """Flip-fused embeddings (where a mirrored input exists) of model inputs, in batches."""
    backbone.eval()
    chunks = []
    for start in range(0, len(inputs), 256):
        embedding = backbone(_to_input(inputs[start : start + 256]).to(device)).float()
        if mirrored is not None:
            embedding = embedding + backbone(_to_input(mirrored[start : start + 256]).to(device)).float()
        chunks.append(embedding.cpu().numpy())
    return np.concatenate(chunks)


@torch.no_grad()
def _clean_loss(model: FaceModel, holdout: SentBatch, batch_size: int, device: torch.device) -> float:
    model.eval()
    losses = [
        float(
            model(
                _to_input(holdout.inputs[start : start + batch_size]).to(device),
                holdout.labels[start : start + batch_size].to(device),
                holdout.weights[start : start + batch_size].to(device),
            )
        )
        for start in range(0, len(holdout.inputs), batch_size)
    ]
    model.train()
    return float(np.mean(losses))


def build_optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    optim = config.optim
    if optim.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=optim.lr, weight_decay=optim.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay)


def train_step(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: SentBatch, device: torch.device
) -> float:
    """One optimiser step on one batch as the client sent it: mixed-label margin loss over its k labels."""
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        loss = model(_to_input(batch.inputs).to(device), batch.labels.to(device), batch.weights.to(device))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def _mean_across_workers(value: float, device: torch.device) -> float:
    if not (dist.is_available() and dist.is_initialized()):
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor.item() / dist.get_world_size())


def _quiet_report_lines() -> None:
    """Ray Train 2.60 logs every report (all metrics) at INFO under a logger named by its source file's path,
    which `LoggingConfig(log_level=...)` does not reach; the loop prints its own line per epoch."""
    try:
        from ray.train.v2._internal.execution import context as train_context
    except ImportError:  # another Ray layout: nothing to quiet
        return
    logging.getLogger(train_context.__file__).setLevel(logging.WARNING)


def setup_worker(worker: WorkerConfig) -> WorkerState:
    """Model, optimiser and schedule, restored from the latest checkpoint when there is one; the client's
    verification faces on rank 0 and held-out faces where the k source wants a clean validation signal."""
    config = worker.config
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(worker.torch_threads)
    torch.manual_seed(config.seed * 1000 + rank)
    device = ray.train.torch.get_device()
    model = build_face_model(config, worker.offer)
    optimizer = build_optimizer(config, model)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.optim.epochs)
    start_epoch, history = 0, []
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            saved = load_state(directory)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        start_epoch, history = saved["epoch"], list(saved["history"])
        if rank == 0:
            print(f"resuming from the checkpoint of epoch {start_epoch}", flush=True)
    # Parameters in the inputs' channels_last layout, so DDP's gradient buckets match without copies. DDP still
    # warns for 1x1 convolution weights, whose strides differ from the bucket's only along size-1 dimensions.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    inner: FaceModel = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs omit it
    prepared = ray.train.torch.prepare_model(inner)  # moved to the device; wrapped in DDP when several workers train
    # Recorded with every epoch: whoever must free the workers' CPUs after the run is killed from outside (a Tune
    # trial stopped early) finds the placement group here; Ray frees it only when the whole job ends.
    group = ray.util.get_current_placement_group()
    wants_holdout = worker.k_source.wants_clean_validation
    return WorkerState(
        model=prepared,
        inner=inner,
        optimizer=optimizer,
        scheduler=scheduler,
        device=device,
        rank=rank,
        world=world,
        progress=StepProgress(
            worker.plan.batches_per_epoch * config.optim.epochs,
            worker.plan.batches_per_epoch * start_epoch,
            worker.progress_every_s if rank == 0 else 0.0,
            label="  ",
        ),
        start_epoch=start_epoch,
        resumed=checkpoint is not None,
        history=history,
        holdout=worker.window_source.holdout(config.optim.batch_size * config.clean_validation_batches)
        if wants_holdout
        else None,
        verification=worker.window_source.verification() if rank == 0 else None,
        worker_placement_group=group.id.hex() if group is not None else None,
    )


def train_window(worker: WorkerConfig, state: WorkerState, epoch: int, window: int) -> dict[str, Any]:
    """Ask the client for one window with the k source's k, train on it, report it; returns its record."""
    plan, config = worker.plan, worker.config
    window_index = epoch * plan.windows_per_epoch + window
    k = worker.k_source.k_for_window(window_index)
    state.model.train()
    batches = worker.window_source.window(WindowRequest(epoch, window, state.rank, k))
    losses = []
    for batch in batches:
        losses.append(train_step(state.model, state.optimizer, batch, state.device))
        state.progress.step(len(batch.inputs))
    clean = (
        _clean_loss(state.inner, state.holdout, config.optim.batch_size, state.device)
        if state.holdout is not None
        else None
    )
    total_windows = plan.windows_per_epoch * config.optim.epochs
    report = WindowReport(
        window_index, state.rank, k, float(np.mean(losses)), clean, (window_index + 1) / total_windows
    )
    worker.k_source.report_window(report)
    return {
        "window": window_index,
        "k": k,
        "mixed_loss": report.mixed_loss,
        "clean_val_loss": clean,
        "losses": losses,
        "images": sum(len(batch.inputs) for batch in batches),
    }


def end_epoch(
    worker: WorkerConfig, state: WorkerState, epoch: int, windows: list[dict[str, Any]], seconds: float
) -> dict[str, Any]:
    """The epoch's metrics (verification on rank 0 when due), appended to the history and reported to Ray
    Train with a checkpoint from rank 0; returns the metrics."""
    config = worker.config
    state.scheduler.step()
    losses = [loss for window in windows for loss in window["losses"]]
    metrics: dict[str, Any] = {
        "epoch": epoch + 1,
        "train_loss": _mean_across_workers(float(np.mean(losses)), state.device),
        "mean_k": float(np.mean([w["k"] for w in windows])),
        "lr": state.scheduler.get_last_lr()[0],
        "images_per_second": sum(w["images"] for w in windows) * state.world / seconds,
        "windows": [{name: w[name] for name in ("window", "k", "mixed_loss", "clean_val_loss")} for w in windows],
        "worker_placement_group": state.worker_placement_group,
    }
    due = (epoch + 1) % config.validation_every == 0 or epoch + 1 == config.optim.epochs
    if state.verification is not None and due:
        metrics.update(_verification_metrics(state.inner, state.verification, state.device))
    if state.resumed and epoch == state.start_epoch:
        metrics["resumed_from_epoch"] = state.start_epoch  # this epoch began from a restored checkpoint
    metrics["epoch_seconds"] = seconds
    state.history.append(metrics)
    if state.rank != 0:
        ray.train.report(metrics)
        return metrics
    if state.progress.enabled:
        _print_progress(metrics, config.optim.epochs)
    with tempfile.TemporaryDirectory() as directory:
        save_state(
            directory,
            {
                "model": state.inner.state_dict(),
                "optimizer": state.optimizer.state_dict(),
                "scheduler": state.scheduler.state_dict(),
                "epoch": epoch + 1,
                "history": state.history,
                "public_masking": worker.offer.masking,
            },
        )
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(directory))
    return metrics


def _verification_metrics(model: FaceModel, faces: VerificationSet, device: torch.device) -> dict[str, Any]:
    embeddings = embed_inputs(model.backbone, faces.inputs, faces.mirrored, device)
    result = verify(pair_scores(embeddings, faces.left.numpy(), faces.right.numpy()), faces.is_same.numpy())
    return {
        "verification_accuracy": result.accuracy,
        "tar_at_far_1e-3": result.tar_at_far,
        "verification_pairs": result.num_pairs,
    }


def train_loop_per_worker(loop_config: dict[str, WorkerConfig]) -> None:
    """Ray Train's entry point: `loop_config["worker"]` is the WorkerConfig."""
    worker = loop_config["worker"]
    _quiet_report_lines()
    state = setup_worker(worker)
    for epoch in range(state.start_epoch, worker.config.optim.epochs):
        started = time.perf_counter()
        windows = [train_window(worker, state, epoch, window) for window in range(worker.plan.windows_per_epoch)]
        end_epoch(worker, state, epoch, windows, time.perf_counter() - started)
    worker.k_source.finish()


def _print_progress(metrics: dict[str, Any], epochs: int) -> None:
    verification = (
        f"  verify acc {metrics['verification_accuracy']:.3f}  TAR@FAR1e-3 {metrics['tar_at_far_1e-3']:.3f}"
        if "verification_accuracy" in metrics
        else ""
    )
    print(
        f"epoch {metrics['epoch']}/{epochs}  loss {metrics['train_loss']:.3f}  mean k {metrics['mean_k']:.2f}"
        f"{verification}  {metrics['images_per_second']:.0f} img/s  ({metrics['epoch_seconds']:.1f} s)",
        flush=True,
    )
