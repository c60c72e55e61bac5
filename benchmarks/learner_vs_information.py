"""Is a masked defence's accuracy gap the learner's fault or the masking's? Train on what the mask keeps, both ways.

On a prepared folder (its private faces to train on, its verify pairs to score), for each masking ratio:
- `pixels`: the pixel network on the untouched faces (the unprotected reference; once, whatever the ratio);
- `kept, read as pixels`: the pixel network on the same faces with the removed channels zeroed and transformed
  back to an image. That is exactly what the mask keeps, read with the key and laid out as the pixel network
  expects: no learner of the masked channels can be handed more;
- `masked, grid` and `masked, unfold`: the frequency network on the masked channels, with each stem
  (`model.frequency_stem`).
Where `masked, unfold` reaches `kept, read as pixels`, the learner loses nothing and the gap to `pixels` is the
information the ratio removes, the price of the privacy; where it stays below, a better learner would help.

Same model, margin head, optimiser, schedule, hold-out and flip-fused verification as `hybridmask train`, in one
process without Ray or MixUp, so that only the input differs between rows. Accuracy is the 10-fold threshold
accuracy on the verify pairs after each epoch; the table gives the last epoch and the best.

    python -m benchmarks.learner_vs_information DATA_DIR [--ratios 0 0.25 0.5 0.75] [--epochs 10] [--seeds 0 1]
        [--json PATH] [--figure PATH]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from benchmarks.faces import DEMO_KEY
from evaluation.run_data import LabelledImages, read_images
from masking.dct import from_frequency, to_frequency
from masking.masker import FrequencyMasker
from trainers.config import TrainConfig
from trainers.loop import build_optimizer, embed_inputs, train_step
from trainers.model import build_face_model
from trainers.schema import PAIRS_NAME
from trainers.verification import pair_scores, verify
from trainers.window_source import ClientOffer, SentBatch

DEFAULT_RATIOS = (0.0, 0.25, 0.5, 0.75)
PIXELS, KEPT_AS_PIXELS, GRID, UNFOLD = "pixels", "kept, read as pixels", "masked, grid", "masked, unfold"


@dataclass(frozen=True)
class Inputs:
    """Training inputs with labels, and the verify faces with their mirrored copies, as the network reads them."""

    train: torch.Tensor
    labels: torch.Tensor
    verify: torch.Tensor
    verify_mirrored: torch.Tensor
    kind: str  # "pixels" or "frequency"


@dataclass(frozen=True)
class Faces:
    train: LabelledImages
    verify: LabelledImages
    left: np.ndarray
    right: np.ndarray
    is_same: np.ndarray


def load(data_dir: Path, holdout_modulo: int) -> Faces:
    """Private faces minus the hold-out `hybridmask train` keeps for clean validation, verify faces and pairs."""
    private, verify_faces = read_images(data_dir, "private"), read_images(data_dir, "verify")
    kept = private.image_ids % holdout_modulo != 0
    train = LabelledImages(private.images[kept], private.labels[kept], private.image_ids[kept])
    pairs = pq.read_table(data_dir / PAIRS_NAME).to_pydict()
    row_of = {int(image_id): row for row, image_id in enumerate(verify_faces.image_ids.tolist())}
    left = np.array([row_of[int(i)] for i in pairs["left_image_id"]])
    right = np.array([row_of[int(i)] for i in pairs["right_image_id"]])
    return Faces(train, verify_faces, left, right, np.array(pairs["is_same"], dtype=bool))


def mirrored(images: torch.Tensor) -> torch.Tensor:
    return torch.flip(images, dims=[3])


def pixel_inputs(faces: Faces, transform: Callable[[torch.Tensor], torch.Tensor]) -> Inputs:
    """Images in [0, 1] through `transform`, then scaled to [-1, 1] as the client sends pixels (or, for
    transformed images, standardised with the training set's mean and spread)."""
    train, verify_faces = transform(faces.train.images), faces.verify.images
    shift, spread = (0.5, 0.5) if transform is identity else (float(train.mean()), float(train.std()))

    def scaled(x: torch.Tensor) -> torch.Tensor:
        return (x - shift) / spread

    return Inputs(
        scaled(train),
        faces.train.labels,
        scaled(transform(verify_faces)),
        scaled(transform(mirrored(verify_faces))),
        "pixels",
    )


def identity(images: torch.Tensor) -> torch.Tensor:
    return images


def kept_as_pixels(masker: FrequencyMasker) -> Callable[[torch.Tensor], torch.Tensor]:
    """Images -> the same images with every channel the mask removes set to zero (what the mask keeps)."""
    keep = torch.zeros(masker.selection.num_channels, dtype=torch.float64)
    keep[list(masker.selection.kept)] = 1.0

    def transform(images: torch.Tensor) -> torch.Tensor:
        frequency = to_frequency(images.double()) * keep[None, :, None, None]
        return from_frequency(frequency, masker.num_planes).float()

    return transform


def masked_inputs(faces: Faces, masker: FrequencyMasker) -> Inputs:
    """The client's masked channels (the mirrored verify faces masked as the client masks them)."""
    return Inputs(
        masker.mask(faces.train.images).contiguous(),
        faces.train.labels,
        masker.mask(faces.verify.images).contiguous(),
        masker.mask(mirrored(faces.verify.images)).contiguous(),
        "frequency",
    )


def train_and_verify(inputs: Inputs, faces: Faces, config: TrainConfig, seed: int) -> list[float]:
    """Verification accuracy after each epoch of training on `inputs` (one process, batch = workers x batch)."""
    torch.manual_seed(seed)
    num_classes = int(inputs.labels.max()) + 1
    offer = ClientOffer(
        representation="images" if inputs.kind == "pixels" else "masked",
        channels=inputs.train.shape[1],
        size=inputs.train.shape[-1],
        num_classes=num_classes,
        train_rows=len(inputs.train),
        holdout_rows=0,
        verify_rows=len(inputs.verify),
        verify_pairs=len(faces.is_same),
        synthetic_data=False,
    )
    model = build_face_model(config, offer)
    optimizer = build_optimizer(config, model)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.optim.epochs)
    batch = config.optim.batch_size * config.scale.workers
    if len(inputs.train) < batch:
        raise SystemExit(f"{len(inputs.train)} training faces do not fill one batch of {batch}; use a larger folder")
    device = torch.device("cpu")
    curve = []
    for _ in range(config.optim.epochs):
        model.train()
        order = torch.randperm(len(inputs.train))
        for start in range(0, len(order) - batch + 1, batch):
            rows = order[start : start + batch]
            labels = inputs.labels[rows][:, None]
            train_step(model, optimizer, SentBatch(inputs.train[rows], labels, torch.ones(len(rows), 1)), device)
        scheduler.step()
        embeddings = embed_inputs(model.backbone, inputs.verify, inputs.verify_mirrored, device)
        curve.append(verify(pair_scores(embeddings, faces.left, faces.right), faces.is_same).accuracy)
    return curve


