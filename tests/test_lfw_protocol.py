"""`hybridmask prepare --pairs-file --fold`: LFW's View 2 protocol on a small subset of the real LFW.

The subset is a folder of links to a few LFW people and a two-fold pairs file cut from the real pairs.txt, so
every check runs in seconds while reading the authors' own files and images.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from common.errors import InputError
from pipelines.cli import main as cli
from pipelines.data.face_images import center_square
from pipelines.data.pairs_protocol import TEST_FOLD_OUTSIDE_PAIRS, image_path
from pipelines.data.prepare import PrepareConfig, prepare_folder
from trainers.schema import PAIRS_NAME, read_split

PAIRS_PER_KIND = 5  # per fold of the small pairs file
OUTSIDE_PEOPLE = 12  # LFW people in no pair of the small file, with at least two images


def _pair_people(line: str) -> list[str]:
    fields = line.split()
    return [fields[0]] if len(fields) == 3 else [fields[0], fields[2]]


@pytest.fixture(scope="module")
def lfw_subset(lfw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[list[str]]]:
    """(SRC of links, a 2-fold pairs file from real folds 1 and 2, each small fold's pair lines)."""
    images = lfw_dir / "images_deepfunneled"
    lines = (lfw_dir / "pairs.txt").read_text().splitlines()
    per_kind = int(lines[0].split()[1])
    folds = []
    for fold in range(2):
        start = 1 + fold * 2 * per_kind
        folds.append(
            lines[start : start + PAIRS_PER_KIND] + lines[start + per_kind : start + per_kind + PAIRS_PER_KIND]
        )
    root = tmp_path_factory.mktemp("lfw")
    pairs_file = root / "pairs_small.txt"
    pairs_file.write_text("\n".join([f"2\t{PAIRS_PER_KIND}"] + folds[0] + folds[1]) + "\n")
    in_pairs = {name for fold in folds for line in fold for name in _pair_people(line)}
    outside = [p.name for p in sorted(images.iterdir()) if p.name not in in_pairs and len(os.listdir(p)) >= 2]
    source = root / "src"
    for name in sorted(in_pairs) + outside[:OUTSIDE_PEOPLE]:
        (source / name).mkdir(parents=True)
        for image in sorted(os.listdir(images / name))[:4]:
            (source / name / image).symlink_to(images / name / image)
    # Pair images beyond a person's first four are linked too, so every pair is complete.
    for line in folds[0] + folds[1]:
        fields = line.split()
        numbers = [(fields[0], fields[1]), (fields[0], fields[2])] if len(fields) == 3 else [fields[:2], fields[2:]]
        for name, number in numbers:
            link = source / image_path(name, number)
            if not link.exists():
                link.symlink_to(images / image_path(name, number))
    return source, pairs_file, folds


def _paths_of(data_dir: Path) -> dict[int, str]:
    table = read_split(data_dir, "verify").to_pydict()
    return dict(zip(table["image_id"], table["source_path"]))


def test_fold_pairs_are_the_verify_pairs_in_file_order(lfw_subset, tmp_path):
    source, pairs_file, folds = lfw_subset
    out = tmp_path / "fold1"
    manifest = prepare_folder(source, out, PrepareConfig(pairs_file=str(pairs_file), fold=1))
    pairs = pq.read_table(out / PAIRS_NAME).to_pydict()
    path_of = _paths_of(out)
    written = [(path_of[a], path_of[b], same) for a, b, same in zip(*pairs.values())]
    expected = []
    for index, line in enumerate(folds[0]):
        fields = line.split()
        if index < PAIRS_PER_KIND:
            expected.append((image_path(fields[0], fields[1]), image_path(fields[0], fields[2]), True))
        else:
            expected.append((image_path(fields[0], fields[1]), image_path(fields[2], fields[3]), False))
    assert written == expected
    assert manifest["pairs"]["protocol"] == {
        "kind": "lfw_view2",
        "pairs_file": "pairs_small.txt",
        "pairs_file_sha256": hashlib.sha256(pairs_file.read_bytes()).hexdigest(),
        "fold": 1,
        "folds": 2,
        "pairs_per_kind": PAIRS_PER_KIND,
    }
    assert (manifest["pairs"]["genuine"], manifest["pairs"]["impostor"]) == (PAIRS_PER_KIND, PAIRS_PER_KIND)


def test_private_and_public_hold_only_people_outside_the_test_fold(lfw_subset, tmp_path):
    source, pairs_file, folds = lfw_subset
    out = tmp_path / "fold2"
    manifest = prepare_folder(source, out, PrepareConfig(pairs_file=str(pairs_file), fold=2))
    people = {
        split: set(read_split(out, split).column("identity").to_pylist()) for split in ("private", "verify", "public")
    }
    fold_two = {name for line in folds[1] for name in _pair_people(line)}
    fold_one = {name for line in folds[0] for name in _pair_people(line)}
    assert people["verify"] == fold_two
    assert not fold_two & (people["private"] | people["public"])
    assert fold_one - fold_two <= people["private"] | people["public"] | {
        entry["path"].split("/")[0] for entry in manifest["skipped"]
    }
    assert people["private"] and people["public"] and not people["private"] & people["public"]
    held_out = [entry for entry in manifest["skipped"] if entry["kind"] == TEST_FOLD_OUTSIDE_PAIRS]
    assert held_out and all(entry["path"].split("/")[0] in fold_two for entry in held_out)
    assert manifest["num_images"] + manifest["num_skipped"] == manifest["files_seen"]


def test_a_pair_with_an_unusable_image_is_left_out_and_listed(lfw_subset, tmp_path):
    source, pairs_file, folds = lfw_subset
    copy = tmp_path / "src"
    for person in source.iterdir():
        (copy / person.name).mkdir(parents=True)
        for link in person.iterdir():
            (copy / person.name / link.name).symlink_to(link.resolve())
    fields = folds[0][0].split()
    broken = copy / image_path(fields[0], fields[1])
    broken.unlink()
    broken.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    manifest = prepare_folder(copy, tmp_path / "out", PrepareConfig(pairs_file=str(pairs_file), fold=1))
    dropped = manifest["pairs"]["dropped"]
    assert dropped and all(image_path(fields[0], fields[1]) in (entry["left"], entry["right"]) for entry in dropped)
    assert manifest["pairs"]["count"] == 2 * PAIRS_PER_KIND - len(dropped)
    assert len(pq.read_table(tmp_path / "out" / PAIRS_NAME)) == manifest["pairs"]["count"]


@pytest.mark.parametrize(
    ("content", "fold", "message"),
    [
        (None, 1, "cannot be read"),
        ("ten folds\n", 1, "does not start with 'FOLDS PAIRS_PER_KIND'"),
        (
            "1\t1\nNobody_Here\t1\t2\nAbel_Pacheco\t1\tNobody_Else\t1\n",
            1,
            "people not in SRC: Nobody_Else, Nobody_Here",
        ),
        ("1\t1\nAbel_Pacheco\t1\t2\n", 1, "has 1 pair lines"),
        (
            "1\t1\nAbel_Pacheco\t1\nAbel_Pacheco\t1\tAbdullah_Gul\t1\n",
            1,
            "line 2: 'Abel_Pacheco.t1' is not a genuine pair",
        ),
        (None, 3, "--fold 3 is out of range: the pairs file has folds 1 to 2"),
    ],
)
def test_bad_pairs_files_stop_with_one_clear_error(lfw_subset, tmp_path, content, fold, message):
    source, pairs_file, _ = lfw_subset
    given = tmp_path / "pairs.txt"
    if content is not None:
        given.write_text(content)
    elif fold == 3:
        given = pairs_file
    with pytest.raises(InputError, match=message):
        prepare_folder(source, tmp_path / "out", PrepareConfig(pairs_file=str(given), fold=fold))
    assert not (tmp_path / "out").exists()


def test_cli_prints_the_protocol_and_rejects_a_fold_without_a_pairs_file(lfw_subset, tmp_path, capsys):
    source, pairs_file, _ = lfw_subset
    out = tmp_path / "out"
    assert cli.main(["prepare", str(source), "--out", str(out), "--pairs-file", str(pairs_file), "--fold", "1"]) == 0
    assert "verify pairs: fold 1 of pairs_small.txt, 5 genuine and 5 impostor" in capsys.readouterr().out
    assert cli.main(["prepare", str(source), "--out", str(tmp_path / "other"), "--fold", "1"]) == 2
    assert "--pairs-file and --fold go together" in capsys.readouterr().err


def test_crop_keeps_the_centred_share_of_the_square():
    image = np.zeros((250, 250), dtype=np.uint8)
    image[60:190, 60:190] = 255  # the centred 130 px (0.52 of 250) is white, the border black
    assert center_square(image, 112, crop=0.52).min() == 255
    assert center_square(image, 112).min() == 0
