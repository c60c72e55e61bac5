"""The attacks' names and where each applies, with no heavy imports, so CLI parsers can list them quickly."""

from __future__ import annotations

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
