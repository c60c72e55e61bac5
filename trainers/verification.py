"""The standard face verification protocol: 10-fold cross-validated threshold accuracy, and TAR at a fixed FAR.

Scores are cosine similarities of L2-normalised embeddings (flip-fused by the caller). The threshold of each fold
is the one that maximises accuracy on the other nine folds, so the reported accuracy never sees its own threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VerificationResult:
    accuracy: float  # mean 10-fold threshold accuracy
    accuracy_std: float
    tar_at_far: float  # true accept rate at the threshold whose false accept rate is at most `far`
    far: float
    num_pairs: int
    num_impostor_pairs: int  # FAR below 1/num_impostor_pairs cannot be resolved; then TAR is taken at FAR = 0


def pair_scores(embeddings: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Cosine similarity of the rows `left[i]` and `right[i]` of an embedding matrix."""
    normed = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True).clip(min=1e-12)
    return np.einsum("ij,ij->i", normed[left], normed[right])


def best_threshold(scores: np.ndarray, is_same: np.ndarray) -> float:
    """The threshold (accept when score > t) with the highest accuracy on these pairs."""
    order = np.argsort(scores)
    sorted_scores, sorted_same = scores[order], is_same[order]
    # Threshold just below sorted_scores[i] accepts pairs i.. : correct = impostors rejected + genuines accepted.
    impostors_below = np.concatenate([[0], np.cumsum(~sorted_same)])
    genuines_at_or_above = np.concatenate([np.cumsum(sorted_same[::-1])[::-1], [0]])
    correct = impostors_below + genuines_at_or_above
    best = int(np.argmax(correct))
    if best == 0:
        return float(sorted_scores[0] - 1e-6)
    if best == len(scores):
        return float(sorted_scores[-1] + 1e-6)
    return float((sorted_scores[best - 1] + sorted_scores[best]) / 2)


def tar_at_far(scores: np.ndarray, is_same: np.ndarray, far: float) -> float:
    impostor = np.sort(scores[~is_same])
    genuine = scores[is_same]
    if len(impostor) == 0 or len(genuine) == 0:
        return float("nan")
    allowed_false_accepts = int(np.floor(far * len(impostor)))
    threshold = (
        impostor[len(impostor) - allowed_false_accepts - 1] if allowed_false_accepts < len(impostor) else -np.inf
    )
    return float(np.mean(genuine > threshold))


def verify(
    scores: np.ndarray, is_same: np.ndarray, folds: int = 10, far: float = 1e-3, seed: int = 0
) -> VerificationResult:
    scores = np.asarray(scores, dtype=np.float64)
    is_same = np.asarray(is_same, dtype=bool)
    if len(scores) < folds:
        raise ValueError(f"{len(scores)} pairs cannot be split into {folds} folds")
    fold_of = np.random.default_rng(seed).permutation(len(scores)) % folds
    accuracies = []
    for fold in range(folds):
        test = fold_of == fold
        threshold = best_threshold(scores[~test], is_same[~test])
        accuracies.append(np.mean((scores[test] > threshold) == is_same[test]))
    return VerificationResult(
        accuracy=float(np.mean(accuracies)),
        accuracy_std=float(np.std(accuracies)),
        tar_at_far=tar_at_far(scores, is_same, far),
        far=far,
        num_pairs=len(scores),
        num_impostor_pairs=int((~is_same).sum()),
    )
