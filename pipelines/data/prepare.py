"""`prepare`: a face collection to identity-split Parquet shards, verification pairs and a manifest.

One path for every source (folders, the synthetic generator): decode -> checks -> dedupe -> identity split ->
shards + pairs + manifest. Lossless and honest: every usable image is written exactly once, and every other file
is listed in the manifest's `skipped` with its reason, so kept + skipped == files_seen.

The output is built in a hidden folder beside --out and renamed into place at the end, so an interrupted run
leaves --out as it was.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import json
import multiprocessing
import shutil
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from common.errors import InputError
from common.files import atomic_write_json, staging_folder
from common.limits import MAX_IMAGE_PIXELS
from pipelines.data.face_images import COLOR_MODES, ImageConfig, Rejection, make_face
from pipelines.data.face_sources import UNREADABLE, FaceCollection, SourceFile, fingerprint_of, scan_folder
from pipelines.data.pairs_protocol import TEST_FOLD_OUTSIDE_PAIRS, PairsProtocol, fold_pairs, read_pairs_file
from pipelines.data.shards import ImageRow, PixelSpill, write_pairs, write_split
from pipelines.data.splits import (
    check_fractions,
    split_identities,
    split_outside_fold,
    verification_pairs,
)
from trainers.schema import MANIFEST_NAME, SCHEMA_VERSION, SPLITS

OUTSIDE_IDENTITY = "not inside an identity folder"
MARKED_BAD = "marked bad by the data set authors"  # Yale B's *.pgm.bad: decodable, but the authors rejected them
DUPLICATE = "duplicate"
TOO_FEW_IMAGES = "identity has too few images"

_BATCH = 256  # files read and decoded together: bounds memory, and keeps worker processes busy


@dataclass(frozen=True)
class PrepareConfig:
    """Everything that shapes the output; all of it is recorded in the manifest's `parameters`."""

    size: int = 112
    color: str = "keep"
    align: bool = False
    seed: int = 0
    splits: tuple[float, ...] = (0.6, 0.2, 0.2)
    min_size: int = 24
    min_images: int = 2
    pairs: int = 1000
    shard_rows: int = 2000
    crop: float = 1.0  # share of the centred square kept before resizing (no --align, or --align found no face)
    pairs_file: str | None = None  # an LFW View 2 pairs file: its fold `fold` gives the verify split and pairs
    fold: int | None = None

    def validate(self) -> None:
        if self.size < 8 or self.size % 8:
            raise InputError(f"--size {self.size} is not a positive multiple of 8 (the 8x8 DCT blocks); try 112 or 64")
        check_fractions(tuple(self.splits))
        if self.color not in COLOR_MODES:
            raise InputError(f"--color {self.color!r} is not one of {', '.join(COLOR_MODES)}")
        for name, value, least in (
            ("--min-size", self.min_size, 1),
            ("--min-images", self.min_images, 1),
            ("--pairs", self.pairs, 0),
            ("--shard-rows", self.shard_rows, 1),
        ):
            if value < least:
                raise InputError(f"{name} {value} is below {least}; give a whole number of at least {least}")
        if not 0 < self.crop <= 1:
            raise InputError(f"--crop {self.crop} is not in (0, 1]; give the share of the centred square, e.g. 0.52")
        if (self.pairs_file is None) != (self.fold is None):
            raise InputError("--pairs-file and --fold go together: give both (e.g. --fold 1) or neither")

    def recorded(self) -> dict[str, Any]:
        """The manifest's parameters; options left at their defaults that older versions lacked are left out,
        so data prepared before they existed stays reusable."""
        values = asdict(self)
        if self.crop == 1.0:
            del values["crop"]
        if self.pairs_file is None:
            del values["pairs_file"], values["fold"]
        return values

    def image_options(self) -> ImageConfig:
        return ImageConfig(size=self.size, color=self.color, min_size=self.min_size, align=self.align, crop=self.crop)


@dataclass
class _Kept:
    relative_path: str
    identity: str
    sha256: str
    spill_index: int
    channels: int
    alignment_fallback: bool


@dataclass
class _Pass:
    """What the decoding pass found, in source-path order."""

    kept: list[_Kept] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    path_digests: list[tuple[str, str]] = field(default_factory=list)

    def skip(self, path: str, kind: str, reason: str) -> None:
        self.skipped.append({"path": path, "reason": reason, "kind": kind})


