"""One training run from the CLI or a pipeline: mask prepared data when the defence needs it, start the client
on it, then dispatch to the fixed-k trainer or the adaptive coupling. Everything here is checked before Ray starts.

This machine plays both roles: the client's files (RUN/masked, RUN/client) sit beside the server's in RUN, and a
deployment keeps them on the data owner's side."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from common.errors import InputError
from common.files import read_json
from masking.keys import key_fingerprint
from pipelines.client.face_client import ClientConfig, start_client
from pipelines.client.masking_io import mask_dataset
from pipelines.runs.experiment_config import ExperimentConfig
from trainers.client_record import CLIENT_RECORD_DIR
from trainers.dataset_info import inspect_dataset
from trainers.local_ray import start_ray
from trainers.run import METRICS_FILE, check_representation, check_same_run
from trainers.schema import MANIFEST_NAME

MASKED_SUBDIR = "masked"


def masked_data_for(prepared_dir: Path, key: bytes, ratio: float, out_dir: Path, progress: bool = True) -> Path:
    """The masked copy of a prepared folder under `out_dir`, reused when it matches (same source, ratio, key)."""
    manifest_path = out_dir / MANIFEST_NAME
    if manifest_path.is_file():
        manifest = read_json(manifest_path, f"delete {out_dir} to mask the data again")
        prepared = read_json(prepared_dir / MANIFEST_NAME, "re-run `hybridmask prepare`")
        same = (
            manifest.get("source_fingerprint") == prepared.get("source_fingerprint")
            and manifest["masking"]["ratio"] == ratio
            and manifest["masking"]["key_fingerprint"] == key_fingerprint(key)
        )
        if same:
            return out_dir
        raise InputError(f"{out_dir} holds data masked with other settings (source, ratio or key); choose a new --out")
    mask_dataset(prepared_dir, key, out_dir, ratio=ratio, progress=progress)
    return out_dir


def resolve_training_data(
    data_dir: Path, config: ExperimentConfig, key: bytes | None, run_dir: Path, progress: bool = True
) -> Path:
    """The folder the defence trains on: the given one, or its masked copy when a key is given for masked defences."""
    info = inspect_dataset(data_dir)
    if not config.uses_pixels and info.representation == "images":
        if key is None:
            raise InputError(
                f"defence {config.defense.name!r} trains on masked data and {data_dir} holds raw images: "
                "pass --key KEYFILE to mask them first (the key stays on this machine), or pass a masked folder"
            )
        return masked_data_for(data_dir, key, config.masking.ratio, run_dir / MASKED_SUBDIR, progress)
    check_representation(config, info.representation, str(data_dir))
    return data_dir


def run_training(
    data_dir: str | Path,
    run_dir: str | Path,
    config: ExperimentConfig,
    key: bytes | None = None,
    storage_path: str | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Every check (config, data, an existing run folder's config) comes before anything is written; a run folder
    this call created is removed again when it fails before finishing an epoch, so a failure leaves nothing."""
    config.validate()
    run_dir = Path(run_dir).resolve()
    if run_dir.exists() and not run_dir.is_dir():
        raise InputError(f"--out {run_dir} is a file; give a folder for the run")
    check_same_run(run_dir, config.train_config())
    inspect_dataset(data_dir)  # the data's own errors before the run folder appears
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        training_data = resolve_training_data(Path(data_dir), config, key, run_dir, progress=not quiet)
        start_ray()
        scale = config.train_config().scale
        client = start_client(
            ClientConfig(
                str(training_data),
                str(run_dir / CLIENT_RECORD_DIR),
                config.holdout_modulo,
                stream_above_mb=scale.stream_above_mb,
                stream_chunk_rows=scale.stream_chunk_rows,
            )
        )
        try:
            if config.defense_row.adaptive:
                from rl_env.coupling import train_adaptive

                return train_adaptive(
                    client, run_dir, config.train_config(), config.strategy, config.adaptive, storage_path, quiet
                )
            from trainers.run import train

            return train(client, run_dir, config.train_config(), storage_path=storage_path, quiet=quiet)
        finally:
            import ray

            ray.kill(client.actor)
    except BaseException:
        if created and not (run_dir / METRICS_FILE).is_file():
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
