"""The adaptive strategy driving the real FR learner without making it wait: it acts one window ahead.

While the workers train window w, the k of window w+1 is already in the mailbox. When w's result arrives the
driver pays w's reward to the choice made for w (each reward belongs to the window whose k it chose) and at
once chooses k for w+2 from the observation after w, with the current policy. Every `update_every_windows`
windows the gathered choices go as one episode chunk to the background learner, which updates the policy
while the workers go on. The price of acting ahead: each choice sees the learner as it was one window earlier.

`windows.jsonl` gets one record per trained window: k, raw and centred reward, losses, the policy's
probability of each candidate k when it chose, and how many updates that policy had had.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rl_env.acting import ActingPolicy, Decision, episode_of
from rl_env.background_learning import BackgroundLearner
from rl_env.env_config import MixUpKEnvConfig
from rl_env.learner_history import LearnerHistory
from rl_env.learner_link import LearnerState, WindowResult

LOOKAHEAD_WINDOWS = 2  # k is chosen for the current window and the next one before either is trained


class PipelinedLink(Protocol):
    """The learner side the driver needs: its state, handing over a window's k, awaiting a window's result."""

    def start_episode(self) -> LearnerState: ...

    def submit_k(self, window_index: int, k: int) -> None: ...

    def result_of(self, window_index: int) -> WindowResult: ...


class OneWindowAhead:
    """Chooses every window's k ahead of the learner and feeds the background learner (module docstring)."""

    def __init__(
        self,
        link: PipelinedLink,
        policy: ActingPolicy,
        learner: BackgroundLearner,
        config: MixUpKEnvConfig,
        update_every_windows: int,
    ) -> None:
        self._link = link
        self._policy = policy
        self._learner = learner
        self._config = config
        self._update_every = update_every_windows
        self._history = LearnerHistory(config)
        self._pending: dict[int, Decision] = {}
        self._chunk: list[tuple[Decision, float]] = []
        self._window = 0

    def start(self) -> bool:
        """Choose k for the first windows of the run (before the workers ask); False when it is already over."""
        state = self._link.start_episode()
        self._history.absorb(state)
        self._window = state.windows_done
        if state.finished:
            return False
        for window in range(self._window, self._window + LOOKAHEAD_WINDOWS):
            self._choose(window)
        return True

    def run(self) -> None:
        """Serve windows until the learner finishes; then hand the last chunk to the background learner."""
        while True:
            result = self._link.result_of(self._window)
            if result.windows_done <= self._history.windows_done:  # over without training this window
                break
            decision = self._pending.pop(self._window)
            raw, centred = self._history.record(result, self._config.candidate_set[decision.action])
            if not result.finished:
                self._choose(self._window + LOOKAHEAD_WINDOWS)
            self._log(decision, result, raw, centred)
            self._chunk.append((decision, centred))
            if result.finished or len(self._chunk) >= self._update_every:
                self._hand_over(terminated=result.finished)
            if result.finished:
                break
            self._window += 1
        if self._chunk:
            self._hand_over(terminated=True)

    def _choose(self, window: int) -> None:
        decision = self._policy.decide(window, self._history.observation(self._epoch_fraction(window)))
        self._pending[window] = decision
        self._link.submit_k(window, self._config.candidate_set[decision.action])

    def _epoch_fraction(self, window: int) -> float:
        per_epoch = self._config.windows_per_episode
        return (window % per_epoch) / per_epoch

    def _hand_over(self, terminated: bool) -> None:
        decisions = [decision for decision, _ in self._chunk]
        following = self._pending.get(decisions[-1].window + 1)
        next_observation = (
            following.observation
            if following is not None
            else self._history.observation(self._epoch_fraction(decisions[-1].window + 1))
        )
        episode = episode_of(decisions, [reward for _, reward in self._chunk], next_observation, terminated)
        self._learner.submit(episode, decisions[-1].window)
        self._chunk = []

    def _log(self, decision: Decision, result: WindowResult, raw: float, centred: float) -> None:
        if self._config.window_log_path is None:
            return
        record: dict[str, Any] = {
            "window": decision.window,
            "k": self._config.candidate_set[decision.action],
            "raw_reward": raw,
            "centred_reward": centred,
            "mixed_loss": result.mixed_loss,
            "clean_val_loss": result.clean_val_loss,
            "progress": result.progress,
            "k_probabilities": np.round(decision.probabilities, 6).tolist(),
            "policy_updates": decision.policy_version,
        }
        with Path(self._config.window_log_path).open("a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")
