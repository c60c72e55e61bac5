"""Figure docs/reward_defaults.png: which k the reward makes best, for several utility penalties lambda.

By default it uses the stand-in learner's surface (rl_env.standin). With `--measured FILE` it uses measured
numbers instead: a JSON object {"k": {"mixed_loss": ..., "clean_val_rise": ...}, ...} per candidate k (e.g.
from short fixed-k runs of the real FR learner), and draws the same two panels.

    python benchmarks/reward_defaults.py [--measured FILE] [--out docs/reward_defaults.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import itertools

import matplotlib.pyplot as plt
import numpy as np

from rl_env.env_config import DEFAULT_CANDIDATE_SET
from rl_env.reward import DEFAULT_LOSS_WEIGHT, DEFAULT_UTILITY_PENALTY, window_reward
from rl_env.standin import StandInSurface

SHOWN_PENALTIES = (0.0, 0.25, 0.5, DEFAULT_UTILITY_PENALTY, 2.0)


def standin_losses(surface: StandInSurface, candidate_set) -> dict[int, tuple[float, float]]:
    """k -> (expected mixed loss at the start of training, clean validation rise above the reference)."""
    return {
        k: (surface.expected_mixed_loss(k, 0.0), surface.clean_val_loss(k) - surface.clean_floor) for k in candidate_set
    }


def measured_losses(path: Path) -> dict[int, tuple[float, float]]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {int(k): (float(v["mixed_loss"]), float(v["clean_val_rise"])) for k, v in raw.items()}


def rewards(losses: dict[int, tuple[float, float]], penalty: float) -> dict[int, float]:
    return {k: window_reward(mixed, rise, 0.0, DEFAULT_LOSS_WEIGHT, penalty) for k, (mixed, rise) in losses.items()}


def best_k(losses: dict[int, tuple[float, float]], penalty: float) -> int:
    by_k = rewards(losses, penalty)
    return max(by_k, key=by_k.get)


def draw(losses: dict[int, tuple[float, float]], source: str, out: Path) -> None:
    ks = sorted(losses)
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for penalty in SHOWN_PENALTIES:
        by_k = rewards(losses, penalty)
        style = dict(linewidth=2.5) if penalty == DEFAULT_UTILITY_PENALTY else dict(linewidth=1.2, alpha=0.8)
        label = f"λ = {penalty:g}" + (" (default)" if penalty == DEFAULT_UTILITY_PENALTY else "")
        (line,) = left.plot(ks, [by_k[k] for k in ks], marker="o", label=label, **style)
        chosen = best_k(losses, penalty)
        left.plot([chosen], [by_k[chosen]], marker="*", markersize=16, color=line.get_color())
    left.set(xlabel="k (faces mixed per sample)", ylabel="expected reward of a window", xticks=ks)
    left.set_title("reward per k (★ = best k)")
    left.legend(fontsize=8)

    grid = np.linspace(0.0, 2.5, 501)
    right.step(grid, [best_k(losses, p) for p in grid], where="post")
    switches = [p for a, p in itertools.pairwise(grid) if best_k(losses, a) != best_k(losses, p)]
    for p in switches:
        right.axvline(p, color="grey", linestyle=":", linewidth=1)
        right.annotate(f"λ={p:.2f}", (p, ks[0]), xytext=(3, 3), textcoords="offset points", fontsize=8)
    right.axvline(
        DEFAULT_UTILITY_PENALTY, color="black", linestyle="--", label=f"default λ = {DEFAULT_UTILITY_PENALTY:g}"
    )
    right.set(xlabel="utility penalty λ", ylabel="best k", yticks=ks)
    right.set_title("best k against λ (dotted: where it changes)")
    right.legend(fontsize=8)
    figure.suptitle(f"reward = mixed loss − λ · rise of clean validation loss   ({source})", fontsize=10)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=120)
    plt.close(figure)
    print("| λ | best k |\n|---|---|")
    for penalty in SHOWN_PENALTIES:
        print(f"| {penalty:g} | {best_k(losses, penalty)} |")
    print(f"best k changes at λ ≈ {', '.join(f'{p:.3f}' for p in switches)}; wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measured", type=Path, help="JSON of measured losses per k (see the module docstring)")
    parser.add_argument("--out", type=Path, default=Path("docs/reward_defaults.png"))
    args = parser.parse_args()
    if args.measured:
        draw(measured_losses(args.measured), f"measured: {args.measured.name}", args.out)
    else:
        surface = StandInSurface()
        draw(standin_losses(surface, DEFAULT_CANDIDATE_SET), f"stand-in surface, k* = {surface.optimal_k}", args.out)


if __name__ == "__main__":
    main()