def measure(
    data_dir: Path, ratios: list[float], seeds: list[int], config: TrainConfig, log: Callable[[str], None]
) -> list[dict]:
    """One row per (input, ratio, seed): the accuracy curve, its last and best value, and the wall time."""
    faces = load(data_dir, config.holdout_modulo)
    plans: list[tuple[str, float | None, Callable[[], Inputs]]] = [
        (PIXELS, None, partial(pixel_inputs, faces, identity))
    ]
    for masking_ratio in ratios:
        masker = FrequencyMasker.fit(faces.train.images, DEMO_KEY, masking_ratio)
        plans.append((KEPT_AS_PIXELS, masking_ratio, partial(pixel_inputs, faces, kept_as_pixels(masker))))
        plans += [(name, masking_ratio, partial(masked_inputs, faces, masker)) for name in (GRID, UNFOLD)]
    rows = []
    for learner, ratio, make_inputs in plans:
        inputs = make_inputs()  # one learner's inputs at a time: memory stays flat on large folders
        config.model.frequency_stem = "unfold" if learner == UNFOLD else "grid"
        for seed in seeds:
            started = time.perf_counter()
            curve = train_and_verify(inputs, faces, config, seed)
            row = {"learner": learner, "ratio": ratio, "seed": seed, "epochs": len(curve), "accuracy": curve[-1],
                   "best": max(curve), "curve": curve, "wall_s": time.perf_counter() - started}  # fmt: skip
            log(f"{learner:22} ratio {'-' if ratio is None else ratio:>4} seed {seed}: accuracy {curve[-1]:.3f} "
                f"(best {max(curve):.3f}) in {row['wall_s']:.0f} s")  # fmt: skip
            rows.append(row)
    return rows


