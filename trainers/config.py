"""The FR learner's configuration: typed, validated before Ray starts, saved with every run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from common.errors import InputError
from trainers.backbones import PRESETS, check_frequency_options
from trainers.defenses import Defense, defense_named
from trainers.heads import HEADS


@dataclass
class DefenseConfig:
    name: str = "hybrid_fixed"
    k: int = 2  # images per MixUp sample for mixup / hybrid_fixed (the adaptive defence's k comes from its strategy)
    concentration: float = 1.0  # Dirichlet concentration of the MixUp weights


@dataclass
class ModelConfig:
    backbone: str = "tiny"
    embedding_size: int = 512
    head: str = "arcface"
    scale: float = 32.0
    margin: float | None = None  # None: the head's usual margin (ArcFace 0.5, CosFace 0.35)
    dropout: float = 0.0
    frequency_strides: tuple[int, ...] = (1, 2, 1, 2)  # stage strides of the frequency backbone over the block grid
    frequency_stem: str = "grid"  # how the frequency backbone reads the channels: "grid" or "unfold" (backbones.py)


@dataclass
class OptimConfig:
    optimizer: Literal["sgd", "adamw"] = "adamw"
    lr: float = 2e-3
    weight_decay: float = 5e-4
    momentum: float = 0.9
    epochs: int = 10
    batch_size: int = 32  # per worker


@dataclass
class ScaleConfig:
    workers: int = 2
    use_gpu: bool = False
    cpus_per_worker: float | None = None  # None: share the CPUs left after the client's reserve
    data_cpus: float = 1.0  # CPUs kept free for the client actor, which masks and mixes every window
    max_failures: int = 1
    # The client decodes its private split into memory up to this size (MB of float32 inputs) and streams it through
    # Ray Data above it, shuffling rows within chunks of stream_chunk_rows (pipelines/client/streamed_rows.py).
    stream_above_mb: float = 4096.0
    stream_chunk_rows: int = 4096


@dataclass
class TrainConfig:
    defense: DefenseConfig = field(default_factory=DefenseConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    scale: ScaleConfig = field(default_factory=ScaleConfig)
    seed: int = 0
    window_batches: int = 4  # batches per window: the unit at which k is chosen and losses are reported
    validation_every: int = 1  # epochs between verification passes (the last epoch is always verified)
    holdout_modulo: int = 10  # private images with image_id % holdout_modulo == 0 are held out (clean validation)
    clean_validation_batches: int = 2  # batches of held-out images scored after each window when asked for

    def validate(self) -> None:
        """Fail early, naming the key, for anything that cannot train."""
        defense, model, optim, scale = self.defense, self.model, self.optim, self.scale
        if defense_named(defense.name).fixed_k:
            if defense.k < 1:
                raise InputError(f"defense.k = {defense.k}: k must be at least 1")
            if defense.k > optim.batch_size:
                raise InputError(
                    f"defense.k = {defense.k} is larger than the batch (optim.batch_size = {optim.batch_size}); "
                    "MixUp draws k different images from one batch"
                )
        if defense.concentration <= 0:
            raise InputError(f"defense.concentration must be positive, not {defense.concentration}")
        if model.backbone not in PRESETS:
            raise InputError(f"unknown model.backbone {model.backbone!r}; choose one of {sorted(PRESETS)}")
        check_frequency_options(model.frequency_stem, tuple(model.frequency_strides))
        if model.head not in HEADS:
            raise InputError(f"unknown model.head {model.head!r}; choose one of {sorted(HEADS)}")
        if model.embedding_size < 2:
            raise InputError(f"model.embedding_size = {model.embedding_size} cannot work; use at least 2 (default 512)")
        if model.scale <= 0:
            raise InputError(f"model.scale must be positive, not {model.scale}")
        if optim.batch_size < 2:
            raise InputError(f"optim.batch_size = {optim.batch_size} cannot work: batch norm needs at least 2 images")
        if optim.epochs < 1:
            raise InputError(f"optim.epochs must be at least 1, not {optim.epochs}")
        if optim.lr <= 0:
            raise InputError(f"optim.lr must be positive, not {optim.lr}")
        if scale.workers < 1:
            raise InputError(f"scale.workers must be at least 1, not {scale.workers}")
        if scale.cpus_per_worker is not None and scale.cpus_per_worker <= 0:
            raise InputError(f"scale.cpus_per_worker must be positive, not {scale.cpus_per_worker}")
        if scale.max_failures < 0:
            raise InputError(f"scale.max_failures must be 0 or more, not {scale.max_failures}")
        if scale.stream_above_mb < 0:
            raise InputError(f"scale.stream_above_mb must be 0 or more (0 streams always), not {scale.stream_above_mb}")
        if scale.stream_chunk_rows < optim.batch_size:
            raise InputError(
                f"scale.stream_chunk_rows = {scale.stream_chunk_rows} must hold at least one batch "
                f"(optim.batch_size = {optim.batch_size})"
            )
        if self.window_batches < 1:
            raise InputError(f"window_batches must be at least 1, not {self.window_batches}")
        if self.holdout_modulo < 2:
            raise InputError(f"holdout_modulo must be at least 2, not {self.holdout_modulo}")

    @property
    def defense_row(self) -> Defense:
        """This config's defence in the table of defences (`trainers/defenses.py`)."""
        return defense_named(self.defense.name)

    @property
    def uses_pixels(self) -> bool:
        return not self.defense_row.masked

    @property
    def mixes(self) -> bool:
        return self.defense_row.mixes
