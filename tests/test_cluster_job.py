"""The Jobs API on a real two-node Ray cluster on this machine: `ray start --head` and `ray start --address` on
loopback, token authentication on, a `hybridmask train` job submitted with `ray job submit --working-dir`, its
workers spread over both nodes, its run written where the job was told, and both nodes stopped whatever happens."""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from pipelines.cli import main as cli
from tests.local_ray_cluster import HEAD_IP, LocalRayCluster, dashboard_missing_reason
from trainers.run import ray_run_name

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
SECOND_NODE_IP = "127.0.0.3"
# Each node fits exactly one worker of 1.6 CPUs (3 on the head, 2 on the second node), so two workers must span both
# nodes; the head's spare 1.4 CPUs run Ray Data's file listing, which needs one whole CPU.
HEAD_CPUS, SECOND_NODE_CPUS, CPUS_PER_WORKER = 3, 2, 1.6
JOB_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def cluster():
    reason = dashboard_missing_reason()
    if reason:
        pytest.skip(reason)
    # A short root: Ray's socket paths live under it and Unix sockets allow ~107 characters.
    root = Path(tempfile.mkdtemp(prefix="hmc-", dir="/tmp"))
    local = LocalRayCluster(root)
    try:
        local.add_head(num_cpus=HEAD_CPUS, resources={"hm_head_node": 1})
        local.add_node(num_cpus=SECOND_NODE_CPUS, resources={"hm_second_node": 1})
        yield local
    finally:
        local.stop()
        left = local.leftover_processes()
        shutil.rmtree(root, ignore_errors=True)
        assert not left, f"Ray processes left running after stop: {sorted(left)}"


@pytest.fixture(scope="module")
def masked_faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What a client sends to the cluster: tiny synthetic faces masked locally with a key that stays local."""
    folder = tmp_path_factory.mktemp("client")
    synth = ["synth", "--out", str(folder / "faces"), "--identities", "10", "--images-per-identity", "8",
             "--size", "32", "--pairs", "40", "--no-progress"]  # fmt: skip
    assert cli.main(synth) == 0
    assert cli.main(["keygen", "--out", str(folder / "client.key")]) == 0
    assert (
        cli.main(["mask", str(folder / "faces"), "--key", str(folder / "client.key"), "--out", str(folder / "masked")])
        == 0
    )
    return folder / "masked"


def test_both_nodes_joined_with_their_own_resources(cluster: LocalRayCluster) -> None:
    resources = {
        node["node_ip"]: node["resources_total"] for node in cluster.state("nodes") if node["state"] == "ALIVE"
    }
    assert set(resources) == {HEAD_IP, SECOND_NODE_IP}
    assert resources[HEAD_IP]["CPU"] == HEAD_CPUS and "hm_head_node" in resources[HEAD_IP]
    assert resources[SECOND_NODE_IP]["CPU"] == SECOND_NODE_CPUS and "hm_second_node" in resources[SECOND_NODE_IP]


def test_job_server_refuses_a_client_without_the_token(cluster: LocalRayCluster) -> None:
    refused = cluster.ray("job", "list", "--address", cluster.dashboard_url, authenticated=False)
    assert refused.returncode != 0
    assert "Unauthorized" in refused.stdout + refused.stderr
    assert cluster.ray("job", "list", "--address", cluster.dashboard_url).returncode == 0


def test_submitted_train_job_spans_both_nodes_and_writes_its_run(
    cluster: LocalRayCluster, masked_faces: Path, tmp_path: Path
) -> None:
    run_dir, storage = tmp_path / "run", tmp_path / "shared-storage"
    submission_id = f"hybridmask-test-{uuid.uuid4().hex[:8]}"
    entrypoint = [
        "python", "-m", "pipelines.cli", "train", "--data", str(masked_faces), "--defense", "ppfr_fd",
        "--epochs", "1", "--workers", "2", "--out", str(run_dir), "--storage", str(storage),
        "--set", "optim.batch_size=8", "--set", "model.embedding_size=32",
        "--set", f"scale.cpus_per_worker={CPUS_PER_WORKER}",
    ]  # fmt: skip
    submitted = cluster.ray(
        "job", "submit", "--address", cluster.dashboard_url, "--working-dir", str(REPO_ROOT),
        "--submission-id", submission_id, "--", *entrypoint, timeout=JOB_TIMEOUT_S,
    )  # fmt: skip
    status = cluster.ray("job", "status", "--log-color", "false", "--address", cluster.dashboard_url, submission_id)
    assert submitted.returncode == 0, f"job failed:\n{submitted.stdout[-6000:]}\n{submitted.stderr[-3000:]}"
    assert f"Job '{submission_id}' succeeded" in status.stdout

    node_ips = {node["node_id"]: node["node_ip"] for node in cluster.state("nodes")}
    workers = cluster.state("actors", "--filter", "class_name=RayTrainWorker")
    assert sorted(node_ips[worker["node_id"]] for worker in workers) == [HEAD_IP, SECOND_NODE_IP], (
        "workers did not span both nodes"
    )

    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["defense"] == "ppfr_fd"
    assert summary["representation"] == "masked"
    assert summary["workers"] == 2 and summary["epochs"] == 1
    assert 0.0 <= summary["verification_accuracy"] <= 1.0
    epochs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [epoch["epoch"] for epoch in epochs] == [1]
    assert (run_dir / "model.pt").is_file()
    assert list((storage / ray_run_name(run_dir.resolve(), shared_storage=True)).glob("checkpoint_*")), (
        "no checkpoint in the --storage folder"
    )
