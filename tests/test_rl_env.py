"""The MixUp-k environment, its stand-in learner, and the mailbox that links it to the Ray Train workers."""

from __future__ import annotations

import json
import math
import threading
import time

import numpy as np
import pytest

from common.errors import InputError
from rl_env.env import OBSERVATION_FIELDS, MixUpKEnv
from rl_env.env_config import MailboxLinkConfig, MixUpKEnvConfig
from rl_env.learner_link import LearnerState, LearnerTimeout, WindowResult
from rl_env.standin import StandInLearner, StandInSurface
from rl_env.strategies import StrategyConfig


class ScriptedLink:
    """A LearnerLink that answers windows from a script of (mixed_loss, clean_val_loss) and records each k."""

    def __init__(self, losses, start=None, total=None):
        self.losses = list(losses)
        self.start = start if start is not None else LearnerState(0.0, 0, False)
        self.total = total or len(self.losses)
        self.ks: list[int] = []
        self.windows_done = self.start.windows_done

    def start_episode(self) -> LearnerState:
        return self.start

    def train_window(self, k: int) -> WindowResult:
        mixed, clean = self.losses[len(self.ks)]
        self.ks.append(k)
        self.windows_done += 1
        return WindowResult(
            mixed, clean, self.windows_done / self.total, self.windows_done, self.windows_done >= self.total
        )

    def close(self) -> None:
        pass


def observation(env_observation: np.ndarray) -> dict[str, float]:
    return dict(zip(OBSERVATION_FIELDS, env_observation.tolist()))


# Bad input: refused by the typed configs, before Ray is started.


@pytest.mark.parametrize(
    "settings, named",
    [
        (dict(candidate_set=()), "candidate_set is empty"),
        (dict(candidate_set=(0, 2, 3)), "k=[0]"),
        (dict(candidate_set=(2, 3, 64), batch_size=32), "k=[64]"),
        (dict(candidate_set=(2, 3, 3)), "repeats"),
        (dict(window_batches=0), "window_batches=0"),
        (dict(windows_per_episode=0), "windows_per_episode=0"),
        (dict(utility_penalty=-1.0), "utility_penalty=-1.0"),
        (dict(candidate_set=(2, 3), link=StandInSurface(optimal_k=4)), "optimal_k=4"),
    ],
)
def test_bad_environment_settings_raise_input_error_before_ray_starts(settings, named, ray_must_not_start):
    with pytest.raises(InputError, match=named.replace("[", r"\[").replace("]", r"\]")):
        MixUpKEnvConfig(**settings)


def test_unknown_algorithm_raises_input_error_naming_the_choices():
    with pytest.raises(InputError, match=r"'sac' is unknown.*ppo.*reinforce"):
        StrategyConfig(algorithm="sac")


def test_env_config_dict_with_unknown_key_or_link_kind_is_refused():
    with pytest.raises(InputError, match="unknown keys \\['windows'\\]"):
        MixUpKEnvConfig.from_env_config({"windows": 3})
    with pytest.raises(InputError, match="link kind 'tcp'"):
        MixUpKEnvConfig.from_env_config({"link": {"kind": "tcp"}})


def test_env_config_survives_the_round_trip_through_rllibs_plain_dict():
    config = MixUpKEnvConfig(candidate_set=(2, 5), link=StandInSurface(optimal_k=5, seed=3), window_batches=4)
    assert MixUpKEnvConfig.from_env_config(config.to_env_config() | {"num_envs": 1}) == config
    mailbox = MixUpKEnvConfig(link=MailboxLinkConfig("run-7", timeout_s=5.0))
    assert MixUpKEnvConfig.from_env_config(mailbox.to_env_config()) == mailbox


# The environment: step, reward and observation as documented.


