"""The per-worker Ray Train loop: windows of W batches, each mixed with the k its KSource gives.

Each epoch ends with a verification pass on rank 0 and one `ray.train.report` carrying the epoch's metrics, the
whole metrics history so far, and (from rank 0) a checkpoint. A restarted worker group resumes from that
checkpoint, so an epoch is either fully recorded or redone from its start, never half-counted.
"""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import ray.train
import ray.train.torch
import ray.util
import torch
import torch.distributed as dist

from masking.mixup import mixup
from trainers.batches import batch_to_input, flipped_input
from trainers.checkpoints import load_state, save_state
from trainers.config import TrainConfig
from trainers.config_io import from_dict
from trainers.dataset_info import DatasetInfo
from trainers.k_source import KSource, WindowReport
from trainers.model import FaceModel, build_face_model
from trainers.progress import PROGRESS_EVERY_S, StepProgress
from trainers.schema import PAIRS_NAME, read_split
from trainers.verification import pair_scores, verify


@dataclass(frozen=True)
class LoopPlan:
    """Sizes the driver fixes before training, so every worker walks the same windows."""

    batches_per_epoch: int
    windows_per_epoch: int

    def window_batches(self, window: int, window_size: int) -> int:
        return min(window_size, self.batches_per_epoch - window * window_size)


def _load_holdout(info: DatasetInfo, modulo: int, limit: int) -> dict[str, Any]:
    """Held-out private images (image_id % modulo == 0): clean, never-trained-on data for the validation signal."""
    table = read_split(info.data_dir, "private")
    keep = np.flatnonzero(table.column("image_id").to_numpy() % modulo == 0)[:limit]
    return table.take(keep).to_pydict()


def _load_verification(info: DatasetInfo) -> tuple[dict[str, Any], np.ndarray, np.ndarray, np.ndarray]:
    table = read_split(info.data_dir, "verify").to_pydict()
    pairs = pq.read_table(f"{info.data_dir}/{PAIRS_NAME}").to_pydict()
    row_of = {image_id: row for row, image_id in enumerate(table["image_id"])}
    left = np.array([row_of[i] for i in pairs["left_image_id"]])
    right = np.array([row_of[i] for i in pairs["right_image_id"]])
    return table, left, right, np.array(pairs["is_same"], dtype=bool)


def _slice(batch: dict[str, Any], start: int, stop: int) -> dict[str, Any]:
    return {name: values[start:stop] for name, values in batch.items()}


@torch.no_grad()
def embed_rows(
    backbone: torch.nn.Module, rows: dict[str, Any], representation: str, device: torch.device
) -> np.ndarray:
    """Flip-fused embeddings (where a mirrored input exists) of shard rows, in batches."""
    backbone.eval()
    chunks = []
    for start in range(0, len(rows["image_id"]), 256):
        chunk = _slice(rows, start, start + 256)
        embedding = backbone(batch_to_input(chunk, representation).to(device)).float()
        mirrored = flipped_input(chunk, representation)
        if mirrored is not None:
            embedding = embedding + backbone(mirrored.to(device)).float()
        chunks.append(embedding.cpu().numpy())
    return np.concatenate(chunks)


@torch.no_grad()
def _clean_loss(
    model: FaceModel, holdout: dict[str, Any], representation: str, batch_size: int, batches: int, device: torch.device
) -> float:
    model.eval()
    losses = []
    for start in range(0, min(len(holdout["image_id"]), batch_size * batches), batch_size):
        chunk = _slice(holdout, start, start + batch_size)
        labels = torch.as_tensor(np.asarray(chunk["label"]), dtype=torch.long, device=device)[:, None]
        losses.append(
            float(
                model(
                    batch_to_input(chunk, representation).to(device),
                    labels,
                    torch.ones_like(labels, dtype=torch.float32),
                )
            )
        )
    model.train()
    return float(np.mean(losses))


