"""Every verb, given bad input, stops with exit status 2 and ONE line that names the input and the fix, and leaves
no new file behind. Tiny synthetic inputs; no case may reach Ray (ray.init fails the test if one does)."""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipelines.cli import main as cli


def png(seed: int) -> bytes:
    return cv2.imencode(".png", np.random.default_rng(seed).integers(0, 255, (40, 40, 3), dtype=np.uint8))[1].tobytes()


def huge_png_header() -> bytes:
    """A PNG whose header says 12000x12000: refused from the header, never decoded."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 12000, 12000, 8, 0, 0, 0, 0))
        + chunk(b"IEND", b"")
    )


def people(root: Path, count: int, images: int, content: Callable[[int], bytes]) -> Path:
    for person in range(count):
        folder = root / f"person{person:02d}"
        folder.mkdir(parents=True)
        for image in range(images):
            (folder / f"{image}.png").write_bytes(content(person * 100 + image))
    return root


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Good and bad inputs side by side; the cases only read them."""
    from common.files import atomic_write_json
    from masking.keys import generate_key, key_fingerprint
    from pipelines.client.keyfile import read_key_file, write_key_file
    from pipelines.client.masking_io import mask_dataset
    from pipelines.data.prepare import PrepareConfig
    from pipelines.data.synth import prepare_synthetic
    from trainers.config import DefenseConfig, TrainConfig
    from trainers.config_io import save_config

    w = tmp_path_factory.mktemp("bad_inputs")
    prepare_synthetic(w / "prepared", 10, 4, PrepareConfig(size=32, pairs=20))
    write_key_file(w / "client.key", generate_key())
    mask_dataset(w / "prepared", read_key_file(w / "client.key"), w / "masked", progress=False)
    shutil.copy(w / "client.key", w / "open.key")
    (w / "open.key").chmod(0o644)
    (w / "short.key").write_bytes(b"0123456789")
    (w / "short.key").chmod(0o600)
    (w / "empty").mkdir()
    people(w / "one", 1, 3, png)
    people(w / "singles", 10, 1, png)
    people(w / "corrupt", 10, 2, lambda seed: png(seed)[:30])
    people(w / "text", 10, 2, lambda seed: b"Photo taken in 2019, not a picture itself")
    people(w / "huge", 10, 2, lambda seed: huge_png_header())
    shutil.copytree(w / "prepared", w / "bad_shard")
    truncate(w / "bad_shard" / "private" / "part-00000.parquet")
    shutil.copytree(w / "prepared", w / "bad_manifest")
    truncate(w / "bad_manifest" / "manifest.json")
    (w / "interrupted").mkdir()
    (w / "interrupted" / "manifest.json").write_text('{"schema_version": 1, "par')
    (w / "run_none").mkdir()
    save_config(TrainConfig(defense=DefenseConfig(name="none")), w / "run_none" / "config.yaml")
    for name, summary in (("run_torn", '{"defense": "no'), ("run_unattacked", '{"defense": "none", "epochs": 1}')):
        (w / name).mkdir()
        (w / name / "model.pt").write_bytes(b"weights")
        (w / name / "summary.json").write_text(summary)
    (w / "space.yaml").write_text("fixed: {}\nsearch: {}\n")
    (w / "sweep" / "tune").mkdir(parents=True)  # a sweep begun with another key than client.key
    atomic_write_json(w / "sweep" / "sweep_key.json", {"key_fingerprint": key_fingerprint(generate_key())})
    return w


@dataclass(frozen=True)
class Case:
    name: str
    argv: list[str]  # "W/" is replaced by the inputs' folder
    says: tuple[str, ...]  # fragments of the one line: the input it names and the fix