def test_step_trains_the_chosen_k_and_pays_mixed_loss_minus_penalty_on_clean_loss_rise():
    link = ScriptedLink([(5.0, 2.0), (6.0, 1.5), (7.0, 2.5)], total=100)
    config = MixUpKEnvConfig(utility_penalty=2.0, reward_centering_windows=0)
    env = MixUpKEnv(config, link=link)
    env.reset()
    rewards = [env.step(action)[1] for action in (0, 4, 2)]

    assert link.ks == [2, 6, 4]
    # no reference yet -> no penalty; 1.5 < 2.0 -> no rise; 2.5 rises 1.0 above the best (1.5) -> 2 * 1.0
    assert rewards == pytest.approx([5.0, 6.0, 7.0 - 2.0 * 1.0])


def test_observation_reports_progress_losses_trend_rise_last_k_and_episode_fraction():
    link = ScriptedLink([(5.0, 2.0), (6.0, 1.5), (7.0, 2.5)], total=100)
    env = MixUpKEnv(MixUpKEnvConfig(reward_centering_windows=0), link=link)
    first, _ = env.reset()
    assert first.dtype == np.float32 and env.observation_space.contains(first)
    for action in (0, 4):
        env.step(action)
    seen = observation(env.step(2)[0])

    assert seen == pytest.approx(
        {
            "progress": 0.03,
            "last_mixed_loss": 7.0,
            "mean_mixed_loss": 6.0,
            "mixed_loss_trend": 1.0,
            "last_clean_val_loss": 2.5,
            "clean_val_rise": 1.0,
            "last_k": 4 / 6,
            "episode_fraction": 0.3,
        }
    )


def test_reward_handed_to_the_strategy_is_centred_by_the_running_mean_of_earlier_rewards():
    link = ScriptedLink([(5.0, 1.0), (6.0, 1.0), (5.0, 1.0)], total=100)
    env = MixUpKEnv(MixUpKEnvConfig(reward_centering_windows=2), link=link)
    env.reset()
    steps = [env.step(0) for _ in range(3)]

    assert [s[1] for s in steps] == pytest.approx([0.0, 1.0, 5.0 - 5.5])
    assert [s[4]["raw_reward"] for s in steps] == pytest.approx([5.0, 6.0, 5.0])


def test_episode_is_truncated_after_its_windows_and_terminated_when_the_learner_finishes():
    link = ScriptedLink([(3.0, 1.0)] * 3, total=3)
    env = MixUpKEnv(MixUpKEnvConfig(windows_per_episode=2), link=link)
    env.reset()
    assert env.step(0)[2:4] == (False, False)
    assert env.step(0)[2:4] == (False, True)
    env.reset()
    assert env.step(0)[2:4] == (True, False)

    _, reward, terminated, _, info = env.step(0)
    assert (reward, terminated, info["window_trained"]) == (0.0, True, False)
    assert len(link.ks) == 3


def test_a_new_learner_run_clears_the_reference_of_the_old_one():
    link = ScriptedLink([(4.0, 1.0), (4.0, 9.0)], start=LearnerState(0.5, 50, False), total=100)
    env = MixUpKEnv(MixUpKEnvConfig(reward_centering_windows=0), link=link)
    env.reset()
    env.step(0)
    link.start = LearnerState(0.0, 0, False)  # the learner starts over: its old best loss means nothing now
    env.reset()
    assert env.step(0)[1] == pytest.approx(4.0)


def test_window_log_gets_one_record_per_trained_window(tmp_path):
    log = tmp_path / "windows.jsonl"
    link = ScriptedLink([(3.0, 1.0)] * 2)
    env = MixUpKEnv(MixUpKEnvConfig(window_log_path=str(log)), link=link)
    env.reset()
    env.step(1)
    env.step(3)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["k"], r["raw_reward"], r["mixed_loss"]) for r in records] == [(3, 3.0, 3.0), (5, 3.0, 3.0)]


# The stand-in learner: its best action is the documented one.


def test_standin_best_k_is_optimal_k_with_default_penalty_and_largest_k_without_penalty():
    surface = StandInSurface()
    candidates = (2, 3, 4, 5, 6)
    assert surface.best_k(candidates) == surface.optimal_k == 4
    assert surface.best_k(candidates, utility_penalty=0.0) == 6
    critical = surface.critical_penalty(candidates)
    assert critical == pytest.approx(math.log(5 / 4) / 0.5)
    assert surface.best_k(candidates, utility_penalty=critical * 1.01) == 4
    assert surface.best_k(candidates, utility_penalty=critical * 0.99) == 5


