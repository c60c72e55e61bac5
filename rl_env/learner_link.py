"""The interface through which the MixUp-k environment drives the FR learner, one window at a time.

The environment and the FR learner run in lock-step: the environment sends the k for the next window, the
learner trains W batches mixed with that k, measures its loss on clean validation batches and answers with a
`WindowResult`. Anything that can do that is a `LearnerLink`: the real Ray Train run (through
`rl_env.mailbox.RemoteLearnerLink`) or the cheap `rl_env.standin.StandInLearner` with a known loss surface.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class LearnerTimeout(TimeoutError):
    """One side of the lock-step exchange did not answer in time: raised instead of hanging forever.

    The message says which side was silent (the environment or the training workers) and for how long.
    """


@dataclass(frozen=True)
class LearnerState:
    """What the environment knows about the FR learner when an episode starts.

    The FR learner keeps training across episodes (an episode is a stretch of its training, e.g. one epoch), so
    this is the learner's current state, not a fresh start. Losses are None before the first window.
    """

    progress: float  # fraction of the training done, 0..1
    windows_done: int  # windows trained so far in this training run
    finished: bool  # training is over: no window will be trained any more
    last_mixed_loss: float | None = None
    last_clean_val_loss: float | None = None


@dataclass(frozen=True)
class WindowResult:
    """The learner's answer to one window trained with one k."""

    mixed_loss: float  # mean FR loss of the W mixed batches of the window
    clean_val_loss: float  # loss on clean, unmixed validation batches, measured after the window
    progress: float  # fraction of the training done after the window, 0..1
    windows_done: int  # windows trained so far in this training run, this one included
    finished: bool  # training is over after this window


class LearnerLink(Protocol):
    """How the environment drives the FR learner: start an episode, then train one window per step."""

    def start_episode(self) -> LearnerState:
        """The learner's state at the start of an environment episode."""
        ...

    def train_window(self, k: int) -> WindowResult:
        """Train one window of W batches mixed with k faces each; block until the learner reports."""
        ...

    def close(self) -> None:
        """Release whatever the link holds (it does not stop the learner)."""
        ...
