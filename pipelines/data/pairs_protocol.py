"""LFW-style pair protocols (View 2): one fold's fixed verification pairs, read from a pairs file.

The file (LFW's `pairs.txt`) starts with "FOLDS PER_KIND"; then, per fold, PER_KIND genuine lines `name n1 n2` and
PER_KIND impostor lines `name1 n1 name2 n2`, where n is the image number (`name/name_000n.jpg`). The test fold's
people are the verify split; the FR model and the attacker only ever see people outside it, so accuracy on these
pairs is measured on unseen identities, as the protocol intends.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.errors import InputError
from pipelines.data.splits import pair_columns

TEST_FOLD_OUTSIDE_PAIRS = "test-fold person, image in none of the fold's pairs"
PAIR_IMAGE_UNUSABLE = "an image of the pair was skipped"


@dataclass(frozen=True)
class PairsProtocol:
    """Fold `fold` (1-based) of a pairs file: its pairs as (left path, right path, is_same), paths relative to SRC."""

    file_name: str
    sha256: str
    fold: int
    folds: int
    per_kind: int
    pairs: tuple[tuple[str, str, bool], ...]

    @property
    def people(self) -> frozenset[str]:
        return frozenset(path.split("/", 1)[0] for left, right, _ in self.pairs for path in (left, right))

    @property
    def images(self) -> frozenset[str]:
        return frozenset(path for left, right, _ in self.pairs for path in (left, right))

    def public_settings(self) -> dict[str, object]:
        """What the manifest records: enough to name the protocol and tell a changed pairs file."""
        return {
            "kind": "lfw_view2",
            "pairs_file": self.file_name,
            "pairs_file_sha256": self.sha256,
            "fold": self.fold,
            "folds": self.folds,
            "pairs_per_kind": self.per_kind,
        }


def image_path(name: str, number: str) -> str:
    """LFW's file name for image `number` of person `name`."""
    return f"{name}/{name}_{int(number):04d}.jpg"


def _header(lines: list[str], shown: str) -> tuple[int, int]:
    fields = lines[0].split() if lines else []
    if len(fields) != 2 or not all(field.isdigit() and int(field) > 0 for field in fields):
        raise InputError(
            f"--pairs-file {shown} does not start with 'FOLDS PAIRS_PER_KIND' (LFW's pairs.txt starts '10 300'); "
            "give an LFW View 2 pairs file"
        )
    folds, per_kind = int(fields[0]), int(fields[1])
    if len(lines) - 1 != folds * 2 * per_kind:
        raise InputError(
            f"--pairs-file {shown} has {len(lines) - 1} pair lines; its header '{lines[0].strip()}' promises "
            f"{folds} folds x {2 * per_kind} = {folds * 2 * per_kind}; give the complete, unedited pairs file"
        )
    return folds, per_kind


def _pair(line: str, genuine: bool, line_number: int, shown: str) -> tuple[str, str, bool]:
    fields = line.split()
    expected = 3 if genuine else 4
    numbers = fields[1:] if genuine else fields[1::2]
    if len(fields) != expected or not all(number.isdigit() for number in numbers):
        form = "name n1 n2" if genuine else "name1 n1 name2 n2"
        raise InputError(
            f"--pairs-file {shown} line {line_number}: {line.strip()!r} is not a "
            f"{'genuine' if genuine else 'impostor'} pair '{form}'; give an unedited LFW View 2 pairs file"
        )
    if genuine:
        return image_path(fields[0], fields[1]), image_path(fields[0], fields[2]), True
    return image_path(fields[0], fields[1]), image_path(fields[2], fields[3]), False


def read_pairs_file(path: str | Path, fold: int, source_paths: set[str]) -> PairsProtocol:
    """Fold `fold`'s pairs; every referenced image must be one of `source_paths` (SRC-relative POSIX paths)."""
    shown = repr(str(path))
    try:
        data = Path(path).expanduser().read_bytes()
    except OSError as error:
        raise InputError(
            f"--pairs-file {shown} cannot be read ({error.strerror or error}); give LFW's pairs.txt"
        ) from None
    lines = [line for line in data.decode("utf-8", "replace").splitlines() if line.strip()]
    folds, per_kind = _header(lines, shown)
    if not 1 <= fold <= folds:
        raise InputError(f"--fold {fold} is out of range: the pairs file has folds 1 to {folds}")
    first = 1 + (fold - 1) * 2 * per_kind
    pairs = tuple(
        _pair(lines[index], index < first + per_kind, index + 1, shown) for index in range(first, first + 2 * per_kind)
    )
    protocol = PairsProtocol(Path(path).name, hashlib.sha256(data).hexdigest(), fold, folds, per_kind, pairs)
    missing = sorted(protocol.images - source_paths)
    if missing:
        people = {image.split("/", 1)[0] for image in source_paths}
        absent = sorted({image.split("/", 1)[0] for image in missing} - people)
        what = (
            f"people not in SRC: {', '.join(absent[:5])}" if absent else f"images not in SRC: {', '.join(missing[:5])}"
        )
        raise InputError(
            f"fold {fold} of --pairs-file {shown} names {len(missing)} image(s) SRC lacks ({what}); give SRC as "
            "the folder with one sub-folder per person (LFW: lfw/images_deepfunneled)"
        )
    return protocol


def fold_pairs(
    protocol: PairsProtocol, image_ids: dict[str, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, object]]:
    """The fold's pairs as image ids (left, right, is_same, summary), in the file's order.

    A pair with an image that prepare could not use is left out and listed in the summary, never silently.
    """
    kept, dropped = [], []
    for left, right, same in protocol.pairs:
        if left in image_ids and right in image_ids:
            kept.append((image_ids[left], image_ids[right], same))
        else:
            dropped.append({"left": left, "right": right, "is_same": same, "reason": PAIR_IMAGE_UNUSABLE})
    genuine = sum(same for _, _, same in kept)
    summary = {
        "requested": len(protocol.pairs),
        "count": len(kept),
        "genuine": genuine,
        "impostor": len(kept) - genuine,
        "protocol": protocol.public_settings(),
        "dropped": dropped,
    }
    return (*pair_columns(kept), summary)
