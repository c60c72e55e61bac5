"""What the strategy knows of the FR learner's run, window after window: the observation and the reward.

One object turns the learner's window results into the strategy's observation vector (`OBSERVATION_FIELDS`) and
into rewards (`rl_env.reward`), so the RLlib environment (`rl_env.env`, lock-step) and the strategy acting one
window ahead of the real learner (`rl_env.async_strategy`) see the same features and are paid the same way.
The history and the reference carry over from one episode to the next; they are cleared when the learner starts
a new run (its windows_done goes back).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from rl_env.env_config import MixUpKEnvConfig
from rl_env.learner_link import LearnerState, WindowResult
from rl_env.reward import RunningMean, window_reward

OBSERVATION_FIELDS = (
    "progress",
    "last_mixed_loss",
    "mean_mixed_loss",
    "mixed_loss_trend",
    "last_clean_val_loss",
    "clean_val_rise",
    "last_k",
    "episode_fraction",
)


def loss_trend(losses: list[float]) -> float:
    """Least-squares slope of the losses against their window index (0 for fewer than two)."""
    if len(losses) < 2:
        return 0.0
    return float(np.polyfit(np.arange(len(losses), dtype=np.float64), np.asarray(losses, np.float64), 1)[0])


class LearnerHistory:
    """The learner's recent losses, its best clean validation loss (the reward's reference), the reward mean."""

    def __init__(self, config: MixUpKEnvConfig) -> None:
        self._config = config
        self._recent_mixed: deque[float] = deque(maxlen=config.history_windows)
        self.reference: float | None = None
        self._reward_mean = self._new_reward_mean()
        self._last_clean_val: float | None = None
        self._last_rise = 0.0
        self._last_k: int | None = None
        self.progress = 0.0
        self.windows_done = 0
        self.finished = False

    def absorb(self, state: LearnerState) -> None:
        """Take in the learner's state at an episode start (a new run when its windows_done went back)."""
        if state.windows_done < self.windows_done:
            self._forget_learner_run()
        self.progress = state.progress
        self.windows_done = state.windows_done
        self.finished = state.finished
        if state.last_mixed_loss is not None and not self._recent_mixed:
            self._recent_mixed.append(state.last_mixed_loss)
        if state.last_clean_val_loss is not None:
            self._last_clean_val = state.last_clean_val_loss
            self.reference = (
                state.last_clean_val_loss if self.reference is None else min(self.reference, state.last_clean_val_loss)
            )

    def record(self, result: WindowResult, k: int) -> tuple[float, float]:
        """Fold one trained window into the history; return its raw reward and the centred one."""
        reference = self.reference
        raw = window_reward(
            result.mixed_loss, result.clean_val_loss, reference, self._config.loss_weight, self._config.utility_penalty
        )
        self._recent_mixed.append(result.mixed_loss)
        self._last_rise = result.clean_val_loss - reference if reference is not None else 0.0
        self._last_clean_val = result.clean_val_loss
        self.reference = result.clean_val_loss if reference is None else min(reference, result.clean_val_loss)
        self._last_k = k
        self.progress = result.progress
        self.windows_done = result.windows_done
        self.finished = result.finished
        return raw, self._centre(raw)

    def observation(self, episode_fraction: float) -> np.ndarray:
        recent = list(self._recent_mixed)
        values = (
            self.progress,
            recent[-1] if recent else 0.0,
            float(np.mean(recent)) if recent else 0.0,
            loss_trend(recent),
            self._last_clean_val if self._last_clean_val is not None else 0.0,
            self._last_rise,
            self._last_k / max(self._config.candidate_set) if self._last_k is not None else 0.0,
            episode_fraction,
        )
        return np.asarray(values, dtype=np.float32)

    def _new_reward_mean(self) -> RunningMean | None:
        windows = self._config.reward_centering_windows
        return RunningMean(windows) if windows > 0 else None

    def _centre(self, raw_reward: float) -> float:
        if self._reward_mean is None:
            return raw_reward
        centred = self._reward_mean.centred(raw_reward)
        self._reward_mean.update(raw_reward)
        return centred

    def _forget_learner_run(self) -> None:
        self._recent_mixed.clear()
        self.reference = None
        self._reward_mean = self._new_reward_mean()
        self._last_clean_val = None
        self._last_rise = 0.0
        self._last_k = None
