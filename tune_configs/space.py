"""Search spaces, kept as YAML files in `tune_configs/spaces/`: what a sweep varies, what it fixes, how ASHA stops.

A space file has `description`, `samples` (Tune's num_samples), `fixed` (config keys set in every trial, like
`--set`), `search` (config key -> one domain: `choice`, `grid`, `uniform` or `loguniform` with its values) and
`scheduler` (ASHA's `grace_period` in epochs and `reduction_factor`). Keys are those of `hybridmask train
--config` files (defense.name, masking.ratio, adaptive.candidate_set, strategy.algorithm, ...).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from common.errors import InputError
from pipelines.runs.experiment_config import ExperimentConfig, load_experiment
from tune_configs.space_files import SPACES_DIR, available_spaces

DOMAINS = ("choice", "grid", "uniform", "loguniform")


@dataclass
class SchedulerConfig:
    grace_period: int = 1
    reduction_factor: int = 2


@dataclass
class SearchSpace:
    name: str
    path: Path
    description: str
    samples: int
    fixed: dict[str, Any] = field(default_factory=dict)
    search: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)

    def param_space(self) -> dict[str, Any]:
        """Tune's domains, one per searched key."""
        from ray import tune

        domains = {"choice": tune.choice, "grid": tune.grid_search}
        ranges = {"uniform": tune.uniform, "loguniform": tune.loguniform}
        params = {}
        for key, spec in self.search.items():
            ((kind, values),) = spec.items()
            params[key] = domains[kind](values) if kind in domains else ranges[kind](*values)
        return params

    def overrides(self, params: dict[str, Any]) -> list[str]:
        """`KEY=VALUE` strings for one trial: the fixed keys, then its sampled values (JSON reads as YAML)."""
        return [f"{key}={json.dumps(value)}" for key, value in {**self.fixed, **params}.items()]

    def config(
        self, params: dict[str, Any], base_config: Path | None = None, extra: Sequence[str] = ()
    ) -> ExperimentConfig:
        return load_experiment(base_config, [*extra, *self.overrides(params)])


def load_space(name_or_path: str) -> SearchSpace:
    """A space by name (a file in tune_configs/spaces/) or path, checked: every key and value makes a valid config."""
    path = Path(name_or_path)
    if not path.is_file():
        path = SPACES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise InputError(
            f"--space {name_or_path!r}: no such space; choose one of {available_spaces()} or give a YAML file"
        )
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    unknown = set(raw) - {"description", "samples", "fixed", "search", "scheduler"}
    if unknown:
        raise InputError(
            f"{path}: unknown section(s) {sorted(unknown)}; a space has description, samples, fixed, search, scheduler"
        )
    space = SearchSpace(
        name=path.stem,
        path=path.resolve(),
        description=str(raw.get("description", "")),
        samples=int(raw.get("samples", 1)),
        fixed=dict(raw.get("fixed") or {}),
        search=dict(raw.get("search") or {}),
        scheduler=SchedulerConfig(**(raw.get("scheduler") or {})),
    )
    check_space(space, path)
    return space


def check_space(space: SearchSpace, path: Path) -> None:
    """Every domain well formed, and every value it can take (ends of ranges) a valid config."""
    if space.samples < 1:
        raise InputError(f"{path}: samples must be at least 1")
    if space.scheduler.grace_period < 1 or space.scheduler.reduction_factor < 2:
        raise InputError(f"{path}: scheduler.grace_period must be >= 1 and reduction_factor >= 2")
    for key, spec in space.search.items():
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DOMAINS:
            raise InputError(
                f"{path}: search.{key} must be one of {{{', '.join(DOMAINS)}}}: [values], e.g. {{choice: [0.3, 0.5]}}"
            )
        ((kind, values),) = spec.items()
        if not isinstance(values, list) or not values or (kind in ("uniform", "loguniform") and len(values) != 2):
            raise InputError(
                f"{path}: search.{key}.{kind} needs {'[low, high]' if kind.endswith('uniform') else 'a non-empty list'}"
            )
        for value in values:
            try:
                space.config({key: value}).validate()
            except InputError as error:
                raise InputError(f"{path}: search.{key} = {value!r}: {error}") from None
