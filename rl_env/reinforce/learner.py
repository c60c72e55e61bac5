"""The REINFORCE loss: policy gradient on returns-to-go, centred by a learned value baseline.

    advantage  = G_t - V(s_t)                  (V detached; standardised over the batch when configured)
    loss       = -mean(log pi(a_t | s_t) * advantage)
                 + vf_loss_coeff * mean((V(s_t) - G_t)^2)
                 - entropy_coeff * mean(entropy of pi(. | s_t))

G_t, the discounted return from t to the end of the episode, is added to the train batch by RLlib's
`ComputeReturnsToGo` learner connector; it needs whole episodes, hence `batch_mode="complete_episodes"`.
One gradient step per sampled batch: REINFORCE is on-policy, a second pass would use stale log-probabilities.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from ray.rllib.connectors.learner import ComputeReturnsToGo
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.learner import ENTROPY_KEY, POLICY_LOSS_KEY, VF_LOSS_KEY
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.core.rl_module.apis import ValueFunctionAPI

from rl_env.reinforce.config import ReinforceConfig


class ReinforceTorchLearner(TorchLearner):
    def build(self) -> None:
        super().build()
        if self._learner_connector is not None and self.config.add_default_connectors_to_learner_pipeline:
            self._learner_connector.prepend(ComputeReturnsToGo(gamma=self.config.gamma))

    @classmethod
    def rl_module_required_apis(cls) -> list[type]:
        return [ValueFunctionAPI]

    def compute_loss_for_module(  # type: ignore[override]  # RLlib passes the algorithm's own config class here
        self, *, module_id: str, config: ReinforceConfig, batch: dict[str, Any], fwd_out: dict[str, Any]
    ) -> torch.Tensor:
        module = self.module[module_id].unwrapped()
        policy = module.get_train_action_dist_cls().from_logits(fwd_out[Columns.ACTION_DIST_INPUTS])
        returns = batch[Columns.RETURNS_TO_GO].float()
        value_head = cast(ValueFunctionAPI, module)  # required by rl_module_required_apis
        values = cast(torch.Tensor, value_head.compute_values(batch))  # a torch module's values are torch tensors
        advantages = returns - values.detach()
        if config.normalize_advantages and advantages.numel() > 1:
            advantages = (advantages - advantages.mean()) / advantages.std().clamp_min(1e-4)
        policy_loss = -(policy.logp(batch[Columns.ACTIONS]) * advantages).mean()
        value_loss = torch.nn.functional.mse_loss(values, returns)
        entropy = policy.entropy().mean()
        self.metrics.log_dict(
            {POLICY_LOSS_KEY: policy_loss, VF_LOSS_KEY: value_loss, ENTROPY_KEY: entropy},
            key=module_id,
            window=1,
        )
        return policy_loss + config.vf_loss_coeff * value_loss - config.entropy_coeff * entropy
