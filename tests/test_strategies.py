"""PPO and REINFORCE strategies on the stand-in learner: they learn its best k, swap by one key, checkpoint."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from rl_env.env import MixUpKEnv
from rl_env.env_config import MailboxLinkConfig, MixUpKEnvConfig
from rl_env.learner_link import LearnerTimeout
from rl_env.standin import StandInSurface
from rl_env.strategies import (
    ALGORITHMS,
    StrategyConfig,
    build_strategy,
    greedy_k,
    mean_policy_probabilities,
    policy_probabilities,
    restore_strategy,
)
from tests.ray_resources import free_cpus_once_settled

MAX_ITERATIONS = 25  # one iteration = one episode of 10 windows; both learn the stand-in in well under this
TARGET_PROBABILITY = 0.6
EVALUATION_WINDOWS = 20


def probability_of(algo, env_config: MixUpKEnvConfig, k: int) -> float:
    """The policy's mean probability of k over the observations of a fresh stand-in run (another seed)."""
    fresh = dataclasses.replace(env_config, link=dataclasses.replace(env_config.link, seed=99), window_log_path=None)
    probabilities = mean_policy_probabilities(algo, MixUpKEnv(fresh), EVALUATION_WINDOWS)
    return float(probabilities[env_config.candidate_set.index(k)])


def train_until_it_prefers(algo, env_config: MixUpKEnvConfig, k: int) -> tuple[int, float, dict]:
    """Train until the policy gives k more than TARGET_PROBABILITY, at most MAX_ITERATIONS times."""
    iteration = 0
    while iteration < MAX_ITERATIONS:
        iteration += 1
        result = algo.train()
        probability = probability_of(algo, env_config, k)
        if probability > TARGET_PROBABILITY:
            break
    return iteration, probability, result


@pytest.fixture(scope="module")
def env_config(tmp_path_factory) -> MixUpKEnvConfig:
    return MixUpKEnvConfig(window_log_path=str(tmp_path_factory.mktemp("windows") / "windows.jsonl"))


@pytest.fixture(scope="module")
def trained(ray_cluster, env_config):
    """Each algorithm, built by the same call from the same env config, trained on the stand-in."""
    strategy = StrategyConfig()
    runs = {}
    for algorithm in ALGORITHMS:
        algo = build_strategy(dataclasses.replace(strategy, algorithm=algorithm), env_config)
        runs[algorithm] = (algo, *train_until_it_prefers(algo, env_config, env_config.link.optimal_k))
    yield runs
    for algo, *_ in runs.values():
        algo.stop()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_strategy_learns_to_choose_the_standin_optimal_k(trained, algorithm):
    algo, iterations, probability, _ = trained[algorithm]
    assert probability > TARGET_PROBABILITY, f"{algorithm}: p(k*)={probability:.2f} after {iterations} iterations"
    env = MixUpKEnv(MixUpKEnvConfig(link=StandInSurface(seed=7)))
    observation, _ = env.reset()
    greedy = []
    for _ in range(EVALUATION_WINDOWS):
        greedy.append(greedy_k(algo, observation))
        observation, *_ = env.step(env.candidate_set.index(greedy[-1]))
    assert greedy.count(4) > EVALUATION_WINDOWS // 2, f"{algorithm}: greedy choices {greedy}"


def test_swapping_algorithms_changes_only_the_config_key(trained, env_config):
    ppo, reinforce = trained["ppo"][0], trained["reinforce"][0]
    assert (type(ppo).__name__, type(reinforce).__name__) == ("PPO", "Reinforce")
    assert ppo.config.env is reinforce.config.env is MixUpKEnv
    assert ppo.config.env_config == reinforce.config.env_config == env_config.to_env_config()


def test_every_sampled_env_step_trains_exactly_one_learner_window(trained, env_config):
    records = [json.loads(line) for line in Path(env_config.window_log_path).read_text(encoding="utf-8").splitlines()]
    sampled = sum(result["env_runners"]["num_env_steps_sampled_lifetime"] for _, _, _, result in trained.values())
    assert len(records) == sampled
    assert {record["k"] for record in records} <= set(env_config.candidate_set)


def test_strategies_hold_no_cluster_cpus(trained, ray_cluster):
    total = ray_cluster.cluster_resources().get("CPU")
    assert total == 2.0 and free_cpus_once_settled(ray_cluster, lambda free: free == total) == total


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_restored_checkpoint_gives_the_same_action_probabilities(trained, algorithm, tmp_path):
    algo = trained[algorithm][0]
    algo.save(str(tmp_path))
    restored = restore_strategy(tmp_path)
    try:
        rng = np.random.default_rng(0)
        observations = rng.normal(2.0, 1.0, size=(4, algo.get_module().observation_space.shape[0]))
        for observation in observations:
            np.testing.assert_allclose(
                policy_probabilities(restored, observation), policy_probabilities(algo, observation), atol=1e-6
            )
        assert type(restored) is type(algo)
    finally:
        restored.stop()


def test_without_utility_penalty_the_strategy_learns_the_largest_k(ray_cluster):
    """The penalty is what keeps k* best: with lambda = 0 the same training drifts to the collapse k."""
    env_config = MixUpKEnvConfig(utility_penalty=0.0, link=StandInSurface(seed=1))
    algo = build_strategy(StrategyConfig(algorithm="reinforce"), env_config)
    try:
        iterations, probability, _ = train_until_it_prefers(algo, env_config, max(env_config.candidate_set))
        assert probability > TARGET_PROBABILITY, f"p(k=6)={probability:.2f} after {iterations} iterations"
    finally:
        algo.stop()


def test_a_strategy_serving_a_silent_learner_raises_learner_timeout_instead_of_hanging(ray_cluster):
    from rl_env.acting import ActingPolicy
    from rl_env.background_learning import BackgroundLearner
    from rl_env.mailbox import RemoteLearnerLink, create_mailbox
    from rl_env.one_ahead import OneWindowAhead

    mailbox = create_mailbox("silent-run", num_workers=2)  # no training worker ever answers
    config = MixUpKEnvConfig(link=MailboxLinkConfig("silent-run", timeout_s=0.5))
    algo = build_strategy(StrategyConfig(), config)
    policy = ActingPolicy(algo, seed=0)
    learner = BackgroundLearner(algo, policy)
    driver = OneWindowAhead(RemoteLearnerLink(mailbox, timeout_s=0.5), policy, learner, config, 4)
    try:
        assert driver.start()
        with pytest.raises(LearnerTimeout, match="training workers did not report window 0"):
            driver.run()
    finally:
        learner.close()
        algo.stop()
        ray_cluster.kill(mailbox)
