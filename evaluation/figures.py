"""The report's figures: a reconstruction grid per run, and across runs a privacy-utility scatter and the
verification accuracy after each training epoch (PNG, Agg)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and in CI
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.ticker import MaxNLocator

from common.errors import InputError
from common.files import atomic_output
from evaluation.images import ImageBatch, as_float_nhwc

if TYPE_CHECKING:
    from evaluation.report import RunReport

_CELL_INCHES = 1.5
_DPI = 110
_MARKERS = "os^DvPX*hp<>"  # one per defence in the scatter, told apart in its legend


@dataclass(frozen=True)
class GridImages:
    """Rows of the grid: originals, the server's view of their masked data, and each column of reconstructions.

    All image sets hold one image per row, in the same order; reconstructions maps a column title (for instance
    "recovery (key unknown)") to its images. labels name the identity of each row.
    """

    originals: ImageBatch
    server_view: ImageBatch
    reconstructions: Mapping[str, ImageBatch]
    labels: Sequence[int | str]


def save_reconstruction_grid(grid: GridImages, path: str | Path, title: str, max_rows: int = 6) -> Path:
    """One row per private identity: original | masked as the server sees it | each attack's reconstruction."""
    columns = {"original": grid.originals, "masked (server view)": grid.server_view, **grid.reconstructions}
    panels = {name: as_float_nhwc(images, f"grid column {name!r}") for name, images in columns.items()}
    rows = min(max_rows, len(grid.labels))
    for name, images in panels.items():
        if len(images) < rows:
            raise InputError(f"grid column {name!r} has {len(images)} images for {rows} rows; give one per row")
    figure, axes = plt.subplots(
        rows,
        len(panels),
        figsize=(_CELL_INCHES * len(panels), _CELL_INCHES * rows + 0.8),
        squeeze=False,
        layout="constrained",
    )
    for column, (name, images) in enumerate(panels.items()):
        axes[0, column].set_title(_wrap(name), fontsize=9)
        for row in range(rows):
            _show(axes[row, column], images[row])
    for row in range(rows):
        axes[row, 0].set_ylabel(f"identity {grid.labels[row]}", fontsize=9)
    figure.suptitle(title, fontsize=11)
    return _save(figure, path)


def save_privacy_utility_scatter(reports: Sequence[RunReport], path: str | Path) -> Path:
    """score_pp against verification accuracy, one point per defence, coloured by the overall score."""
    return _save(privacy_utility_figure(reports), path)


def privacy_utility_figure(reports: Sequence[RunReport]) -> plt.Figure:
    """The scatter itself. Each defence has its own marker, named in a legend below the axes: masked defences often
    lie so close together that labels written beside their points would cover each other."""
    figure, axis = plt.subplots(figsize=(6.4, 5.4), layout="constrained")
    accuracy = np.array([r.verification_accuracy for r in reports])
    privacy = np.array([r.scores.score_pp for r in reports])
    mixed = len({r.synthetic_data for r in reports}) > 1
    colours = matplotlib.colormaps["viridis"]
    for index, (report, x, y) in enumerate(zip(reports, accuracy, privacy)):
        axis.scatter(
            x,
            y,
            color=colours(float(np.clip(report.scores.overall, 0.0, 1.0))),
            marker=_MARKERS[index % len(_MARKERS)],
            s=80,
            edgecolors="black",
            label=f"{report.label} (synthetic)" if mixed and report.synthetic_data else report.label,
        )
    figure.colorbar(ScalarMappable(Normalize(0, 1), colours), ax=axis, label="overall score")
    figure.legend(loc="outside lower center", ncols=3, fontsize=9, frameon=False)
    axis.set_xlabel("verification accuracy of the protected model")
    axis.set_ylabel("privacy score  score_pp")
    synthetic = " (synthetic faces)" if all(r.synthetic_data for r in reports) else ""
    axis.set_title(f"Privacy against utility{synthetic}")
    axis.set_xlim(*_padded_range(accuracy, 0.5, 1.0))
    axis.set_ylim(*_padded_range(privacy, 0.0, 1.0))
    axis.grid(alpha=0.3)
    return figure


def save_accuracy_per_epoch(
    curves: Sequence[tuple[str, Sequence[tuple[int, float]]]], path: str | Path, synthetic: bool = False
) -> Path:
    """Verification accuracy after each epoch, one line per run ((label, [(epoch, accuracy), ...]) each, labels
    may repeat): whether a defence had levelled off or was still learning when training stopped, which a final
    number alone does not say."""
    figure, axis = plt.subplots(figsize=(8.0, 4.2))
    drawn = [(label, curve) for label, curve in curves if curve]
    for label, curve in drawn:
        epochs, accuracy = zip(*curve)
        axis.plot(epochs, accuracy, marker="o", markersize=3, label=label)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    if drawn:
        axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes: never over a line
    else:
        axis.text(
            0.5, 0.5, "no run recorded its accuracy per epoch", ha="center", va="center", transform=axis.transAxes
        )
    axis.set_xlabel("epoch")
    axis.set_ylabel("verification accuracy")
    axis.set_title("Verification accuracy per epoch" + (" (synthetic faces)" if synthetic else ""))
    axis.grid(alpha=0.3)
    figure.tight_layout()
    return _save(figure, path)


def _show(axis: plt.Axes, image: np.ndarray) -> None:
    if image.shape[-1] == 1:
        axis.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1)
    else:
        axis.imshow(image, vmin=0, vmax=1)
    axis.set_xticks([])
    axis.set_yticks([])


def _wrap(text: str) -> str:
    """Put a parenthesised qualifier on its own line ("recovery\n(key known)") so neighbouring titles do not touch."""
    return text.replace(" (", "\n(")


def _padded_range(values: np.ndarray, floor: float, ceiling: float) -> tuple[float, float]:
    """The axis range: [floor, ceiling] widened to hold every value, with a margin for labels."""
    low, high = min(floor, float(values.min())), max(ceiling, float(values.max()))
    margin = 0.05 * (high - low)
    return low - margin, high + margin


def _save(figure: plt.Figure, path: str | Path) -> Path:
    target = Path(path)
    with atomic_output(target) as temporary:
        figure.savefig(temporary, dpi=_DPI)
    plt.close(figure)
    return target
