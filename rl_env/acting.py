"""The strategy's current policy, sampled from at once for each window, and the episodes its choices make.

Acting is one forward pass of the strategy's RLModule (microseconds), not an RLlib sampling step, so a window's
k is chosen without waiting for any update. The background learner (`rl_env.background_learning`) replaces the
weights under a lock between two choices.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Decision:
    """One window's choice: what the policy saw, the action it sampled, and what RLlib's learners need of it."""

    window: int
    observation: np.ndarray
    action: int
    logits: np.ndarray
    policy_version: int  # updates applied to the policy when it chose

    @property
    def probabilities(self) -> np.ndarray:
        shifted = np.exp(self.logits - self.logits.max())
        return shifted / shifted.sum()

    @property
    def logp(self) -> float:
        return float(np.log(self.probabilities[self.action]))


class ActingPolicy:
    """Samples actions from the algorithm's sampling module; `refresh` copies the learner's newest weights in."""

    def __init__(self, algo, seed: int) -> None:
        self._algo = algo
        self._lock = threading.Lock()
        self._rng = np.random.default_rng(seed)
        self.version = 0

    def decide(self, window: int, observation: np.ndarray) -> Decision:
        import torch
        from ray.rllib.core.columns import Columns

        batch = {Columns.OBS: torch.as_tensor(np.asarray(observation, dtype=np.float32)[None])}
        with self._lock, torch.no_grad():
            logits = self._algo.get_module().forward_exploration(batch)[Columns.ACTION_DIST_INPUTS][0]
            version = self.version
        logits = logits.double().numpy()
        decision = Decision(window, np.asarray(observation, np.float32), 0, logits, version)
        action = int(self._rng.choice(len(logits), p=decision.probabilities))
        return Decision(window, decision.observation, action, logits, version)

    def refresh(self) -> None:
        """Take the learner's weights (called by the background learner after each update)."""
        with self._lock:
            self._algo.env_runner_group.sync_weights(
                from_worker_or_learner_group=self._algo.learner_group, inference_only=True
            )
            self.version += 1


def episode_of(decisions: list[Decision], rewards: list[float], next_observation: np.ndarray, terminated: bool):
    """An RLlib episode chunk of consecutive windows: observation, action, reward (centred), logp and logits.

    Truncated unless the learner's run ended with it; PPO bootstraps a truncated chunk from its value of
    `next_observation`, REINFORCE's returns-to-go stop at the chunk's end.
    """
    from ray.rllib.core.columns import Columns
    from ray.rllib.env.single_agent_episode import SingleAgentEpisode

    episode = SingleAgentEpisode(len_lookback_buffer=0)
    episode.add_env_reset(observation=decisions[0].observation)
    following = [d.observation for d in decisions[1:]] + [np.asarray(next_observation, np.float32)]
    for index, (decision, reward, observation) in enumerate(zip(decisions, rewards, following, strict=True)):
        last = index == len(decisions) - 1
        episode.add_env_step(
            observation,
            decision.action,
            float(reward),
            terminated=last and terminated,
            truncated=last and not terminated,
            extra_model_outputs={
                Columns.ACTION_LOGP: np.float32(decision.logp),
                Columns.ACTION_DIST_INPUTS: decision.logits.astype(np.float32),
            },
        )
    return episode.to_numpy()