def prepare(
    collection: FaceCollection, out: str | Path, options: PrepareConfig, workers: int = 1, progress: bool = False
) -> dict[str, Any]:
    """Write the prepared data set to `out` and return its manifest."""
    options.validate()
    out = Path(out).expanduser().resolve()
    protocol = None
    parameters = options.recorded() | {"source": collection.origin}
    if options.pairs_file is not None and options.fold is not None:
        protocol = read_pairs_file(options.pairs_file, options.fold, {item.relative_path for item in collection.files})
        parameters |= {"pairs_file": protocol.file_name, "pairs_file_sha256": protocol.sha256}
    parameters = _jsonable(parameters)
    existing = _check_out(out, collection, parameters)
    try:
        _assign_splits(collection.identity_names, options, protocol)  # fails early when a split would be too small
    except InputError as error:
        raise InputError(f"SRC {collection.origin.get('path', '(synthetic)')}: {error}") from None
    if existing is not None:
        return existing  # this very data set is there already: nothing to redo, nothing beside it touched
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_folder(out)
    try:
        manifest = _build(collection, staging, options, parameters, protocol, workers, progress)
        _publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def read_manifest(data_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(data_dir) / MANIFEST_NAME).read_text(encoding="utf-8"))


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _check_out(out: Path, collection: FaceCollection, parameters: dict[str, Any]) -> dict[str, Any] | None:
    """--out must be new, empty, or hold this very data set; returns the manifest in the last case."""
    source_path = collection.origin.get("path")
    if source_path and out.is_relative_to(source_path):
        raise InputError(
            f"--out {str(out)!r} is inside SRC {source_path!r}; a re-run would read its own output. "
            "Choose an --out outside SRC"
        )
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {str(out)!r} is a file; give a folder (new or empty) for the prepared data")
    if not out.exists() or not any(out.iterdir()):
        return None
    manifest_path = out / MANIFEST_NAME
    fix = f"choose another --out, or delete {str(out)!r} to replace what it holds"
    if not manifest_path.is_file():
        raise InputError(f"--out {str(out)!r} is not empty and holds no {MANIFEST_NAME}; {fix}")
    try:
        existing = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InputError(f"--out {str(out)!r} has an unreadable {MANIFEST_NAME} ({error}); {fix}") from None
    if existing.get("kind") == "masked":
        raise InputError(f"--out {str(out)!r} holds masked data (from `hybridmask mask`); {fix}")
    old = existing.get("parameters", {})
    changed = sorted(key for key in set(old) | set(parameters) if old.get(key) != parameters.get(key))
    if changed:
        details = "; ".join(f"{key}: {old.get(key)!r} there, {parameters.get(key)!r} now" for key in changed)
        raise InputError(f"--out {str(out)!r} holds a different data set (other parameters: {details}); {fix}")
    if existing.get("source_fingerprint") != collection.fingerprint():
        raise InputError(f"--out {str(out)!r} holds a different data set (the source files have changed since); {fix}")
    return existing


def _publish(staging: Path, out: Path) -> None:
    """Rename the finished folder into place; `out` is absent or empty (checked first), so nothing is lost."""
    if out.exists():
        out.rmdir()  # refuses, rather than deletes, anything that appeared there meanwhile
    staging.rename(out)


def _loaded(files: list[SourceFile]) -> Iterator[list[tuple[SourceFile, bytes | None, str]]]:
    """Batches of (file, content or None when unreadable, SHA-256 or why unreadable)."""
    for start in range(0, len(files), _BATCH):
        yield [(item, *item.read()) for item in files[start : start + _BATCH]]


def _path_rejection(item: SourceFile) -> tuple[str, str] | None:
    if item.identity is None:
        return OUTSIDE_IDENTITY, OUTSIDE_IDENTITY
    if item.relative_path.endswith(".bad"):
        return MARKED_BAD, MARKED_BAD
    return None


def _decode_all(
    collection: FaceCollection, options: ImageConfig, spill: PixelSpill, workers: int, progress: bool
) -> _Pass:
    """Read, hash, decode and check every file in path order; identical bytes are decoded once."""
    found = _Pass()
    first_seen: dict[str, tuple[str, Rejection | None]] = {}  # digest -> first path, why it was unusable
    make = functools.partial(make_face, options=options)
    with (
        _mapper(workers) as mapper,
        tqdm(
            total=len(collection.files),
            desc="prepare: decoding",
            leave=False,  # erased when done, so an error after it stays the one line on the terminal
            unit="file",
            file=sys.stderr,
            mininterval=2.0,
            disable=not progress,
        ) as bar,
    ):
        for batch in _loaded(collection.files):
            fresh = {
                digest: data
                for item, data, digest in batch
                if data is not None and _path_rejection(item) is None and digest not in first_seen
            }
            results = dict(zip(fresh, mapper(make, fresh.values())))
            for item, data, digest in batch:
                found.path_digests.append((item.relative_path, digest))
                if data is None:
                    found.skip(item.relative_path, UNREADABLE, digest)
                else:
                    _record(found, first_seen, results, item, digest, spill)
            bar.update(len(batch))
    return found


