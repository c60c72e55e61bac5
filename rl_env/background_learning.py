"""The strategy's learning, off the FR learner's path: one thread trains on episode chunks as they arrive.

Each chunk (the windows since the last update, `update_every_windows` of them) goes on a queue; the thread takes
everything queued, runs one learner update of the RLlib algorithm on it (PPO's epochs over the batch, or
REINFORCE's one gradient step), copies the new weights into the acting policy and calls `after_update`. When
updates are slower than windows, chunks queue up and the next update trains on all of them: learning falls
behind, acting never waits.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

from rl_env.acting import ActingPolicy

_STOP = object()


class BackgroundLearner:
    """A daemon thread that updates the strategy from the queued episode chunks; `close` waits for the last one."""

    def __init__(self, algo, policy: ActingPolicy, after_update: Callable[[int], None] | None = None) -> None:
        self._algo = algo
        self._policy = policy
        self._after_update = after_update
        self._queue: queue.Queue[Any] = queue.Queue()
        self._error: BaseException | None = None
        self._windows_seen = 0
        self.updates: list[dict[str, int]] = []  # per update: windows it trained on, last window it saw
        self._thread = threading.Thread(target=self._run, name="hybridmask-strategy-learner", daemon=True)
        self._thread.start()

    def submit(self, episode, last_window: int) -> None:
        if self._error is not None:
            raise RuntimeError("the strategy's background learner failed") from self._error
        self._queue.put((episode, last_window))

    def close(self) -> None:
        """Train on whatever is still queued, stop the thread, and raise its error if it had one."""
        self._queue.put(_STOP)
        self._thread.join()
        if self._error is not None:
            raise RuntimeError("the strategy's background learner failed") from self._error

    def _run(self) -> None:
        stopping = False
        while not stopping:
            items = [self._queue.get()]
            while not self._queue.empty():
                items.append(self._queue.get())
            stopping = _STOP in items
            chunks = [item for item in items if item is not _STOP]
            if not chunks:
                continue
            try:
                self._update([episode for episode, _ in chunks], max(last for _, last in chunks))
            except BaseException as error:  # handed to the driver by submit/close
                self._error = error
                return

    def _update(self, episodes: list, last_window: int) -> None:
        from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

        windows = sum(len(episode) for episode in episodes)
        self._windows_seen += windows
        self._algo.learner_group.update(
            episodes=episodes,
            timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: self._windows_seen},
            num_epochs=self._algo.config.num_epochs,
            minibatch_size=None,
            shuffle_batch_per_epoch=False,
        )
        self._policy.refresh()
        self.updates.append({"windows": windows, "last_window": last_window})
        if self._after_update is not None:
            self._after_update(last_window)
