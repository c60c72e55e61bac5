"""Images per second of the client-side defence (block DCT + PPFR-FD masking + shuffle-and-mix + MixUp of k).

Side by side, in one run, on batches of 112x112 RGB faces (ORL faces as RGB; random smooth images where the
shared data are absent), each pipeline doing the whole job (to frequency channels, keep, shuffle-and-mix,
normalise, MixUp):

- hybridmask: `FrequencyMasker.mask` (one strided convolution) then `mixup`, on a channels_last batch (the
  layout that decoding height x width x channels pixels from the shards gives without a copy), and beside it
  on a plain NCHW batch;
- cv2 loop: the DCT done as image-processing code often does it, one `cv2.dct` call per 8x8 block per plane
  per image in Python loops, then the same masking steps and MixUp;
- upsample + unfold: the approach of public frequency-domain FR code, which upsamples each YCbCr plane x8
  (nearest neighbour) so that every frequency channel keeps the input's 112x112 size, unfolds the 8x8 patches
  (stride 8) and DCTs each patch; masking and MixUp then work on channels 64 times larger;
- copy: a plain copy of the same input batch into a preallocated tensor, the floor for any transform that
  must read its input and write an output (`fraction_of_copy` = hybridmask's rate over this one).

    python -m benchmarks.masking [--batch-size 128] [--threads 2] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a file: put the repository first, so `masking` is the package, not this file
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.faces import DEMO_KEY, ORL_DIR, load_faces
from masking.dct import BLOCK, dct_matrix, rgb_to_ycbcr, to_frequency
from masking.masker import FrequencyMasker
from masking.mixup import mixup
from masking.ppfr import DEFAULT_MASKING_RATIO

GOALS = {"ratio_vs_cv2_loop": 10.0, "ratio_vs_upsample_unfold": 100.0, "fraction_of_copy": 0.5}


def face_batch(size: int) -> tuple[torch.Tensor, str]:
    """[size, 3, 112, 112] float32 RGB faces in [0, 1] and where they came from."""
    if ORL_DIR.is_dir():
        faces, _ = load_faces(ORL_DIR)
        repeats = -(-size // len(faces))
        return faces.repeat(repeats, 3, 1, 1)[:size].contiguous(), f"ORL faces as RGB ({len(faces)} distinct)"
    generator = torch.Generator().manual_seed(0)
    coarse = torch.rand(size, 3, 7, 7, generator=generator)
    smooth = F.interpolate(coarse, size=(112, 112), mode="bicubic", align_corners=False).clamp(0, 1)
    return smooth.contiguous(), "random smooth images (shared ORL data not found)"


def cv2_loop_frequency(images: torch.Tensor) -> torch.Tensor:
    """Block DCT with one cv2.dct call per 8x8 block, plane and image (colour conversion batched)."""
    planes = rgb_to_ycbcr(images).numpy()
    batch, num_planes, height, width = planes.shape
    out = np.empty((batch, num_planes * 64, height // BLOCK, width // BLOCK), dtype=np.float32)
    for b in range(batch):
        for p in range(num_planes):
            for y in range(0, height, BLOCK):
                for x in range(0, width, BLOCK):
                    block = np.ascontiguousarray(planes[b, p, y : y + BLOCK, x : x + BLOCK])
                    out[b, p * 64 : (p + 1) * 64, y // BLOCK, x // BLOCK] = cv2.dct(block).reshape(64)
    return torch.from_numpy(out)


def upsample_unfold_frequency(images: torch.Tensor) -> torch.Tensor:
    """Each YCbCr plane upsampled x8 (nearest), 8x8 patches unfolded with stride 8, each patch DCT'd:
    [B, 3, H, W] -> [B, 192, H, W] (channels at the input's size, as that approach feeds them to a CNN)."""
    planes = rgb_to_ycbcr(images)
    batch, num_planes, height, width = planes.shape
    upsampled = F.interpolate(planes, scale_factor=BLOCK, mode="nearest")
    patches = F.unfold(upsampled.reshape(batch * num_planes, 1, height * BLOCK, width * BLOCK), BLOCK, stride=BLOCK)
    d = dct_matrix(images.dtype)
    coefficients = torch.kron(d, d) @ patches  # [B*P, 64, H*W]; patch index i*8+j, coefficient index u*8+v
    return coefficients.reshape(batch, num_planes * 64, height, width)


@dataclass
class Pipeline:
    name: str
    batch_size: int
    run: Callable[[torch.Tensor, torch.Tensor], object]
    memory_format: torch.memory_format = torch.contiguous_format


def pipelines(masker: FrequencyMasker, k: int, batch_size: int, copy_target: torch.Tensor) -> list[Pipeline]:
    def hybridmask(images, labels):
        return mixup(masker.mask(images), labels, k)

    def cv2_loop(images, labels):
        return mixup(masker.mask_frequency_channels(cv2_loop_frequency(images)), labels, k)

    def upsample_unfold(images, labels):
        return mixup(masker.mask_frequency_channels(upsample_unfold_frequency(images)), labels, k)

    def copy(images, labels):
        return copy_target.copy_(images)

    def mask_only(images, labels):
        return masker.mask(images)

    return [
        Pipeline("hybridmask (composed conv + MixUp)", batch_size, hybridmask, torch.channels_last),
        Pipeline("cv2.dct per-block loop", 16, cv2_loop),
        Pipeline("upsample x8 + unfold", 8, upsample_unfold),
        Pipeline("plain copy of the batch", batch_size, copy, torch.channels_last),
        Pipeline("hybridmask, NCHW input", batch_size, hybridmask),
        Pipeline("hybridmask mask only, no MixUp", batch_size, mask_only, torch.channels_last),
    ]


def measure_rates(pipelines: list[Pipeline], images: torch.Tensor, rounds: int) -> dict[str, dict]:
    """Images/s of every pipeline: one warm-up run each, then `rounds` rounds in which each pipeline runs once
    in turn, so that a change of load on a shared machine hits all of them alike. Median and best per pipeline."""
    batches = {
        p.name: (images[: p.batch_size].contiguous(memory_format=p.memory_format), torch.arange(p.batch_size))
        for p in pipelines
    }
    rates: dict[str, list[float]] = {p.name: [] for p in pipelines}
    for p in pipelines:
        p.run(*batches[p.name])
    for _ in range(rounds):
        for p in pipelines:
            start = time.perf_counter()
            p.run(*batches[p.name])
            rates[p.name].append(p.batch_size / (time.perf_counter() - start))
    return {
        p.name: {"batch_size": p.batch_size, "median": statistics.median(rates[p.name]), "best": max(rates[p.name])}
        for p in pipelines
    }


def check_baselines_agree(images: torch.Tensor) -> None:
    """The baselines compute what they claim: the cv2 loop equals the project's DCT; after nearest upsampling
    every 8x8 patch is one pixel repeated, so its DCT is 8 x that pixel at DC and zero elsewhere."""
    if not torch.allclose(cv2_loop_frequency(images), to_frequency(images), atol=1e-4):
        raise AssertionError("the cv2 loop baseline disagrees with masking.dct.to_frequency")
    upsampled = upsample_unfold_frequency(images).reshape(images.shape[0], 3, 64, *images.shape[2:])
    if not torch.allclose(upsampled[:, :, 0], BLOCK * rgb_to_ycbcr(images), atol=1e-4):
        raise AssertionError("the upsample + unfold baseline's DC channels are not 8 x the upsampled pixels")
    if upsampled[:, :, 1:].abs().max() > 1e-4:
        raise AssertionError("the upsample + unfold baseline has AC energy in constant patches")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--batch-size",
        type=int,
        default=128,
        help="images per batch for hybridmask and the copy (default: %(default)s)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch and OpenCV threads (default: %(default)s)")
    parser.add_argument("--ratio", type=float, default=DEFAULT_MASKING_RATIO, help="masking ratio")
    parser.add_argument("--k", type=int, default=3, help="images mixed per sample (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=15, help="timed runs of each pipeline (default: %(default)s)")
    parser.add_argument("--json", type=Path, help="write the summary as JSON to this path")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    images, source = face_batch(args.batch_size)
    check_baselines_agree(images[:4])
    masker = FrequencyMasker.fit(images, DEMO_KEY, args.ratio)
    load_before = os.getloadavg()
    copy_target = torch.empty_like(images[: args.batch_size].contiguous(memory_format=torch.channels_last))
    results = measure_rates(pipelines(masker, args.k, args.batch_size, copy_target), images, args.rounds)
    load_after = os.getloadavg()

    ours, cv2_rate, unfold_rate, copy_rate = (r["median"] for r in list(results.values())[:4])
    summary = {
        "images_per_s": ours,
        "ratio_vs_cv2_loop": ours / cv2_rate,
        "ratio_vs_upsample_unfold": ours / unfold_rate,
        "fraction_of_copy": ours / copy_rate,
        "pipelines": results,
        "settings": {
            "images": source,
            "image_shape": [3, 112, 112],
            "ratio": args.ratio,
            "kept_channels": masker.num_kept,
            "k": args.k,
            "threads": args.threads,
            "dtype": "float32",
        },
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "torch": torch.__version__,
            "load_average_before": load_before,
            "load_average_after": load_after,
        },
    }
    print(
        f"{args.threads} threads, ratio {args.ratio:g} ({masker.num_kept} of 192 channels kept), MixUp k={args.k}; "
        f"{source}; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after"
    )
    print(f"{'pipeline':36} {'batch':>5} {'images/s (median)':>18} {'best':>10} {'hybridmask is':>14}")
    for name, result in results.items():
        print(
            f"{name:36} {result['batch_size']:>5} {result['median']:>18.1f} {result['best']:>10.1f} "
            f"{ours / result['median']:>13.2f}x"
        )
    for goal, target in GOALS.items():
        print(
            f"{goal:26} {summary[goal]:>10.2f}   goal >= {target:g}: {'met' if summary[goal] >= target else 'NOT met'}"
        )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
