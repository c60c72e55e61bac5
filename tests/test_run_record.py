"""The strategy's side of an adaptive run's record: per-window fields in metrics.jsonl, statistics, the figure."""

from __future__ import annotations

import json

import pytest

from rl_env.run_record import attach_strategy_record, plot_k_over_training, strategy_statistics


def window(index: int, k: int) -> dict:
    return {"window": index, "k": k, "mixed_loss": 5.0 - index * 0.1, "clean_val_loss": 2.0}


def strategy_log(index: int, k: int, raw: float, centred: float, version: int) -> dict:
    probabilities = [0.2, 0.3, 0.5] if k == 4 else [0.5, 0.3, 0.2]
    return {
        "window": index, "k": k, "raw_reward": raw, "centred_reward": centred,
        "k_probabilities": probabilities, "policy_updates": version,
    }  # fmt: skip


@pytest.fixture
def run_files(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    epochs = [{"epoch": 1, "windows": [window(0, 2), window(1, 4)]}, {"epoch": 2, "windows": [window(2, 4)]}]
    metrics.write_text("".join(json.dumps(epoch) + "\n" for epoch in epochs))
    log = tmp_path / "windows.jsonl"
    records = [strategy_log(0, 2, 5.0, 0.0, 0), strategy_log(1, 4, 6.0, 1.0, 0), strategy_log(2, 4, 4.0, -2.0, 1)]
    log.write_text("".join(json.dumps(record) + "\n" for record in records))
    return metrics, log


def test_each_windows_reward_and_probabilities_are_written_beside_its_k(run_files):
    metrics, log = run_files
    history = attach_strategy_record(metrics, log)
    on_disk = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert on_disk == history
    assert [(w["k"], w["reward"], w["policy_updates"]) for e in history for w in e["windows"]] == [
        (2, 5.0, 0),
        (4, 6.0, 0),
        (4, 4.0, 1),
    ]


def test_summary_statistics_give_per_k_the_mean_reward_the_strategy_earned(run_files):
    statistics = strategy_statistics(attach_strategy_record(*run_files))
    assert statistics["k_histogram"] == {"2": 1, "4": 2} and statistics["windows"] == 3
    assert statistics["mean_k"] == pytest.approx(10 / 3)
    assert statistics["reward_by_k"] == {
        "2": {"windows": 1, "mean_reward": 5.0, "mean_centred_reward": 0.0},
        "4": {"windows": 2, "mean_reward": 5.0, "mean_centred_reward": -0.5},
    }


def test_window_without_a_strategy_record_gets_none_not_a_made_up_reward(run_files):
    metrics, log = run_files
    log.write_text(log.read_text().splitlines()[0] + "\n")
    history = attach_strategy_record(metrics, log)
    assert [w["reward"] for e in history for w in e["windows"]] == [5.0, None, None]
    assert strategy_statistics(history)["reward_by_k"] == {
        "2": {"windows": 1, "mean_reward": 5.0, "mean_centred_reward": 0.0}
    }


def test_figure_has_k_probability_and_loss_panels(run_files, tmp_path):
    import matplotlib.image

    history = attach_strategy_record(*run_files)
    path = tmp_path / "k.png"
    plot_k_over_training(history, (2, 3, 4), path, "ppo")
    height, width = matplotlib.image.imread(path).shape[:2]
    assert (width, height) == (990, 825)  # 9 x 7.5 inches at 110 dpi: three panels
