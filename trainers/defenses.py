"""The defences, one row each: every module that branches on a defence asks this table, never its name.

A row says what the defence trains on (`pixel` images or masked `frequency` channels) and how many faces each
training sample mixes (`one`, a `fixed` k from `defense.k`, or an `adaptive` k chosen by the RL strategy).
Light on purpose (no torch, no Ray): the CLI lists the names in `--help`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from common.errors import InputError

Domain = Literal["pixel", "frequency"]
KMode = Literal["one", "fixed", "adaptive"]


@dataclass(frozen=True)
class Defense:
    name: str
    domain: Domain
    k_mode: KMode

    @property
    def masked(self) -> bool:
        """Trains on masked frequency channels, so the server's view of a face depends on the client's key."""
        return self.domain == "frequency"

    @property
    def mixes(self) -> bool:
        return self.k_mode != "one"

    @property
    def fixed_k(self) -> bool:
        return self.k_mode == "fixed"

    @property
    def adaptive(self) -> bool:
        return self.k_mode == "adaptive"


UNPROTECTED = "none"
"""The baseline every other defence's utility (score_cls) is measured against."""

DEFENSES: dict[str, Defense] = {
    row.name: row
    for row in (
        Defense(UNPROTECTED, "pixel", "one"),
        Defense("ppfr_fd", "frequency", "one"),
        Defense("mixup", "pixel", "fixed"),
        Defense("hybrid_fixed", "frequency", "fixed"),
        Defense("hybrid_adaptive", "frequency", "adaptive"),
    )
}


COMPARED_BY_DEFAULT = (UNPROTECTED, "ppfr_fd", "hybrid_adaptive")
"""What `hybridmask run` and `demo` train and compare when not told otherwise."""


def defense_named(name: str) -> Defense:
    """The row of a defence, or an InputError listing the known ones."""
    if name not in DEFENSES:
        raise InputError(f"unknown defence {name!r}; choose one of {list(DEFENSES)}")
    return DEFENSES[name]
