"""The adaptive defence's user-facing settings: the candidate set and the reward, as one config section.

The environment's remaining fields (window size, episode length, batch size, the learner link) follow from the
training run itself, so users set only what is a real choice; `rl_env.coupling` fills in the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.errors import InputError
from rl_env.env_config import DEFAULT_CANDIDATE_SET, MailboxLinkConfig, MixUpKEnvConfig
from rl_env.reward import DEFAULT_LOSS_WEIGHT, DEFAULT_UTILITY_PENALTY


@dataclass
class AdaptiveConfig:
    candidate_set: tuple[int, ...] = DEFAULT_CANDIDATE_SET
    loss_weight: float = DEFAULT_LOSS_WEIGHT
    utility_penalty: float = DEFAULT_UTILITY_PENALTY  # lambda: weight of the clean-validation-loss rise
    history_windows: int = 4
    reward_centering_windows: int = 20
    timeout_s: float = 600.0  # longest wait for the other side (covers a worker restart) before LearnerTimeout
    update_every_windows: int = 4  # the strategy's policy is updated (in the background) every this many windows

    def validate(self, batch_size: int) -> None:
        """The environment config checks k against the batch, repeats and weights; its errors name the key."""
        if self.timeout_s <= 0:
            raise InputError(f"adaptive.timeout_s must be positive, not {self.timeout_s}")
        if isinstance(self.update_every_windows, bool) or not isinstance(self.update_every_windows, int):
            raise InputError(
                f"adaptive.update_every_windows must be a whole number of windows, not {self.update_every_windows!r}"
            )
        if self.update_every_windows < 1:
            raise InputError(
                f"adaptive.update_every_windows={self.update_every_windows}: update the policy at least every window (1)"
            )
        self.environment(
            batch_size=batch_size,
            window_batches=1,
            windows_per_episode=1,
            link=MailboxLinkConfig(mailbox_name="validation-only", timeout_s=self.timeout_s),
        )

    def environment(self, batch_size: int, window_batches: int, windows_per_episode: int, **extra) -> MixUpKEnvConfig:
        return MixUpKEnvConfig(
            candidate_set=tuple(self.candidate_set),
            window_batches=window_batches,
            windows_per_episode=windows_per_episode,
            batch_size=batch_size,
            loss_weight=self.loss_weight,
            utility_penalty=self.utility_penalty,
            history_windows=self.history_windows,
            reward_centering_windows=self.reward_centering_windows,
            **extra,
        )