def test_standin_rewards_measured_through_the_env_peak_at_optimal_k():
    config = MixUpKEnvConfig(reward_centering_windows=0, windows_per_episode=1000)
    mean_reward = {}
    for index, k in enumerate(config.candidate_set):
        env = MixUpKEnv(config)
        env.reset()
        mean_reward[k] = np.mean([env.step(index)[1] for _ in range(40)])
    assert max(mean_reward, key=mean_reward.get) == 4
    expected = {k: np.mean([StandInSurface().expected_reward(k, w / 400) for w in range(1, 41)]) for k in mean_reward}
    assert mean_reward == pytest.approx(expected, abs=0.1)


def test_standin_is_deterministic_per_seed_and_differs_across_seeds():
    def losses(seed):
        learner = StandInLearner(StandInSurface(seed=seed), window_batches=8)
        learner.start_episode()
        return [learner.train_window(k).mixed_loss for k in (2, 4, 6, 3)]

    assert losses(1) == losses(1)
    assert losses(1) != losses(2)


def test_standin_starts_a_new_run_after_finishing():
    learner = StandInLearner(StandInSurface(total_windows=2), window_batches=1)
    learner.start_episode()
    learner.train_window(2)
    assert learner.train_window(2).finished
    assert learner.start_episode().windows_done == 0


# The mailbox between the environment and the training workers (needs Ray).

SHORT_S = 0.5


def serve_windows(client, rank, windows, losses_for, start=0):
    """A simulated Ray Train worker: for each window, take k, 'train', report its losses."""
    for window in range(start, start + windows):
        k = client.next_k(window, timeout_s=20.0)
        mixed, clean = losses_for(rank, k)
        client.report(window, mixed, clean, progress=(window + 1) / 10)


def in_threads(*targets):
    threads = [threading.Thread(target=target, daemon=True) for target in targets]
    for thread in threads:
        thread.start()
    return threads


@pytest.fixture
def mailbox(ray_cluster, request):
    from rl_env.mailbox import create_mailbox

    handle = create_mailbox(f"mailbox-{request.node.name}", num_workers=2)
    yield handle
    ray_cluster.kill(handle)


def test_lock_step_exchange_with_two_worker_processes_averages_their_losses(mailbox, ray_cluster, request):
    from rl_env.mailbox import RemoteLearnerLink

    @ray_cluster.remote(num_cpus=1)
    def worker(mailbox_name, rank):  # its own process, finding the mailbox by name as a Ray Train worker does
        from rl_env.mailbox import MailboxClient

        client = MailboxClient.from_name(mailbox_name, rank)
        for window in range(3):
            k = client.next_k(window, timeout_s=60.0)
            client.report(window, 10.0 * k + rank, 1.0 + rank, progress=(window + 1) / 10)

    workers = [worker.remote(f"mailbox-{request.node.name}", rank) for rank in (0, 1)]
    link = RemoteLearnerLink(mailbox, timeout_s=60.0)
    assert link.start_episode() == LearnerState(0.0, 0, False)
    results = [link.train_window(k) for k in (2, 5, 3)]
    ray_cluster.get(workers, timeout=60)

    assert [r.mixed_loss for r in results] == pytest.approx([20.5, 50.5, 30.5])
    assert [r.clean_val_loss for r in results] == pytest.approx([1.5] * 3)
    assert [r.windows_done for r in results] == [1, 2, 3]
    assert link.start_episode().last_mixed_loss == pytest.approx(30.5)


def test_env_waiting_on_silent_workers_raises_learner_timeout_naming_them(mailbox):
    from rl_env.mailbox import RemoteLearnerLink

    link = RemoteLearnerLink(mailbox, timeout_s=SHORT_S)
    link.start_episode()
    started = time.monotonic()
    with pytest.raises(LearnerTimeout, match=r"training workers did not report window 0 within 0.5 s"):
        link.train_window(3)
    assert time.monotonic() - started < 10


