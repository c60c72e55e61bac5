"""The attacks every defence is judged by, built by name from the budgets (the names: `evaluation.attacks.names`)."""

from __future__ import annotations

from evaluation.attacks.base import Attack
from evaluation.attacks.blackbox import BlackboxInversion
from evaluation.attacks.gan import GanCache
from evaluation.attacks.key_recovery import KnownPlaintextRecovery, StatisticsKeyRecovery
from evaluation.attacks.names import ATTACK_NAMES, IDENTITY_ATTACKS, KEY_RECOVERY_ATTACKS, applies
from evaluation.attacks.recovery import RecoveryAttack
from evaluation.attacks.whitebox import WhiteboxInversion
from evaluation.budgets import BudgetConfig


def build_attack(name: str, budgets: BudgetConfig, image_size: int, gan_cache: GanCache) -> Attack:
    work_size = budgets.size_for(image_size)
    if name == "recovery":
        return RecoveryAttack(budgets.recovery, work_size)
    if name == "whitebox":
        return WhiteboxInversion(budgets.whitebox, work_size, gan_cache)
    if name == "blackbox":
        return BlackboxInversion(budgets.blackbox, work_size)
    if name == "known_plaintext":
        return KnownPlaintextRecovery(budgets.recovery, work_size)
    if name == "statistics_key":
        return StatisticsKeyRecovery(budgets.recovery, work_size)
    raise ValueError(f"unknown attack {name!r}")  # names are checked against ATTACK_NAMES before any work


def steps_and_batch(name: str, budgets: BudgetConfig) -> tuple[int, int]:
    """An attack's main optimisation steps and batch (restarts, for the white-box search), for its context."""
    if name in ("recovery", *KEY_RECOVERY_ATTACKS):
        return budgets.recovery.steps, budgets.recovery.batch_size
    if name == "whitebox":
        return budgets.whitebox.inversion_steps, budgets.whitebox.restarts
    return budgets.blackbox.steps, budgets.blackbox.batch_size


__all__ = ["ATTACK_NAMES", "IDENTITY_ATTACKS", "KEY_RECOVERY_ATTACKS", "applies", "build_attack", "steps_and_batch"]
