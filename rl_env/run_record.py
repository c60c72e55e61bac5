"""What an adaptive run leaves beside the FR learner's own record: the strategy's side of every window.

`attach_strategy_record` writes each window's reward, centred reward, the policy's probability of every k when it
chose, and its number of updates into metrics.jsonl; `strategy_statistics` sums them up for summary.json (k
histogram, mean k, and per k the windows and the mean raw and centred reward the strategy earned on the real
learner); `plot_k_over_training` draws k, the probabilities and the losses window by window.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from common.files import atomic_write_text, read_json_lines

WINDOW_STRATEGY_FIELDS = ("reward", "centred_reward", "k_probabilities", "policy_updates")
"""What metrics.jsonl gains per window from the strategy's log (None for a window it has no record of)."""


def attach_strategy_record(metrics_path: Path, window_log: Path) -> list[dict[str, Any]]:
    """Write the strategy's record of each window (from `window_log`) into metrics.jsonl; return the epochs."""
    by_window: dict[int, dict[str, Any]] = {}
    if window_log.is_file():
        for record in read_json_lines(window_log):
            by_window[record["window"]] = {
                "reward": record["raw_reward"],
                "centred_reward": record["centred_reward"],
                "k_probabilities": record["k_probabilities"],
                "policy_updates": record["policy_updates"],
            }
    history = read_json_lines(metrics_path)
    for epoch in history:
        for window in epoch["windows"]:
            window.update(by_window.get(window["window"], dict.fromkeys(WINDOW_STRATEGY_FIELDS)))
    atomic_write_text(metrics_path, "".join(json.dumps(epoch) + "\n" for epoch in history))
    return history


def strategy_statistics(history: list[dict[str, Any]]) -> dict[str, Any]:
    """k histogram, mean k, windows, and per k the mean reward earned (raw, and centred as the strategy saw it).

    The raw reward carries the FR loss's fall over training, so a k chosen mostly late looks worse in it; the
    centred one (minus the running mean of the rewards before it) is what the strategy learned from.
    """
    windows = [window for epoch in history for window in epoch["windows"]]
    ks = [window["k"] for window in windows]
    rewards: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for window in windows:
        if window.get("reward") is not None:
            rewards[window["k"]].append((window["reward"], window["centred_reward"]))
    return {
        "k_histogram": {str(k): count for k, count in sorted(Counter(ks).items())},
        "mean_k": sum(ks) / len(ks),
        "windows": len(ks),
        "reward_by_k": {
            str(k): {
                "windows": len(pairs),
                "mean_reward": float(np.mean([raw for raw, _ in pairs])),
                "mean_centred_reward": float(np.mean([centred for _, centred in pairs])),
            }
            for k, pairs in sorted(rewards.items())
        },
    }


def plot_k_over_training(
    history: list[dict[str, Any]], candidate_set: tuple[int, ...], path: Path, algorithm: str
) -> None:
    """Three panels over the training windows: k chosen, the policy's probability of each k, the FR losses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    windows = [window for epoch in history for window in epoch["windows"]]
    index = [window["window"] for window in windows]
    figure, (k_axis, probability_axis, loss_axis) = plt.subplots(
        3, 1, figsize=(9, 7.5), sharex=True, constrained_layout=True
    )
    k_axis.step(index, [window["k"] for window in windows], where="mid", color="tab:blue")
    k_axis.set_yticks(list(candidate_set))
    k_axis.set_ylabel("k chosen")
    k_axis.set_title(f"adaptive MixUp: k chosen by the {algorithm.upper()} strategy, window by window")
    _plot_probabilities(probability_axis, windows, index, candidate_set)
    loss_axis.plot(index, [window["mixed_loss"] for window in windows], label="mixed loss (training windows)")
    loss_axis.plot(index, [window["clean_val_loss"] for window in windows], label="clean validation loss")
    loss_axis.set_xlabel("training window")
    loss_axis.set_ylabel("FR loss")
    loss_axis.legend(loc="upper right")
    for epoch_end in range(len(history)):
        boundary = (epoch_end + 1) * len(history[0]["windows"]) - 0.5
        for axis in (k_axis, probability_axis, loss_axis):
            axis.axvline(boundary, color="0.85", linewidth=0.8, zorder=0)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _plot_probabilities(axis, windows: list[dict[str, Any]], index: list[int], candidate_set: tuple[int, ...]) -> None:
    """Stacked probability of each k when the policy chose; ticks on top where the policy had been updated."""
    known = [(i, window) for i, window in zip(index, windows, strict=True) if window.get("k_probabilities")]
    if not known:
        axis.text(0.5, 0.5, "no probabilities recorded", ha="center", va="center", transform=axis.transAxes)
        return
    positions = [i for i, _ in known]
    probabilities = np.array([window["k_probabilities"] for _, window in known]).T
    axis.stackplot(positions, probabilities, labels=[f"k={k}" for k in candidate_set], step="mid", alpha=0.85)
    versions = [window["policy_updates"] for _, window in known]
    for i in range(1, len(versions)):
        if versions[i] != versions[i - 1]:
            axis.axvline(positions[i] - 0.5, color="black", linestyle=":", linewidth=0.8)
    axis.set_ylim(0, 1)
    axis.set_ylabel("p(k) when chosen")
    axis.set_title("the policy's probability of each k when it chose (dotted: a newer policy from here)", fontsize=9)
    axis.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7)
