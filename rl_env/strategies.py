"""The strategies that choose k: RLlib's PPO or our REINFORCE, swapped by one key, `algorithm`.

Both run on RLlib's new API stack inside the calling process: no remote EnvRunners (`num_env_runners=0`,
the environment steps in the driver, where it waits on the FR learner anyway) and a local Learner
(`num_learners=0`). Neither holds Ray resources, so the Ray Train workers can have every CPU and GPU.
Start Ray before `build_strategy`: RLlib otherwise starts a local Ray of its own with every CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import InputError
from rl_env.env_config import MixUpKEnvConfig

ALGORITHMS = ("ppo", "reinforce")


@dataclass(frozen=True)
class StrategyConfig:
    """How the strategy network learns. Checked at construction, before Ray or RLlib is touched."""

    algorithm: str = "ppo"
    lr: float = 1e-2
    entropy_coeff: float = 0.01  # keeps every k tried now and then: the learner's response drifts
    train_batch_size: int | None = None  # env steps (windows) per update; None: one episode
    gamma: float = 0.5  # a window's k mostly shows in its own losses; a horizon of ~2 windows
    seed: int = 0
    hidden: tuple[int, ...] = (32, 32)
    vf_loss_coeff: float = 0.5
    ppo_epochs: int = 4  # PPO re-uses each batch this many times; REINFORCE always takes one step

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(self.hidden))
        if self.algorithm not in ALGORITHMS:
            raise InputError(f"strategy algorithm {self.algorithm!r} is unknown; use one of {ALGORITHMS}")
        if self.lr <= 0:
            raise InputError(f"strategy lr={self.lr}: the learning rate must be positive")
        if self.entropy_coeff < 0 or self.vf_loss_coeff < 0:
            raise InputError("strategy entropy_coeff and vf_loss_coeff must not be negative")
        if self.train_batch_size is not None and self.train_batch_size < 1:
            raise InputError(f"strategy train_batch_size={self.train_batch_size}: it must be at least 1 window")
        if not 0.0 <= self.gamma <= 1.0:
            raise InputError(f"strategy gamma={self.gamma}: the discount must lie in [0, 1]")
        if not self.hidden or min(self.hidden) < 1:
            raise InputError(f"strategy hidden={self.hidden}: give at least one layer width, each >= 1")
        if self.ppo_epochs < 1:
            raise InputError(f"strategy ppo_epochs={self.ppo_epochs}: it must be at least 1")


def algorithm_config(strategy: StrategyConfig, env_config: MixUpKEnvConfig):
    """The RLlib AlgorithmConfig of a strategy; the only difference between the two is its class and loss."""
    from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
    from ray.rllib.algorithms.ppo import PPOConfig

    from rl_env.env import MixUpKEnv
    from rl_env.reinforce.config import ReinforceConfig

    batch = strategy.train_batch_size or env_config.windows_per_episode
    common: dict[str, Any] = {
        "lr": strategy.lr,
        "gamma": strategy.gamma,
        "train_batch_size_per_learner": batch,
        "entropy_coeff": strategy.entropy_coeff,
        "vf_loss_coeff": strategy.vf_loss_coeff,
    }
    config: AlgorithmConfig
    if strategy.algorithm == "ppo":
        # Returns are sums of FR losses, far above PPO's default value clip of 10: do not clip the value loss.
        config = PPOConfig().training(
            **common, num_epochs=strategy.ppo_epochs, minibatch_size=batch, lambda_=0.95, vf_clip_param=float("inf")
        )
    else:
        config = ReinforceConfig().training(**common)
    return (
        config.environment(MixUpKEnv, env_config=env_config.to_env_config())
        .env_runners(num_env_runners=0, num_envs_per_env_runner=1)
        .learners(num_learners=0, num_gpus_per_learner=0)
        .rl_module(model_config={"fcnet_hiddens": list(strategy.hidden), "fcnet_activation": "tanh"})
        .debugging(seed=strategy.seed)
    )


def build_strategy(strategy: StrategyConfig, env_config: MixUpKEnvConfig):
    """A ready RLlib Algorithm: call `.train()` for one update (it steps the environment for a batch first)."""
    return algorithm_config(strategy, env_config).build_algo()


def restore_strategy(checkpoint_dir: str | Path):
    """An Algorithm saved with `algo.save(checkpoint_dir)`, either kind, with its weights and settings."""
    from ray.rllib.algorithms.algorithm import Algorithm

    return Algorithm.from_checkpoint(str(Path(checkpoint_dir).resolve()))


def policy_probabilities(algo, observation: np.ndarray) -> np.ndarray:
    """The strategy's probability for each candidate k (in candidate-set order) given one observation.

    Uses the RLModule's `forward_inference` directly: valid because the environment's observations need no
    connector preprocessing (a flat float32 Box, no filters configured).
    """
    import torch
    from ray.rllib.core.columns import Columns

    module = algo.get_module()
    batch = {Columns.OBS: torch.as_tensor(np.asarray(observation, dtype=np.float32)[None])}
    logits = module.forward_inference(batch)[Columns.ACTION_DIST_INPUTS]
    return torch.softmax(logits, dim=-1)[0].detach().cpu().numpy()


def greedy_k(algo, observation: np.ndarray) -> int:
    """The most probable k of the strategy for one observation."""
    candidate_set = algo.config.env_config["candidate_set"]
    return int(candidate_set[int(np.argmax(policy_probabilities(algo, observation)))])


def mean_policy_probabilities(algo, env, windows: int) -> np.ndarray:
    """The strategy's k-probabilities averaged over the observations it meets when it follows its greedy choice.

    `env` is a fresh MixUpKEnv (it is reset here); this is how tests and reports read a learned policy,
    because the policy only means something on observations the learner actually produces.
    """
    observation, _ = env.reset()
    seen = []
    for _ in range(windows):
        probabilities = policy_probabilities(algo, observation)
        seen.append(probabilities)
        observation, _, terminated, truncated, _ = env.step(int(np.argmax(probabilities)))
        if terminated or truncated:
            observation, _ = env.reset()
    return np.mean(seen, axis=0)