def build_optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    optim = config.optim
    if optim.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=optim.lr, weight_decay=optim.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay)


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: dict[str, Any],
    representation: str,
    k: int,
    concentration: float,
    generator: torch.Generator,
    device: torch.device,
) -> float:
    """One optimiser step on one shard batch: decode, mix k images per sample, mixed-label margin loss."""
    inputs = batch_to_input(batch, representation)
    labels = torch.from_numpy(np.array(batch["label"], dtype=np.int64))
    mixed = mixup(inputs, labels, k, concentration, generator)
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        loss = model(mixed.mixed.to(device), mixed.labels.to(device), mixed.weights.to(device))
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


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    config = from_dict(TrainConfig, loop_config["config"])
    info = DatasetInfo(**loop_config["dataset"])
    plan = LoopPlan(**loop_config["plan"])
    k_source: KSource = loop_config["k_source"]
    public_masking = loop_config["public_masking"]

    _quiet_report_lines()
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(loop_config["torch_threads"])
    torch.manual_seed(config.seed * 1000 + rank)
    device = ray.train.torch.get_device()

    model = build_face_model(config, info)
    optimizer = build_optimizer(config, model)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.optim.epochs)
    start_epoch, history = 0, []
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            state = load_state(directory)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, history = state["epoch"], list(state["history"])
        if rank == 0:
            print(f"resuming from the checkpoint of epoch {start_epoch}", flush=True)
    # Parameters in the inputs' channels_last layout, so DDP's gradient buckets match without copies. DDP still
    # warns for 1x1 convolution weights, whose strides differ from the bucket's only along size-1 dimensions.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    inner: FaceModel = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs omit it
    wrapped = ray.train.torch.prepare_model(inner)  # moved to the device; wrapped in DDP when several workers train

    # Recorded with every epoch: whoever must free the workers' CPUs after the run is killed from outside (a Tune
    # trial stopped early) finds the placement group here; Ray frees it only when the whole job ends.
    current_group = ray.util.get_current_placement_group()
    worker_placement_group = current_group.id.hex() if current_group is not None else None
    mixing_generator = torch.Generator().manual_seed(config.seed * 7919 + rank)
    holdout = _load_holdout(info, config.holdout_modulo, config.optim.batch_size * config.clean_validation_batches)
    verification = _load_verification(info) if rank == 0 else None
    shard = ray.train.get_dataset_shard("train")
    total_windows = plan.windows_per_epoch * config.optim.epochs
    every_s = loop_config.get("progress_every_s", PROGRESS_EVERY_S) if rank == 0 else 0.0
    progress = StepProgress(
        plan.batches_per_epoch * config.optim.epochs, plan.batches_per_epoch * start_epoch, every_s, label="  "
    )

    for epoch in range(start_epoch, config.optim.epochs):
        started = time.perf_counter()
        wrapped.train()
        batches = iter(
            shard.iter_batches(
                batch_size=config.optim.batch_size,
                batch_format="numpy",
                drop_last=True,
                local_shuffle_buffer_size=max(4 * config.optim.batch_size, 256),
                local_shuffle_seed=config.seed * 100003 + epoch * 101 + rank,
            )
        )
        windows, epoch_losses, images_seen = [], [], 0
        for window in range(plan.windows_per_epoch):
            window_index = epoch * plan.windows_per_epoch + window
            k = k_source.k_for_window(window_index)
            losses = []
            for _ in range(plan.window_batches(window, config.window_batches)):
                batch = next(batches)
                losses.append(
                    train_step(
                        wrapped,
                        optimizer,
                        batch,
                        info.representation,
                        k,
                        config.defense.concentration,
                        mixing_generator,
                        device,
                    )
                )
                images_seen += len(batch["label"])
                progress.step(len(batch["label"]))
            clean = (
                _clean_loss(
                    inner,
                    holdout,
                    info.representation,
                    config.optim.batch_size,
                    config.clean_validation_batches,
                    device,
                )
                if k_source.wants_clean_validation
                else None
            )
            report = WindowReport(
                window_index, rank, k, float(np.mean(losses)), clean, (window_index + 1) / total_windows
            )
            k_source.report_window(report)
            windows.append({"window": window_index, "k": k, "mixed_loss": report.mixed_loss, "clean_val_loss": clean})
            epoch_losses.extend(losses)
        for _ in batches:  # finish the epoch's stream so the next epoch starts a fresh one on every worker
            pass
        scheduler.step()

        metrics: dict[str, Any] = {
            "epoch": epoch + 1,
            "train_loss": _mean_across_workers(float(np.mean(epoch_losses)), device),
            "mean_k": float(np.mean([w["k"] for w in windows])),
            "lr": scheduler.get_last_lr()[0],
            "images_per_second": images_seen * world / (time.perf_counter() - started),
            "windows": windows,
            "worker_placement_group": worker_placement_group,
        }
        if (
            rank == 0
            and verification is not None
            and ((epoch + 1) % config.validation_every == 0 or epoch + 1 == config.optim.epochs)
        ):
            rows, left, right, is_same = verification
            result = verify(
                pair_scores(embed_rows(inner.backbone, rows, info.representation, device), left, right), is_same
            )
            metrics.update(
                {
                    "verification_accuracy": result.accuracy,
                    "tar_at_far_1e-3": result.tar_at_far,
                    "verification_pairs": result.num_pairs,
                }
            )
        if checkpoint is not None and epoch == start_epoch:
            metrics["resumed_from_epoch"] = start_epoch  # this epoch began from a restored checkpoint
        metrics["epoch_seconds"] = time.perf_counter() - started
        history.append(metrics)
        if rank == 0:
            if progress.enabled:
                _print_progress(metrics, config.optim.epochs)
            with tempfile.TemporaryDirectory() as directory:
                save_state(
                    directory,
                    {
                        "model": inner.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "epoch": epoch + 1,
                        "history": history,
                        "public_masking": public_masking,
                    },
                )
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(directory))
        else:
            ray.train.report(metrics)
    k_source.finish()


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
