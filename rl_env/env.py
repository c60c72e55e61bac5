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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from rl_env.env_config import MailboxLinkConfig, MixUpKEnvConfig
from rl_env.learner_history import OBSERVATION_FIELDS, LearnerHistory
from rl_env.learner_link import LearnerLink
from rl_env.standin import StandInLearner, StandInSurface


def make_link(config: MixUpKEnvConfig) -> LearnerLink:
    """Build the learner link named by the config's spec (inside whichever process RLlib built the env in)."""
    if isinstance(config.link, StandInSurface):
        return StandInLearner(config.link, config.window_batches)
    if isinstance(config.link, MailboxLinkConfig):
        from rl_env.mailbox import RemoteLearnerLink

        return RemoteLearnerLink.from_name(config.link.mailbox_name, config.link.timeout_s, config.link.namespace)
    raise TypeError(f"no learner link for spec {config.link!r}")


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
        self._history = LearnerHistory(self.config)
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
        self._history.absorb(state)
        self._episode_windows = 0
        self._episodes += 1
        return self._observation(), {"progress": state.progress, "windows_done": state.windows_done}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._link is None:
            raise RuntimeError("step before reset: call reset() first")
        k = self.config.candidate_set[int(action)]
        if self._history.finished:
            return self._observation(), 0.0, True, False, {"k": k, "window_trained": False}
        result = self._link.train_window(k)
        trained = result.windows_done > self._history.windows_done
        reference = self._history.reference
        raw_reward, reward = self._history.record(result, k) if trained else (0.0, 0.0)
        self._history.finished = result.finished
        if trained:
            self._episode_windows += 1
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

    def _observation(self) -> np.ndarray:
        return self._history.observation(self._episode_windows / self.config.windows_per_episode)

    def _log_window(self, info: dict[str, Any], reward: float) -> None:
        if self.config.window_log_path is None:
            return
        record = {"episode": self._episodes, "centred_reward": reward, **info}
        with Path(self.config.window_log_path).open("a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")