def _record(found: _Pass, first_seen: dict, results: dict, item: SourceFile, digest: str, spill: PixelSpill) -> None:
    path = item.relative_path
    rejection = _path_rejection(item)
    if rejection is not None or item.identity is None:  # (a file outside identity folders is always rejected)
        found.skip(path, *(rejection or (OUTSIDE_IDENTITY, OUTSIDE_IDENTITY)))
        return
    if digest in first_seen:
        first_path, first_rejection = first_seen[digest]
        if first_rejection is None:
            found.skip(path, DUPLICATE, f"duplicate of {first_path}")
        else:
            found.skip(path, first_rejection.kind, first_rejection.reason)
        return
    outcome = results[digest]
    first_seen[digest] = (path, outcome if isinstance(outcome, Rejection) else None)
    if isinstance(outcome, Rejection):
        found.skip(path, outcome.kind, outcome.reason)
        return
    found.kept.append(
        _Kept(
            path,
            item.identity,
            digest,
            spill.append(outcome.pixels),
            outcome.pixels.shape[2],
            outcome.alignment_fallback,
        )
    )


@contextlib.contextmanager
def _mapper(workers: int) -> Iterator[Callable]:
    """`map` in this process, or over a process pool (spawned: safe beside Ray and threads); order is kept."""
    if workers <= 1:
        yield lambda function, items: list(map(function, items))
        return
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        yield lambda function, items: list(pool.map(function, items, chunksize=8))


def _assign_splits(names: list[str], options: PrepareConfig, protocol: PairsProtocol | None) -> dict[str, str]:
    if protocol is None:
        return split_identities(names, options.splits, options.seed)
    return split_outside_fold(names, protocol.people, options.splits, options.seed)


def _hold_out_test_fold(found: _Pass, protocol: PairsProtocol | None) -> tuple[list[_Kept], list[_Kept]]:
    """(the test fold's pair images, everything else); the fold's other images are skipped with their reason."""
    if protocol is None:
        return [], found.kept
    pair_images, others = [], []
    for kept in found.kept:
        if kept.identity not in protocol.people:
            others.append(kept)
        elif kept.relative_path in protocol.images:
            pair_images.append(kept)
        else:
            found.skip(kept.relative_path, TEST_FOLD_OUTSIDE_PAIRS, TEST_FOLD_OUTSIDE_PAIRS)
    return pair_images, others


def _drop_small_identities(found: _Pass, candidates: list[_Kept], min_images: int) -> list[_Kept]:
    counts = Counter(kept.identity for kept in candidates)
    usable = []
    for kept in candidates:
        if counts[kept.identity] >= min_images:
            usable.append(kept)
        else:
            found.skip(
                kept.relative_path,
                TOO_FEW_IMAGES,
                f"identity has {counts[kept.identity]} usable image(s); at least {min_images} needed",
            )
    return usable


