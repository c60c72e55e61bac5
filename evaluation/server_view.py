"""What the server holds of the private faces under each defence, as attack targets with their ground truth.

    none             the private images themselves
    ppfr_fd          the masked channels of each image
    mixup (k)        the pixel MixUps of k private images the client sent
    hybrid_fixed (k) the MixUps of k masked channel sets the client sent
    hybrid_adaptive  the same, with the k the strategy chose for each window

Mixed targets are exactly what was sent: the client's record of every window it answered (`RunData.sent`) and
its seed regenerate each mixture's partners and weights (`masking.windows`), and the targets are picked among
them, round-robin over the people of their dominant (largest-weight) face, which is the original a target is
scored against and whose identity is its label. `sent_appearances` counts, per private face, how many of the
samples sent held it: de-mixing attacks exploit that reuse, and the report states it. `held_samples` streams every
sample sent as the server holds it (the mixture, its faces' identity labels and MixUp weights; no partner rows),
which is what the de-mixing attack solves from.

The attacker's simulation of the view from public faces (`simulate_server_view`) mixes with the same
`masking.mixup.mixup`, the dominant face first, so the pairs an attack trains on and the targets it is judged on
come from one definition of the defence.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from common.errors import InputError
from evaluation.run_data import RunData, SentRecord
from masking.mixup import mixup
from masking.ppfr import ChannelSelection
from masking.render import render_server_view
from masking.windows import window_mixtures
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


@dataclass(frozen=True)
class SentSamples:
    """Every training sample the client sent: partners [M, k_max] as positions in the run's private rows and
    weights [M, k_max] (zero where a sample mixes fewer than k_max faces)."""

    partners: torch.Tensor
    weights: torch.Tensor

    @property
    def dominant(self) -> torch.Tensor:
        """[M] the private row with the largest weight in each sample."""
        return self.partners.gather(1, self.weights.argmax(dim=1, keepdim=True)).squeeze(1)

    def mix(self, rows: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
        """The chosen samples rebuilt from `rows` (private rows, as images in [0, 1] or masked channels)."""
        return torch.einsum("bk,bk...->b...", self.weights[chosen].to(rows.dtype), rows[self.partners[chosen]])


def sent_samples(run: RunData) -> SentSamples:
    """The partners and weights of every sample of every window in the client's record, regenerated from its seed.
    The draws do not depend on the rows' values, so a one-number placeholder per row stands in for the faces."""
    record = _sent_record(run)
    labels = run.private.labels[record.train_rows]
    placeholder = torch.zeros(len(record.train_rows), 1)
    partners, weights = [], []
    for request in record.windows:
        for batch in window_mixtures(placeholder, labels, record.plan, record.secret_seed, request, record.stream):
            partners.append(record.train_rows[batch.partners])
            weights.append(batch.weights.float())
    if not partners:
        raise InputError(f"{run.run_dir}: the client's record lists no window sent; was the run trained?")
    width = max(p.shape[1] for p in partners)
    pad = [width - p.shape[1] for p in partners]
    return SentSamples(
        partners=torch.cat([torch.nn.functional.pad(p, (0, n)) for p, n in zip(partners, pad)]),
        weights=torch.cat([torch.nn.functional.pad(w, (0, n)) for w, n in zip(weights, pad)]),
    )


def _sent_record(run: RunData) -> SentRecord:
    if run.sent is None:
        raise InputError(f"{run.run_dir} has no client record (RUN/client): the server's view cannot be regenerated")
    return run.sent


def sent_appearances(run: RunData, samples: SentSamples) -> dict[str, Any]:
    """How many samples sent held each private face, summarised for the report."""
    held = samples.weights > 0
    counts = torch.bincount(samples.partners[held], minlength=len(run.private.labels))[_sent_record(run).train_rows]
    return {
        "windows_sent": len(_sent_record(run).windows),
        "samples_sent": len(samples.partners),
        "faces_per_sample": sorted({int(n) for n in held.sum(dim=1).tolist()}),
        "appearances_per_training_face": {
            "min": int(counts.min()),
            "median": float(counts.float().median()),
            "mean": float(counts.float().mean()),
            "max": int(counts.max()),
        },
        "holdout_faces_sent_unmixed": _sent_record(run).holdout_rows_sent,
    }


def _sent_rows(run: RunData, defense: PublicDefenseConfig) -> torch.Tensor:
    """The private rows the client's samples were made of: masked channels (masked defences) or images."""
    rows = run.masked if defense.masked else run.private.images
    if rows is None:
        raise InputError(
            f"{run.run_dir}: defence {defense.defense!r} trained on masked data, but no masked rows were found"
        )
    return rows


@dataclass(frozen=True)
class HeldBatch:
    """A chunk of samples as the server holds them: inputs [b, ...] (as sent), the identity label of each face
    mixed in [b, k] and its MixUp weight [b, k] (zero where a sample mixes fewer faces)."""

    inputs: torch.Tensor
    labels: torch.Tensor
    weights: torch.Tensor


@dataclass(frozen=True)
class HeldSamples:
    """Every sample the client sent, iterated chunk by chunk (a fresh pass each time), so that an attack can
    stream over a whole run; `people` is the number of identity labels, `count` the number of samples."""

    people: int
    count: int
    chunks: Callable[[], Iterator[HeldBatch]] = field(repr=False)

    def __iter__(self) -> Iterator[HeldBatch]:
        return self.chunks()


def held_samples(run: RunData, defense: PublicDefenseConfig, chunk: int = 1024) -> HeldSamples:
    """What the server holds of every sample sent (module docstring): the partners' rows stay in this closure."""
    rows, samples, labels = _sent_rows(run, defense), sent_samples(run), run.private.labels

    def chunks() -> Iterator[HeldBatch]:
        for chosen in torch.arange(len(samples.partners)).split(chunk):
            yield HeldBatch(samples.mix(rows, chosen), labels[samples.partners[chosen]], samples.weights[chosen])

    return HeldSamples(int(labels.max()) + 1, len(samples.partners), chunks)


def build_server_targets(run: RunData, defense: PublicDefenseConfig, count: int, seed: int) -> ServerTargets:
    """`count` targets from the run's private set as the server held them (see the module docstring)."""
    rows = _sent_rows(run, defense)
    generator = torch.Generator().manual_seed(seed)
    labels = run.private.labels
    if not defense.mixes:
        chosen = balanced_rows(labels, count, generator)
        return ServerTargets(
            inputs=rows[chosen], labels=labels[chosen], original_indices=chosen, ks=torch.ones_like(chosen)
        )
    samples = sent_samples(run)
    dominant = samples.dominant
    picked = balanced_rows(labels[dominant], count, generator)
    return ServerTargets(
        inputs=samples.mix(rows, picked),
        labels=labels[dominant[picked]],
        original_indices=dominant[picked],
        ks=(samples.weights[picked] > 0).sum(dim=1),
    )


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
