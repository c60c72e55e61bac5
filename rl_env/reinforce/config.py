"""`ReinforceConfig`: the settings of the REINFORCE algorithm, in RLlib's AlgorithmConfig form."""

from __future__ import annotations

from typing import Any

from ray.rllib.algorithms.algorithm_config import AlgorithmConfig, NotProvided
from ray.rllib.core.rl_module.rl_module import RLModuleSpec


class ReinforceConfig(AlgorithmConfig):
    """REINFORCE settings beyond AlgorithmConfig's: vf_loss_coeff, entropy_coeff, normalize_advantages.

    Sampling is in complete episodes (returns-to-go need the episode's end); `train_batch_size_per_learner`
    is the least number of env steps per update, rounded up to whole episodes.
    """

    def __init__(self, algo_class: type | None = None) -> None:
        from rl_env.reinforce.algorithm import Reinforce  # the algorithm names this config as its default

        super().__init__(algo_class=algo_class or Reinforce)
        self.batch_mode = "complete_episodes"
        self.lr = 1e-3
        self.vf_loss_coeff = 0.5
        self.entropy_coeff = 0.0
        self.normalize_advantages = True

    def training(
        self,
        *,
        vf_loss_coeff: float | Any = NotProvided,
        entropy_coeff: float | Any = NotProvided,
        normalize_advantages: bool | Any = NotProvided,
        **kwargs: Any,
    ) -> ReinforceConfig:
        super().training(**kwargs)
        if vf_loss_coeff is not NotProvided:
            self.vf_loss_coeff = vf_loss_coeff
        if entropy_coeff is not NotProvided:
            self.entropy_coeff = entropy_coeff
        if normalize_advantages is not NotProvided:
            self.normalize_advantages = normalize_advantages
        return self

    def validate(self) -> None:
        super().validate()
        if self.batch_mode != "complete_episodes":
            self._value_error("REINFORCE needs batch_mode='complete_episodes': returns-to-go run to the episode end")
        if self.vf_loss_coeff < 0 or self.entropy_coeff < 0:
            self._value_error("REINFORCE vf_loss_coeff and entropy_coeff must not be negative")

    def get_default_rl_module_spec(self) -> RLModuleSpec:
        from rl_env.reinforce.module import ReinforceTorchRLModule

        return RLModuleSpec(module_class=ReinforceTorchRLModule)

    def get_default_learner_class(self) -> type:
        from rl_env.reinforce.learner import ReinforceTorchLearner

        return ReinforceTorchLearner
