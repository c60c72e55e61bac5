"""The attacks every defence is judged by: one row each, the only place that knows an attack by its name.

A row builds the attack from its own section of the budgets (`budget.<name>.*` on the command line) and says
which of that section's values its context records as steps and batch, and whether it attacks identities (from the
model alone) rather than images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from evaluation.attacks.base import Attack
from evaluation.attacks.blackbox import BlackboxInversion
from evaluation.attacks.gan import GanCache
from evaluation.attacks.recovery import RecoveryAttack
from evaluation.attacks.whitebox import WhiteboxInversion
from evaluation.budgets import BudgetConfig


@dataclass(frozen=True)
class RegisteredAttack:
    name: str
    build: Callable[[BudgetConfig, int, GanCache], Attack]  # (budgets, work size, shared GAN priors) -> attack
    steps_and_batch: Callable[[BudgetConfig], tuple[int, int]]  # its main optimization steps and batch (restarts)
    per_identity: bool = False  # targets are identities (reconstructed from the model), not images


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
    )
}
ATTACK_NAMES = tuple(ATTACKS)
