"""The adaptive defence end to end: a real Ray Train FR run and an RLlib strategy side by side, never waiting.

A background thread runs `trainers.run.train`, whose workers take each window's k from the mailbox through
`MailboxKSource` and report their losses back. The driver thread runs the strategy (`rl_env.one_ahead`): it
chooses each window's k one window ahead with its current policy, pays each window's reward to the choice made for
that window, and hands the windows gathered every `adaptive.update_every_windows` to a thread that updates the
policy meanwhile (`rl_env.background_learning`). When either side ends or fails, the mailbox is declared finished
so the other side stops at once instead of waiting out its timeout.

RUN_DIR gains: strategy/ (the RLlib checkpoint, saved after the first update of each epoch and at the end,
restored on resume), windows.jsonl (every window: k, raw and centred reward, losses, the policy's probability of
each k when it chose, its number of updates), k_over_training.png, in metrics.jsonl those fields beside each
window's k and losses, and in summary.json the strategy's statistics (k histogram, mean k, updates, windows
whose k the workers had to wait for, mean reward per k).
"""

from __future__ import annotations

import functools
import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.errors import InputError
from common.files import atomic_write_json, read_json_lines
from rl_env.learner_link import LearnerTimeout
from rl_env.run_record import attach_strategy_record, plot_k_over_training, strategy_statistics
from rl_env.settings import AdaptiveConfig
from rl_env.strategies import StrategyConfig
from trainers.config import TrainConfig
from trainers.k_source import WindowReport
from trainers.local_ray import start_ray
from trainers.run import METRICS_FILE, SUMMARY_FILE, plan_epoch, train
from trainers.window_source import WindowSource

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
    client: WindowSource,
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

    if not config.defense_row.adaptive:
        raise InputError(f"train_adaptive runs defences with an adaptive k, not {config.defense.name!r}")
    config.validate()
    adaptive.validate(config.optim.batch_size)
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    plan = plan_epoch(config, client.offer().train_rows)
    start_ray()

    name = mailbox_name_for(run_dir)
    _remove_stale_mailbox(name)
    first_window = epochs_already_done(run_dir) * plan.windows_per_epoch
    mailbox = create_mailbox(name, config.scale.workers, first_window=first_window)
    env_config = adaptive.environment(
        batch_size=config.optim.batch_size,
        window_batches=config.window_batches,
        windows_per_episode=plan.windows_per_epoch,
        link=MailboxLinkConfig(mailbox_name=name, timeout_s=adaptive.timeout_s),
        window_log_path=str(run_dir / WINDOW_LOG),
    )
    outcome: dict[str, Any] = {}

    def run_learner() -> None:
        try:
            outcome["summary"] = train(
                client,
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

    # The FR run starts first: its workers take seconds to start, in which the strategy is built and chooses
    # the first windows' k, so the workers find it waiting for them.
    import_both_sides()
    learner = threading.Thread(target=run_learner, name="hybridmask-fr-learner", daemon=True)
    learner.start()
    try:
        updates, waited = _drive_strategy(run_dir, strategy, adaptive, env_config, mailbox, plan)
    except BaseException as error:
        ray.get(mailbox.declare_finished.remote())
        learner.join()
        ray.kill(mailbox)
        if isinstance(error, LearnerTimeout) and "error" in outcome:
            raise outcome["error"] from None  # the workers went silent because the FR run failed: say why
        raise
    learner.join()
    ray.kill(mailbox)
    if "error" in outcome:
        raise outcome["error"]

    summary = outcome["summary"]
    history = attach_strategy_record(run_dir / METRICS_FILE, run_dir / WINDOW_LOG)
    summary.update(
        {
            "strategy": strategy.algorithm,
            "candidate_set": list(adaptive.candidate_set),
            **strategy_statistics(history),
            "policy_updates": updates,
            "update_every_windows": adaptive.update_every_windows,
            "windows_waited_for_k": len(waited),
        }
    )
    plot_k_over_training(history, adaptive.candidate_set, run_dir / K_FIGURE, strategy.algorithm)
    atomic_write_json(run_dir / SUMMARY_FILE, summary)  # last: its presence marks the run finished
    return summary


def import_both_sides() -> None:
    """Import Ray Train and RLlib in this thread before the two sides start in two threads: Ray Train's and
    RLlib's packages import each other, and two threads importing them at once can see a half-imported module."""
    import ray.rllib.algorithms.ppo
    import ray.train.torch  # noqa: F401

    import rl_env.reinforce.algorithm  # noqa: F401
    import trainers.loop
    import trainers.metrics_callback  # noqa: F401


def _drive_strategy(run_dir: Path, strategy: StrategyConfig, adaptive: AdaptiveConfig, env_config, mailbox, plan):
    """Build (or restore) the strategy, serve every window's k until the FR run ends, save the strategy; returns
    the number of policy updates and the windows whose k the workers had to wait for."""
    from rl_env.acting import ActingPolicy
    from rl_env.background_learning import BackgroundLearner
    from rl_env.mailbox import RemoteLearnerLink
    from rl_env.one_ahead import OneWindowAhead
    from rl_env.strategies import build_strategy

    algo = build_strategy(strategy, env_config)
    try:
        if (run_dir / STRATEGY_DIR).is_dir():
            algo.restore_from_path(str(run_dir / STRATEGY_DIR))
            print(f"restored the {strategy.algorithm} strategy from {run_dir / STRATEGY_DIR}", flush=True)
        policy = ActingPolicy(algo, strategy.seed)
        checkpoint = _checkpoint_each_epoch(algo, run_dir / STRATEGY_DIR, plan.windows_per_epoch)
        background = BackgroundLearner(algo, policy, after_update=checkpoint)
        link = RemoteLearnerLink(mailbox, adaptive.timeout_s)
        driver = OneWindowAhead(link, policy, background, env_config, adaptive.update_every_windows)
        try:
            if driver.start():
                driver.run()
        finally:
            background.close()
        # The last window is in: the FR run is verifying and exporting its model meanwhile.
        algo.save_to_path(str(run_dir / STRATEGY_DIR))
        return len(background.updates), link.windows_waited_for_k()
    finally:
        algo.stop()


def _checkpoint_each_epoch(algo, path: Path, windows_per_epoch: int):
    """After an update: save the strategy when the update reached a new epoch of the learner (for resuming)."""
    saved_epoch = [-1]

    def after_update(last_window: int) -> None:
        epoch = last_window // windows_per_epoch
        if epoch > saved_epoch[0]:
            algo.save_to_path(str(path))
            saved_epoch[0] = epoch

    return after_update


def _remove_stale_mailbox(name: str) -> None:
    """A mailbox left by an interrupted driver in a long-lived cluster would hold the name: end it."""
    import ray

    try:
        ray.kill(ray.get_actor(name))
    except ValueError:
        return
