"""Recovery: reconstruct each private face from what the server holds of it, with a decoder trained on pairs the
attacker simulates from its public faces (the PartialFace / MinusFace evaluations).

The attacker masks (known key: the client's masker; unknown key: its own) and mixes its public faces as the
defence does, and trains a U-Net from its reading of that view to the dominant original. Readings:
- pixel defences: the (mixed) image itself;
- known key: the kept frequencies unmixed with the key and put back in pixel space (the client view),
  standardised per image;
- unknown key: the key-free inner products between grid positions (`knowledge.gram_invariants`), since
  channels masked with the attacker's own key do not match the client's.
The U-Net works at the budget's work size; reconstructions are resized to the faces' size.

A trained decoder is kept for the rest of the process under a digest of everything that shaped it (view, masker,
public faces, budget, seed): the de-mixing attack decodes with the unmixed masked view, which is `ppfr_fd`'s, so
in one `run` it reuses the decoder the recovery of `ppfr_fd` trained instead of training the same one again; and
the key-recovery attacks reuse the decoder of the recovery with the key (see `_training_digest`).
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable

import torch
import torch.nn.functional as F

from evaluation.attacks.base import AttackContext, AttackResult
from evaluation.attacks.knowledge import (
    attacker_masker,
    augment,
    defense_of,
    device_of,
    gram_invariants,
    public_stats,
    standardised,
)
from evaluation.attacks.networks import UNet, resize
from evaluation.attacks.training import optimize, seeded
from evaluation.budgets import RecoveryBudgetConfig
from evaluation.server_view import simulate_server_view
from masking.masker import FrequencyMasker
from masking.obfuscation import ChannelStats
from masking.render import render_client_view

DECODERS_KEPT = 12  # trained decoders remembered per process (a few MB each): every recovery and key attack of a run
_trained_decoders: OrderedDict[str, UNet] = OrderedDict()


def _remembered(digest: str, train: Callable[[], UNet]) -> UNet:
    """The decoder trained under `digest` in this process, or a newly trained one (then remembered)."""
    if digest not in _trained_decoders:
        _trained_decoders[digest] = train()
        while len(_trained_decoders) > DECODERS_KEPT:
            _trained_decoders.popitem(last=False)
    _trained_decoders.move_to_end(digest)
    return _trained_decoders[digest]


class RecoveryAttack:
    name = "recovery"

    def __init__(self, budget: RecoveryBudgetConfig | None = None, work_size: int = 32) -> None:
        self.budget = budget or RecoveryBudgetConfig()
        self.work_size = work_size
        self.decoder: UNet | None = None

    def attacker_view(self, ctx: AttackContext) -> tuple[FrequencyMasker | None, bool]:
        """The masker the attacker simulates the view with, and whether it can undo the mixing (reads with a key)."""
        return attacker_masker(ctx), ctx.key_setting == "known"

    def fit(self, ctx: AttackContext) -> None:
        defense, device = defense_of(ctx), device_of(ctx)
        self.masker, self.reads_with_key = self.attacker_view(ctx)
        generator = torch.Generator().manual_seed(ctx.budget.seed)
        images, labels = ctx.public_images.float(), ctx.public_labels
        mask = self.masker.mask if self.masker is not None else None
        own_stats = self.masker.stats if self.masker is not None else None
        first = slice(0, self.budget.batch_size)
        probe = self._reading(simulate_server_view(images[first], labels[first], defense, mask, generator), own_stats)

        def train() -> UNet:
            decoder = seeded(
                ctx.budget.seed,
                lambda: UNet(probe.shape[1], images.shape[1], self.budget.width, probe.shape[-1], self.work_size),
            ).to(device)

            def loss_of_batch() -> torch.Tensor:
                rows = torch.randint(len(images), (self.budget.batch_size,), generator=generator)
                faces = augment(images[rows], generator)
                view = simulate_server_view(faces, labels[rows], defense, mask, generator)
                wanted = resize(faces, self.work_size).to(device)
                return F.l1_loss(decoder(self._reading(view, own_stats).to(device)), wanted)

            optimize(decoder, loss_of_batch, self.budget.steps, self.budget.lr)
            return decoder

        self.decoder = _remembered(self._training_digest(ctx, probe), train)

    def _training_digest(self, ctx: AttackContext, probe: torch.Tensor) -> str:
        """Everything the decoder's training depends on.

        Read with a key (the client's, or a key-recovery attack's estimate of it), the simulated reading is the
        kept frequencies in pixel space whatever the map, since the attacker masks and unmixes its own faces with
        the same one: the public channel selection names it, and recovery with the key and both key-recovery
        attacks train one decoder (they differ only in how they read the server's data). Otherwise `probe` (the
        reading of the first simulated batch) stands for the masker, its statistics and the key, which never enter
        the digest themselves."""
        defense = defense_of(ctx)
        digest = hashlib.sha256()
        settings = [defense.summary(), repr(self.budget), self.work_size, ctx.budget.seed, str(device_of(ctx))]
        tensors = [ctx.public_images, ctx.public_labels]
        if self.reads_with_key:
            settings.append(["read with a key", list(defense.selection.kept)])
        else:
            tensors.append(probe)
        digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
        for tensor in tensors:
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()

    def reconstruct(self, ctx: AttackContext) -> AttackResult:
        if self.decoder is None or ctx.target_masked is None:
            raise RuntimeError("RecoveryAttack needs fit() first and targets' server-held data (ctx.target_masked)")
        defense = defense_of(ctx)
        stats = public_stats(defense) if defense.masked else None
        self.decoder.eval()
        with torch.no_grad():
            outputs = [
                self.decoder(self._reading(chunk, stats).to(device_of(ctx))).cpu()
                for chunk in ctx.target_masked.split(64)
            ]
        images = resize(torch.cat(outputs), ctx.image_shape[-1]).clamp(0, 1)
        return AttackResult(images, ctx.target_labels.clone(), ctx.target_indices)

    def _reading(self, view: torch.Tensor, stats: ChannelStats | None) -> torch.Tensor:
        """The decoder's input for server-held data: see the module docstring. `stats` de-normalises masked data
        (the attacker's own masker's for simulated views, the public ones for the server's targets)."""
        if stats is None:
            return view.float() * 2.0 - 1.0
        if self.reads_with_key:
            assert self.masker is not None  # masked defences always have one
            return standardised(render_client_view(view.float(), self.masker))
        return gram_invariants(view, stats)
