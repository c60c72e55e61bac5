"""Step time of each defence against the unprotected `none` baseline, on the same backbone and batch.

A step is what the training loop does per batch (trainers.loop.train_step): decode the shard rows, mix k images
per sample, forward, mixed-label margin loss, backward, optimiser step. Defences are timed round-robin in one
process, so machine noise hits them alike; the table gives median milliseconds per step and the ratio to `none`.
Masking itself runs on the client before training; its cost per image is listed separately.

    python -m benchmarks.train_step [--size 112] [--batch 32] [--backbone tiny] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from benchmarks.faces import DEMO_KEY
from masking.masker import FrequencyMasker
from masking.ppfr import DEFAULT_MASKING_RATIO
from pipelines.data.synth import generate_faces
from trainers.config import TrainConfig
from trainers.config_io import load_config
from trainers.dataset_info import DatasetInfo
from trainers.loop import build_optimizer, train_step
from trainers.model import build_face_model

DEFENSES = (("none", 1), ("ppfr_fd", 1), ("mixup", 2), ("hybrid_fixed", 2), ("hybrid_fixed", 4))


def shard_batches(images: np.ndarray, labels: np.ndarray, masker: FrequencyMasker) -> dict[str, dict]:
    """The same batch as the training loop receives it from Ray Data, raw and masked."""
    count, size = len(images), images.shape[1]
    pixels = {
        "pixels": np.array([image.tobytes() for image in images], dtype=object),
        "height": np.full(count, size), "width": np.full(count, size), "channels": np.full(count, 3),
        "label": labels,
    }  # fmt: skip
    with torch.inference_mode():
        masked = masker.mask(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255).contiguous()
    grid = masked.shape[-1]
    features = {
        "features": np.array([row.numpy().astype(np.float16).tobytes() for row in masked], dtype=object),
        "num_channels": np.full(count, masked.shape[1]), "grid_height": np.full(count, grid),
        "grid_width": np.full(count, grid), "label": labels,
    }  # fmt: skip
    return {"images": pixels, "masked": features}


def _seconds(work) -> float:
    started = time.perf_counter()
    with torch.inference_mode():
        work()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--backbone", default="tiny")
    parser.add_argument("--steps", type=int, default=10, help="steps per timing round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="write the table as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    images, labels = generate_faces(identities=args.batch // 2, images_per_identity=2, size=args.size, seed=0)
    image_batch = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    masker = FrequencyMasker.fit(image_batch, DEMO_KEY, DEFAULT_MASKING_RATIO)
    batches = shard_batches(images, labels.astype(np.int64), masker)
    masking_ms_per_image = (
        statistics.median(_seconds(lambda: masker.mask(image_batch)) for _ in range(6)) * 1000 / len(images)
    )

    runs = {}
    for name, k in DEFENSES:
        config: TrainConfig = load_config(
            TrainConfig,
            None,
            [
                f"defense.name={name}",
                f"defense.k={k}",
                f"model.backbone={args.backbone}",
                f"optim.batch_size={args.batch}",
            ],
        )
        representation = "images" if config.uses_pixels else "masked"
        channels = 3 if config.uses_pixels else len(masker.selection.kept)
        info = DatasetInfo(
            "",
            representation,
            channels,
            args.size if config.uses_pixels else args.size // 8,
            args.batch // 2,
            len(images),
            True,
        )
        model = build_face_model(config, info).train()
        runs[f"{name}" + (f" k={k}" if k > 1 else "")] = (
            model,
            build_optimizer(config, model),
            batches[representation],
            representation,
            k,
        )

    generator, device = torch.Generator().manual_seed(0), torch.device("cpu")
    timings: dict[str, list[float]] = {label: [] for label in runs}
    for round_index in range(args.rounds + 1):  # round 0 warms up and is not counted
        for label, (model, optimizer, batch, representation, k) in runs.items():
            started = time.perf_counter()
            for _ in range(args.steps):
                train_step(model, optimizer, batch, representation, k, 1.0, generator, device)
            if round_index:
                timings[label].append((time.perf_counter() - started) * 1000 / args.steps)

    baseline = statistics.median(timings["none"])
    rows = [
        {
            "defense": label,
            "input": runs[label][3],
            "step_ms": statistics.median(values),
            "ratio_vs_none": statistics.median(values) / baseline,
        }
        for label, values in timings.items()
    ]
    print(
        f"train step, backbone {args.backbone}, batch {args.batch}, {args.size}x{args.size} RGB, {args.threads} threads "
        f"(median of {args.rounds} rounds x {args.steps} steps)"
    )
    print(f"{'defence':18s} {'input':8s} {'ms/step':>8s} {'÷ none':>7s}")
    for row in rows:
        print(f"{row['defense']:18s} {row['input']:8s} {row['step_ms']:8.1f} {row['ratio_vs_none']:7.2f}")
    print(
        f"client-side masking (not in the step): {masking_ms_per_image:.2f} ms per image, ratio {DEFAULT_MASKING_RATIO}"
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(
                {"rows": rows, "masking_ms_per_image": masking_ms_per_image, "settings": vars(args)}, handle, indent=2
            )


if __name__ == "__main__":
    main()
