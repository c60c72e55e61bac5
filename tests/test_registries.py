"""The tables of defences and attacks: every module that branches on a defence or an attack reads them."""

from __future__ import annotations

import dataclasses

import pytest

from common.errors import InputError
from evaluation.attacks.gan import GanCache
from evaluation.attacks.registry import ATTACKS, applies
from evaluation.budgets import load_budgets
from evaluation.server_view import PublicDefenseConfig
from trainers.config import DefenseConfig, OptimConfig, TrainConfig
from trainers.defenses import DEFENSES, UNPROTECTED, defense_named


def test_the_unprotected_baseline_trains_on_plain_images_without_mixing() -> None:
    baseline = DEFENSES[UNPROTECTED]
    assert (baseline.masked, baseline.mixes) == (False, False)


@pytest.mark.parametrize("name", list(DEFENSES))
def test_the_train_config_of_a_defence_follows_its_row(name: str) -> None:
    row = DEFENSES[name]
    config = TrainConfig(defense=DefenseConfig(name=name, k=3))
    assert config.uses_pixels is not row.masked
    assert config.mixes is row.mixes
    too_large_k = TrainConfig(defense=DefenseConfig(name=name, k=64), optim=OptimConfig(batch_size=8))
    if row.fixed_k:  # k comes from defense.k, so it must fit in a batch
        with pytest.raises(InputError, match="larger than the batch"):
            too_large_k.validate()
    else:  # defense.k is not used
        too_large_k.validate()


@pytest.mark.parametrize("name", list(DEFENSES))
def test_the_server_view_of_a_defence_needs_masking_settings_exactly_when_its_row_is_masked(name: str) -> None:
    if DEFENSES[name].masked:
        with pytest.raises(InputError, match="public masking settings"):
            PublicDefenseConfig(name)
    else:
        assert not PublicDefenseConfig(name).masked


def test_an_unknown_defence_is_refused_listing_the_known_ones() -> None:
    with pytest.raises(InputError, match="hybrid_adaptive") as error:
        defense_named("adversarial")
    assert "adversarial" in str(error.value)


@pytest.mark.parametrize("name", list(ATTACKS))
def test_each_attack_row_builds_its_attack_from_the_budget_section_it_names(name: str) -> None:
    row = ATTACKS[name]
    attack = row.build(load_budgets(), 16, GanCache())
    assert attack.name == name
    assert attack.budget == getattr(load_budgets(), row.budget_section)
    budgets = load_budgets()
    section = getattr(budgets, row.budget_section)
    int_fields = [f.name for f in dataclasses.fields(section) if type(getattr(section, f.name)) is int]
    distinct = {field_name: 1000 + index for index, field_name in enumerate(int_fields)}
    setattr(budgets, row.budget_section, dataclasses.replace(section, **distinct))
    steps, batch = row.steps_and_batch(budgets)
    assert {steps, batch} <= set(distinct.values()) and steps != batch


def test_key_recovery_attacks_run_on_masked_defenses_in_the_key_unknown_setting_only() -> None:
    for name in ("known_plaintext", "statistics_key"):
        assert applies(name, True, "unknown") and not applies(name, True, "known")
        assert not applies(name, False, "unknown")
    assert applies("recovery", True, "known") and applies("recovery", False, "unknown")
    assert not applies("recovery", False, "known")  # a pixel defense has no key to leak
