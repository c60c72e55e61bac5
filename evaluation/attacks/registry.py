"""The attacks every defence is judged by, by name, built from the budgets."""

from __future__ import annotations

from evaluation.attacks.base import Attack
from evaluation.attacks.blackbox import BlackboxInversion
from evaluation.attacks.gan import GanCache
from evaluation.attacks.key_recovery import KnownPlaintextRecovery, StatisticsKeyRecovery
from evaluation.attacks.recovery import RecoveryAttack
from evaluation.attacks.whitebox import WhiteboxInversion
from evaluation.budgets import BudgetConfig

ATTACK_NAMES = ("recovery", "whitebox", "blackbox", "known_plaintext", "statistics_key")
IDENTITY_ATTACKS = ("whitebox",)
"""Attacks that reconstruct a person from the model alone (targets are identities, not images)."""
KEY_RECOVERY_ATTACKS = ("known_plaintext", "statistics_key")
"""Attacks that estimate the key themselves: they run on masked defences, in the key-unknown setting only."""


def applies(attack: str, masked_defense: bool, setting: str) -> bool:
    """Whether an attack runs in a key setting: pixel defences have no key (so "unknown" only, and nothing to
    recover); key-recovery attacks are the key-unknown setting's."""
    if attack in KEY_RECOVERY_ATTACKS:
        return masked_defense and setting == "unknown"
    return masked_defense or setting == "unknown"


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
