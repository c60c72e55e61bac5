"""How much image energy PPFR-FD masking removes at each ratio, on real faces, and what a linear probe still finds.

For ORL and Extended Yale B (all readable images, gray, 112x112) and each masking ratio: channels kept, the
fraction of the total energy removed (DC included, the figure PPFR-FD reports), the fraction of the non-DC (AC)
energy removed, and the identification accuracy of a linear probe (ridge regression on the masked features,
fitted on half of each person's images, tested on the other half). The probe is a cheap stand-in for "how much
identity is left for an FR network to learn from"; a trained network does better, but the trend across ratios
is what it shows. Energy is measured on every image; the probe's masker is fitted on the training half only.

    python -m benchmarks.masking_energy [--ratios 0 0.3 0.5 0.8 0.9] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from benchmarks.faces import DEMO_KEY, ORL_DIR, YALEB_DIR, load_faces
from masking.dct import to_frequency
from masking.masker import FrequencyMasker
from masking.ppfr import channel_energy, select_channels

DEFAULT_RATIOS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.8, 0.9)


def split_halves(identities: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean masks: each person's images alternate between the training and the test half."""
    seen: dict[str, int] = {}
    train = []
    for name in identities:
        train.append(seen.get(name, 0) % 2 == 0)
        seen[name] = seen.get(name, 0) + 1
    train_mask = torch.tensor(train)
    return train_mask, ~train_mask


def ridge_probe_accuracy(
    train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor
) -> float:
    """Top-1 accuracy of one-vs-all ridge regression (dual form, regularisation 0.1 x mean kernel diagonal)."""
    train_x, test_x = train_x.flatten(1).double(), test_x.flatten(1).double()
    mean, std = train_x.mean(dim=0), train_x.std(dim=0).clamp_min(1e-8)
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    kernel = train_x @ train_x.T
    targets = torch.nn.functional.one_hot(train_y, int(train_y.max()) + 1).double()
    regulariser = 0.1 * kernel.diagonal().mean()
    dual = torch.linalg.solve(kernel + regulariser * torch.eye(len(kernel), dtype=kernel.dtype), targets)
    predicted = (test_x @ train_x.T @ dual).argmax(dim=1)
    return float((predicted == test_y).double().mean())


def measure(name: str, root: Path, ratios: list[float]) -> list[dict]:
    faces, identities = load_faces(root)
    names = sorted(set(identities))
    labels = torch.tensor([names.index(n) for n in identities])
    train, test = split_halves(identities)
    energy = channel_energy(to_frequency(faces))
    rows = [
        {
            "dataset": name,
            "ratio": None,
            "images": len(faces),
            "probe_accuracy": ridge_probe_accuracy(faces[train], labels[train], faces[test], labels[test]),
        }
    ]
    for ratio in ratios:
        selection = select_channels(energy, ratio, num_planes=1)
        masker = FrequencyMasker.fit(faces[train], DEMO_KEY, ratio)
        accuracy = ridge_probe_accuracy(
            masker.mask(faces[train]), labels[train], masker.mask(faces[test]), labels[test]
        )
        rows.append(
            {
                "dataset": name,
                "ratio": ratio,
                "images": len(faces),
                "kept_channels": len(selection.kept),
                "energy_removed": selection.energy_removed,
                "ac_energy_removed": selection.ac_energy_removed,
                "probe_accuracy": accuracy,
            }
        )
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"{'data':6} {'ratio':>5} {'kept':>7} {'energy removed':>15} {'AC energy removed':>18} {'probe acc.':>10}")
    for row in rows:
        if row["ratio"] is None:
            print(f"{row['dataset']:6} {'pixels':>5} {'-':>7} {'-':>15} {'-':>18} {row['probe_accuracy']:>10.3f}")
            continue
        print(
            f"{row['dataset']:6} {row['ratio']:>5.2f} {row['kept_channels']:>4}/64 {100 * row['energy_removed']:>14.3f}% "
            f"{100 * row['ac_energy_removed']:>17.2f}% {row['probe_accuracy']:>10.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ratios", type=float, nargs="+", default=list(DEFAULT_RATIOS))
    parser.add_argument("--json", type=Path, help="also write the rows as JSON to this path")
    args = parser.parse_args()
    rows = measure("ORL", ORL_DIR, args.ratios) + measure("YaleB", YALEB_DIR, args.ratios)
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
