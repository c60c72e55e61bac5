"""Key recovery: the secret map solved from faces the attacker knows, or estimated from statistics, then recovery
run with it as if leaked.

The key is one fixed linear map. Denormalised with the public statistics, every grid position of a masked face is
A k, where k holds the face's kept frequencies (public: block DCT and the public channel selection) and A = M P is
the secret orthogonal mixing M after the secret permutation P. One known face of h x w blocks gives h*w equations
for each of A's K rows of K unknowns (64 for a 64 px face against K = 32 at ratio 0.5), so n >= 1 known private
faces and the masked forms the server holds of them determine A by least squares. The estimate is projected onto
the nearest orthogonal matrix (the algorithm, public, makes A orthogonal), which also absorbs the float16 rounding
of stored masked data. With it the attacker reads the server's data exactly as the key holder would, so the
attack is the leaked-key recovery run in the key-unknown setting: the key hides nothing from it.

Without a known face (`estimate_map_from_statistics`), the attacker matches statistics of the server's masked data
to those of its public faces: second order, C_y = A C_k A^T, so A = U_y S U_k^T with the eigenvectors of both
covariances paired by eigenvalue rank, and S the signs, fixed by higher order evidence (per-position means, which
aligned faces share, plus third moments). It works only as far as the public faces' statistics match the private
ones and the eigenvalues are distinct; docs/evaluation.md gives the error measured on ORL.
"""

from __future__ import annotations

from typing import Any

import torch

from common.errors import InputError
from evaluation.attacks.base import AttackContext
from evaluation.attacks.knowledge import defense_of, public_stats
from evaluation.attacks.recovery import RecoveryAttack
from evaluation.server_view import PublicDefenseConfig
from masking.dct import to_frequency
from masking.masker import FrequencyMasker
from masking.obfuscation import KeyedObfuscation, denormalize, shuffle_and_mix

ESTIMATED_FINGERPRINT = "estimated-by-attacker"


def kept_frequencies(images: torch.Tensor, defense: PublicDefenseConfig) -> torch.Tensor:
    """[B, K, h, w] the kept frequency channels of faces in [0, 1], in ascending channel order (all public)."""
    return to_frequency(images.double())[:, list(defense.selection.kept)]


def solve_map(known_images: torch.Tensor, known_masked: torch.Tensor, defense: PublicDefenseConfig) -> torch.Tensor:
    """[K, K] float64 least-squares estimate of A (module docstring), projected onto the orthogonal matrices."""
    if len(known_images) == 0 or len(known_images) != len(known_masked):
        raise InputError(
            f"known plaintext needs one masked form per known face; got {len(known_images)} faces and "
            f"{len(known_masked)} masked forms"
        )
    frequencies = _as_columns(kept_frequencies(known_images, defense))
    mixed = _as_columns(denormalize(known_masked.double(), public_stats(defense)))
    if frequencies.shape[1] < frequencies.shape[0]:
        raise InputError(
            f"{frequencies.shape[1]} equations per row for {frequencies.shape[0]} unknowns: give more known faces"
        )
    solution = torch.linalg.lstsq(frequencies.T, mixed.T).solution.T
    left, _, right = torch.linalg.svd(solution)
    return left @ right


def estimate_map_from_statistics(
    server_masked: torch.Tensor, public_images: torch.Tensor, defense: PublicDefenseConfig
) -> torch.Tensor:
    """[K, K] float64 estimate of A from the server's masked rows [N, K, h, w] and the attacker's public faces."""
    mixed = denormalize(server_masked.double(), public_stats(defense))
    frequencies = kept_frequencies(public_images, defense)
    mixed_basis = _principal_axes(mixed)
    frequency_basis = _principal_axes(frequencies)
    signs = torch.sign(_sign_evidence(mixed, mixed_basis) * _sign_evidence(frequencies, frequency_basis))
    signs[signs == 0] = 1.0
    return mixed_basis @ torch.diag(signs) @ frequency_basis.T


