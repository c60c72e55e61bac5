"""Training state on disk: what a checkpoint holds, and the exported model that attacks and evaluation load.

Everything is saved with torch.save as tensors and plain containers, and loaded with weights_only=True, so a
checkpoint from elsewhere cannot run code. The masking key is never among the saved fields: masked runs store
only the public masking settings (ratio, kept channels, normalisation statistics, key fingerprint).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from trainers.config import TrainConfig
from trainers.config_io import from_dict, to_dict
from trainers.model import FaceModel, build_face_model
from trainers.window_source import ClientOffer

STATE_FILE = "state.pt"
MODEL_FILE = "model.pt"


def save_state(directory: str | Path, state: dict[str, Any]) -> None:
    torch.save(state, Path(directory) / STATE_FILE)


def load_state(directory: str | Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    return torch.load(Path(directory) / STATE_FILE, map_location=device, weights_only=True)


def export_model(state: dict[str, Any], config: TrainConfig, offer: ClientOffer, path: str | Path) -> None:
    """The trained model with what is needed to rebuild it: the client's public offer (shapes and counts), no
    optimiser state, no private data, no path, no key."""
    info_fields = {name: value for name, value in vars(offer).items() if name != "masking"}
    torch.save(
        {
            "model": state["model"],
            "config": to_dict(config),
            "dataset": info_fields,
            "public_masking": state.get("public_masking", {}),
            "epoch": state["epoch"],
        },
        path,
    )


def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[FaceModel, dict[str, Any]]:
    """Rebuild an exported FaceModel in eval mode, and return it with its saved metadata."""
    saved = torch.load(path, map_location=device, weights_only=True)
    config = from_dict(TrainConfig, saved["config"])
    info = ClientOffer(**saved["dataset"])
    model = build_face_model(config, info)
    model.load_state_dict(saved["model"])
    return model.to(device).eval(), saved
