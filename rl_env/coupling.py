"""The adaptive defence end to end: a real Ray Train FR run and an RLlib strategy, side by side, in lock-step.

The driver thread runs the strategy (RLlib's `algo.train()` steps MixUpKEnv, which waits on the mailbox); a
background thread runs `trainers.run.train`, whose workers take each window's k from the mailbox through
`MailboxKSource` and report their losses back. When either side ends or fails, the mailbox is declared finished
so the other side stops at once instead of waiting out its timeout.

RUN_DIR gains: strategy/ (the RLlib checkpoint, saved after every update, restored on resume), windows.jsonl
(the environment's record of every window: k, raw and centred reward, losses), k_over_training.png, and in
metrics.jsonl each window's reward beside its k and losses.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.errors import InputError
from common.files import atomic_write_json, atomic_write_text, read_json_lines
from rl_env.learner_link import LearnerTimeout
from rl_env.settings import AdaptiveConfig
from rl_env.strategies import StrategyConfig
from trainers.config import TrainConfig
from trainers.k_source import WindowReport
from trainers.local_ray import start_ray
from trainers.run import METRICS_FILE, SUMMARY_FILE, inspect_dataset, plan_epoch, train

STRATEGY_DIR = "strategy"
WINDOW_LOG = "windows.jsonl"
K_FIGURE = "k_over_training.png"


@dataclass(frozen=True)
class MailboxKSource:
    """The training workers' KSource for the adaptive defence: k comes from the strategy through the mailbox."""

    mailbox_name: str
    timeout_s: float
    wants_clean_validation: bool = True

    def _client(self, rank: int):
        from rl_env.mailbox import MailboxClient

        return MailboxClient(_mailbox_handle(self.mailbox_name), rank)

    def k_for_window(self, window_index: int) -> int:
        k = self._client(0).next_k(window_index, self.timeout_s)
        if k is None:
            raise RuntimeError(f"the strategy stopped before window {window_index}: the RL driver ended or failed")
        return k

    def report_window(self, report: WindowReport) -> None:
        self._client(report.worker_rank).report(
            report.window_index, report.mixed_loss, report.clean_val_loss, report.progress
        )

    def finish(self) -> None:
        return None


@functools.lru_cache(maxsize=4)
def _mailbox_handle(name: str):
    """One actor lookup per worker process, not one per window."""
    import ray

    return ray.get_actor(name)


def mailbox_name_for(run_dir: Path) -> str:
    """Stable per run folder, so a resumed run's restored strategy finds its learner under the same name."""
    return "hybridmask-mailbox-" + hashlib.sha256(str(run_dir).encode()).hexdigest()[:16]


def epochs_already_done(run_dir: Path) -> int:
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return 0
    records = read_json_lines(path)
    return records[-1]["epoch"] if records else 0


