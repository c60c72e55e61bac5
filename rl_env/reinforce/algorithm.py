"""`Reinforce`: the RLlib Algorithm whose training step is sample whole episodes -> one update -> sync weights."""

from __future__ import annotations

from typing import Any, cast

from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.execution.rollout_ops import synchronous_parallel_sample
from ray.rllib.utils.metrics import (
    ENV_RUNNER_RESULTS,
    ENV_RUNNER_SAMPLING_TIMER,
    LEARNER_RESULTS,
    LEARNER_UPDATE_TIMER,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    SYNCH_WORKER_WEIGHTS_TIMER,
    TIMERS,
)

from rl_env.reinforce.config import ReinforceConfig


class Reinforce(Algorithm):
    @classmethod
    def get_default_config(cls) -> ReinforceConfig:
        return ReinforceConfig()

    def training_step(self) -> None:
        metrics, runners, learners, config = self.metrics, self.env_runner_group, self.learner_group, self.config
        if metrics is None or runners is None or learners is None or config is None:
            raise RuntimeError("Reinforce.training_step ran before the algorithm was set up")
        with metrics.log_time((TIMERS, ENV_RUNNER_SAMPLING_TIMER)):
            sampled_and_metrics = synchronous_parallel_sample(
                worker_set=runners,
                max_env_steps=config.total_train_batch_size,
                sample_timeout_s=config.sample_timeout_s,
                _uses_new_env_runners=True,
                _return_metrics=True,
            )
        # With _return_metrics=True it returns (episodes, runner metrics); its annotation does not say so.
        episodes, runner_metrics = cast("tuple[list[Any], list[dict[str, Any]]]", sampled_and_metrics)
        if not episodes:
            return
        metrics.aggregate(runner_metrics, key=ENV_RUNNER_RESULTS)

        with metrics.log_time((TIMERS, LEARNER_UPDATE_TIMER)):
            sampled = metrics.peek((ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME))
            learner_results = learners.update(episodes=episodes, timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: sampled})
        metrics.aggregate(learner_results, key=LEARNER_RESULTS)

        with metrics.log_time((TIMERS, SYNCH_WORKER_WEIGHTS_TIMER)):
            runners.sync_weights(from_worker_or_learner_group=learners, inference_only=True)
