"""The client's record folder: what the client keeps about a run, and how the judge reads it back.

The client (pipelines/client) writes it; the evaluation, which judges with the ground truth, reads it to
regenerate exactly what the server was sent. The server's training code never reads it. Files:

    client_manifest.json  data folder, names by label, the secret mixing seed, the plan, the row order (client-side
                          only)
    sent.jsonl            one line per answered request: windows (epoch, window, rank, k), holdout, verification
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common.errors import InputError
from masking.windows import StreamOrder, WindowPlan, WindowRequest

CLIENT_RECORD_DIR = "client"  # RUN/client when one machine plays both roles
CLIENT_MANIFEST = "client_manifest.json"
SENT_LOG = "sent.jsonl"


def read_client_manifest(record_dir: Path) -> dict[str, Any]:
    """The manifest, or {} before the client first wrote it."""
    path = Path(record_dir) / CLIENT_MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def read_sent_log(record_dir: Path) -> list[dict[str, Any]]:
    path = Path(record_dir) / SENT_LOG
    if not path.is_file():
        raise InputError(f"{record_dir} has no {SENT_LOG}: the run was not trained through a client")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def sent_windows(record_dir: Path) -> list[WindowRequest]:
    """Every distinct window request the client answered (a replay after a worker restart is the same window)."""
    requests = {
        WindowRequest(record["epoch"], record["window"], record["rank"], record["k"])
        for record in read_sent_log(record_dir)
        if record["sent"] == "window"
    }
    return sorted(requests, key=lambda r: (r.epoch, r.window, r.rank, r.k))


def client_plan(manifest: dict[str, Any]) -> WindowPlan:
    if "plan" not in manifest:
        raise InputError("the client manifest has no plan: training never started")
    return WindowPlan(**manifest["plan"])


def client_stream_order(manifest: dict[str, Any]) -> StreamOrder | None:
    """The epoch order of a client that streamed its rows, or None for one that held the whole split."""
    streamed = manifest.get("row_order", {}).get("streamed")
    if streamed is None:
        return None
    return StreamOrder(shard_rows=tuple(streamed["shard_rows"]), chunk_rows=int(streamed["chunk_rows"]))


def holdout_rows_sent(record_dir: Path) -> int:
    """How many clean, unmixed held-out faces the client sent (the adaptive defence's validation signal)."""
    return max((r["rows"] for r in read_sent_log(record_dir) if r["sent"] == "holdout"), default=0)
