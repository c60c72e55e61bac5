"""The attacks' own proof on real faces: against ORL's unprotected model at the `small` budget, every attack that
meets it names people (p-hat >= PROVEN_P_HAT), so a defence's numbers rest on attacks that work.

It trains the model and the GAN prior from scratch, about 17 minutes on 2 cores, so it is marked `proof` and left
out of `make test` (10 minutes); `make proof` runs it, and CI runs it after the suite.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.attacks_proven_on_orl import TABLE_HEADER, proof_report, table_rows
from evaluation.attacks.registry import ATTACK_NAMES, applies
from evaluation.measures import PROVEN_P_HAT, identification

pytestmark = [pytest.mark.proof, pytest.mark.timeout(3600)]

PUBLIC_SHARE = 0.2  # ORL's default split: 8 of 40 people are the attacker's
SEED = 0


def test_every_attack_names_people_of_orl_on_the_unprotected_model_at_the_small_budget(
    orl_dir: Path, tmp_path: Path
) -> None:
    report = proof_report(orl_dir, tmp_path, PUBLIC_SHARE, SEED, "small")
    print(f"\n{TABLE_HEADER}\n" + "\n".join(table_rows(report, PUBLIC_SHARE, SEED)))

    expected = {name for name in ATTACK_NAMES if applies(name, masked_defense=False, setting="unknown")}
    assert set(report.attacks) == expected, "the unprotected model must meet every attack that applies to it"
    best_p_hat = {
        attack: max(identification(outcome, report.calibration)[0] for outcome in by_setting.values())
        for attack, by_setting in report.attacks.items()
    }
    unproven = {attack: round(p_hat, 3) for attack, p_hat in best_p_hat.items() if p_hat < PROVEN_P_HAT}
    assert not unproven, f"attacks below p-hat {PROVEN_P_HAT} on ORL's unprotected model: {unproven}"
    assert all(report.proven.values()), "the report must mark every attack proven"
