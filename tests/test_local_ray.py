"""How a command starts Ray: a local instance polls Ray Train promptly, starts no preemption watcher and no
dashboard unless asked; a cluster named by RAY_ADDRESS is joined as it is. ray.init is replaced: what it is
called with is under test."""

from __future__ import annotations

import os

import pytest
import ray

import trainers.local_ray as local_ray


@pytest.fixture()
def init_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    calls: list[dict] = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setattr(local_ray, "claim_local_ray", lambda: None)  # leave the machine's lock alone
    for name in (
        "RAY_ADDRESS",
        local_ray.LOCAL_DASHBOARD_ENV,
        local_ray.TRAIN_POLL_ENV,
        local_ray.PREEMPTION_WATCHER_ENV,
    ):
        monkeypatch.delenv(name, raising=False)
    return calls


def test_a_local_ray_polls_train_workers_every_half_second_and_starts_no_dashboard_or_preemption_watcher(
    init_calls,
) -> None:
    local_ray.start_ray()
    assert init_calls == [{"include_dashboard": False}]
    assert os.environ[local_ray.TRAIN_POLL_ENV] == local_ray.TRAIN_POLL_S
    assert os.environ[local_ray.PREEMPTION_WATCHER_ENV] == "0"


def test_the_dashboard_starts_when_asked_and_a_users_poll_interval_is_kept(init_calls, monkeypatch) -> None:
    monkeypatch.setenv(local_ray.LOCAL_DASHBOARD_ENV, "1")
    monkeypatch.setenv(local_ray.TRAIN_POLL_ENV, "3")
    local_ray.start_ray()
    assert init_calls == [{"include_dashboard": True}]
    assert os.environ[local_ray.TRAIN_POLL_ENV] == "3"


def test_a_cluster_named_by_ray_address_is_joined_with_its_own_settings(init_calls, monkeypatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    local_ray.start_ray()
    assert init_calls == [{}]
    assert local_ray.TRAIN_POLL_ENV not in os.environ and local_ray.PREEMPTION_WATCHER_ENV not in os.environ


def test_the_commands_hide_the_cleaners_warning_about_the_missing_state_api_and_nothing_else(monkeypatch) -> None:
    import re

    monkeypatch.delenv(local_ray.SKIPPED_LOG_LINES_ENV, raising=False)
    local_ray.hide_state_api_warnings()  # what the command line does before any verb imports ray
    skipped = re.compile(os.environ[local_ray.SKIPPED_LOG_LINES_ENV])
    warning = (
        "\x1b[36m(PlacementGroupCleaner pid=3285)\x1b[0m Failed to query Ray Train Controller actor state. "
        "State API may be temporarily unavailable. Continuing to monitor."
    )
    assert skipped.search(warning)
    for kept in ("(RayTrainWorker pid=3329) epoch 1/2  loss 20.863", "Detected that the Ray Train controller actor"):
        assert not skipped.search(kept)
    monkeypatch.setenv(local_ray.SKIPPED_LOG_LINES_ENV, "mine")
    local_ray.hide_state_api_warnings()
    assert os.environ[local_ray.SKIPPED_LOG_LINES_ENV] == "mine"  # a user's own setting wins