def train_adaptive(
    data_dir: str | Path,
    run_dir: str | Path,
    config: TrainConfig,
    strategy: StrategyConfig,
    adaptive: AdaptiveConfig,
    storage_path: str | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Train the hybrid_adaptive defence; returns the summary with the strategy's k statistics."""
    import ray

    from rl_env.env_config import MailboxLinkConfig
    from rl_env.mailbox import create_mailbox
    from rl_env.strategies import build_strategy, train_once

    if not config.defense_row.adaptive:
        raise InputError(f"train_adaptive runs defences with an adaptive k, not {config.defense.name!r}")
    config.validate()
    adaptive.validate(config.optim.batch_size)
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    plan = plan_epoch(config, inspect_dataset(data_dir))
    start_ray()

    name = mailbox_name_for(run_dir)
    _remove_stale_mailbox(name)
    first_window = epochs_already_done(run_dir) * plan["windows_per_epoch"]
    mailbox = create_mailbox(name, config.scale.workers, first_window=first_window)
    env_config = adaptive.environment(
        batch_size=config.optim.batch_size,
        window_batches=config.window_batches,
        windows_per_episode=plan["windows_per_epoch"],
        link=MailboxLinkConfig(mailbox_name=name, timeout_s=adaptive.timeout_s),
        window_log_path=str(run_dir / WINDOW_LOG),
    )
    algo = build_strategy(strategy, env_config)
    if (run_dir / STRATEGY_DIR).is_dir():
        algo.restore_from_path(str(run_dir / STRATEGY_DIR))
        print(f"restored the {strategy.algorithm} strategy from {run_dir / STRATEGY_DIR}", flush=True)

    outcome: dict[str, Any] = {}

    def run_learner() -> None:
        try:
            outcome["summary"] = train(
                data_dir,
                run_dir,
                config,
                k_source=MailboxKSource(name, adaptive.timeout_s),
                storage_path=storage_path,
                write_summary=False,
                quiet=quiet,
            )
        except BaseException as error:  # handed to the driver thread below
            outcome["error"] = error
        finally:
            ray.get(mailbox.declare_finished.remote())

    learner = threading.Thread(target=run_learner, name="hybridmask-fr-learner", daemon=True)
    learner.start()
    try:
        while not ray.get(mailbox.state.remote()).finished:
            train_once(algo)
            algo.save_to_path(str(run_dir / STRATEGY_DIR))
    except LearnerTimeout:
        ray.get(mailbox.declare_finished.remote())
        learner.join()
        if "error" in outcome:
            raise outcome["error"] from None
        raise
    learner.join()
    algo.save_to_path(str(run_dir / STRATEGY_DIR))
    algo.stop()
    ray.kill(mailbox)
    if "error" in outcome:
        raise outcome["error"]

    summary = outcome["summary"]
    history = _attach_rewards(run_dir)
    ks = [window["k"] for epoch in history for window in epoch["windows"]]
    summary.update(
        {
            "strategy": strategy.algorithm,
            "candidate_set": list(adaptive.candidate_set),
            "k_histogram": {str(k): count for k, count in sorted(Counter(ks).items())},
            "mean_k": sum(ks) / len(ks),
            "windows": len(ks),
        }
    )
    _plot_k_over_training(history, adaptive.candidate_set, run_dir / K_FIGURE, strategy.algorithm)
    atomic_write_json(run_dir / SUMMARY_FILE, summary)  # last: its presence marks the run finished
    return summary


def _remove_stale_mailbox(name: str) -> None:
    """A mailbox left by an interrupted driver in a long-lived cluster would hold the name: end it."""
    import ray

    try:
        ray.kill(ray.get_actor(name))
    except ValueError:
        return


def _attach_rewards(run_dir: Path) -> list[dict[str, Any]]:
    """Write each window's reward (from the environment's log) into metrics.jsonl beside its k and losses."""
    rewards: dict[int, dict[str, float]] = {}
    log = run_dir / WINDOW_LOG
    if log.is_file():
        for record in read_json_lines(log):
            if record.get("window_trained"):
                rewards[record["windows_done"] - 1] = {
                    "reward": record["raw_reward"],
                    "centred_reward": record["centred_reward"],
                }
    metrics_path = run_dir / METRICS_FILE
    history = read_json_lines(metrics_path)
    for epoch in history:
        for window in epoch["windows"]:
            window.update(rewards.get(window["window"], {"reward": None, "centred_reward": None}))
    atomic_write_text(metrics_path, "".join(json.dumps(epoch) + "\n" for epoch in history))
    return history


def _plot_k_over_training(
    history: list[dict[str, Any]], candidate_set: tuple[int, ...], path: Path, algorithm: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    windows = [window for epoch in history for window in epoch["windows"]]
    index = [window["window"] for window in windows]
    figure, (k_axis, loss_axis) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True, constrained_layout=True)
    k_axis.step(index, [window["k"] for window in windows], where="mid", color="tab:blue")
    k_axis.set_yticks(list(candidate_set))
    k_axis.set_ylabel("k chosen")
    k_axis.set_title(f"adaptive MixUp: k chosen by the {algorithm.upper()} strategy, window by window")
    loss_axis.plot(index, [window["mixed_loss"] for window in windows], label="mixed loss (training windows)")
    loss_axis.plot(index, [window["clean_val_loss"] for window in windows], label="clean validation loss")
    loss_axis.set_xlabel("training window")
    loss_axis.set_ylabel("FR loss")
    loss_axis.legend(loc="upper right")
    for epoch_end in range(len(history)):
        boundary = (epoch_end + 1) * len(history[0]["windows"]) - 0.5
        for axis in (k_axis, loss_axis):
            axis.axvline(boundary, color="0.85", linewidth=0.8, zorder=0)
    figure.savefig(path, dpi=110)
    plt.close(figure)