CASES = [
    Case("prepare: empty folder", ["prepare", "W/empty", "--out", "W/out"], ("W/empty", "sub-folder")),
    Case("prepare: one identity", ["prepare", "W/one", "--out", "W/out"], ("SRC W/one", "add identities")),
    Case("prepare: one image per identity", ["prepare", "W/singles", "--out", "W/out"], ("SRC W/singles", "only 0 of 10 people", "add people")),
    Case("prepare: corrupt images", ["prepare", "W/corrupt", "--out", "W/out"], ("SRC W/corrupt", "corrupt or truncated: 20")),
    Case("prepare: not images", ["prepare", "W/text", "--out", "W/out"], ("SRC W/text", "not an image: 20")),
    Case("prepare: huge images", ["prepare", "W/huge", "--out", "W/out"], ("SRC W/huge", "too large: 20", "40 megapixels")),
    Case("prepare: missing source", ["prepare", "W/nowhere", "--out", "W/out"], ("W/nowhere", "does not exist")),
    Case("prepare: masked folder as --out", ["prepare", "W/singles", "--out", "W/masked"], ("W/masked", "holds masked data", "choose another --out")),
    Case("prepare: interrupted output", ["prepare", "W/singles", "--out", "W/interrupted"], ("W/interrupted", "unreadable manifest.json", "delete")),
    Case("synth: too few identities", ["synth", "--out", "W/out", "--identities", "2"], ("2 identities", "add identities")),
    Case("keygen: key file exists", ["keygen", "--out", "W/client.key"], ("W/client.key", "--force")),
    Case("keygen: missing folder", ["keygen", "--out", "W/nowhere/client.key"], ("W/nowhere", "create it first")),
    Case("mask: masked folder where a prepared one is expected", ["mask", "W/masked", "--key", "W/client.key", "--out", "W/out"], ("W/masked is already masked", "W/prepared")),
    Case("mask: missing key", ["mask", "W/prepared", "--key", "W/none.key", "--out", "W/out"], ("W/none.key", "hybridmask keygen")),
    Case("mask: wrong key file", ["mask", "W/prepared", "--key", "W/short.key", "--out", "W/out"], ("W/short.key", "holds 10 bytes", "keygen")),
    Case("mask: world-readable key", ["mask", "W/prepared", "--key", "W/open.key", "--out", "W/out"], ("W/open.key", "chmod 600 W/open.key")),
    Case("mask: corrupt shard", ["mask", "W/bad_shard", "--key", "W/client.key", "--out", "W/out"], ("W/bad_shard/private/part-00000.parquet", "make its folder again")),
    Case("mask: truncated manifest", ["mask", "W/bad_manifest", "--key", "W/client.key", "--out", "W/out"], ("W/bad_manifest/manifest.json", "truncated", "hybridmask prepare")),
    Case("mask: ratio out of range", ["mask", "W/prepared", "--key", "W/client.key", "--out", "W/out", "--ratio", "1.0"], ("ratio", "[0, 1)")),
    Case("mask: --out not empty", ["mask", "W/prepared", "--key", "W/client.key", "--out", "W/run_none"], ("--out W/run_none", "not empty")),
    Case("train: no defence", ["train", "--data", "W/prepared", "--out", "W/out"], ("--defense NAME",)),
    Case("train: masked folder for a pixel defence", ["train", "--data", "W/masked", "--defense", "none", "--out", "W/out"], ("masked data", "pass the prepared folder")),
    Case("train: prepared folder for a masked defence", ["train", "--data", "W/prepared", "--defense", "ppfr_fd", "--out", "W/out"], ("W/prepared", "pass --key KEYFILE")),
    Case("train: run folder of another defence", ["train", "--data", "W/masked", "--defense", "ppfr_fd", "--out", "W/run_none"], ("W/run_none", "defence 'none'", "choose a new --out")),
    Case("train: run folder of another defence, given data to mask", ["train", "--data", "W/prepared", "--key", "W/client.key", "--defense", "ppfr_fd", "--out", "W/run_none"], ("W/run_none", "defence 'none'")),
    Case("train: corrupt shard", ["train", "--data", "W/bad_shard", "--defense", "none", "--out", "W/out"], ("W/bad_shard/private/part-00000.parquet", "make its folder again")),
    Case("train: world-readable key", ["train", "--data", "W/prepared", "--defense", "ppfr_fd", "--key", "W/open.key", "--out", "W/out"], ("W/open.key", "chmod 600")),
    Case("train: missing data", ["train", "--data", "W/nowhere", "--defense", "none", "--out", "W/out"], ("W/nowhere", "does not exist")),
    Case("attack: truncated summary", ["attack", "W/run_torn"], ("W/run_torn/summary.json", "truncated", "train")),
    Case("attack: missing run", ["attack", "W/nowhere"], ("W/nowhere", "hybridmask train")),
    Case("attack: --data of two prepared folders", ["attack", "W/run_unattacked", "--data", "W/prepared", "--data", "W/prepared"], ("two prepared folders",)),
    Case("attack: --public a masked folder", ["attack", "W/run_unattacked", "--public", "W/masked"], ("--public W/masked is masked", "prepared folder")),
    Case("evaluate: --public a missing folder", ["evaluate", "W/run_unattacked", "--public", "W/nowhere"], ("W/nowhere/manifest.json", "--public W/nowhere must be a prepared folder")),
    Case("evaluate: run not attacked", ["evaluate", "W/run_unattacked"], ("W/run_unattacked", "hybridmask attack")),
    Case("evaluate: truncated summary", ["evaluate", "W/run_torn"], ("W/run_torn/summary.json", "truncated")),
    Case("run: masked folder where faces are expected", ["run", "--data", "W/masked", "--out", "W/out"], ("--data W/masked", "holds masked data", "W/prepared")),
    Case("run: missing data", ["run", "--data", "W/nowhere", "--out", "W/out"], ("--data W/nowhere", "is not a folder")),
    Case("run: world-readable key", ["run", "--data", "W/prepared", "--key", "W/open.key", "--out", "W/out"], ("W/open.key", "chmod 600")),
    Case("run: unknown defence", ["run", "--data", "W/prepared", "--defenses", "none,magic", "--out", "W/out"], ("--defenses", "'magic'")),
    Case("run: --public a masked folder", ["run", "--data", "W/prepared", "--public", "W/masked", "--out", "W/out"], ("--public W/masked is masked",)),
    Case("run: empty folder", ["run", "--data", "W/empty", "--out", "W/out"], ("W/empty", "sub-folder")),
    Case("demo: unknown defence", ["demo", "--out", "W/out", "--defenses", "magic"], ("--defenses", "'magic'")),
    Case("tune: training key in --set", ["tune", "--space", "W/space.yaml", "--data", "W/prepared", "--out", "W/out", "--set", "optim.lr=0.1"], ("--set optim.lr=0.1", "budget.*")),
    Case("tune: masked folder where faces are expected", ["tune", "--space", "smoke", "--data", "W/masked", "--out", "W/out"], ("--data W/masked", "holds masked data")),
    Case("tune: resumed with another key", ["tune", "--space", "smoke", "--data", "W/prepared", "--out", "W/sweep", "--resume", "--key", "W/client.key"], ("--key W/client.key", "not the sweep's", "the key the sweep began with")),
    Case("tune: resumed without its key", ["tune", "--space", "smoke", "--data", "W/prepared", "--out", "W/sweep", "--resume", "--key", "W/none.key"], ("--key W/none.key", "no key file", "pass it with --key")),
    Case("tune: missing --config", ["tune", "--space", "smoke", "--data", "W/prepared", "--out", "W/out", "--config", "W/none.yaml"], ("--config W/none.yaml", "does not exist")),
]  # fmt: skip


