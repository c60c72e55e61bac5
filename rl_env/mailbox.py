"""The exchange between the adaptive strategy and the Ray Train workers of the FR learner.

One named Ray actor, `LearnerMailbox`, sits between the two sides of one training run:

    strategy (in the driver)                      training workers (Ray Train, ranks 0..N-1)
    submit_k(k, w)  ───────────────▶  k of window w  ───────────────▶  next_k(w)        (every rank, same k)
    await_result(w) ◀── mean over ranks ◀── report(w, rank, mixed_loss, clean_val_loss, progress)

The strategy may submit k for windows ahead (`rl_env.one_ahead` keeps one window ahead, so a worker finds the
k of its next window already there); the RLlib environment's `RemoteLearnerLink.train_window` is the lock-step
form (submit, then await). The mailbox notes every window whose k a worker asked for before it was submitted
(`windows_waited_for_k`): the time the learner idled for the strategy.

Why an actor: RLlib builds the environment itself and Ray Train owns its workers, so neither can hold the
other; both can look up a named actor. It is an async actor, so a side waiting for the other never blocks the
calls that would release it. Every wait has a timeout and raises `LearnerTimeout` naming the silent side.

Rejoining after a fault: Ray Train's FailureConfig restarts the workers from their last checkpoint, so they
ask again for the k of a window that may already be done. The mailbox remembers k for every window index and
accepts re-reports (the newest report of a rank replaces the older one), so the restarted workers re-train
the same windows with the same k and the environment, still waiting on its window, is released when the
restarted workers reach it. The environment's timeout must therefore cover a restart.

Training ends when a report carries progress >= 1 or when the training side calls `declare_finished()`;
after that `await_result` answers at once with `finished=True` and `next_k` with None.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from statistics import fmean

import ray
from ray.actor import ActorHandle

from common.errors import InputError
from rl_env.learner_link import LearnerLink, LearnerState, LearnerTimeout, WindowResult

MAX_CONCURRENT_CALLS = 256
"""Waiting calls held at once by the mailbox: N workers and the environment, with room for restarts."""

TRANSPORT_GRACE_S = 30.0
"""Extra time the caller gives a mailbox call beyond the wait it asked for, before calling the mailbox dead."""


@ray.remote(num_cpus=0, max_restarts=0)
class LearnerMailbox:
    """Named async actor holding, per window index, the k chosen by the environment and the workers' reports.

    `num_cpus=0`: it must be schedulable while the Ray Train workers hold every CPU of the cluster.
    """

    def __init__(self, num_workers: int, first_window: int = 0) -> None:
        self._num_workers = num_workers
        self._first_window = first_window  # a resumed run's learner starts at its checkpoint's window
        self._k_by_window: dict[int, int] = {}
        self._reports_by_window: dict[int, dict[int, tuple[float, float, float]]] = {}
        self._results: dict[int, WindowResult] = {}
        self._finished = False
        self._waited_for_k: set[int] = set()
        self._changed = asyncio.Condition()

    # environment side

    async def submit_k(self, k: int, window_index: int) -> None:
        """Choose k for one window; submitting the same k again is a no-op, a different k is a bug."""
        async with self._changed:
            known = self._k_by_window.get(window_index)
            if known is not None and known != k:
                raise ValueError(f"window {window_index} already runs with k={known}; cannot change it to k={k}")
            self._k_by_window[window_index] = k
            self._changed.notify_all()

    async def await_result(self, window_index: int, timeout_s: float) -> WindowResult:
        """The mean of all workers' reports for the window, once every rank has reported."""
        await self._wait(
            lambda: window_index in self._results or self._finished,
            timeout_s,
            lambda: (
                f"the training workers did not report window {window_index} within {timeout_s:.1f} s "
                f"(ranks reported: {sorted(self._reports_by_window.get(window_index, {}))} of "
                f"{self._num_workers}); did the Ray Train run die or stall?"
            ),
        )
        if window_index in self._results:
            return self._results[window_index]
        return self._finished_without_training()

    def state(self) -> LearnerState:
        latest = self._latest_result()
        if latest is None:
            return LearnerState(progress=0.0, windows_done=self._first_window, finished=self._finished)
        return LearnerState(
            progress=latest.progress,
            windows_done=latest.windows_done,
            finished=self._finished or latest.finished,
            last_mixed_loss=latest.mixed_loss,
            last_clean_val_loss=latest.clean_val_loss,
        )

    def windows_waited_for_k(self) -> list[int]:
        return sorted(self._waited_for_k)

    # training side

    async def next_k(self, window_index: int, timeout_s: float) -> int | None:
        """The k of a window (at once when already known, e.g. after a restart); None once training is over."""
        if window_index not in self._k_by_window and not self._finished:
            self._waited_for_k.add(window_index)
        await self._wait(
            lambda: window_index in self._k_by_window or self._finished,
            timeout_s,
            lambda: (
                f"the environment did not send k for window {window_index} within {timeout_s:.1f} s; "
                "is the RL driver alive?"
            ),
        )
        return self._k_by_window.get(window_index)

    async def report(
        self, window_index: int, worker_rank: int, mixed_loss: float, clean_val_loss: float, progress: float
    ) -> None:
        """One worker's losses for a window; the window completes when every rank has reported."""
        if not 0 <= worker_rank < self._num_workers:
            raise ValueError(f"worker_rank {worker_rank} is outside 0..{self._num_workers - 1}")
        if window_index not in self._k_by_window:
            raise ValueError(f"report for window {window_index}, for which no k was ever sent")
        async with self._changed:
            reports = self._reports_by_window.setdefault(window_index, {})
            reports[worker_rank] = (float(mixed_loss), float(clean_val_loss), float(progress))
            if len(reports) < self._num_workers:
                return
            mean_progress = fmean(r[2] for r in reports.values())
            self._results[window_index] = WindowResult(
                mixed_loss=fmean(r[0] for r in reports.values()),
                clean_val_loss=fmean(r[1] for r in reports.values()),
                progress=mean_progress,
                windows_done=window_index + 1,
                finished=self._finished or mean_progress >= 1.0,
            )
            self._finished = self._finished or mean_progress >= 1.0
            self._changed.notify_all()

    async def declare_finished(self) -> None:
        """Training is over (done early or given up): release every waiter."""
        async with self._changed:
            self._finished = True
            self._changed.notify_all()

    # internals

    async def _wait(self, ready: Callable[[], bool], timeout_s: float, silence: Callable[[], str]) -> None:
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(ready), timeout_s)
            except asyncio.TimeoutError:
                raise LearnerTimeout(silence()) from None

    def _latest_result(self) -> WindowResult | None:
        return self._results[max(self._results)] if self._results else None

    def _finished_without_training(self) -> WindowResult:
        """The answer to a window asked for after training ended: nothing trained, the last losses repeated."""
        latest = self._latest_result()
        return WindowResult(
            mixed_loss=latest.mixed_loss if latest else 0.0,
            clean_val_loss=latest.clean_val_loss if latest else 0.0,
            progress=latest.progress if latest else 0.0,
            windows_done=latest.windows_done if latest else 0,
            finished=True,
        )