def _build(
    collection: FaceCollection,
    staging: Path,
    options: PrepareConfig,
    parameters: dict[str, Any],
    protocol: PairsProtocol | None,
    workers: int,
    progress: bool,
) -> dict[str, Any]:
    spill = PixelSpill(staging / "pixels.spill")
    try:
        found = _decode_all(collection, options.image_options(), spill, workers, progress)
        pair_images, others = _hold_out_test_fold(found, protocol)  # a protocol's pair images all stay
        usable = sorted(pair_images + _drop_small_identities(found, others, options.min_images), key=_path_order)
        _check_enough_people(collection, found, usable, options, protocol)
        assignment = _assign_splits(sorted({kept.identity for kept in usable}), options, protocol)
        channels = {"gray": 1, "rgb": 3}.get(options.color, max((kept.channels for kept in usable), default=1))
        rows = _rows(usable, assignment)
        split_summary = {}
        with tqdm(
            total=len(rows),
            desc="prepare: writing",
            unit="img",
            file=sys.stderr,
            mininterval=2.0,
            disable=not progress,
            leave=False,
        ) as bar:
            for split in SPLITS:
                split_rows = [row for row in rows if row.split == split]
                shards = write_split(staging, split, split_rows, spill, channels, options.shard_rows)
                split_summary[split] = {
                    "images": len(split_rows),
                    "identities": len({r.identity for r in split_rows}),
                    "shards": shards,
                }
                bar.update(len(split_rows))
    finally:
        spill.close()
        (staging / "pixels.spill").unlink(missing_ok=True)
    verify = [row for row in rows if row.split == "verify"]
    if protocol is not None:
        left, right, same, pair_summary = fold_pairs(protocol, {row.source_path: row.image_id for row in verify})
    else:
        left, right, same, pair_summary = verification_pairs(
            np.array([r.image_id for r in verify], dtype=np.int64),
            np.array([r.label for r in verify]),
            options.pairs,
            options.seed,
        )
    write_pairs(staging, left, right, same)
    fallbacks = [kept.relative_path for kept in usable if kept.alignment_fallback]
    manifest = _manifest(collection, options, parameters, found, rows, split_summary, pair_summary, channels, fallbacks)
    atomic_write_json(staging / MANIFEST_NAME, manifest, indent=1, ensure_ascii=False)
    return manifest


def _check_enough_people(
    collection: FaceCollection,
    found: _Pass,
    usable: list[_Kept],
    options: PrepareConfig,
    protocol: PairsProtocol | None,
) -> None:
    """After decoding: enough people with usable images for every split, or an error that says what was wrong
    with the files (nothing is written in that case, so the manifest cannot say it)."""
    people = sorted({kept.identity for kept in usable})
    try:
        _assign_splits(people, options, protocol)
    except InputError:
        kinds = Counter(entry["kind"] for entry in found.skipped)
        reasons = ", ".join(f"{kind}: {count}" for kind, count in kinds.most_common()) or "none"
        source = collection.origin.get("path", "the source")
        raise InputError(
            f"SRC {source}: only {len(people)} of {len(collection.identity_names)} people have at least "
            f"{options.min_images} usable images (files skipped: {reasons}); each of the 3 splits needs 2 people or "
            f"more: add people or readable images (at most {MAX_IMAGE_PIXELS // 10**6} megapixels, at least "
            "--min-size pixels a side)"
        ) from None


def _path_order(kept: _Kept) -> str:
    return kept.relative_path


def _rows(usable: list[_Kept], assignment: dict[str, str]) -> list[ImageRow]:
    """image_id in source-path order; labels 0..n-1 per split over the split's sorted identity names."""
    labels = {}
    for split in SPLITS:
        names = sorted(name for name, where in assignment.items() if where == split)
        labels.update({name: label for label, name in enumerate(names)})
    return [
        ImageRow(
            image_id,
            kept.identity,
            labels[kept.identity],
            assignment[kept.identity],
            kept.relative_path,
            kept.sha256,
            kept.spill_index,
        )
        for image_id, kept in enumerate(usable)
    ]


def _manifest(
    collection: FaceCollection,
    options: PrepareConfig,
    parameters: dict[str, Any],
    found: _Pass,
    rows: list[ImageRow],
    split_summary: dict,
    pair_summary: dict,
    channels: int,
    alignment_fallbacks: list[str],
) -> dict[str, Any]:
    skipped = sorted(found.skipped, key=lambda entry: entry["path"])
    if len(rows) + len(skipped) != len(collection.files):
        raise AssertionError("prepare lost track of a file: kept + skipped != files seen")
    return {
        "schema_version": SCHEMA_VERSION,
        "synthetic_data": collection.synthetic,
        "num_images": len(rows),
        "num_identities": len({row.identity for row in rows}),
        "size": options.size,
        "channels": channels,
        "color": options.color,
        "splits": split_summary,
        "pairs": pair_summary,
        "files_seen": len(collection.files),
        "num_skipped": len(skipped),
        "skipped_by_kind": dict(sorted(Counter(entry["kind"] for entry in skipped).items())),
        "skipped": skipped,
        "alignment_fallbacks": alignment_fallbacks,
        "source_fingerprint": fingerprint_of(found.path_digests),
        "parameters": parameters,
    }


def prepare_folder(
    source: str | Path, out: str | Path, options: PrepareConfig, workers: int = 1, progress: bool = False
) -> dict[str, Any]:
    """`hybridmask prepare SRC --out DIR`: scan a folder-per-identity tree, then `prepare` it."""
    return prepare(scan_folder(source), out, options, workers=workers, progress=progress)
