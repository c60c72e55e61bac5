"""A stand-in FR learner with a known loss surface: tests and figures for the strategies, without torch training.

The surface (window t of a run of T windows, progress p = t / T, k faces mixed per sample):

    mixed_loss(k, p)  = mixed_floor + (mixed_start - mixed_floor) * (1 - p) + mixing_cost * ln(k) + noise
    clean_val_loss(k) = clean_floor + collapse_rate * max(0, k - optimal_k) ** 2

- the mixed loss falls as training progresses and grows like ln k, as the cross-entropy of a label mixed from
  k identities does; `noise` ~ Normal(0, batch_noise / sqrt(W)), the spread of a mean over W batches;
- the clean validation loss stays at its floor up to k* = `optimal_k` and rises sharply beyond it: the
  learner's utility collapses when it is asked to learn from more than k* mixed faces. It is noise free, and
  the learner reports `clean_floor` as its clean loss before the first window.

Best action, proven. The reference of the reward (lowest clean loss seen so far in the run) starts at
clean_floor and no window can report less, so it equals clean_floor at every window; the penalty of a window
is therefore collapse_rate * max(0, k - k*)**2 whatever was chosen before, and the progress term does not
depend on k. Each window's expected reward is, up to a term that depends only on t,

    R(k) = loss_weight * mixing_cost * ln(k) - lambda * collapse_rate * max(0, k - k*)**2

and no action changes the reward distribution of later windows, so the return is maximised by taking
argmax_k R(k) at every window. For k < k*: R(k*) - R(k) = loss_weight * mixing_cost * ln(k*/k) > 0. For
k > k*: R(k*) - R(k) = lambda * collapse_rate * (k - k*)**2 - loss_weight * mixing_cost * ln(k/k*), positive
for every such k in the candidate set exactly when lambda exceeds `critical_penalty`. With the defaults
(K = {2..6}, k* = 4, mixing_cost = 1, collapse_rate = 0.5, loss_weight = 1) the critical lambda is
ln(5/4) / 0.5 = 0.446, so the default lambda = 1 makes k* = 4 the unique best action, and lambda = 0 makes
the largest k the best (R is then increasing in k).

Deterministic per seed. When a run is finished, the next episode starts a new run (progress back to 0), so
strategies can be trained over many runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from common.errors import InputError
from rl_env.learner_link import LearnerLink, LearnerState, WindowResult
from rl_env.reward import DEFAULT_LOSS_WEIGHT, DEFAULT_UTILITY_PENALTY, window_reward


@dataclass(frozen=True)
class StandInSurface:
    """Parameters of the stand-in's loss surface (formulas in the module docstring)."""

    optimal_k: int = 4
    mixing_cost: float = 1.0
    collapse_rate: float = 0.5
    mixed_start: float = 6.0
    mixed_floor: float = 2.0
    clean_floor: float = 1.0
    batch_noise: float = 0.3
    total_windows: int = 400
    seed: int = 0

    def __post_init__(self) -> None:
        if self.optimal_k < 1:
            raise InputError(f"stand-in optimal_k={self.optimal_k}: it must be a k of at least 1")
        if self.total_windows < 1:
            raise InputError(f"stand-in total_windows={self.total_windows}: a run needs at least one window")
        if min(self.mixing_cost, self.collapse_rate, self.batch_noise) < 0:
            raise InputError("stand-in mixing_cost, collapse_rate and batch_noise must not be negative")

    def expected_mixed_loss(self, k: int, progress: float) -> float:
        trend = self.mixed_floor + (self.mixed_start - self.mixed_floor) * (1.0 - progress)
        return trend + self.mixing_cost * math.log(k)

    def clean_val_loss(self, k: int) -> float:
        return self.clean_floor + self.collapse_rate * max(0, k - self.optimal_k) ** 2

    def expected_reward(
        self,
        k: int,
        progress: float = 0.0,
        loss_weight: float = DEFAULT_LOSS_WEIGHT,
        utility_penalty: float = DEFAULT_UTILITY_PENALTY,
    ) -> float:
        """Expected reward of a window with k (the reference is clean_floor throughout, see the docstring)."""
        return window_reward(
            self.expected_mixed_loss(k, progress),
            self.clean_val_loss(k),
            self.clean_floor,
            loss_weight,
            utility_penalty,
        )

    def best_k(
        self,
        candidate_set: Sequence[int],
        loss_weight: float = DEFAULT_LOSS_WEIGHT,
        utility_penalty: float = DEFAULT_UTILITY_PENALTY,
    ) -> int:
        return max(candidate_set, key=lambda k: self.expected_reward(k, 0.0, loss_weight, utility_penalty))

    def critical_penalty(self, candidate_set: Sequence[int], loss_weight: float = DEFAULT_LOSS_WEIGHT) -> float:
        """The smallest lambda above which k* beats every larger candidate (0 when none is larger)."""
        gains = [
            loss_weight
            * self.mixing_cost
            * math.log(k / self.optimal_k)
            / (self.collapse_rate * (k - self.optimal_k) ** 2)
            for k in candidate_set
            if k > self.optimal_k
        ]
        return max(gains, default=0.0)


class StandInLearner(LearnerLink):
    """A `LearnerLink` answering each window from `StandInSurface`; costs microseconds, trains nothing."""

    def __init__(self, surface: StandInSurface, window_batches: int) -> None:
        if window_batches < 1:
            raise InputError(f"window_batches={window_batches}: a window needs at least one batch")
        self._surface = surface
        self._noise_scale = surface.batch_noise / math.sqrt(window_batches)
        self._rng = np.random.default_rng(surface.seed)
        self._windows_done = 0
        self._last: WindowResult | None = None
        self._k_by_window: dict[int, int] = {}

    def start_episode(self) -> LearnerState:
        if self._windows_done >= self._surface.total_windows:
            self._windows_done = 0
            self._last = None
        if self._last is None:
            return LearnerState(0.0, 0, False, last_clean_val_loss=self._surface.clean_floor)
        return LearnerState(
            progress=self._last.progress,
            windows_done=self._windows_done,
            finished=False,
            last_mixed_loss=self._last.mixed_loss,
            last_clean_val_loss=self._last.clean_val_loss,
        )

    def train_window(self, k: int) -> WindowResult:
        self._windows_done += 1
        progress = self._windows_done / self._surface.total_windows
        noise = float(self._rng.normal(0.0, self._noise_scale))
        self._last = WindowResult(
            mixed_loss=self._surface.expected_mixed_loss(k, progress) + noise,
            clean_val_loss=self._surface.clean_val_loss(k),
            progress=progress,
            windows_done=self._windows_done,
            finished=self._windows_done >= self._surface.total_windows,
        )
        return self._last

    def submit_k(self, window_index: int, k: int) -> None:
        """The pipelined side (`rl_env.one_ahead.PipelinedLink`): remember a window's k until it is trained."""
        self._k_by_window[window_index] = k

    def result_of(self, window_index: int) -> WindowResult:
        """Train the window with the k submitted for it; windows are trained in order."""
        if window_index != self._windows_done:
            raise RuntimeError(f"window {window_index} asked for, but the stand-in is at window {self._windows_done}")
        return self.train_window(self._k_by_window.pop(window_index))

    def close(self) -> None:
        pass
