"""The server's whole interface to the client's data: what a Train worker may ask for, and what comes back.

The client (the data owner: raw faces, names, the key) lives outside the server's packages and answers a few
narrow requests. Everything that crosses is here: model inputs (mixtures for mixing defences, masked single faces for
`ppfr_fd`, raw faces for the `none` baseline), integer labels and MixUp weights, and public shapes and counts.
No names, no file paths, no row ids, no key material. A deployment may serve this Protocol from a separate
service of the data owner; inside one Ray cluster the client is an actor and `ActorWindowSource` reaches it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from masking.windows import WindowPlan, WindowRequest


@dataclass(frozen=True)
class ClientOffer:
    """What the client tells the server before training: shapes, counts and public masking settings."""

    representation: str  # "images" (raw faces: the `none` and pixel `mixup` defences) or "masked"
    channels: int  # image channels, or masked frequency channels
    size: int  # image side, or the frequency grid side
    num_classes: int  # pseudonymous training labels 0..num_classes-1
    train_rows: int  # rows the client mixes windows from
    holdout_rows: int  # clean held-out rows it can send for the adaptive defence's validation signal
    verify_rows: int
    verify_pairs: int
    synthetic_data: bool
    masking: dict[str, Any] = field(default_factory=dict, repr=False)  # public settings only ({} for pixels)

    @property
    def input_kind(self) -> str:
        return "pixels" if self.representation == "images" else "frequency"


@dataclass(frozen=True)
class SentBatch:
    """One training batch as the server receives it: inputs [B, ...] float32, labels and weights [B, k]."""

    inputs: torch.Tensor
    labels: torch.Tensor
    weights: torch.Tensor


@dataclass(frozen=True)
class VerificationSet:
    """The verify split's faces (other identities than the training set), unmixed, with mirrored copies where the
    representation has them, and the pairs as row positions."""

    inputs: torch.Tensor
    mirrored: torch.Tensor | None
    left: torch.Tensor
    right: torch.Tensor
    is_same: torch.Tensor


class WindowSource(Protocol):
    def offer(self) -> ClientOffer:
        """Shapes and counts, before training."""

    def accept_plan(self, plan: WindowPlan) -> None:
        """The server's batch sizes, before the first window."""

    def window(self, request: WindowRequest) -> list[SentBatch]:
        """The window's W batches, mixed with request.k."""

    def holdout(self, count: int) -> SentBatch:
        """Up to `count` clean held-out private faces (k = 1), for the adaptive defence's validation signal only."""

    def verification(self) -> VerificationSet:
        """The verification faces and pairs, for rank 0's epoch-end verification."""


@dataclass(frozen=True)
class ActorWindowSource:
    """A WindowSource served by a Ray actor with the same three methods (the client, inside one Ray cluster)."""

    actor: Any

    def _call(self, method: str, *args: Any) -> Any:
        import ray

        return ray.get(getattr(self.actor, method).remote(*args))

    def offer(self) -> ClientOffer:
        return self._call("offer")

    def accept_plan(self, plan: WindowPlan) -> None:
        self._call("accept_plan", plan)

    def window(self, request: WindowRequest) -> list[SentBatch]:
        return self._call("window", request)

    def holdout(self, count: int) -> SentBatch:
        return self._call("holdout", count)

    def verification(self) -> VerificationSet:
        return self._call("verification")
