"""`hybridmask keygen` and `hybridmask mask` end to end, key files, and the key never leaking into any output."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import stat
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from common.errors import InputError
from masking.keys import key_fingerprint
from masking.masker import FrequencyMasker
from pipelines.cli import main as cli
from pipelines.client.keyfile import read_key_file, write_key_file
from tests.masking_faces import smooth_images
from trainers.schema import IMAGE_SCHEMA, MASKED_SCHEMA, PAIRS_SCHEMA, decode_features, read_split

SIZE = 32


def image_rows(split: str, identities: list[str], per_identity: int, first_id: int, channels: int) -> pa.Table:
    images = smooth_images(len(identities) * per_identity, channels, seed=first_id, size=SIZE)
    pixels = (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    names = [name for name in identities for _ in range(per_identity)]
    count = len(names)
    sources = [f"{name}/{i}.png" for i, name in enumerate(names)]
    return pa.table(
        {
            "image_id": np.arange(first_id, first_id + count, dtype=np.int64),
            "pixels": [p.tobytes() for p in pixels],
            "width": np.full(count, SIZE, dtype=np.int32),
            "height": np.full(count, SIZE, dtype=np.int32),
            "channels": np.full(count, channels, dtype=np.int32),
            "identity": names,
            "label": np.array([identities.index(n) for n in names], dtype=np.int32),
            "split": [split] * count,
            "source_path": sources,
            "sha256": [hashlib.sha256(s.encode()).hexdigest() for s in sources],
        },
        schema=IMAGE_SCHEMA,
    )


def write_prepared_folder(root: Path, channels: int = 3) -> Path:
    """A tiny prepared folder as `hybridmask prepare` lays it out: private in two shards, verify, public, pairs."""
    private = image_rows("private", ["ann", "bob", "cy"], 4, 0, channels)
    splits = {
        "private": [private.slice(0, 7), private.slice(7)],
        "verify": [image_rows("verify", ["dee", "eve"], 3, 100, channels)],
        "public": [image_rows("public", ["fay", "gus"], 2, 200, channels)],
    }
    for split, shards in splits.items():
        (root / split).mkdir(parents=True)
        for index, shard in enumerate(shards):
            pq.write_table(shard, root / split / f"part-{index:05d}.parquet")
    pairs = pa.table(
        {"left_image_id": [100, 100], "right_image_id": [101, 103], "is_same": [True, False]}, schema=PAIRS_SCHEMA
    )
    pq.write_table(pairs, root / "pairs.parquet")
    manifest = {"schema_version": 1, "source_fingerprint": "feedc0de", "synthetic_data": True, "counts": {}}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "client.key"
    assert cli.main(["keygen", "--out", str(path)]) == 0
    return path


def key_encodings(key: bytes) -> list[bytes]:
    """The key as it could leak: raw, hex in either case, base64 (standard and URL-safe)."""
    return [key, key.hex().encode(), key.hex().upper().encode(), base64.b64encode(key), base64.urlsafe_b64encode(key)]


# --- keygen and key files --------------------------------------------------------------------------------------


def test_keygen_writes_32_owner_only_bytes_and_prints_only_the_fingerprint(tmp_path: Path, capsys) -> None:
    path = tmp_path / "new.key"
    assert cli.main(["keygen", "--out", str(path)]) == 0
    key = path.read_bytes()
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    captured = capsys.readouterr()
    assert captured.out == key_fingerprint(key) + "\n"
    assert not any(leak.decode("latin-1") in captured.out + captured.err for leak in key_encodings(key))


def test_keygen_refuses_to_overwrite_unless_forced(key_file: Path, capsys) -> None:
    original = key_file.read_bytes()
    assert cli.main(["keygen", "--out", str(key_file)]) == 2
    assert "--force" in capsys.readouterr().err
    assert key_file.read_bytes() == original
    assert cli.main(["keygen", "--out", str(key_file), "--force"]) == 0
    assert key_file.read_bytes() != original and stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_write_key_file_creates_owner_only_even_with_a_permissive_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        path = write_key_file(tmp_path / "k", os.urandom(32))
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_reading_a_missing_short_or_non_file_key_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"does not exist.*keygen"):
        read_key_file(tmp_path / "absent.key")
    short = tmp_path / "short.key"
    short.write_bytes(b"x" * 31)
    short.chmod(0o600)
    with pytest.raises(InputError, match="31 bytes"):
        read_key_file(short)
    with pytest.raises(InputError, match="not a regular file"):
        read_key_file(tmp_path)


def test_an_unreadable_key_file_is_an_input_error(key_file: Path, monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("builtins.open", refuse)
    with pytest.raises(InputError, match="Permission denied"):
        read_key_file(key_file)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_key_file_readable_by_others_is_refused_with_the_fix(key_file: Path, mode: int) -> None:
    key_file.chmod(mode)
    with pytest.raises(InputError, match=f"{key_file}.*chmod 600"):
        read_key_file(key_file)
    key_file.chmod(0o600)
    assert len(read_key_file(key_file)) == 32


# --- mask ------------------------------------------------------------------------------------------------------


def test_mask_cli_writes_masked_private_and_verify_shards_with_public_settings(
    tmp_path: Path, key_file: Path, capsys
) -> None:
    data = write_prepared_folder(tmp_path / "prepared")
    out = tmp_path / "masked"
    assert (
        cli.main(["mask", str(data), "--key", str(key_file), "--out", str(out), "--ratio", "0.5", "--batch-size", "5"])
        == 0
    )
    key = key_file.read_bytes()

    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "pairs.parquet", "private", "verify"]
    assert sorted(p.name for p in (out / "private").iterdir()) == ["part-00000.parquet", "part-00001.parquet"]
    assert (out / "pairs.parquet").read_bytes() == (data / "pairs.parquet").read_bytes()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"private": 12, "verify": 6}
    assert manifest["source_fingerprint"] == "feedc0de" and manifest["synthetic_data"] is True
    assert manifest["source_data_dir"] == str(data.resolve())
    settings = manifest["masking"]
    assert settings["key_fingerprint"] == key_fingerprint(key)
    assert settings["num_kept"] == 96 == len(settings["kept_channels"]) and settings["energy_removed"] > 0.9
    assert len(settings["normalisation"]["mean"]) == 96

    masker = FrequencyMasker.from_settings(settings, key)
    for split in ("private", "verify"):
        masked = read_split(out, split)
        source = read_split(data, split)
        assert masked.schema.equals(MASKED_SCHEMA, check_metadata=True)
        for column in ("image_id", "identity", "label", "split"):
            assert masked.column(column).to_pylist() == source.column(column).to_pylist()
        row = masked.slice(0, 1).to_pylist()[0]
        features = decode_features(row["features"], row["num_channels"], row["grid_height"], row["grid_width"])
        assert features.shape == (96, SIZE // 8, SIZE // 8)
        pixels = np.frombuffer(source.column("pixels")[0].as_py(), dtype=np.uint8).reshape(SIZE, SIZE, 3)
        image = torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None].float() / 255
        expected = masker.mask(image)[0].numpy()
        np.testing.assert_allclose(features.astype(np.float32), expected, atol=2e-2, rtol=2e-3)
    assert "masked 12 private, 6 verify images" in capsys.readouterr().out


def test_no_file_written_by_mask_nor_anything_printed_contains_the_key(tmp_path: Path, key_file: Path, capsys) -> None:
    data = write_prepared_folder(tmp_path / "prepared", channels=1)
    out = tmp_path / "masked"
    capsys.readouterr()
    assert cli.main(["mask", str(data), "--key", str(key_file), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    key = key_file.read_bytes()
    written = [p for p in out.rglob("*") if p.is_file()]
    assert len(written) == 5  # manifest, pairs, 2 private shards, 1 verify shard
    for leak in key_encodings(key):
        for path in written:
            assert leak not in path.read_bytes(), f"{path} contains the key"
        assert leak.decode("latin-1") not in captured.out + captured.err


def test_mask_refuses_a_non_empty_out_folder_and_leaves_it_alone(tmp_path: Path, key_file: Path, capsys) -> None:
    data = write_prepared_folder(tmp_path / "prepared")
    out = tmp_path / "masked"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert cli.main(["mask", str(data), "--key", str(key_file), "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_a_failed_mask_leaves_no_partial_folder(tmp_path: Path, key_file: Path, capsys) -> None:
    data = write_prepared_folder(tmp_path / "prepared", channels=3)
    bad_verify = image_rows("verify", ["dee"], 2, 300, channels=1)  # gray where private is RGB
    pq.write_table(bad_verify, data / "verify" / "part-00000.parquet")
    out = tmp_path / "masked"
    assert cli.main(["mask", str(data), "--key", str(key_file), "--out", str(out)]) == 2
    assert "not (32, 32, 3)" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["client.key", "prepared"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--ratio", "1.0"], r"outside \[0, 1\)"),
        (["--ratio", "0.999"], "leaves none"),
        (["--batch-size", "0"], "at least 1"),
    ],
)
def test_mask_reports_bad_settings_in_one_line(tmp_path: Path, key_file: Path, capsys, extra, message) -> None:
    data = write_prepared_folder(tmp_path / "prepared")
    assert cli.main(["mask", str(data), "--key", str(key_file), "--out", str(tmp_path / "masked"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hybridmask mask: error:") and "\n" not in err
    assert re.search(message, err)


def test_mask_refuses_a_folder_that_was_not_prepared(tmp_path: Path, key_file: Path, capsys) -> None:
    assert cli.main(["mask", str(tmp_path), "--key", str(key_file), "--out", str(tmp_path / "masked")]) == 2
    assert "hybridmask prepare" in capsys.readouterr().err
