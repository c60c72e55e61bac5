"""The attacks every defense is judged by: one row each, the only place that builds an attack by its name.

A row builds the attack from its own section of the budgets (`budget.<name>.*` on the command line) and says
which of that section's values its context records as steps and batch, and whether it attacks identities (from the
model alone) rather than images. The names, and the rule for which key settings each attack runs in, live in the
light module `evaluation.attacks.names` so CLI parsers list them without importing torch; a test holds the two
in step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from evaluation.attacks.base import Attack
from evaluation.attacks.blackbox import BlackboxInversion
from evaluation.attacks.gan import GanCache
from evaluation.attacks.key_recovery import KnownPlaintextRecovery, StatisticsKeyRecovery
from evaluation.attacks.names import ATTACK_NAMES, IDENTITY_ATTACKS, KEY_RECOVERY_ATTACKS, applies
from evaluation.attacks.recovery import RecoveryAttack
from evaluation.attacks.whitebox import WhiteboxInversion
from evaluation.budgets import BudgetConfig


@dataclass(frozen=True)
class RegisteredAttack:
    name: str
    build: Callable[[BudgetConfig, int, GanCache], Attack]  # (budgets, work size, shared GAN priors) -> attack
    steps_and_batch: Callable[[BudgetConfig], tuple[int, int]]  # its main optimization steps and batch (restarts)
    per_identity: bool = False  # targets are identities (reconstructed from the model), not images
    budget_section: str = ""  # the `budget.<section>` it reads; "" means its own name

    def __post_init__(self) -> None:
        if not self.budget_section:
            object.__setattr__(self, "budget_section", self.name)


ATTACKS: dict[str, RegisteredAttack] = {
    row.name: row
    for row in (
        RegisteredAttack(
            RecoveryAttack.name,
            lambda budgets, size, gans: RecoveryAttack(budgets.recovery, size),
            lambda budgets: (budgets.recovery.steps, budgets.recovery.batch_size),
        ),
        RegisteredAttack(
            WhiteboxInversion.name,
            lambda budgets, size, gans: WhiteboxInversion(budgets.whitebox, size, gans),
            lambda budgets: (budgets.whitebox.inversion_steps, budgets.whitebox.restarts),
            per_identity=True,
        ),
        RegisteredAttack(
            BlackboxInversion.name,
            lambda budgets, size, gans: BlackboxInversion(budgets.blackbox, size),
            lambda budgets: (budgets.blackbox.steps, budgets.blackbox.batch_size),
        ),
        RegisteredAttack(
            KnownPlaintextRecovery.name,
            lambda budgets, size, gans: KnownPlaintextRecovery(budgets.recovery, size),
            lambda budgets: (budgets.recovery.steps, budgets.recovery.batch_size),
            budget_section="recovery",  # it trains the recovery decoder, with its estimate of the key
        ),
        RegisteredAttack(
            StatisticsKeyRecovery.name,
            lambda budgets, size, gans: StatisticsKeyRecovery(budgets.recovery, size),
            lambda budgets: (budgets.recovery.steps, budgets.recovery.batch_size),
            budget_section="recovery",  # it trains the recovery decoder, with its estimate of the key
        ),
    )
}

__all__ = ["ATTACKS", "ATTACK_NAMES", "IDENTITY_ATTACKS", "KEY_RECOVERY_ATTACKS", "RegisteredAttack", "applies"]
