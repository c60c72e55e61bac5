"""The strategy acting one window ahead of the FR learner and learning in the background (rl_env.one_ahead)."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest

from rl_env.acting import ActingPolicy
from rl_env.background_learning import BackgroundLearner
from rl_env.env_config import MixUpKEnvConfig
from rl_env.one_ahead import OneWindowAhead
from rl_env.standin import StandInLearner, StandInSurface
from rl_env.strategies import ALGORITHMS, StrategyConfig, build_strategy


class RecordingStandIn(StandInLearner):
    """The stand-in learner, recording the order in which k is handed over and results are awaited."""

    def __init__(self, surface: StandInSurface, window_seconds: float = 0.0) -> None:
        super().__init__(surface, window_batches=8)
        self.calls: list[tuple[str, int]] = []
        self._window_seconds = window_seconds

    def submit_k(self, window_index: int, k: int) -> None:
        self.calls.append(("k", window_index))
        super().submit_k(window_index, k)

    def result_of(self, window_index: int):
        self.calls.append(("result", window_index))
        time.sleep(self._window_seconds)  # the time the workers spend training the window
        return super().result_of(window_index)


class RecordingLearner:
    """Stands in for BackgroundLearner: keeps every episode chunk handed over."""

    def __init__(self) -> None:
        self.chunks: list[tuple[object, int]] = []

    def submit(self, episode, last_window: int) -> None:
        self.chunks.append((episode, last_window))


def test_update_interval_is_checked_before_ray_starts(ray_must_not_start):
    from common.errors import InputError
    from rl_env.settings import AdaptiveConfig

    with pytest.raises(InputError, match="update_every_windows=0"):
        AdaptiveConfig(update_every_windows=0).validate(batch_size=32)
    with pytest.raises(InputError, match="whole number"):
        dataclasses.replace(AdaptiveConfig(), update_every_windows=2.5).validate(batch_size=32)


def drive(algo, link, learner, config: MixUpKEnvConfig, update_every: int) -> list[dict]:
    driver = OneWindowAhead(link, ActingPolicy(algo, seed=0), learner, config, update_every)
    assert driver.start()
    driver.run()
    with open(config.window_log_path, encoding="utf-8") as log:
        return [json.loads(line) for line in log]


@pytest.fixture(scope="module")
def ppo(ray_cluster):
    algo = build_strategy(StrategyConfig(algorithm="ppo"), MixUpKEnvConfig())
    yield algo
    algo.stop()


def test_each_windows_k_is_handed_over_before_the_window_before_it_ends(ppo, tmp_path):
    surface = StandInSurface(total_windows=12)
    link = RecordingStandIn(surface)
    drive(ppo, link, RecordingLearner(), MixUpKEnvConfig(window_log_path=str(tmp_path / "w.jsonl")), 4)

    awaited = [window for kind, window in link.calls if kind == "result"]
    assert awaited == list(range(12))
    for window in range(11):
        assert link.calls.index(("k", window + 1)) < link.calls.index(("result", window)), link.calls


def test_each_reward_is_paid_to_the_choice_of_its_own_window(ppo, tmp_path):
    surface = StandInSurface(total_windows=10, batch_noise=0.0)
    config = MixUpKEnvConfig(window_log_path=str(tmp_path / "w.jsonl"))
    learner = RecordingLearner()
    records = drive(ppo, RecordingStandIn(surface), learner, config, update_every=3)

    assert [record["window"] for record in records] == list(range(10))
    for record in records:  # noise-free stand-in: the reward is a function of the window's own k
        expected = surface.expected_reward(record["k"], (record["window"] + 1) / 10)
        assert record["raw_reward"] == pytest.approx(expected, abs=1e-6)
        assert sum(record["k_probabilities"]) == pytest.approx(1.0, abs=1e-4)
    assert [last for _, last in learner.chunks] == [2, 5, 8, 9]
    episodes = [episode for episode, _ in learner.chunks]
    actions = [int(a) for episode in episodes for a in episode.get_actions()]
    rewards = [float(r) for episode in episodes for r in episode.get_rewards()]
    assert actions == [config.candidate_set.index(record["k"]) for record in records]
    assert rewards == pytest.approx([record["centred_reward"] for record in records], abs=1e-6)
    assert [episode.is_terminated for episode in episodes] == [False, False, False, True]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_learning_in_the_background_makes_the_policy_prefer_the_standin_best_k(ray_cluster, algorithm, tmp_path):
    surface = StandInSurface(total_windows=240, seed=3)
    config = MixUpKEnvConfig(window_log_path=str(tmp_path / "w.jsonl"))
    algo = build_strategy(StrategyConfig(algorithm=algorithm), config)
    try:
        policy = ActingPolicy(algo, seed=0)
        learner = BackgroundLearner(algo, policy)
        driver = OneWindowAhead(RecordingStandIn(surface, window_seconds=0.05), policy, learner, config, 4)
        assert driver.start()
        driver.run()
        learner.close()
    finally:
        algo.stop()
    records = [json.loads(line) for line in Path(config.window_log_path).read_text(encoding="utf-8").splitlines()]
    late = np.mean([record["k_probabilities"] for record in records[-60:]], axis=0)
    assert config.candidate_set[int(np.argmax(late))] == surface.optimal_k, f"{algorithm}: late p(k) {late.round(2)}"
    # updates run while the windows go on; when one is slower than the windows, the next takes all that queued
    assert len(learner.updates) >= 5 and records[-1]["policy_updates"] >= 4
    assert sum(update["windows"] for update in learner.updates) == 240


def test_a_failing_update_stops_the_driver_with_the_learners_error(ray_cluster, tmp_path):
    config = MixUpKEnvConfig(window_log_path=str(tmp_path / "w.jsonl"))
    algo = build_strategy(StrategyConfig(algorithm="reinforce"), config)
    try:
        policy = ActingPolicy(algo, seed=0)
        learner = BackgroundLearner(algo, policy, after_update=lambda window: 1 / 0)
        driver = OneWindowAhead(RecordingStandIn(StandInSurface(total_windows=200), 0.005), policy, learner, config, 2)
        driver.start()
        with pytest.raises(RuntimeError, match="background learner failed") as raised:
            driver.run()
        assert isinstance(raised.value.__cause__, ZeroDivisionError)
    finally:
        algo.stop()