def snapshot(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under the roots, with each file's size and modification time."""
    return {
        str(path): (path.stat().st_size, path.stat().st_mtime_ns) if path.is_file() else (0, 0)
        for root in roots
        if root.exists()
        for path in [root, *root.rglob("*")]
    }


def terminal_lines(stream: str) -> list[str]:
    """What a terminal shows: a carriage return lets the next text overwrite the line (erased progress bars)."""
    return [shown for line in stream.split("\n") if (shown := line.split("\r")[-1].strip())]


def test_there_are_at_least_25_cases_and_every_verb_has_some() -> None:
    from pipelines.cli.main import build_parser

    verbs = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert len(CASES) >= 25 and {case.argv[0] for case in CASES} == verbs


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_is_one_line_naming_the_input_and_the_fix_with_nothing_left_behind(
    case: Case, world: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], ray_must_not_start
) -> None:
    import trainers.local_ray

    monkeypatch.setattr(trainers.local_ray, "claim_local_ray", lambda: None)  # leave the machine's lock alone
    config_home = Path(os.environ["XDG_CONFIG_HOME"]) / "hybridmask"  # where `run` keeps the keys it makes
    before = snapshot(world, config_home)
    argv = [part.replace("W/", f"{world}/") for part in case.argv]
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    lines = terminal_lines(err)
    assert len(lines) == 1 and out == "", (out, err)
    assert lines[0].startswith(f"hybridmask {case.argv[0]}: error: ")
    for fragment in case.says:
        assert fragment.replace("W/", f"{world}/") in lines[0], lines[0]
    assert snapshot(world, config_home) == before


def test_a_second_command_that_would_start_its_own_local_ray_is_refused_before_any_work(
    world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import fcntl

    import trainers.local_ray

    lock = tmp_path / "local-ray.lock"
    monkeypatch.setattr(trainers.local_ray, "local_ray_lock_path", lambda: lock)
    monkeypatch.setattr(trainers.local_ray, "_held_lock", None)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    holder = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    os.write(holder, b"4242")
    fcntl.flock(holder, fcntl.LOCK_EX)  # the first command
    try:
        out = tmp_path / "run"
        assert cli.main(["train", "--data", str(world / "prepared"), "--defense", "none", "--out", str(out)]) == 2
    finally:
        os.close(holder)
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "process 4242" in err and "RAY_ADDRESS=auto" in err
    assert not out.exists()


def test_a_terminated_prepare_removes_its_half_built_output(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    repo = Path(__file__).resolve().parents[1]
    command = [sys.executable, "-m", "pipelines.cli", "synth", "--out", str(tmp_path / "faces"), "--identities", "400",
               "--images-per-identity", "12", "--size", "64", "--no-progress"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(repo)}
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(".faces.partial-*")) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.poll() is None, "synth finished before it could be stopped; give it more work"
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130 and "interrupted" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []
