"""Step time of each defence against the unprotected `none` baseline, on the same backbone and batch.

A step is what the training loop does per batch (trainers.loop.train_step) on a batch as the client sent it
(already mixed with k): forward, mixed-label margin loss, backward, optimiser step. Defences are timed
round-robin in one process, so machine noise hits them alike; the table gives median milliseconds per step and
the ratio to `none`. Masking and mixing run on the client (benchmarks/client_mixing.py times the mixing); the
masking cost per image is listed separately.

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
from masking.mixup import mixup
from masking.ppfr import DEFAULT_MASKING_RATIO
from pipelines.data.synth import generate_faces
from trainers.config import TrainConfig
from trainers.config_io import load_config
from trainers.loop import build_optimizer, train_step
from trainers.model import build_face_model
from trainers.window_source import ClientOffer, SentBatch

DEFENSES = (("none", 1), ("ppfr_fd", 1), ("mixup", 2), ("hybrid_fixed", 2), ("hybrid_fixed", 4))


def sent_batch(inputs: torch.Tensor, labels: torch.Tensor, k: int) -> SentBatch:
    """The batch as the client sends it: mixed with k (k = 1: the faces themselves)."""
    mixed = mixup(inputs, labels, k, 1.0, torch.Generator().manual_seed(k))
    return SentBatch(inputs=mixed.mixed, labels=mixed.labels, weights=mixed.weights)


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
    with torch.no_grad():
        inputs = {"images": image_batch * 2 - 1, "masked": masker.mask(image_batch).contiguous()}
    label_tensor = torch.from_numpy(labels.astype(np.int64))
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
        offer = ClientOffer(
            representation=representation,
            channels=channels,
            size=args.size if config.uses_pixels else args.size // 8,
            num_classes=args.batch // 2,
            train_rows=len(images),
            holdout_rows=0,
            verify_rows=0,
            verify_pairs=0,
            synthetic_data=True,
        )
        model = build_face_model(config, offer).train()
        runs[f"{name}" + (f" k={k}" if k > 1 else "")] = (
            model,
            build_optimizer(config, model),
            sent_batch(inputs[representation], label_tensor, k),
            representation,
        )

    device = torch.device("cpu")
    timings: dict[str, list[float]] = {label: [] for label in runs}
    for round_index in range(args.rounds + 1):  # round 0 warms up and is not counted
        for label, (model, optimizer, batch, _) in runs.items():
            started = time.perf_counter()
            for _ in range(args.steps):
                train_step(model, optimizer, batch, device)
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
