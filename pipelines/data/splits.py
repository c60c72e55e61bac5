"""Identity-disjoint splits and the verification pairs over the `verify` split.

Identities, not images, are split: the FR model (private), the verification protocol (verify) and the attacker
(public) must never share a person, or accuracy and attack success would be measured on faces already seen.
"""

from __future__ import annotations

import math

import numpy as np

from common.errors import InputError
from trainers.schema import SPLITS

_TRAIN = ("private", "public")  # the splits a pair protocol leaves to the seeded identity split
MIN_IDENTITIES_PER_SPLIT = 2  # verify needs two people for impostor pairs; one-person splits say nothing


def parse_fractions(text: str) -> tuple[float, ...]:
    """'0.6,0.2,0.2' -> fractions for (private, verify, public)."""
    try:
        fractions = tuple(float(part) for part in text.split(","))
    except ValueError:
        fractions = ()
    check_fractions(fractions, shown=text)
    return fractions


def check_fractions(fractions: tuple[float, ...], shown: str | None = None) -> None:
    """One positive fraction per split, adding up to 1."""
    if len(fractions) != len(SPLITS) or any(not f > 0 for f in fractions) or not math.isclose(sum(fractions), 1.0):
        shown = shown if shown is not None else ",".join(str(f) for f in fractions)
        raise InputError(
            f"--splits {shown!r} is not three positive fractions for {','.join(SPLITS)} that add up to 1; "
            "write e.g. --splits 0.6,0.2,0.2"
        )


def split_sizes(num_identities: int, fractions: tuple[float, ...], splits: tuple[str, ...] = SPLITS) -> dict[str, int]:
    """How many identities each of `splits` gets (largest-remainder rounding), or InputError when one gets too few."""
    exact = [num_identities * fraction for fraction in fractions]
    sizes = [math.floor(value) for value in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: (sizes[i] - exact[i], i))
    for i in by_remainder[: num_identities - sum(sizes)]:
        sizes[i] += 1
    result = dict(zip(splits, sizes))
    if min(sizes) < MIN_IDENTITIES_PER_SPLIT:
        shares = ", ".join(f"{split}={count}" for split, count in result.items())
        raise InputError(
            f"fewer identities than the splits need: {num_identities} identities give {shares}, "
            f"and each split needs at least {MIN_IDENTITIES_PER_SPLIT}; add identities, or prepare the data yourself with other fractions (`hybridmask prepare --splits`)"
        )
    return result


def split_identities(
    names: list[str], fractions: tuple[float, ...], seed: int, splits: tuple[str, ...] = SPLITS
) -> dict[str, str]:
    """identity name -> split; a seeded shuffle of the sorted names, so the same seed gives the same split."""
    sizes = split_sizes(len(names), fractions, splits)
    order = np.random.default_rng(seed).permutation(len(names))
    shuffled = [sorted(names)[i] for i in order]
    assignment, start = {}, 0
    for split in splits:
        for name in shuffled[start : start + sizes[split]]:
            assignment[name] = split
        start += sizes[split]
    return assignment


def split_outside_fold(
    names: list[str], fold_people: frozenset[str], fractions: tuple[float, ...], seed: int
) -> dict[str, str]:
    """A pair protocol's split: the test fold's people verify; everyone else is shared by private and public
    in the ratio of their fractions (the verify fraction has no say: the protocol fixes the verify people)."""
    private, _, public = fractions
    outside = [name for name in names if name not in fold_people]
    assignment = split_identities(outside, (private / (private + public), public / (private + public)), seed, _TRAIN)
    return assignment | {name: "verify" for name in names if name in fold_people}


def _unrank_pair(rank: int, count: int) -> tuple[int, int]:
    """The rank-th pair (i < j) of range(count), pairs listed as (0,1), (0,2), ..., (1,2), ..."""
    i = 0
    while rank >= count - 1 - i:
        rank -= count - 1 - i
        i += 1
    return i, i + 1 + rank


def verification_pairs(
    image_ids: np.ndarray, labels: np.ndarray, requested: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Balanced genuine / impostor pairs, distinct, in a seeded random order.

    Returns (left ids, right ids, is_same, summary). Genuine pairs are drawn uniformly from all same-person
    pairs; when fewer than requested/2 exist, all are used and the impostors are cut to match, so the pairs
    stay balanced; `summary` says so.
    """
    rng = np.random.default_rng([seed, 2])
    groups = [np.sort(image_ids[labels == label]) for label in np.unique(labels)]
    group_pairs = np.array([len(group) * (len(group) - 1) // 2 for group in groups], dtype=np.int64)
    total_genuine = int(group_pairs.sum())
    total_impostor = len(image_ids) * (len(image_ids) - 1) // 2 - total_genuine
    per_kind = min(requested // 2, total_genuine, total_impostor)
    genuine = []
    if per_kind:
        starts = np.concatenate([[0], np.cumsum(group_pairs)])
        for rank in np.sort(rng.choice(total_genuine, size=per_kind, replace=False)):
            g = int(np.searchsorted(starts, rank, side="right") - 1)
            i, j = _unrank_pair(int(rank - starts[g]), len(groups[g]))
            genuine.append((int(groups[g][i]), int(groups[g][j])))
    impostor: list[tuple[int, int]] = []
    chosen: set[tuple[int, int]] = set()
    label_of = dict(zip(image_ids.tolist(), labels.tolist()))
    while len(impostor) < per_kind:
        left, right = sorted(int(x) for x in rng.choice(image_ids, size=2, replace=False))
        if label_of[left] != label_of[right] and (left, right) not in chosen:
            chosen.add((left, right))
            impostor.append((left, right))
    pairs = [(left, right, True) for left, right in genuine] + [(left, right, False) for left, right in impostor]
    order = rng.permutation(len(pairs))
    pairs = [pairs[i] for i in order]
    summary: dict[str, int | str] = {
        "requested": requested,
        "count": len(pairs),
        "genuine": per_kind,
        "impostor": per_kind,
    }
    if per_kind < requested // 2:
        summary["note"] = (
            f"the verify images have only {total_genuine} distinct genuine and {total_impostor} impostor pairs, "
            f"so {2 * per_kind} balanced pairs were written instead of {requested}"
        )
    return (*pair_columns(pairs), summary)


def pair_columns(pairs: list[tuple[int, int, bool]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(left image ids, right image ids, is_same) arrays of a list of pairs, as `write_pairs` takes them."""
    columns = list(zip(*pairs)) if pairs else [(), (), ()]
    return np.array(columns[0], dtype=np.int64), np.array(columns[1], dtype=np.int64), np.array(columns[2], dtype=bool)
