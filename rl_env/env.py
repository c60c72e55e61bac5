"""`MixUpKEnv`: the choice of k, the number of masked faces mixed per sample, as a gymnasium environment.

- Action: an index i into the candidate set K (Discrete(len(K))); the window is trained with k = K[i].
- Step: the FR learner trains one window of W batches mixed with k (`LearnerLink.train_window`).
- Reward: `rl_env.reward.window_reward` (loss of the mixed window minus lambda times the rise of the clean
  validation loss above the lowest one seen in this training run), centred by the running mean of the
  previous windows' rewards when `reward_centering_windows` > 0; `info["raw_reward"]` keeps the raw one.
- Observation: float32 vector, fields in the order of `OBSERVATION_FIELDS` (0 where not known yet):
    progress            fraction of the FR training done, 0..1
    last_mixed_loss     mixed loss of the last window
    mean_mixed_loss     mean mixed loss of the last `history_windows` windows
    mixed_loss_trend    least-squares slope of those losses, per window (negative: the learner improves)
    last_clean_val_loss clean validation loss after the last window
    clean_val_rise      that loss minus the reference before it (positive: utility lost)
    last_k              last k chosen divided by max(K); 0 before the first window
    episode_fraction    windows of this episode done / windows_per_episode
- Episode: `windows_per_episode` windows (truncated: the learner goes on training), or fewer when the learner
  finishes (terminated: the training run is over). A step after the learner finished trains nothing and
  pays 0.

The FR learner keeps training across episodes, so the loss history and the reference carry over from one
episode to the next; both are cleared when the learner starts a new run (its windows_done goes back).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from rl_env.env_config import MailboxLinkConfig, MixUpKEnvConfig
from rl_env.learner_link import LearnerLink, LearnerState, WindowResult
from rl_env.reward import RunningMean, window_reward
from rl_env.standin import StandInLearner, StandInSurface

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


def make_link(config: MixUpKEnvConfig) -> LearnerLink:
    """Build the learner link named by the config's spec (inside whichever process RLlib built the env in)."""
    if isinstance(config.link, StandInSurface):
        return StandInLearner(config.link, config.window_batches)
    if isinstance(config.link, MailboxLinkConfig):
        from rl_env.mailbox import RemoteLearnerLink

        return RemoteLearnerLink.from_name(config.link.mailbox_name, config.link.timeout_s, config.link.namespace)
    raise TypeError(f"no learner link for spec {config.link!r}")


def loss_trend(losses: list[float]) -> float:
    """Least-squares slope of the losses against their window index (0 for fewer than two)."""
    if len(losses) < 2:
        return 0.0
    return float(np.polyfit(np.arange(len(losses), dtype=np.float64), np.asarray(losses, np.float64), 1)[0])