def create_mailbox(name: str, num_workers: int, namespace: str | None = None, first_window: int = 0) -> ActorHandle:
    """Start the named mailbox of one training run (Ray must be running); its lifetime is the driver's.

    `first_window` is the window a resumed learner starts at (its checkpoint's epoch x windows per epoch).
    """
    if num_workers < 1:
        raise InputError(f"num_workers={num_workers}: the mailbox needs at least one training worker")
    if not name:
        raise InputError("mailbox name is empty: give each training run's mailbox a name")
    # ray.remote turns the class into an actor class, which Ray's annotations do not say: `.options` is real.
    return LearnerMailbox.options(  # type: ignore[attr-defined]
        name=name, namespace=namespace, max_concurrency=MAX_CONCURRENT_CALLS
    ).remote(num_workers, first_window)


def _get(ref: ray.ObjectRef, wait_s: float, side: str):
    """ray.get with a deadline, turning the mailbox's LearnerTimeout into a clean one for the caller."""
    try:
        return ray.get(ref, timeout=wait_s + TRANSPORT_GRACE_S)
    except LearnerTimeout as error:  # raised inside the actor: ray re-raises it as a subclass of LearnerTimeout
        raise LearnerTimeout(str(getattr(error, "cause", error))) from None
    except ray.exceptions.GetTimeoutError:
        raise LearnerTimeout(
            f"the learner mailbox itself did not answer the {side} within {wait_s + TRANSPORT_GRACE_S:.1f} s"
        ) from None


