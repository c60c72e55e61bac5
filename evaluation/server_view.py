"""What the server sees of the private faces under each defence, as attack targets with their ground truth.

    none             the private images themselves
    ppfr_fd          the masked channels of each image
    mixup (k)        pixel MixUp of k private images
    hybrid_fixed (k) MixUp of k masked channel sets
    hybrid_adaptive  MixUp of k masked channel sets, k drawn from the run's k histogram

A mixed target is built around one face, its dominant component: the defence's own `masking.mixup.mixup` draws
k - 1 partners (from the whole private set) and Dirichlet weights, and the largest weight goes to that face.
The weights are exchangeable, so this is exactly the defence's distribution of mixtures given which face
dominates; it lets a small budget of targets cover many people. The dominant face is the original a target is
scored against, and its identity is the target's label. Everything is deterministic per seed.

The same function makes the attacker's simulation of the view from public faces (`simulate_server_view`), so the
pairs an attack trains on and the targets it is judged on come from one definition of the defence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from common.errors import InputError
from evaluation.run_data import RunData
from masking.mixup import mixup
from masking.ppfr import ChannelSelection
from masking.render import render_server_view
from trainers.defenses import defense_named


@dataclass(frozen=True)
class PublicDefenseConfig:
    """What the server, and so every attacker, knows of a run's defence: its name, its k distribution, the MixUp
    concentration and the public masking settings ({} for pixel defences). No key material."""

    defense: str
    k_values: tuple[int, ...] = (1,)
    k_weights: tuple[float, ...] = (1.0,)
    concentration: float = 1.0
    masking: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        defense_named(self.defense)
        if (
            len(self.k_values) != len(self.k_weights)
            or not self.k_values
            or min(self.k_values) < 1
            or sum(self.k_weights) <= 0
        ):
            raise InputError(
                f"k distribution {dict(zip(self.k_values, self.k_weights))}: give k >= 1 with positive total weight"
            )
        if self.masked and "kept_channels" not in self.masking:
            raise InputError(
                f"defence {self.defense!r} needs the public masking settings (kept channels, normalisation)"
            )

    @property
    def masked(self) -> bool:
        return defense_named(self.defense).masked

    @property
    def mixes(self) -> bool:
        return max(self.k_values) > 1

    @property
    def selection(self) -> ChannelSelection:
        return ChannelSelection.from_settings(self.masking)

    @classmethod
    def from_run(cls, run: RunData) -> PublicDefenseConfig:
        defense, row = run.defense, defense_named(run.defense)
        concentration = float(run.train_config.get("defense", {}).get("concentration", 1.0))
        k_values: tuple[int, ...]
        k_weights: tuple[float, ...]
        if row.fixed_k:
            k_values, k_weights = (int(run.summary["k"]),), (1.0,)
        elif row.adaptive:
            histogram = run.summary.get("k_histogram")
            if not histogram:
                raise InputError(
                    f"{run.run_dir}/summary.json has no k_histogram; the adaptive run did not record its k choices"
                )
            k_values = tuple(int(k) for k in histogram)
            k_weights = tuple(float(count) for count in histogram.values())
        else:
            k_values, k_weights = (1,), (1.0,)
        return cls(defense, k_values, k_weights, concentration, dict(run.public_masking) if row.masked else {})

    def draw_ks(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """[count] values of k, drawn from the k distribution."""
        weights = torch.tensor(self.k_weights, dtype=torch.float64)
        picks = torch.multinomial(weights, count, replacement=True, generator=generator)
        return torch.tensor(self.k_values, dtype=torch.long)[picks]

    def summary(self) -> dict[str, Any]:
        """A compact, JSON-ready description for reports (the full normalisation statistics stay out)."""
        total = sum(self.k_weights)
        described: dict[str, Any] = {
            "defense": self.defense,
            "k_distribution": {str(k): w / total for k, w in zip(self.k_values, self.k_weights)},
            "concentration": self.concentration,
        }
        for name in ("ratio", "num_kept", "num_channels", "energy_removed", "key_fingerprint"):
            if name in self.masking:
                described[name] = self.masking[name]
        return described


@dataclass(frozen=True)
class ServerTargets:
    """Attack targets: what the server holds for each, and what each is scored against.

    inputs: [M, C, H, W] images in [0, 1] (pixel defences) or [M, K, h, w] masked channels;
    labels: [M] identity of each target's dominant face; original_indices: [M] row of that face in the run's
    private set; ks: [M] how many faces each target mixes.
    """

    inputs: torch.Tensor
    labels: torch.Tensor
    original_indices: torch.Tensor
    ks: torch.Tensor


def mix_rows(
    rows: torch.Tensor, labels: torch.Tensor, ks: torch.Tensor, concentration: float, generator: torch.Generator
) -> torch.Tensor:
    """Row i mixed with ks[i] - 1 partners from `rows`, row i keeping the largest weight (module docstring).

    One `mixup` draw per distinct k over all rows, so partners come from the whole set, as in a training batch.
    """
    mixed = rows.clone()
    for k in sorted(set(ks.tolist()) - {1}):
        if k > len(rows):
            raise InputError(f"k = {k} needs at least {k} rows to mix; only {len(rows)} given")
        draw = mixup(rows, labels, int(k), concentration, generator)
        chosen = torch.nonzero(ks == k).flatten()
        weights = draw.weights[chosen].clone()
        strongest = weights.argmax(dim=1)
        own = weights[:, 0].clone()
        weights[:, 0] = weights.gather(1, strongest[:, None]).squeeze(1)
        weights.scatter_(1, strongest[:, None], own[:, None])  # the largest weight swapped onto row i itself
        mixed[chosen] = torch.einsum("bk,bk...->b...", weights.to(rows.dtype), rows[draw.partners[chosen]])
    return mixed


def balanced_rows(labels: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """Up to `count` row indices taken round-robin over identities (random order within each), so that a small
    budget still covers many people."""
    by_identity = [
        members[torch.randperm(len(members), generator=generator)]
        for members in (torch.nonzero(labels == label).flatten() for label in labels.unique())
    ]
    order = torch.randperm(len(by_identity), generator=generator).tolist()
    picked: list[int] = []
    depth = 0
    while len(picked) < min(count, len(labels)):
        picked += [int(by_identity[i][depth]) for i in order if depth < len(by_identity[i])]
        depth += 1
    return torch.tensor(picked[:count], dtype=torch.long)


def build_server_targets(run: RunData, defense: PublicDefenseConfig, count: int, seed: int) -> ServerTargets:
    """`count` targets from the run's private set as the server sees them (see the module docstring)."""
    rows = run.masked if defense.masked else run.private.images
    if rows is None:
        raise InputError(
            f"{run.run_dir}: defence {defense.defense!r} trained on masked data, but no masked rows were found"
        )
    generator = torch.Generator().manual_seed(seed)
    labels = run.private.labels
    chosen = balanced_rows(labels, count, generator)
    ks = torch.ones(len(rows), dtype=torch.long)
    ks[chosen] = defense.draw_ks(len(chosen), generator)
    mixed = mix_rows(rows, labels, ks, defense.concentration, generator)
    return ServerTargets(inputs=mixed[chosen], labels=labels[chosen], original_indices=chosen, ks=ks[chosen])


def simulate_server_view(
    images: torch.Tensor,
    labels: torch.Tensor,
    defense: PublicDefenseConfig,
    masker: Callable[[torch.Tensor], torch.Tensor] | None,
    generator: torch.Generator,
) -> torch.Tensor:
    """The attacker's simulation of the server view of a batch of its own images in [0, 1]: masked with the
    attacker's masker (masked defences), then mixed like the defence, image i dominating view i."""
    rows = images
    if defense.masked:
        if masker is None:
            raise InputError(f"defence {defense.defense!r} masks its data: simulating its view needs a masker")
        rows = masker(images)
    return mix_rows(rows, labels, defense.draw_ks(len(images), generator), defense.concentration, generator)


def server_renderings(targets: ServerTargets, defense: PublicDefenseConfig) -> dict[str, torch.Tensor]:
    """The best visual renderings of the server's view, [M, C, H, W] in [0, 1] each, for S1 and S2: the image
    itself (none), the mixed image (pixel MixUp), the keyless rendering of the masked channels (masked)."""
    if defense.masked:
        return {"server view": render_server_view(targets.inputs.float(), defense.selection).clamp(0, 1)}
    return {"mixed image" if defense.mixes else "image": targets.inputs.clamp(0, 1)}
