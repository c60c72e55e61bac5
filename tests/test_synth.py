"""The synthetic face generator: deterministic, identity-consistent, learnable, and prepared like real faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from common.errors import InputError
from pipelines.cli import main as cli
from pipelines.data.prepare import PrepareConfig, read_manifest
from pipelines.data.synth import generate_faces, prepare_synthetic, render_face, render_png, save_contact_sheet
from trainers.schema import SPLITS, decode_pixels, read_split

SMALL = PrepareConfig(size=32, splits=(0.34, 0.33, 0.33), pairs=40)


def shard_bytes(data_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(data_dir)): p.read_bytes() for p in sorted(data_dir.rglob("*")) if p.is_file()}


def mean_distances(images: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    """(mean within-identity, mean between-identity, smallest within-identity) RMS pixel distance."""
    flat = images.reshape(len(images), -1).astype(np.float64)
    distance = np.sqrt(((flat[:, None] - flat[None]) ** 2).mean(axis=-1))
    same = labels[:, None] == labels[None]
    within = distance[same & ~np.eye(len(labels), dtype=bool)]
    return within.mean(), distance[~same].mean(), within.min()


def test_same_seed_gives_the_same_png_bytes_and_another_seed_other_faces() -> None:
    assert render_png(7, 3, 2, 32) == render_png(7, 3, 2, 32)
    assert not np.array_equal(render_face(7, 3, 2, 32), render_face(8, 3, 2, 32))


def test_an_identity_looks_the_same_however_many_identities_are_generated() -> None:
    few, _ = generate_faces(3, 2, size=32, seed=5)
    many, labels = generate_faces(6, 2, size=32, seed=5)
    assert np.array_equal(few, many[: len(few)]) and labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def test_images_of_one_identity_are_closer_than_images_of_different_ones_yet_not_identical() -> None:
    images, labels = generate_faces(12, 6, size=32, seed=0)
    assert images.shape == (72, 32, 32, 3) and images.dtype == np.uint8
    within, between, closest = mean_distances(images, labels)
    assert within < between * 0.95
    assert closest > 3.0  # every image of a person differs visibly from the others


def test_faces_have_structure_not_flat_colour() -> None:
    face = render_face(0, 0, 0, 64).astype(np.float64)
    assert face.std() > 15 and np.abs(np.diff(face, axis=1)).mean() > 2


def test_synth_writes_prepared_shards_marked_synthetic_and_byte_identical_per_seed(tmp_path: Path) -> None:
    manifest = prepare_synthetic(tmp_path / "a", identities=6, images_per_identity=4, options=SMALL)
    prepare_synthetic(tmp_path / "b", identities=6, images_per_identity=4, options=SMALL)
    assert shard_bytes(tmp_path / "a") == shard_bytes(tmp_path / "b")
    assert manifest["synthetic_data"] is True and manifest["num_images"] == 24 and manifest["channels"] == 3
    assert manifest["skipped"] == [] and manifest["files_seen"] == 24
    rows = read_split(tmp_path / "a", "private").to_pylist()
    assert rows[0]["source_path"] == f"{rows[0]['identity']}/img_0000.png"
    stored = decode_pixels(rows[0]["pixels"], 32, 32, 3)
    identity = int(rows[0]["identity"].split("_")[1])
    assert np.array_equal(stored, render_face(SMALL.seed, identity, 0, 32))  # PNG is lossless: pixels survive
    prepare_synthetic(
        tmp_path / "c", identities=6, images_per_identity=4, options=PrepareConfig(**{**SMALL.__dict__, "seed": 1})
    )
    assert (
        shard_bytes(tmp_path / "c")["private/part-00000.parquet"]
        != shard_bytes(tmp_path / "a")["private/part-00000.parquet"]
    )


def test_synth_rejects_too_few_images_or_identities_before_drawing(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--images-per-identity 1"):
        prepare_synthetic(tmp_path / "x", identities=6, images_per_identity=1, options=SMALL)
    with pytest.raises(InputError, match="fewer identities than the splits need"):
        prepare_synthetic(tmp_path / "x", identities=5, images_per_identity=2, options=SMALL)
    assert not (tmp_path / "x").exists()


def test_cli_synth_writes_a_data_set_and_a_contact_sheet(tmp_path: Path, capsys) -> None:
    code = cli.main(
        [
            "synth",
            "--out",
            str(tmp_path / "synth"),
            "--identities",
            "6",
            "--images-per-identity",
            "3",
            "--size",
            "16",
            "--splits",
            "0.34,0.33,0.33",
            "--preview",
            str(tmp_path / "sheet.png"),
            "--no-progress",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0 and "SYNTHETIC" in printed
    assert read_manifest(tmp_path / "synth")["splits"] == {
        s: {"images": 6, "identities": 2, "shards": 1} for s in SPLITS
    }
    assert (tmp_path / "sheet.png").read_bytes().startswith(b"\x89PNG")


def test_contact_sheet_has_one_row_per_identity(tmp_path: Path) -> None:
    import cv2

    sheet = cv2.imread(str(save_contact_sheet(tmp_path / "s.png", identities=3, images_per_identity=4, size=16)))
    assert sheet.shape == (3 * 18 + 2, 4 * 18 + 2, 3)