class RemoteLearnerLink(LearnerLink):
    """The environment's `LearnerLink` over a `LearnerMailbox`: one window = submit k, then await the reports."""

    def __init__(self, mailbox: ActorHandle, timeout_s: float) -> None:
        if timeout_s <= 0:
            raise InputError(f"timeout_s={timeout_s}: the wait for the learner must be positive seconds")
        self._mailbox = mailbox
        self._timeout_s = timeout_s
        self._next_window: int | None = None

    @classmethod
    def from_name(cls, mailbox_name: str, timeout_s: float, namespace: str | None = None) -> RemoteLearnerLink:
        return cls(ray.get_actor(mailbox_name, namespace=namespace), timeout_s)

    def start_episode(self) -> LearnerState:
        state = _get(self._mailbox.state.remote(), 0.0, "environment")
        self._next_window = state.windows_done
        return state

    def train_window(self, k: int) -> WindowResult:
        if self._next_window is None:
            raise RuntimeError("train_window before start_episode: the link does not know the next window yet")
        window = self._next_window
        self.submit_k(window, k)
        result = self.result_of(window)
        self._next_window = result.windows_done
        return result

    def submit_k(self, window_index: int, k: int) -> None:
        """Hand the workers the k of a window (the strategy acting ahead calls this before the window starts)."""
        _get(self._mailbox.submit_k.remote(k, window_index), 0.0, "environment")

    def result_of(self, window_index: int) -> WindowResult:
        """Wait for every worker's report of a window (at most timeout_s; LearnerTimeout names the workers)."""
        return _get(self._mailbox.await_result.remote(window_index, self._timeout_s), self._timeout_s, "environment")

    def windows_waited_for_k(self) -> list[int]:
        """Windows whose k the workers asked for before the strategy had chosen it (they idled for the strategy)."""
        return _get(self._mailbox.windows_waited_for_k.remote(), 0.0, "environment")

    def close(self) -> None:
        del self._mailbox  # drops the actor handle; a closed link cannot be used again


class MailboxClient:
    """The training workers' side of the mailbox, one per Ray Train worker (its rank)."""

    def __init__(self, mailbox: ActorHandle, worker_rank: int) -> None:
        self._mailbox = mailbox
        self._rank = worker_rank

    @classmethod
    def from_name(cls, mailbox_name: str, worker_rank: int, namespace: str | None = None) -> MailboxClient:
        return cls(ray.get_actor(mailbox_name, namespace=namespace), worker_rank)

    def next_k(self, window_index: int, timeout_s: float) -> int | None:
        """Block until the environment chose k for this window; None means training is over."""
        return _get(self._mailbox.next_k.remote(window_index, timeout_s), timeout_s, "training worker")

    def report(self, window_index: int, mixed_loss: float, clean_val_loss: float, progress: float) -> None:
        _get(
            self._mailbox.report.remote(window_index, self._rank, mixed_loss, clean_val_loss, progress),
            0.0,
            "training worker",
        )

    def declare_finished(self) -> None:
        _get(self._mailbox.declare_finished.remote(), 0.0, "training worker")
