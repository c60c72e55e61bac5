"""The evaluation classifier of the MIA convention: a second judge of "is this reconstruction that person?".

Model-inversion papers train a classifier of a different architecture from the attacked model on the private
identities' original images, and count a reconstruction as a success when that classifier names its target.
The FR backbone here is an IResNet, so this judge is a small VGG-style CNN (plain 3x3 convolutions, batch norm,
max pooling, no residual connections): what fools one is less likely to fool the other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common.errors import InputError
from common.files import atomic_output
from evaluation.images import ImageBatch, as_float_nhwc

_WIDTHS = (32, 64, 128)  # three VGG stages of two 3x3 convolutions each
_SHIFT_PIXELS = 4  # random translation of the augmentation, at the classifier's input size
_EVAL_BATCH = 256


@dataclass(frozen=True)
class FitReport:
    """How training went; val_* are on private images held out from training (stratified by identity)."""

    train_accuracy: float
    val_top1: float | None
    val_top5: float | None
    num_train: int
    num_val: int
    epochs: int
    seconds: float


class _VGGStyleNet(nn.Module):
    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = channels
        for width in _WIDTHS:
            for _ in range(2):
                layers += [
                    nn.Conv2d(previous, width, 3, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                ]
                previous = width
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(previous, num_classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images).mean(dim=(2, 3)))


class EvaluationClassifier:
    """A VGG-style identity classifier over images resized to image_size (gray or RGB, as it was trained)."""

    def __init__(self, num_classes: int, channels: int = 1, image_size: int = 32, seed: int = 0) -> None:
        if num_classes < 2:
            raise InputError(f"num_classes={num_classes}: identification needs at least 2 identities")
        if channels not in (1, 3):
            raise InputError(f"channels={channels}: the classifier reads gray (1) or RGB (3) images")
        if image_size < 16:
            raise InputError(f"image_size={image_size}: use 16 px or more (three 2x poolings)")
        self.num_classes, self.channels, self.image_size, self.seed = num_classes, channels, image_size, seed
        with torch.random.fork_rng(devices=[]):  # seeded weights without touching the caller's random state
            torch.manual_seed(seed)
            self.network = _VGGStyleNet(channels, num_classes)

    def fit(
        self,
        images: ImageBatch,
        labels: np.ndarray,
        epochs: int = 30,
        val_fraction: float = 0.3,
        batch_size: int = 32,
        learning_rate: float = 2e-3,
    ) -> FitReport:
        """Train from scratch on labelled private originals, holding out val_fraction of each identity."""
        if epochs < 1 or batch_size < 1:
            raise InputError(f"epochs={epochs}, batch_size={batch_size}: both must be at least 1")
        inputs = self._prepare(images, "training images")
        targets = self._labels(labels, len(inputs))
        train_idx, val_idx = stratified_split(targets.numpy(), val_fraction, self.seed)
        generator = torch.Generator().manual_seed(self.seed)
        optimizer = torch.optim.AdamW(self.network.parameters(), lr=learning_rate, weight_decay=5e-4)
        steps_per_epoch = -(-len(train_idx) // batch_size)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, learning_rate, total_steps=epochs * steps_per_epoch)
        started = time.perf_counter()
        self.network.train()
        with torch.random.fork_rng(devices=[]):  # dropout draws from the global generator: seed it locally
            torch.manual_seed(self.seed)
            for _ in range(epochs):
                order = torch.from_numpy(train_idx)[torch.randperm(len(train_idx), generator=generator)]
                for batch in order.split(batch_size):
                    logits = self.network(_augment(inputs[batch], generator))
                    loss = F.cross_entropy(logits, targets[batch], label_smoothing=0.1)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    schedule.step()
        seconds = time.perf_counter() - started
        train_top1 = self._rates(inputs[train_idx], targets[train_idx])[0]
        val_top1, val_top5 = self._rates(inputs[val_idx], targets[val_idx]) if len(val_idx) else (None, None)
        return FitReport(train_top1, val_top1, val_top5, len(train_idx), len(val_idx), epochs, seconds)

    def predict_topk(self, images: ImageBatch, k: int = 5) -> np.ndarray:
        """[N, min(k, num_classes)] class labels, most likely first."""
        return self._topk(self._prepare(images, "images"), k).numpy()

    def state_dict(self) -> dict:
        """Weights plus the constructor arguments, loadable with torch.load(weights_only=True)."""
        config = {
            "num_classes": self.num_classes,
            "channels": self.channels,
            "image_size": self.image_size,
            "seed": self.seed,
        }
        return {"config": config, "weights": self.network.state_dict()}

    def save(self, path: str | Path) -> None:
        with atomic_output(path) as temporary:
            torch.save(self.state_dict(), temporary)

    @classmethod
    def load(cls, path: str | Path) -> EvaluationClassifier:
        return cls.from_state_dict(torch.load(Path(path), map_location="cpu", weights_only=True))

    @classmethod
    def from_state_dict(cls, saved: dict) -> EvaluationClassifier:
        classifier = cls(**saved["config"])
        classifier.network.load_state_dict(saved["weights"])
        return classifier

    def _topk(self, inputs: torch.Tensor, k: int) -> torch.Tensor:
        if k < 1:
            raise InputError(f"k={k}: ask for at least the top-1 class")
        self.network.eval()
        with torch.no_grad():
            logits = torch.cat([self.network(chunk) for chunk in inputs.split(_EVAL_BATCH)])
        return logits.topk(min(k, self.num_classes), dim=1).indices

    def _rates(self, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[float, float]:
        hits = self._topk(inputs, 5) == targets[:, None]
        return float(hits[:, :1].any(1).float().mean()), float(hits.any(1).float().mean())

    def _prepare(self, images: ImageBatch, name: str) -> torch.Tensor:
        array = as_float_nhwc(images, name)
        if array.shape[-1] != self.channels:
            raise InputError(f"{name}: {array.shape[-1]}-channel images given to a {self.channels}-channel classifier")
        tensor = torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2)
        size = (self.image_size, self.image_size)
        resized = F.interpolate(tensor, size=size, mode="bilinear", antialias=True, align_corners=False)
        return (resized - 0.5) / 0.25  # centred inputs train faster; the scale is fixed so any image set reads alike

    def _labels(self, labels: np.ndarray, count: int) -> torch.Tensor:
        values = np.asarray(labels)
        if values.shape != (count,) or not np.issubdtype(values.dtype, np.integer):
            raise InputError(f"labels: expected {count} integer labels, got shape {values.shape} dtype {values.dtype}")
        if values.min() < 0 or values.max() >= self.num_classes:
            raise InputError(f"labels must lie in 0..{self.num_classes - 1}, got {values.min()}..{values.max()}")
        return torch.from_numpy(values.astype(np.int64))


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation indices holding out round(val_fraction * n) images of each identity, keeping one to train."""
    if not 0.0 <= val_fraction < 1.0:
        raise InputError(f"val_fraction={val_fraction}: must lie in [0, 1)")
    rng = np.random.default_rng(seed)
    train: list[int] = []
    val: list[int] = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        held_out = min(round(val_fraction * len(members)), len(members) - 1)
        val.extend(members[:held_out])
        train.extend(members[held_out:])
    return np.sort(np.array(train, dtype=np.int64)), np.sort(np.array(val, dtype=np.int64))


def _augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flips and shifts of up to _SHIFT_PIXELS: faces of one person vary in pose and framing."""
    flips = torch.rand(len(batch), generator=generator) < 0.5
    batch = torch.where(flips[:, None, None, None], batch.flip(3), batch)
    padded = F.pad(batch, [_SHIFT_PIXELS] * 4, mode="replicate")
    dy, dx = torch.randint(0, 2 * _SHIFT_PIXELS + 1, (2,), generator=generator).tolist()
    return padded[:, :, dy : dy + batch.shape[2], dx : dx + batch.shape[3]]
