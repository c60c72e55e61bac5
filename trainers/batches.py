"""Turning shard rows (column dicts read with pyarrow, by the client and the evaluation) into model inputs.

Pixels become float tensors in [-1, 1]; masked features are already normalised by the client and are only
widened from float16. Horizontal flips exist only for pixels: masked channels are flipped by the client, who
holds the key, and arrive as the `features_flipped` column of the verify split.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import torch


def stack_binary(column: Any, dtype: npt.DTypeLike, shape: tuple[int, ...]) -> np.ndarray:
    """A column of equal-length byte strings as one array of shape (rows, *shape): a list of bytes, or an Arrow
    binary column, read from its buffer without a Python object per row (over ten times faster)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if isinstance(column, pa.Array):
        width = np.int64 if pa.types.is_large_binary(column.type) else np.int32
        offsets = np.frombuffer(column.buffers()[1], dtype=width)[column.offset : column.offset + len(column) + 1]
        data = np.frombuffer(column.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
        return data.view(dtype).reshape(len(column), *shape)
    return np.frombuffer(b"".join(column), dtype=dtype).reshape(len(column), *shape)


def pixels_to_input(batch: Mapping[str, Any]) -> torch.Tensor:
    height, width, channels = int(batch["height"][0]), int(batch["width"][0]), int(batch["channels"][0])
    images = stack_binary(batch["pixels"], np.uint8, (height, width, channels))
    # channels_last: the rows are already height x width x channels, and CPU convolutions run several times faster so.
    tensor = torch.from_numpy(images.copy()).permute(0, 3, 1, 2).float().contiguous(memory_format=torch.channels_last)
    return tensor.div_(127.5).sub_(1.0)


def features_to_input(batch: Mapping[str, Any], column: str = "features") -> torch.Tensor:
    shape = (int(batch["num_channels"][0]), int(batch["grid_height"][0]), int(batch["grid_width"][0]))
    features = torch.from_numpy(stack_binary(batch[column], np.float16, shape).astype(np.float32))
    return features.contiguous(memory_format=torch.channels_last)


def batch_to_input(batch: Mapping[str, Any], representation: str) -> torch.Tensor:
    return pixels_to_input(batch) if representation == "images" else features_to_input(batch)


def flipped_input(batch: Mapping[str, Any], representation: str) -> torch.Tensor | None:
    """The mirrored inputs for flip-fused embeddings, or None where the data has no mirrored copy."""
    if representation == "images":
        return torch.flip(pixels_to_input(batch), dims=[3])
    if "features_flipped" in batch and all(value is not None for value in batch["features_flipped"]):
        return features_to_input(batch, "features_flipped")
    return None
