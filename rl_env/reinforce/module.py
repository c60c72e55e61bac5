"""The REINFORCE RLModule: a categorical policy MLP and, beside it, a value MLP that serves as the baseline.

Two separate networks rather than a shared trunk: the value target (a return) and the policy logits have very
different scales, and the value net is dropped from the copy RLlib uses for sampling (`InferenceOnlyAPI`).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis import InferenceOnlyAPI, ValueFunctionAPI
from ray.rllib.core.rl_module.torch import TorchRLModule

DEFAULT_HIDDEN = (32, 32)
ACTIVATIONS = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}


def mlp(inputs: int, hidden: tuple[int, ...], outputs: int, activation: str) -> torch.nn.Sequential:
    layers: list[torch.nn.Module] = []
    for width in hidden:
        layers += [torch.nn.Linear(inputs, width), ACTIVATIONS[activation]()]
        inputs = width
    layers.append(torch.nn.Linear(inputs, outputs))
    return torch.nn.Sequential(*layers)


class ReinforceTorchRLModule(TorchRLModule, ValueFunctionAPI, InferenceOnlyAPI):
    """model_config keys: `fcnet_hiddens` (hidden widths), `fcnet_activation` ("tanh" or "relu")."""

    def setup(self) -> None:
        model_config, observations, actions = self.model_config, self.observation_space, self.action_space
        if not isinstance(model_config, dict):
            raise TypeError(f"model_config must be a dict of fcnet_* keys, not {type(model_config).__name__}")
        if not (isinstance(observations, gym.spaces.Box) and isinstance(actions, gym.spaces.Discrete)):
            raise TypeError(f"needs a Box observation and a Discrete action space, not {observations} and {actions}")
        hidden = tuple(model_config.get("fcnet_hiddens") or DEFAULT_HIDDEN)
        activation = model_config.get("fcnet_activation", "tanh")
        observation_size = observations.shape[0]
        self._policy = mlp(observation_size, hidden, int(actions.n), activation)
        self._value = mlp(observation_size, hidden, 1, activation)

    def _forward(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        return {Columns.ACTION_DIST_INPUTS: self._policy(batch[Columns.OBS])}

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> torch.Tensor:
        return self._value(batch[Columns.OBS]).squeeze(-1)

    def get_non_inference_attributes(self) -> list[str]:
        return ["_value"]