def _principal_axes(channels: torch.Tensor) -> torch.Tensor:
    """Eigenvectors [K, K] (columns, by decreasing eigenvalue) of the second moment of every position's vector."""
    columns = _as_columns(channels)
    _, vectors = torch.linalg.eigh(columns @ columns.T / columns.shape[1])
    return vectors.flip(1)


def _sign_evidence(channels: torch.Tensor, axes: torch.Tensor) -> torch.Tensor:
    """[K] signed evidence per axis that flips with the axis: its projections' per-position means (their sum of
    cubes, normalised) plus their third moment (normalised)."""
    projected = torch.einsum("kc,bkhw->bchw", axes, channels).flatten(2)  # [B, K, P]
    position_means = projected.mean(dim=0)  # [K, P]
    by_position = position_means.pow(3).sum(dim=1) / position_means.abs().pow(3).sum(dim=1).clamp_min(1e-300)
    values = projected.transpose(0, 1).flatten(1)  # [K, B*P]
    skew = values.pow(3).mean(dim=1) / values.pow(2).mean(dim=1).pow(1.5).clamp_min(1e-300)
    return by_position + skew


def true_map(obfuscation: KeyedObfuscation) -> torch.Tensor:
    """A = M P of a key's obfuscation, [K, K] float64: what `solve_map` estimates (for measuring its error)."""
    size = obfuscation.num_channels
    basis = torch.eye(size, dtype=torch.float64).reshape(size, size, 1, 1)
    return shuffle_and_mix(basis, obfuscation)[:, :, 0, 0].T


def relative_error(estimate: torch.Tensor, truth: torch.Tensor) -> float:
    """||estimate - truth||_F / ||truth||_F."""
    return float(torch.linalg.matrix_norm(estimate - truth) / torch.linalg.matrix_norm(truth))


def masker_from_map(mapping: torch.Tensor, defense: PublicDefenseConfig) -> FrequencyMasker:
    """A masker that applies `mapping` to the kept frequencies, with the public normalisation: the client's masker,
    up to the estimate's error."""
    identity = torch.arange(mapping.shape[0])
    return FrequencyMasker(
        defense.selection, KeyedObfuscation(identity, mapping, ESTIMATED_FINGERPRINT), public_stats(defense)
    )


def _masked_defense_and_extra(ctx: AttackContext, extra: str, what: str) -> tuple[PublicDefenseConfig, Any]:
    """A key-recovery attack's defence (it must mask: there is no key otherwise) and the extra it estimates from."""
    defense, value = defense_of(ctx), ctx.extras.get(extra)
    if not defense.masked or value is None:
        raise InputError(
            f"key recovery needs a masked defence and extras[{extra!r}] ({what}); build its context with "
            "evaluation.run_attacks"
        )
    return defense, value


class KnownPlaintextRecovery(RecoveryAttack):
    """Recovery with the map solved from ctx.extras["known_pairs"] = (faces [n, C, H, W], masked forms [n, K, h, w])."""

    name = "known_plaintext"

    def attacker_view(self, ctx: AttackContext) -> tuple[FrequencyMasker | None, bool]:
        defense, pairs = _masked_defense_and_extra(ctx, "known_pairs", "known faces and their masked forms")
        known_images, known_masked = pairs
        return masker_from_map(solve_map(known_images, known_masked, defense), defense), True


class StatisticsKeyRecovery(RecoveryAttack):
    """Recovery with the map estimated from statistics of ctx.extras["server_masked"] (every masked row the server
    holds) against the public faces; no private face is known."""

    name = "statistics_key"

    def attacker_view(self, ctx: AttackContext) -> tuple[FrequencyMasker | None, bool]:
        defense, server_masked = _masked_defense_and_extra(ctx, "server_masked", "the masked rows the server holds")
        mapping = estimate_map_from_statistics(server_masked, ctx.public_images, defense)
        return masker_from_map(mapping, defense), True


def _as_columns(channels: torch.Tensor) -> torch.Tensor:
    """[B, K, h, w] -> [K, B*h*w]: one column per grid position of every face."""
    return channels.permute(1, 0, 2, 3).reshape(channels.shape[1], -1)
