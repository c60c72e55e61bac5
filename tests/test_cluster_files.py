"""The cluster files: the launcher config passes Ray's own validation and says what the README promises, the
`ray submit` entry script runs hybridmask verbs, and a `--working-dir` upload leaves secrets and history behind."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
CLUSTER_YAML = REPO_ROOT / "pipelines" / "cluster" / "cluster.yaml"
SUBMIT_ENTRY = REPO_ROOT / "pipelines" / "cluster" / "submit_entry.py"


@pytest.fixture(scope="module")
def cluster_config() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text(encoding="utf-8"))


def ray_validate(config: dict) -> None:
    """What `ray up` does to a config before it launches anything: fill in the provider's defaults, then validate."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(copy.deepcopy(config)))


def test_cluster_yaml_passes_ray_validation(cluster_config: dict) -> None:
    ray_validate(cluster_config)


def test_ray_validation_rejects_a_broken_copy(cluster_config: dict) -> None:
    broken = copy.deepcopy(cluster_config)
    broken["available_node_types"]["gpu_worker"]["min_workers"] = "two"
    with pytest.raises(jsonschema.ValidationError):
        ray_validate(broken)


def test_cluster_yaml_has_cpu_head_gpu_workers_and_installs_the_project(cluster_config: dict) -> None:
    node_types = cluster_config["available_node_types"]
    head = node_types[cluster_config["head_node_type"]]
    workers = node_types["gpu_worker"]
    gpu_families = ("g4dn.", "g5.", "g6.", "p3.", "p4d.", "p5.")
    assert not head["node_config"]["InstanceType"].startswith(gpu_families)
    assert workers["node_config"]["InstanceType"].startswith(gpu_families)
    assert 0 < workers["min_workers"] <= workers["max_workers"] <= cluster_config["max_workers"]
    setup = "\n".join(cluster_config["setup_commands"])
    assert setup.index('pip install "torch') < setup.index("pip install ~/hybridmask")
    assert "ray[default]" in setup
    assert cluster_config["file_mounts"]["~/hybridmask"] == "."


def test_cluster_yaml_keeps_the_dashboard_on_loopback_the_token_owner_only_and_data_local(
    cluster_config: dict,
) -> None:
    head_start = " ".join(cluster_config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start and "0.0.0.0" not in head_start
    assert "chmod 600 ~/.ray/auth_token" in " ".join(cluster_config["setup_commands"])
    assert ".rayignore" in cluster_config["rsync_filter"]


def test_cluster_yaml_turns_token_authentication_on_for_every_node(cluster_config: dict) -> None:
    assert cluster_config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = next(command for command in cluster_config[key] if "ray start" in command)
        assert "RAY_AUTH_MODE=token" in start, key


def test_submit_entry_runs_a_verb_from_another_folder(tmp_path: Path) -> None:
    """As `ray submit` does: the script alone, run by Python in the head's home, with the project installed."""
    script = tmp_path / "submit_entry.py"
    shutil.copy(SUBMIT_ENTRY, script)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))  # stands in for the project installed on the node
    result = subprocess.run([sys.executable, str(script), "keygen", "--out", "client.key"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip()) == 16 and (tmp_path / "client.key").stat().st_size == 32


def test_submit_entry_defaults_ray_address_to_the_running_cluster_and_keeps_a_given_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from pipelines.cluster import submit_entry

    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    assert submit_entry.main(["keygen", "--out", str(tmp_path / "given.key")]) == 0
    assert os.environ["RAY_ADDRESS"] == "127.0.0.1:6379"
    monkeypatch.delenv("RAY_ADDRESS")
    assert submit_entry.main(["keygen", "--out", str(tmp_path / "default.key")]) == 0
    assert os.environ["RAY_ADDRESS"] == "auto"


def test_working_dir_upload_leaves_keys_data_and_git_history_behind(tmp_path: Path) -> None:
    """Ray's own packaging of a working dir, with this repository's ignore files."""
    from ray._private.runtime_env.packaging import create_package

    checkout = tmp_path / "checkout"
    (checkout / "pipelines" / "cli").mkdir(parents=True)
    (checkout / ".git").mkdir()
    for name in (".gitignore", ".rayignore"):
        shutil.copy(REPO_ROOT / name, checkout / name)
    shutil.copy(REPO_ROOT / "pipelines" / "cli" / "main.py", checkout / "pipelines" / "cli" / "main.py")
    (checkout / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (checkout / "client.key").write_bytes(os.urandom(32))
    data_files = [  # what README's examples create at the root, and faces or shards anywhere else
        "prepared/private/part-00000.parquet",
        "prepared/manifest.json",
        "masked/verify/part-00000.parquet",
        "runs/adaptive/model.pt",
        "sweep/trials/t1/summary.json",
        "hybridmask-demo/report.md",
        "my_faces/alice/0001.jpg",
        "my_faces/bob/0001.pgm",
        "notes/shard.parquet",
    ]
    for name in data_files:
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        (checkout / name).write_bytes(b"data")
    package = tmp_path / "package.zip"
    create_package(str(checkout), package, include_gitignore=True)
    names = zipfile.ZipFile(package).namelist()
    assert "pipelines/cli/main.py" in names
    assert not [name for name in names if name.endswith(".key") or name.startswith(".git/")], names
    assert not [name for name in names if name in data_files], names