def summary_table(rows: list[dict]) -> str:
    """Markdown: mean last-epoch accuracy (and best) over seeds for each learner and ratio."""
    ratios = sorted({row["ratio"] for row in rows if row["ratio"] is not None})
    reference = np.mean([row["accuracy"] for row in rows if row["learner"] == PIXELS])
    lines = [f"`pixels` (untouched faces): **{reference:.3f}**", "",
             "| ratio | " + " | ".join(f"`{name}`" for name in (KEPT_AS_PIXELS, GRID, UNFOLD)) + " | learner's share of the gap |",
             "|---|---|---|---|---|"]  # fmt: skip
    for ratio in ratios:
        cells, means = [], {}
        for name in (KEPT_AS_PIXELS, GRID, UNFOLD):
            found = [row for row in rows if row["learner"] == name and row["ratio"] == ratio]
            means[name] = float(np.mean([row["accuracy"] for row in found]))
            cells.append(f"{means[name]:.3f} (best {np.mean([row['best'] for row in found]):.3f})")
        gap = reference - means[UNFOLD]
        learner_share = (means[KEPT_AS_PIXELS] - means[UNFOLD]) / gap if gap > 0 else 0.0
        lines.append(f"| {ratio:g} | " + " | ".join(cells) + f" | {learner_share:.0%} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    reference = np.mean([row["accuracy"] for row in rows if row["learner"] == PIXELS])
    axis.axhline(reference, color="black", linestyle="--", label="pixels (untouched faces)")
    for name, marker in ((KEPT_AS_PIXELS, "o"), (UNFOLD, "s"), (GRID, "^")):
        found = sorted((row for row in rows if row["learner"] == name), key=lambda row: row["ratio"])
        ratios = sorted({row["ratio"] for row in found})
        means = [np.mean([row["accuracy"] for row in found if row["ratio"] == r]) for r in ratios]
        axis.plot(ratios, means, marker=marker, label=name)
        axis.scatter(
            [row["ratio"] for row in found], [row["accuracy"] for row in found], marker=marker, alpha=0.35, s=14
        )
    axis.set_xlabel("masking ratio (fraction of each plane's channels removed)")
    axis.set_ylabel("verification accuracy (last epoch)")
    axis.set_title("What the mask keeps, read as pixels vs by the frequency network")
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", type=Path, help="a prepared folder (from `hybridmask prepare`) with verify pairs")
    parser.add_argument("--ratios", type=float, nargs="+", default=list(DEFAULT_RATIOS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--embedding-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write every row (with its accuracy curve) as JSON")
    parser.add_argument("--figure", type=Path, help="also plot accuracy against the ratio to this PNG")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = TrainConfig()
    config.optim.epochs, config.model.embedding_size = args.epochs, args.embedding_size
    config.validate()
    rows = measure(args.data_dir, args.ratios, args.seeds, config, lambda line: print(line, flush=True))
    print(summary_table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    if args.figure:
        plot(rows, args.figure)


if __name__ == "__main__":
    main()