def test_worker_waiting_on_a_silent_environment_raises_learner_timeout_naming_it(mailbox):
    from rl_env.mailbox import MailboxClient

    with pytest.raises(LearnerTimeout, match="environment did not send k for window 0"):
        MailboxClient(mailbox, 1).next_k(0, timeout_s=SHORT_S)


def test_restarted_worker_gets_the_same_k_again_and_its_re_reports_are_accepted(mailbox):
    from rl_env.mailbox import MailboxClient, RemoteLearnerLink

    def losses_for(rank, k):
        return float(k), 1.0

    link = RemoteLearnerLink(mailbox, timeout_s=20.0)
    link.start_episode()
    workers = in_threads(*(lambda r=r: serve_windows(MailboxClient(mailbox, r), r, 2, losses_for) for r in (0, 1)))
    assert [link.train_window(k).mixed_loss for k in (4, 6)] == [4.0, 6.0]
    for worker in workers:
        worker.join(timeout=20)

    # Both workers restart from a checkpoint taken after window 0: they re-train window 1, then go on.
    restarted = in_threads(
        *(lambda r=r: serve_windows(MailboxClient(mailbox, r), r, 2, losses_for, start=1) for r in (0, 1))
    )
    assert link.train_window(2).mixed_loss == 2.0
    for worker in restarted:
        worker.join(timeout=20)
    assert MailboxClient(mailbox, 0).next_k(1, timeout_s=SHORT_S) == 6


def test_declared_finish_releases_the_waiting_environment_and_stops_the_workers(mailbox):
    from rl_env.mailbox import MailboxClient, RemoteLearnerLink

    link = RemoteLearnerLink(mailbox, timeout_s=20.0)
    link.start_episode()
    in_threads(lambda: (time.sleep(0.3), MailboxClient(mailbox, 0).declare_finished()))
    result = link.train_window(3)
    assert result.finished and result.windows_done == 0
    assert MailboxClient(mailbox, 1).next_k(5, timeout_s=SHORT_S) is None


def test_environment_built_from_a_mailbox_spec_steps_the_remote_learner(mailbox, request):
    from rl_env.mailbox import MailboxClient

    workers = in_threads(
        *(lambda r=r: serve_windows(MailboxClient(mailbox, r), r, 2, lambda rank, k: (k + 0.5, 1.0)) for r in (0, 1))
    )
    spec = MailboxLinkConfig(f"mailbox-{request.node.name}", timeout_s=20.0)
    env = MixUpKEnv(MixUpKEnvConfig(link=spec, reward_centering_windows=0).to_env_config())
    env.reset()
    assert [env.step(action)[4]["mixed_loss"] for action in (1, 3)] == [3.5, 5.5]
    for worker in workers:
        worker.join(timeout=20)


def test_mailbox_client_and_link_reject_bad_settings(ray_cluster):
    from rl_env.mailbox import RemoteLearnerLink, create_mailbox

    with pytest.raises(InputError, match="num_workers=0"):
        create_mailbox("never", num_workers=0)
    with pytest.raises(InputError, match="timeout_s=0"):
        RemoteLearnerLink(mailbox=None, timeout_s=0)


def test_mailbox_counts_the_windows_whose_k_the_workers_had_to_wait_for(mailbox):
    from rl_env.mailbox import MailboxClient, RemoteLearnerLink

    link = RemoteLearnerLink(mailbox, timeout_s=20.0)
    link.submit_k(0, 3)
    client = MailboxClient(mailbox, 0)
    assert client.next_k(0, timeout_s=SHORT_S) == 3  # chosen ahead: no wait
    in_threads(lambda: (time.sleep(0.3), link.submit_k(1, 5)))
    assert client.next_k(1, timeout_s=20.0) == 5  # asked before the strategy chose: a wait
    assert link.windows_waited_for_k() == [1]
