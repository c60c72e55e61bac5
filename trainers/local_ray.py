"""Starting Ray for one command: attach to a cluster named by RAY_ADDRESS, or start a local instance that no
other hybridmask command on this machine is running beside; and reading what the cluster has.

Two local Ray instances on one machine confuse Ray Train (its placement-group monitor finds both and prints
"multiple active Ray instances" tracebacks) and share the same cores without knowing it. So a command that would
start a second one is refused with the way out: wait, or start one Ray for both and point them at it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from common.errors import InputError

_held_lock: int | None = None  # the lock file's descriptor, held until this process ends

# Ray Train's controller polls its workers every 2 s by default, and a worker's report waits until the previous one
# was collected: epochs shorter than that (small data, demo sizes) then take 2 s each, and the run's end waits for the
# last collections. Polling every 0.1 s costs nothing visible on a local instance: tests/test_training.py (four
# 2-worker runs, one with a killed worker) took 77 s against 86 s at 0.5 s, the reduced demo 160 s against 164 s.
# A local Ray inherits this process's environment; set the variable on a cluster's nodes.
TRAIN_POLL_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"
TRAIN_POLL_S = "0.1"
# Ray Train starts a preemption watcher actor with every run, for cloud nodes that can be reclaimed (spot instances).
# A local Ray's only node is this machine, so it watches for nothing, and its start prints an error-level line
# ("Actor with class name: 'PreemptionWatcher' ... restart will fail") in every `train`. A cluster keeps it.
PREEMPTION_WATCHER_ENV = "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"
# A local Ray lives for one command, and its dashboard's UI modules and metrics cost CPU a 2-core machine misses (the
# demo's CPU time: 8 min 43 s with them, 7 min 5 s without, one run each): they start only when this variable is "1".
LOCAL_DASHBOARD_ENV = "HYBRIDMASK_RAY_DASHBOARD"
# Without the dashboard Ray has no state API, and Ray Train's placement-group cleaner, which asks it every second
# whether the training controller lives, warns each time it cannot. The cleaner frees a dead run's CPUs on a cluster
# that outlives the run; a local Ray ends with its command and every placement group with it, so the warning asks
# nothing of the user. Ray's driver drops worker log lines matching this variable's regex.
SKIPPED_LOG_LINES_ENV = "RAY_DEDUP_LOGS_SKIP_REGEX"
CLEANER_WITHOUT_STATE_API = "Failed to query Ray Train Controller actor state"


def hide_state_api_warnings() -> None:
    """Before ray is first imported (Ray reads the variable then): the driver does not print the cleaner's warning
    about the missing state API (a user's own setting wins)."""
    os.environ.setdefault(SKIPPED_LOG_LINES_ENV, CLEANER_WITHOUT_STATE_API)


def local_train_settings() -> None:
    """Before a local ray.init(): Ray Train collects each report within TRAIN_POLL_S and starts no preemption
    watcher (a user's settings win)."""
    os.environ.setdefault(TRAIN_POLL_ENV, TRAIN_POLL_S)
    os.environ.setdefault(PREEMPTION_WATCHER_ENV, "0")


def local_ray_lock_path() -> Path:
    return Path(tempfile.gettempdir()) / f"hybridmask-local-ray-{os.getuid()}.lock"


def start_ray() -> None:
    """ray.init() unless Ray is up in this process already; a local instance only when no other hybridmask
    command on this machine runs one (InputError naming that command's process otherwise)."""
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init()
        return
    claim_local_ray()
    local_train_settings()
    ray.init(include_dashboard=os.environ.get(LOCAL_DASHBOARD_ENV) == "1")


def cluster_totals() -> dict[str, float]:
    """The resources the live nodes registered with (CPU, GPU, custom ones such as `client`), summed.

    ray.cluster_resources() reads the scheduler's resource view instead, which can lack a node's CPUs for a moment
    while its raylet starts (Ray's own tests allow for it: ray-project/ray#29290); a run sized at such a moment would
    be refused as too large for the cluster. A node's registered resources do not change while it lives."""
    import ray

    totals: dict[str, float] = {}
    for node in ray.nodes():
        if node.get("Alive"):
            for name, amount in node.get("Resources", {}).items():
                totals[name] = totals.get(name, 0.0) + float(amount)
    return totals


def reserve_ray() -> None:
    """Called first by verbs that will start Ray: a second command is refused before it does any work."""
    import sys

    ray = sys.modules.get("ray")
    if os.environ.get("RAY_ADDRESS") or (ray is not None and ray.is_initialized()):
        return
    claim_local_ray()


def claim_local_ray() -> None:
    """Take this machine's local-Ray lock for the rest of this process, or say who holds it."""
    import fcntl

    global _held_lock
    if _held_lock is not None:
        return
    path = local_ray_lock_path()
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(descriptor)
        raise InputError(
            f"another hybridmask command (process {holder}) runs its own Ray on this machine ({path}); wait for it "
            "to finish, or start one Ray for both (`ray start --head`) and run each command with RAY_ADDRESS=auto"
        ) from None
    with contextlib.suppress(OSError):
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, str(os.getpid()).encode(), 0)
    _held_lock = descriptor
