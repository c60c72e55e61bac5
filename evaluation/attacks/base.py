"""The one small interface every attack implements, what an attacker is given, and what it must hand back.

An attack is fitted on what the attacker may know (`AttackContext`) and returns reconstructions of private faces
(`AttackResult`); the evaluators and measures never see how it got them, so every attack is judged the same way.

Key settings: "unknown" is the threat model (the server lacks the client's key and may only estimate what the
statistics of the masked data reveal); "known" is the worst case of a leaked key. The key itself travels only
in `AttackContext.key`, which is excluded from repr and from `public_summary()`, the only part of a context
that may reach a report or a log.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import torch

from common.errors import InputError

KeySetting = Literal["known", "unknown"]
KEY_SETTINGS: tuple[KeySetting, ...] = ("known", "unknown")


@dataclass(frozen=True)
class AttackBudgetConfig:
    """How much work an attack may do; the defaults finish in minutes on 2 CPU cores.

    steps: optimisation steps (decoder training, latent search) or faces drawn (black-box pool); max_targets:
    private images (or identities) attacked; batch_size: images a step; seed: every random choice of the attack.
    """

    steps: int = 300
    max_targets: int = 64
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "max_targets", "batch_size"):
            if getattr(self, name) < 1:
                raise InputError(f"attack budget {name}={getattr(self, name)}: must be at least 1")


@dataclass
class AttackContext:
    """Everything an attacker may use; attacks read the fields they need and ignore the rest (duck typing).

    public_images / public_labels: the attacker's own faces of other identities, [P, C, H, W] in [0, 1] and [P].
    target_labels: [M] private identities to recover, one per requested reconstruction.
    target_indices: [M] rows of the private originals the targets are, when targets are images (recovery);
        None when targets are identities (model inversion). Attacks pass it on in their result, unread.
    target_masked: [M, ...] the masked representations the server holds for those targets (recovery attacks),
        row i belonging to target_labels[i]; None for attacks that work from the model alone.
    model: a handle on the trained FR model (white-box: the module; black-box: something to query); None if unused.
    key_setting: "known" or "unknown" (see the module docstring).
    key: the client's secret key, present only when key_setting is "known"; never reported.
    masking_settings: the defence's public settings (channel ratio, k, ...), JSON-ready, no key material.
    image_shape: (C, H, W) of the private faces, which reconstructions must match.
    budget: the work allowed.
    extras: room for what a later attack needs (e.g. a masker built from the key, an estimated channel energy).
    """

    public_images: torch.Tensor
    public_labels: torch.Tensor
    target_labels: torch.Tensor
    image_shape: tuple[int, int, int]
    key_setting: KeySetting = "unknown"
    target_indices: torch.Tensor | None = None
    target_masked: torch.Tensor | None = None
    model: Any = None
    key: bytes | None = field(default=None, repr=False)
    masking_settings: dict[str, Any] = field(default_factory=dict)
    budget: AttackBudgetConfig = field(default_factory=AttackBudgetConfig)
    extras: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.key_setting not in KEY_SETTINGS:
            raise InputError(f"key_setting={self.key_setting!r}: choose one of {KEY_SETTINGS}")
        if self.key_setting == "unknown" and self.key is not None:
            raise InputError("key_setting='unknown' but a key was given; pass key=None so the attack cannot use it")
        if self.key_setting == "known" and self.key is None:
            raise InputError("key_setting='known' needs the key; pass key=<client key bytes>")
        if self.public_images.ndim != 4 or tuple(self.public_images.shape[1:]) != tuple(self.image_shape):
            raise InputError(
                f"public_images {tuple(self.public_images.shape)} must be [P, C, H, W] with (C, H, W) = {self.image_shape}"
            )
        if self.public_labels.shape != (len(self.public_images),):
            raise InputError(f"public_labels {tuple(self.public_labels.shape)}: expected ({len(self.public_images)},)")
        if self.target_labels.ndim != 1 or len(self.target_labels) == 0:
            raise InputError(f"target_labels {tuple(self.target_labels.shape)}: expected a non-empty [M] tensor")
        for name in ("target_indices", "target_masked"):
            rows = getattr(self, name)
            if rows is not None and len(rows) != len(self.target_labels):
                raise InputError(
                    f"{name} has {len(rows)} rows for {len(self.target_labels)} target labels; give one per target"
                )

    def public_summary(self) -> dict[str, Any]:
        """What may be reported about this attack's conditions: counts, shapes, settings, budget; no key."""
        return {
            "key_setting": self.key_setting,
            "num_public_images": len(self.public_images),
            "num_public_identities": int(self.public_labels.unique().numel()),
            "num_targets": len(self.target_labels),
            "image_shape": list(self.image_shape),
            "masking_settings": dict(self.masking_settings),
            "budget": asdict(self.budget),
        }


@dataclass(frozen=True)
class AttackResult:
    """Reconstructions [M, C, H, W] in [0, 1] of the targets, in target order.

    target_indices: the context's target_indices (rows of the private originals, when targets are images); None
    when targets are identities, whose reconstructions are then compared with their most similar original.
    """

    reconstructions: torch.Tensor
    target_labels: torch.Tensor
    target_indices: torch.Tensor | None = None

    def __post_init__(self) -> None:
        images = self.reconstructions
        if images.ndim != 4 or images.shape[1] not in (1, 3) or len(images) == 0:
            raise InputError(f"reconstructions {tuple(images.shape)}: expected [M, C, H, W] with M > 0 and C = 1 or 3")
        if not images.is_floating_point() or images.min() < 0 or images.max() > 1:
            raise InputError("reconstructions must be float images in [0, 1]; clamp the decoder output")
        if self.target_labels.shape != (len(images),):
            raise InputError(f"target_labels {tuple(self.target_labels.shape)}: expected ({len(images)},)")
        if self.target_indices is not None and self.target_indices.shape != (len(images),):
            raise InputError(f"target_indices {tuple(self.target_indices.shape)}: expected ({len(images)},)")


@runtime_checkable
class Attack(Protocol):
    """fit learns what the attack needs from the context (may do nothing); reconstruct returns the faces."""

    name: str

    def fit(self, ctx: AttackContext) -> None: ...

    def reconstruct(self, ctx: AttackContext) -> AttackResult: ...


class MeanFaceAttack:
    """The trivial baseline: every target is "reconstructed" as the mean public face.

    It knows faces in general and no one in particular, so a real attack must beat it to show it recovered
    anything about the private identities.
    """

    name = "mean_face"

    def __init__(self) -> None:
        self.mean_face: torch.Tensor | None = None

    def fit(self, ctx: AttackContext) -> None:
        self.mean_face = ctx.public_images.float().mean(dim=0)

    def reconstruct(self, ctx: AttackContext) -> AttackResult:
        if self.mean_face is None:
            raise RuntimeError("MeanFaceAttack.reconstruct called before fit")
        count = len(ctx.target_labels)
        return AttackResult(
            reconstructions=self.mean_face.expand(count, *self.mean_face.shape).clone().clamp(0, 1),
            target_labels=ctx.target_labels.clone(),
            target_indices=ctx.target_indices,
        )
