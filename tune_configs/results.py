"""A sweep's results: one row per trial, ranked by overall; CSV, Markdown, the Pareto figure, the best config."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.files import atomic_output, atomic_write_text
from evaluation.measures import SCORE_CLS_IN_WORDS
from tune_configs.space import SearchSpace
from tune_configs.trial import SCORE_FIELDS, TrialSetup, trial_config

RESULTS_CSV = "results.csv"
RESULTS_MD = "results.md"
PARETO_PNG = "pareto.png"
BEST_CONFIG = "best_config.yaml"


@dataclass
class TrialRow:
    trial_id: str
    params: dict[str, Any]
    status: str  # finished | stopped early at epoch N | failed: ... | interrupted at epoch N | not started
    metrics: dict[str, Any]

    @classmethod
    def from_result(cls, result: Any, interrupted: Collection[str] = ()) -> TrialRow:
        """From a `ray.tune.Result`: its config, its last report and its error. `interrupted`: the ids of the trials
        an interruption (Ctrl-C) left unfinished. A trial that never reported has neither config nor metrics."""
        metrics = dict(result.metrics or {})
        trial_id = str(metrics.get("trial_id", Path(result.path).name))
        if "overall" in metrics:
            status = "finished"
        elif result.error is not None:
            status = f"failed: {str(result.error).strip().splitlines()[-1][:120]}"
        elif trial_id in interrupted:
            status = f"interrupted at epoch {metrics['epoch']}" if "epoch" in metrics else "not started"
        else:
            status = f"stopped early at epoch {metrics.get('epoch', 0)}"
        return cls(trial_id=trial_id, params=dict(result.config or {}), status=status, metrics=metrics)

    @property
    def interrupted(self) -> bool:
        """Left unfinished by an interruption: `--resume` runs it."""
        return self.status == "not started" or self.status.startswith("interrupted")

    @property
    def overall(self) -> float | None:
        return self.metrics.get("overall") if self.status == "finished" else None


def ranked(rows: Sequence[TrialRow]) -> list[TrialRow]:
    """Finished trials by overall (best first), then the stopped and failed ones."""
    return sorted(rows, key=lambda row: (row.overall is None, -(row.overall or 0.0), row.trial_id))


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both coordinates (both higher is better)."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any(ox >= x and oy >= y and (ox > x or oy > y) for ox, oy in points)
        if not dominated:
            front.append(i)
    return front


def write_results(
    rows: Sequence[TrialRow], out: Path, space: SearchSpace, setup: TrialSetup, say: Callable[[str], None]
) -> None:
    ordered = ranked(rows)
    keys = list(space.search)
    _write_csv(ordered, keys, out / RESULTS_CSV)
    finished = [row for row in ordered if row.overall is not None]
    front = {finished[i].trial_id for i in pareto_front([_plane(row) for row in finished])}
    atomic_write_text(out / RESULTS_MD, _markdown(ordered, keys, space, front))
    if finished:
        _pareto_figure(finished, front, out / PARETO_PNG)
        best = finished[0]
        from trainers.config_io import save_config

        save_config(trial_config(setup, best.params), out / BEST_CONFIG)
        say(
            f"best trial {best.trial_id}: overall {best.overall:.3f} with "
            + ", ".join(f"{k}={best.params[k]}" for k in keys)
        )
        say(f"its config: {out / BEST_CONFIG} (hybridmask train --config {out / BEST_CONFIG} --data ...)")
    else:
        say("no trial finished; nothing to rank")
    say(f"results: {out / RESULTS_MD}, {out / RESULTS_CSV}")


def _plane(row: TrialRow) -> tuple[float, float]:
    return float(row.metrics["score_cls"]), float(row.metrics["score_pp"])


def _write_csv(rows: Sequence[TrialRow], keys: list[str], path: Path) -> None:
    columns = ["rank", "trial_id", "status", *keys, "epoch", "verification_accuracy", *SCORE_FIELDS]
    with atomic_output(path) as temporary, temporary.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for rank, row in enumerate(rows, 1):
            values: list[Any] = [json.dumps(row.params.get(key)) for key in keys]
            values += [row.metrics.get(name) for name in ("epoch", "verification_accuracy", *SCORE_FIELDS)]
            writer.writerow([rank, row.trial_id, row.status, *values])


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "" if value is None else json.dumps(value) if isinstance(value, list) else str(value)


def _markdown(rows: Sequence[TrialRow], keys: list[str], space: SearchSpace, front: set[str]) -> str:
    lines = [
        f"# Sweep `{space.name}`: trials ranked by overall",
        "",
        space.description,
        "",
        f"overall = harmonic mean of score_pp (privacy, attacks included) and score_cls; {SCORE_CLS_IN_WORDS}. "
        "ASHA stopped trials on verification accuracy before their attacks; they have no "
        "privacy scores. ◆: on the Pareto front of score_cls and score_pp.",
        "",
        "| rank | trial | " + " | ".join(keys) + " | verif. acc. | score_pp | score_cls | overall | status |",
        "|" + "---|" * (len(keys) + 7),
    ]
    for rank, row in enumerate(rows, 1):
        marker = " ◆" if row.trial_id in front else ""
        cells = [str(rank), row.trial_id + marker, *(_cell(row.params.get(key)) for key in keys)]
        cells += [
            _cell(row.metrics.get(name)) for name in ("verification_accuracy", "score_pp", "score_cls", "overall")
        ]
        cells.append(row.status)
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"![trials in the privacy-utility plane]({PARETO_PNG})", ""]
    return "\n".join(lines)


def _pareto_figure(rows: Sequence[TrialRow], front: set[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.8))
    defenses = sorted({str(row.metrics.get("defense")) for row in rows})
    for index, defense in enumerate(defenses):
        members = [row for row in rows if str(row.metrics.get("defense")) == defense]
        xs, ys = zip(*(_plane(row) for row in members))
        axes.scatter(xs, ys, s=40, color=f"C{index}", label=defense, alpha=0.8)
    on_front = sorted(_plane(row) for row in rows if row.trial_id in front)
    axes.plot(*zip(*on_front), color="black", lw=1, ls="--", marker="D", mfc="none", ms=10, label="Pareto front")
    best = _plane(rows[0])
    axes.scatter(
        [best[0]],
        [best[1]],
        marker="*",
        s=260,
        color="gold",
        edgecolor="black",
        zorder=5,
        label=f"best overall ({rows[0].overall:.3f})",
    )
    axes.set_xlabel("score_cls (utility: share of the unprotected model's accuracy above chance)")
    axes.set_ylabel("score_pp (privacy against the attacks)")
    axes.set_title("Sweep trials in the privacy–utility plane")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    figure.tight_layout()
    with atomic_output(path) as temporary:
        figure.savefig(temporary, dpi=120)
    plt.close(figure)