class MixUpKEnv(gym.Env):
    """The MixUp-k environment (module docstring). RLlib builds it as `MixUpKEnv(env_config_dict)`."""

    def __init__(
        self, env_config: Mapping[str, Any] | MixUpKEnvConfig | None = None, link: LearnerLink | None = None
    ) -> None:
        if isinstance(env_config, MixUpKEnvConfig):
            self.config = env_config
        else:
            self.config = MixUpKEnvConfig.from_env_config(env_config or {})
        self.action_space = gym.spaces.Discrete(len(self.config.candidate_set))
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (len(OBSERVATION_FIELDS),), np.float32)
        self._link = link  # built on the first reset: a mailbox need not exist before sampling starts
        self._recent_mixed: deque[float] = deque(maxlen=self.config.history_windows)
        self._reference: float | None = None
        self._reward_mean = self._new_reward_mean()
        self._last_clean_val: float | None = None
        self._last_rise = 0.0
        self._last_k: int | None = None
        self._progress = 0.0
        self._learner_windows = 0
        self._learner_finished = False
        self._episode_windows = 0
        self._episodes = 0

    @property
    def candidate_set(self) -> tuple[int, ...]:
        return self.config.candidate_set

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if self._link is None:
            self._link = make_link(self.config)
        state = self._link.start_episode()
        if state.windows_done < self._learner_windows:
            self._forget_learner_run()
        self._absorb_state(state)
        self._episode_windows = 0
        self._episodes += 1
        return self._observation(), {"progress": state.progress, "windows_done": state.windows_done}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._link is None:
            raise RuntimeError("step before reset: call reset() first")
        k = self.config.candidate_set[int(action)]
        if self._learner_finished:
            return self._observation(), 0.0, True, False, {"k": k, "window_trained": False}
        result = self._link.train_window(k)
        trained = result.windows_done > self._learner_windows
        reference = self._reference
        raw_reward = self._record(result, k, reference) if trained else 0.0
        reward = self._centre(raw_reward) if trained else 0.0
        self._learner_finished = result.finished
        terminated = result.finished
        truncated = not terminated and self._episode_windows >= self.config.windows_per_episode
        info = {
            "k": k,
            "window_trained": trained,
            "raw_reward": raw_reward,
            "mixed_loss": result.mixed_loss,
            "clean_val_loss": result.clean_val_loss,
            "reference_val_loss": reference,
            "progress": result.progress,
            "windows_done": result.windows_done,
        }
        if trained:
            self._log_window(info, reward)
        return self._observation(), reward, terminated, truncated, info

    def close(self) -> None:
        if self._link is not None:
            self._link.close()
        super().close()

    def _record(self, result: WindowResult, k: int, reference: float | None) -> float:
        """Fold one trained window into the learner's history; return its reward."""
        reward = window_reward(
            result.mixed_loss,
            result.clean_val_loss,
            reference,
            self.config.loss_weight,
            self.config.utility_penalty,
        )
        self._recent_mixed.append(result.mixed_loss)
        self._last_rise = result.clean_val_loss - reference if reference is not None else 0.0
        self._last_clean_val = result.clean_val_loss
        self._reference = result.clean_val_loss if reference is None else min(reference, result.clean_val_loss)
        self._last_k = k
        self._progress = result.progress
        self._learner_windows = result.windows_done
        self._episode_windows += 1
        return reward

    def _new_reward_mean(self) -> RunningMean | None:
        windows = self.config.reward_centering_windows
        return RunningMean(windows) if windows > 0 else None

    def _centre(self, raw_reward: float) -> float:
        if self._reward_mean is None:
            return raw_reward
        centred = self._reward_mean.centred(raw_reward)
        self._reward_mean.update(raw_reward)
        return centred

    def _absorb_state(self, state: LearnerState) -> None:
        self._progress = state.progress
        self._learner_windows = state.windows_done
        self._learner_finished = state.finished
        if state.last_mixed_loss is not None and not self._recent_mixed:
            self._recent_mixed.append(state.last_mixed_loss)
        if state.last_clean_val_loss is not None:
            self._last_clean_val = state.last_clean_val_loss
            self._reference = (
                state.last_clean_val_loss
                if self._reference is None
                else min(self._reference, state.last_clean_val_loss)
            )

    def _forget_learner_run(self) -> None:
        self._recent_mixed.clear()
        self._reference = None
        self._reward_mean = self._new_reward_mean()
        self._last_clean_val = None
        self._last_rise = 0.0
        self._last_k = None

    def _observation(self) -> np.ndarray:
        recent = list(self._recent_mixed)
        values = (
            self._progress,
            recent[-1] if recent else 0.0,
            float(np.mean(recent)) if recent else 0.0,
            loss_trend(recent),
            self._last_clean_val if self._last_clean_val is not None else 0.0,
            self._last_rise,
            self._last_k / max(self.config.candidate_set) if self._last_k is not None else 0.0,
            self._episode_windows / self.config.windows_per_episode,
        )
        return np.asarray(values, dtype=np.float32)

    def _log_window(self, info: dict[str, Any], reward: float) -> None:
        if self.config.window_log_path is None:
            return
        record = {"episode": self._episodes, "centred_reward": reward, **info}
        with Path(self.config.window_log_path).open("a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")
