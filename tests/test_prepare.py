"""`hybridmask prepare`: real folders in, identity-split shards out; every file kept or listed with its reason."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

from common.errors import InputError
from common.limits import MAX_IMAGE_PIXELS
from pipelines.cli import main as cli
from pipelines.data.face_images import CORRUPT, NOT_AN_IMAGE, TOO_LARGE, Rejection, decode
from pipelines.data.prepare import PrepareConfig, prepare_folder, read_manifest
from trainers.schema import IMAGE_SCHEMA, PAIRS_NAME, SPLITS, decode_pixels, read_split

EVEN_SPLITS = (0.34, 0.33, 0.33)  # six identities -> two per split


def encoded(image: np.ndarray, extension: str) -> bytes:
    ok, data = cv2.imencode(extension, image)
    assert ok, extension
    return data.tobytes()


def face_like(seed: int, height: int = 40, width: int = 36, channels: int = 3) -> np.ndarray:
    """Smooth random images: distinct per seed, and compressible like photos."""
    noise = np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (7, 7), 0).reshape(height, width, channels)


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def make_people(root: Path, names: list[str], images_each: int = 2, first_seed: int = 0) -> None:
    for p, name in enumerate(names):
        for i in range(images_each):
            write(root / name / f"{i}.png", encoded(face_like(first_seed + 100 * p + i), ".png"))


def all_files(root: Path) -> list[Path]:
    return [Path(d) / f for d, _, files in os.walk(root) for f in files]


def shard_bytes(data_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(data_dir)): p.read_bytes() for p in sorted(data_dir.rglob("*")) if p.is_file()}


@pytest.fixture
def messy_source(tmp_path: Path) -> Path:
    """Six usable people (one with a non-ASCII name, one with nested folders) and every kind of bad file."""
    root = tmp_path / "messy"
    make_people(root, ["carol", "dave", "erin", "Zoë Çelik"])
    alice = root / "alice"
    good_png = encoded(face_like(1001), ".png")
    write(alice / "a.png", good_png)
    write(alice / "zz_copy.png", good_png)
    write(alice / "empty.jpg", b"")
    write(alice / "truncated.png", encoded(face_like(1002), ".png")[:-200])
    write(alice / "notes.png", b"these are my notes, not a picture\n")
    write(alice / "tiny.png", encoded(face_like(1003, 4, 4), ".png"))
    write(alice / "photo.gif", encoded(face_like(1004), ".gif"))
    write(alice / "scan.bmp", encoded(face_like(1005), ".bmp"))
    write(alice / "2019" / "trip" / "deep.jpg", encoded(face_like(1006), ".jpg"))
    write(alice / "rejected.pgm.bad", encoded(face_like(1007, channels=1), ".pgm"))
    write(root / "frank" / "gray.pgm", encoded(face_like(1008, channels=1), ".pgm"))
    write(root / "frank" / "gray.png", encoded(face_like(1009, channels=1), ".png"))
    write(root / "bob" / "only.png", encoded(face_like(1010), ".png"))
    write(root / "README.txt", b"faces collected in 2019\n")
    (alice / "gone.jpg").symlink_to(root / "deleted.jpg")  # listed, but cannot be read
    (alice / "loop").symlink_to(root, target_is_directory=True)  # a link cycle must not hang the scan
    return root


@pytest.fixture(scope="module")
def orl_prepared(orl_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("orl") / "prepared"
    prepare_folder(orl_dir, out, PrepareConfig(size=32))
    return out


def test_orl_keeps_all_400_images_of_40_people_in_identity_disjoint_splits(orl_prepared: Path) -> None:
    manifest = read_manifest(orl_prepared)
    assert (manifest["num_images"], manifest["num_identities"], manifest["files_seen"]) == (400, 40, 400)
    assert manifest["skipped"] == [] and manifest["synthetic_data"] is False
    tables = {split: read_split(orl_prepared, split) for split in SPLITS}
    identities = {split: set(t.column("identity").to_pylist()) for split, t in tables.items()}
    assert not (
        identities["private"] & identities["verify"]
        or identities["private"] & identities["public"]
        or identities["verify"] & identities["public"]
    )
    for split, table in tables.items():
        assert manifest["splits"][split] == {
            "images": table.num_rows,
            "identities": len(identities[split]),
            "shards": 1,
        }
        assert sorted(set(table.column("label").to_pylist())) == list(range(len(identities[split])))
    assert sum(t.num_rows for t in tables.values()) == 400
    assert [len(identities[s]) for s in SPLITS] == [24, 8, 8]
    ids = np.concatenate([t.column("image_id").to_numpy() for t in tables.values()])
    assert sorted(ids.tolist()) == list(range(400))
    row = tables["verify"].slice(0, 1).to_pylist()[0]
    assert (row["width"], row["height"], row["channels"]) == (32, 32, 1)
    assert decode_pixels(row["pixels"], 32, 32, 1).shape == (32, 32, 1)


def test_orl_pairs_are_balanced_distinct_and_over_verify_images_only(orl_prepared: Path) -> None:
    pairs = pq.read_table(orl_prepared / PAIRS_NAME).to_pydict()
    verify = read_split(orl_prepared, "verify").to_pydict()
    identity_of = dict(zip(verify["image_id"], verify["identity"]))
    keys = list(zip(pairs["left_image_id"], pairs["right_image_id"]))
    assert len(set(keys)) == len(keys) and all(left < right for left, right in keys)
    assert all((identity_of[left] == identity_of[right]) == same for (left, right), same in zip(keys, pairs["is_same"]))
    manifest = read_manifest(orl_prepared)["pairs"]
    # 8 verify people x C(10, 2) = 360 genuine pairs exist: fewer than 500, so 360 + 360 and a note saying so
    assert sum(pairs["is_same"]) == len(keys) - sum(pairs["is_same"]) == manifest["genuine"] == 360
    assert "360 distinct genuine" in manifest["note"]


def test_yaleb_keeps_every_readable_pgm_and_lists_the_junk_with_reasons(yaleb_dir: Path, tmp_path: Path) -> None:
    manifest = prepare_folder(yaleb_dir, tmp_path / "yaleb", PrepareConfig(size=32))
    files = all_files(yaleb_dir)
    readable = {
        p.relative_to(yaleb_dir).as_posix()
        for p in files
        if p.suffix == ".pgm" and cv2.imread(str(p), cv2.IMREAD_UNCHANGED) is not None
    }
    kept = {
        path
        for split in SPLITS
        for path in read_split(tmp_path / "yaleb", split, ["source_path"]).column("source_path").to_pylist()
    }
    assert kept == readable and manifest["num_images"] == len(readable) > 2000
    reasons = {entry["path"]: entry["reason"] for entry in manifest["skipped"]}
    junk = {p.relative_to(yaleb_dir).as_posix(): p.name for p in files if p.suffix != ".pgm"}
    assert set(reasons) == set(junk)
    for path, name in junk.items():
        expected = "marked bad by the data set authors" if name.endswith(".pgm.bad") else "not an image"
        assert reasons[path] == expected, path
    assert (
        sum(name.endswith(".pgm.bad") for name in junk.values())
        == manifest["skipped_by_kind"]["marked bad by the data set authors"]
        > 0
    )
    assert {"WS_FTP.LOG", "DEADJOE"} <= set(junk.values()) and any(n.endswith(".info") for n in junk.values())
    assert manifest["num_images"] + len(manifest["skipped"]) == manifest["files_seen"] == len(files)
    assert manifest["num_identities"] == 38


def test_bad_inputs_each_get_their_documented_outcome(messy_source: Path, tmp_path: Path) -> None:
    manifest = prepare_folder(messy_source, tmp_path / "out", PrepareConfig(size=16, splits=EVEN_SPLITS))
    reasons = {entry["path"]: entry["reason"] for entry in manifest["skipped"]}
    assert reasons == {
        "README.txt": "not inside an identity folder",
        "alice/empty.jpg": "empty file",
        "alice/gone.jpg": "unreadable: No such file or directory",
        "alice/truncated.png": "corrupt or truncated",
        "alice/notes.png": "not an image",
        "alice/tiny.png": "too small: 4x4 pixels, --min-size is 24",
        "alice/zz_copy.png": "duplicate of alice/a.png",
        "alice/rejected.pgm.bad": "marked bad by the data set authors",
        "bob/only.png": "identity has 1 usable image(s); at least 2 needed",
    }
    rows = {split: read_split(tmp_path / "out", split).to_pylist() for split in SPLITS}
    kept = {row["source_path"]: row for split_rows in rows.values() for row in split_rows}
    assert {
        "alice/a.png",
        "alice/photo.gif",
        "alice/scan.bmp",
        "alice/2019/trip/deep.jpg",
        "frank/gray.pgm",
        "Zoë Çelik/0.png",
        "Zoë Çelik/1.png",
    } <= set(kept)
    assert kept["alice/2019/trip/deep.jpg"]["identity"] == "alice"
    assert kept["Zoë Çelik/0.png"]["identity"] == "Zoë Çelik"
    assert len(kept) + len(reasons) == manifest["files_seen"] == len(all_files(messy_source))
    assert manifest["num_identities"] == 6 and manifest["channels"] == 3
    gray = kept["frank/gray.pgm"]
    pixels = decode_pixels(gray["pixels"], gray["height"], gray["width"], gray["channels"])
    assert pixels.shape == (16, 16, 3) and (pixels[..., 0] == pixels[..., 2]).all()


def test_gray_mode_writes_one_channel_even_from_colour_sources(messy_source: Path, tmp_path: Path) -> None:
    manifest = prepare_folder(messy_source, tmp_path / "out", PrepareConfig(size=16, color="gray", splits=EVEN_SPLITS))
    assert manifest["channels"] == 1
    assert set(read_split(tmp_path / "out", "private", ["channels"]).column("channels").to_pylist()) == {1}


@pytest.mark.parametrize("extension", [".png", ".jpg", ".gif", ".bmp", ".pgm"])
def test_truncated_files_are_rejected_as_corrupt_not_half_decoded(extension: str) -> None:
    image = face_like(11, 64, 64, 1 if extension == ".pgm" else 3)
    data = encoded(image, extension)
    assert not isinstance(decode(data), Rejection)
    for keep in (len(data) // 2, len(data) - 8):
        outcome = decode(data[:keep])
        assert isinstance(outcome, Rejection) and outcome.kind == CORRUPT, (extension, keep)
    assert decode(b"Photo taken in 2019, not a picture itself").kind == NOT_AN_IMAGE


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height in its header (with a tiny, wrong IDAT): the size, never decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def test_images_above_the_pixel_cap_are_skipped_from_their_header_before_decoding() -> None:
    outcome = decode(png_header_only(12000, 12000))
    assert isinstance(outcome, Rejection) and outcome.kind == TOO_LARGE
    assert outcome.reason == f"too large: 12000x12000 pixels, at most {MAX_IMAGE_PIXELS} are decoded"
    big_jpeg = encoded(np.zeros((7000, 6000), np.uint8), ".jpg")  # 42 MP: just over the cap, a real file
    assert decode(big_jpeg).kind == TOO_LARGE
    assert not isinstance(decode(encoded(face_like(1, 400, 300), ".jpg")), Rejection)


def test_the_cli_gives_opencv_the_pixel_cap_for_formats_whose_header_is_not_checked(tmp_path: Path) -> None:
    import subprocess
    import sys

    big = tmp_path / "big.png"
    big.write_bytes(encoded(np.zeros((7000, 6000), np.uint8), ".png"))
    program = (
        "import pipelines.cli.main, cv2, numpy as np, sys\n"
        "try:\n    cv2.imdecode(np.fromfile(sys.argv[1], np.uint8), cv2.IMREAD_ANYCOLOR)\n"
        "except cv2.error as error:\n    print('refused' if 'MAX_IMAGE_PIXELS' in str(error) else error)\n"
    )
    environment = {k: v for k, v in os.environ.items() if k != "OPENCV_IO_MAX_IMAGE_PIXELS"}
    result = subprocess.run(
        [sys.executable, "-c", program, str(big)], capture_output=True, text=True, env=environment, timeout=120
    )
    assert result.stdout.strip() == "refused", result.stderr


def test_same_seed_gives_byte_identical_output_and_a_rerun_keeps_it_and_what_lies_beside_it(
    orl_dir: Path, orl_prepared: Path, tmp_path: Path
) -> None:
    again = tmp_path / "again"
    prepare_folder(orl_dir, again, PrepareConfig(size=32))
    assert shard_bytes(again) == shard_bytes(orl_prepared)
    first_inode = (again / "private" / "part-00000.parquet").stat().st_ino
    (again / "notes.txt").write_text("mine")
    (again / "analysis").mkdir()
    (again / "analysis" / "plot.png").write_bytes(b"x")
    prepare_folder(orl_dir, again, PrepareConfig(size=32))
    mine = {"notes.txt", "analysis/plot.png"}
    assert {k: v for k, v in shard_bytes(again).items() if k not in mine} == shard_bytes(orl_prepared)
    assert (again / "private" / "part-00000.parquet").stat().st_ino == first_inode  # the same data: not redone
    assert (again / "notes.txt").read_text() == "mine" and (again / "analysis" / "plot.png").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind


def test_a_killed_prepare_leaves_a_staging_folder_that_the_next_run_removes(messy_source: Path, tmp_path: Path) -> None:
    dead = tmp_path / ".out.partial-4194304-deadbeef"  # a pid no process can have
    dead.mkdir()
    (dead / "pixels.spill").write_bytes(b"half")
    prepare_folder(messy_source, tmp_path / "out", PrepareConfig(size=16, splits=EVEN_SPLITS))
    assert not dead.exists()


def test_worker_processes_give_the_same_bytes_as_one_process(messy_source: Path, tmp_path: Path) -> None:
    options = PrepareConfig(size=16, splits=EVEN_SPLITS)
    prepare_folder(messy_source, tmp_path / "one", options, workers=1)
    prepare_folder(messy_source, tmp_path / "two", options, workers=2)
    assert shard_bytes(tmp_path / "one") == shard_bytes(tmp_path / "two")


def test_another_seed_gives_another_identity_split(orl_dir: Path, orl_prepared: Path, tmp_path: Path) -> None:
    prepare_folder(orl_dir, tmp_path / "seed1", PrepareConfig(size=32, seed=1))
    private = [
        set(read_split(d, "private", ["identity"]).column("identity").to_pylist())
        for d in (orl_prepared, tmp_path / "seed1")
    ]
    assert private[0] != private[1] and len(private[0]) == len(private[1]) == 24


def test_missing_source_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        prepare_folder(tmp_path / "nowhere", tmp_path / "out", PrepareConfig())


def test_source_without_identity_folders_is_an_input_error(tmp_path: Path) -> None:
    write(tmp_path / "flat" / "a.png", encoded(face_like(1), ".png"))
    with pytest.raises(InputError, match="no identity folders"):
        prepare_folder(tmp_path / "flat", tmp_path / "out", PrepareConfig())
    assert not (tmp_path / "out").exists()


def test_too_few_identities_for_the_splits_is_an_input_error_before_any_output(tmp_path: Path) -> None:
    make_people(tmp_path / "few", ["a", "b", "c", "d", "e"])
    with pytest.raises(InputError, match="fewer identities than the splits need"):
        prepare_folder(tmp_path / "few", tmp_path / "out", PrepareConfig())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["few"]


def test_identities_lost_to_bad_files_still_give_the_split_error(tmp_path: Path) -> None:
    make_people(tmp_path / "src", ["a", "b", "c", "d", "e"])
    write(tmp_path / "src" / "f" / "0.png", b"not a picture")
    with pytest.raises(
        InputError, match=r"src: only 5 of 6 people have at least 2 usable images \(files skipped: not an image: 1\)"
    ):
        prepare_folder(tmp_path / "src", tmp_path / "out", PrepareConfig(splits=EVEN_SPLITS))
    assert not (tmp_path / "out").exists()


def test_size_not_a_multiple_of_8_is_an_input_error(messy_source: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--size 100 is not a positive multiple of 8"):
        prepare_folder(messy_source, tmp_path / "out", PrepareConfig(size=100, splits=EVEN_SPLITS))


def test_out_holding_another_data_set_is_an_input_error_and_stays_untouched(messy_source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    prepare_folder(messy_source, out, PrepareConfig(size=16, splits=EVEN_SPLITS))
    before = shard_bytes(out)
    with pytest.raises(InputError, match=r"--out .* holds a different data set \(other parameters: seed"):
        prepare_folder(messy_source, out, PrepareConfig(size=16, splits=EVEN_SPLITS, seed=5))
    write(messy_source / "carol" / "0.png", encoded(face_like(999), ".png"))
    with pytest.raises(InputError, match="source files have changed"):
        prepare_folder(messy_source, out, PrepareConfig(size=16, splits=EVEN_SPLITS))
    assert shard_bytes(out) == before


def test_out_with_foreign_files_or_inside_the_source_is_an_input_error(messy_source: Path, tmp_path: Path) -> None:
    write(tmp_path / "busy" / "thesis.tex", b"\\documentclass{article}")
    with pytest.raises(InputError, match=r"not empty and holds no manifest\.json"):
        prepare_folder(messy_source, tmp_path / "busy", PrepareConfig(splits=EVEN_SPLITS))
    with pytest.raises(InputError, match="inside SRC"):
        prepare_folder(messy_source, messy_source / "prepared", PrepareConfig(splits=EVEN_SPLITS))


def test_cli_prepare_prints_a_summary_and_bad_input_exits_2(messy_source: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli"
    code = cli.main(
        ["prepare", str(messy_source), "--out", str(out), "--size", "16", "--splits", "0.34,0.33,0.33", "--no-progress"]
    )
    printed = capsys.readouterr().out
    assert code == 0 and "of 6 identities" in printed and "skipped 9 of" in printed
    assert cli.main(["prepare", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_ray_data_reads_a_split_directly(ray_cluster, orl_prepared: Path) -> None:
    dataset = ray_cluster.data.read_parquet(str(orl_prepared / "verify"))
    assert dataset.count() == read_manifest(orl_prepared)["splits"]["verify"]["images"]
    assert dataset.schema().names == IMAGE_SCHEMA.names
