"""The attacks every defense is judged by: one row each, the only place that knows an attack by its name.

A row says how to build the attack from its section of the budgets (`budget.<section>.*` on the command line),
which of that section's values its context records as steps and batch, whether it attacks identities (from the
model, or from every sample sent) rather than images, and whether it recovers the key itself (then it runs on
masked defenses, in the key-unknown setting only). The module imports no torch: builders import their attack when
called, so CLI parsers list the names quickly. A new attack is its module plus one row here (and a budget section
in `evaluation/budgets.py` if it has values of its own, and its `extras` in `evaluation.run_attacks.attack_context`
if it reads server-held data beyond its targets). Changing what an attack finds means raising its `revision`, which
makes its older records stale.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evaluation.attacks.base import Attack
    from evaluation.attacks.gan import GanCache
    from evaluation.budgets import BudgetConfig


@dataclass(frozen=True)
class RegisteredAttack:
    name: str
    build: Callable[[BudgetConfig, int, GanCache], Attack]  # (budgets, work size, shared GAN priors) -> attack
    steps_and_batch: Callable[[BudgetConfig], tuple[int, int]]  # its main work (steps; faces drawn) and batch
    budget_section: str  # the `budget.<section>` it reads
    per_identity: bool = False  # targets are identities (from the model, or from every sample sent), not images
    recovers_key: bool = False  # estimates the key itself: masked defenses, key-unknown setting only
    revision: int = 1  # raised when the method changes what it finds: records of older revisions are stale

    def applies(self, masked_defense: bool, setting: str) -> bool:
        """Pixel defenses have no key (so "unknown" only, and nothing to recover); key recovery is the key-unknown
        setting's."""
        if self.recovers_key:
            return masked_defense and setting == "unknown"
        return masked_defense or setting == "unknown"


def _recovery(budgets: BudgetConfig, size: int, gans: GanCache) -> Attack:
    from evaluation.attacks.recovery import RecoveryAttack

    return RecoveryAttack(budgets.recovery, size)


def _whitebox(budgets: BudgetConfig, size: int, gans: GanCache) -> Attack:
    from evaluation.attacks.whitebox import WhiteboxInversion

    return WhiteboxInversion(budgets.whitebox, size, gans)


def _blackbox(budgets: BudgetConfig, size: int, gans: GanCache) -> Attack:
    from evaluation.attacks.blackbox import BlackboxInversion

    return BlackboxInversion(budgets.blackbox, size, gans, budgets.whitebox)


def _known_plaintext(budgets: BudgetConfig, size: int, gans: GanCache) -> Attack:
    from evaluation.attacks.key_recovery import KnownPlaintextRecovery

    return KnownPlaintextRecovery(budgets.recovery, size)


def _statistics_key(budgets: BudgetConfig, size: int, gans: GanCache) -> Attack:
    from evaluation.attacks.key_recovery import StatisticsKeyRecovery

    return StatisticsKeyRecovery(budgets.recovery, size)


def _demixing(budgets: BudgetConfig, size: int, gans: GanCache) -> Attack:
    from evaluation.attacks.demixing import DemixingAttack

    return DemixingAttack(budgets.recovery, size)


def _recovery_steps(budgets: BudgetConfig) -> tuple[int, int]:
    return budgets.recovery.steps, budgets.recovery.batch_size


ATTACKS: dict[str, RegisteredAttack] = {
    row.name: row
    for row in (
        RegisteredAttack("recovery", _recovery, _recovery_steps, "recovery"),
        RegisteredAttack(
            "whitebox",
            _whitebox,
            lambda budgets: (budgets.whitebox.inversion_steps, budgets.whitebox.restarts),
            "whitebox",
            per_identity=True,
            revision=4,  # 4: the mean of the restarts scored highest answers; 3: the identity loss is the cosine to
            # the prototype; 2: the GAN normalises by the batch
        ),
        RegisteredAttack(
            "blackbox",
            _blackbox,
            lambda budgets: (budgets.blackbox.pool, budgets.blackbox.batch_size),
            "blackbox",
            revision=3,  # 3: a query-only latent search from those faces; 2: the prior's faces nearest the target's
            # embedding; 1: a decoder from embeddings
        ),
        # the key-recovery attacks train the recovery decoder, with their own estimate of the key
        RegisteredAttack("known_plaintext", _known_plaintext, _recovery_steps, "recovery", recovers_key=True),
        RegisteredAttack("statistics_key", _statistics_key, _recovery_steps, "recovery", recovers_key=True),
        # per-identity means solved from every sample sent, decoded by the recovery's decoder trained unmixed
        RegisteredAttack("demixing", _demixing, _recovery_steps, "recovery", per_identity=True),
    )
}
ATTACK_NAMES = tuple(ATTACKS)


def applies(attack: str, masked_defense: bool, setting: str) -> bool:
    """Whether `attack` runs in a key setting on a defense that masks (or not)."""
    return ATTACKS[attack].applies(masked_defense, setting)
