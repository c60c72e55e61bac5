"""The one config file a user writes: the FR learner's sections plus the adaptive strategy's.

`hybridmask train --config`, `hybridmask run` and the Tune sweeps all read this shape; Tune's best trial is saved
in it. Sections: defense, model, optim, scale, strategy (algorithm: ppo | reinforce, ...), adaptive (candidate set,
reward weights), masking (ratio, used when a run masks prepared data itself), plus top-level keys.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from common.errors import InputError
from masking.ppfr import DEFAULT_MASKING_RATIO
from rl_env.settings import AdaptiveConfig
from rl_env.strategies import StrategyConfig
from trainers.config import TrainConfig
from trainers.config_io import from_dict, load_config, to_dict


@dataclass
class MaskingConfig:
    ratio: float = DEFAULT_MASKING_RATIO


@dataclass
class ExperimentConfig(TrainConfig):
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    adaptive: AdaptiveConfig = field(default_factory=AdaptiveConfig)
    masking: MaskingConfig = field(default_factory=MaskingConfig)

    def validate(self) -> None:
        super().validate()
        self.adaptive.validate(self.optim.batch_size)
        if not 0.0 <= self.masking.ratio < 1.0:
            raise InputError(f"masking.ratio must lie in [0, 1), not {self.masking.ratio}")

    def train_config(self) -> TrainConfig:
        """The learner's part alone, which is what checkpoints and exported models record."""
        base = {f.name for f in dataclasses.fields(TrainConfig)}
        return from_dict(TrainConfig, {name: value for name, value in to_dict(self).items() if name in base})


def load_experiment(path: str | Path | None, overrides: list[str]) -> ExperimentConfig:
    return load_config(ExperimentConfig, path, overrides)
