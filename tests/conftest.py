"""Shared fixtures: the real face data beside the checkout, one Ray instance for the modules that use one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(autouse=True, scope="session")
def _keys_made_by_tests_stay_in_a_temporary_config_folder(tmp_path_factory: pytest.TempPathFactory) -> None:
    """`run` and `demo` keep the key they make under $XDG_CONFIG_HOME; tests must not write to the user's."""
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("config"))


REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("HYBRIDMASK_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def _shared_folder(*parts: str) -> Path:
    folder = SHARED_DATA.joinpath(*parts)
    if not folder.is_dir():
        pytest.skip(f"real face data not found at {folder} (set HYBRIDMASK_SHARED_DATA to its location)")
    return folder


@pytest.fixture(scope="session")
def orl_dir() -> Path:
    """The ORL database (40 people x 10 PGM images)."""
    return _shared_folder("orl")


@pytest.fixture(scope="session")
def yaleb_dir() -> Path:
    """Extended Yale B, cropped, as distributed (junk files included)."""
    return _shared_folder("yaleb", "CroppedYale")


@pytest.fixture(scope="session")
def lfw_dir() -> Path:
    """Labeled Faces in the Wild: deep-funneled images and the authors' pairs.txt (View 2)."""
    return _shared_folder("lfw")


def _module_of(item: pytest.Item) -> str:
    return item.nodeid.split("::")[0]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The modules that use the in-process Ray (`ray_cluster`) run last, one after another, so that one Ray serves
    them all (a start and a stop cost about 6 s on 2 cores) and no test that starts its own Ray (a subprocess, a
    two-node cluster) ever runs beside it. Both groups keep their order."""
    shared = {_module_of(item) for item in items if "ray_cluster" in getattr(item, "fixturenames", ())}
    items[:] = [item for item in items if _module_of(item) not in shared] + [
        item for item in items if _module_of(item) in shared
    ]


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray instance for every module that asks for it (they run last, together): starting Ray costs
    seconds."""
    import ray

    from trainers.local_ray import local_train_settings

    local_train_settings()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture()
def ray_must_not_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """ray.init fails the test: for checks that must refuse bad input before Ray starts (whether or not another
    module's Ray is up in this process)."""
    import ray

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray was started; bad input must be refused before")

    monkeypatch.setattr(ray, "init", no_ray)


@pytest.fixture(scope="session")
def synthetic_faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small prepared synthetic face set (40 people x 10 images, 32 px): quick to train on, still learnable."""
    from pipelines.data.prepare import PrepareConfig
    from pipelines.data.synth import prepare_synthetic

    out = tmp_path_factory.mktemp("synthetic") / "faces"
    prepare_synthetic(out, identities=40, images_per_identity=10, options=PrepareConfig(size=32))
    return out


@pytest.fixture(scope="session")
def reduced_demo(tmp_path_factory: pytest.TempPathFactory):
    """The reduced demo (tests/demo_run.py), run once for the whole session: the demo's and the attacks' tests
    read the same runs instead of training and attacking twice."""
    from pipelines.cli.main import main
    from tests.demo_run import DemoRun, run_demo

    root = tmp_path_factory.mktemp("demo")
    key = root / "client.key"
    assert main(["keygen", "--out", str(key)]) == 0
    out = root / "out"
    return DemoRun(out, key, run_demo(out, key))


@pytest.fixture(scope="session")
def client_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from masking.keys import generate_key
    from pipelines.client.keyfile import write_key_file

    path = tmp_path_factory.mktemp("key") / "client.key"
    write_key_file(path, generate_key(), force=False)
    return path


@pytest.fixture(scope="session")
def masked_synthetic_faces(synthetic_faces: Path, client_key: Path) -> Path:
    """The synthetic face set's private and verify splits, masked with `client_key` at the default ratio."""
    from pipelines.client.keyfile import read_key_file
    from pipelines.client.masking_io import mask_dataset

    out = synthetic_faces.parent / "masked"
    mask_dataset(synthetic_faces, read_key_file(client_key), out, progress=False)
    return out
