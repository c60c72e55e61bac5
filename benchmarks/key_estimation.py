"""How well the secret map is estimated without the key, on real faces: the relative error of each estimate.

Two errors: of the map itself (Frobenius), and of what it does to the data, ||(A_est - A) k|| / ||A k|| over the
private faces' kept frequencies k (directions the faces never use cannot be estimated by any attack, and do not
matter to a recovery; at 64 px Yale B has such near-empty kept channels, ORL does not).

For ORL and Extended Yale B (gray, 64x64; the first half of the people private, the second half public, as the
evaluation splits identities), masked at ratio 0.5 with the public demonstration key:
- known plaintext from n = 1, 2, 4, 8 private faces (drawn at random, seeded) and the float16 masked forms stored in shards;
- statistics only: the server's masked private rows against the public faces (eigenbases of the second moments,
  signs from per-position means and third moments); and the same with the private faces themselves as the
  "public" statistics (the best an attacker whose public faces matched the private ones perfectly could do);
- a random orthogonal matrix, the error of a guess that knows nothing (about sqrt(2)).

    python -m benchmarks.key_estimation [--size 64] [--ratio 0.5]
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.faces import DEMO_KEY, ORL_DIR, YALEB_DIR, load_faces
from evaluation.attacks.key_recovery import (
    estimate_map_from_statistics,
    kept_frequencies,
    relative_error,
    solve_map,
    true_map,
)
from evaluation.server_view import PublicDefenseConfig
from masking.masker import FrequencyMasker


def estimation_errors(faces: torch.Tensor, identities: list[str], ratio: float) -> dict[str, tuple[float, float]]:
    people = sorted(set(identities))
    private_people = set(people[: len(people) // 2])
    is_private = torch.tensor([name in private_people for name in identities])
    private, public = faces[is_private], faces[~is_private]
    masker = FrequencyMasker.fit(private, DEMO_KEY, ratio)
    defense = PublicDefenseConfig("ppfr_fd", masking=masker.public_settings())
    stored = masker.mask(private).half()
    truth = true_map(masker.obfuscation)
    random_rotation = torch.linalg.qr(
        torch.randn(*truth.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    )[0]
    known = torch.randperm(len(private), generator=torch.Generator().manual_seed(1))  # faces the attacker knows
    frequencies = kept_frequencies(private, defense).permute(1, 0, 2, 3).flatten(1)
    estimates = {
        **{
            f"known plaintext, {n} face(s)": solve_map(private[known[:n]], stored[known[:n]], defense)
            for n in (1, 2, 4, 8)
        },
        "statistics, public faces": estimate_map_from_statistics(stored, public, defense),
        "statistics, the private faces themselves": estimate_map_from_statistics(stored, private, defense),
        "random orthogonal guess": random_rotation,
    }
    return {
        name: (relative_error(estimate, truth), relative_error(estimate @ frequencies, truth @ frequencies))
        for name, estimate in estimates.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--ratio", type=float, default=0.5)
    args = parser.parse_args()
    rows = {
        name: estimation_errors(*load_faces(root, args.size), args.ratio)
        for name, root in (("ORL", ORL_DIR), ("Yale B", YALEB_DIR))
    }
    methods = list(next(iter(rows.values())))
    print(
        f"relative error of the estimated map / of its action on the private faces ({args.size} px, ratio {args.ratio})"
    )
    print("| estimate | " + " | ".join(f"{data}: map | {data}: on the data" for data in rows) + " |")
    print("|---" * (2 * len(rows) + 1) + "|")
    for method in methods:
        cells = [f"{error:.2e}" for data in rows for error in rows[data][method]]
        print(f"| {method} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
