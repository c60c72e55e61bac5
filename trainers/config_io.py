"""Typed configuration plumbing: nested dataclasses from dicts, YAML files and `--set key=value` overrides.

Unknown keys and values of the wrong type fail with an InputError that names the key, before anything starts.
Every config object is a dataclass with a `validate()` method; `to_dict` gives the form that is saved with a run.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import yaml

from common.errors import InputError
from common.files import atomic_write_text

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    class CheckedConfig(DataclassInstance, Protocol):
        """A config section that checks itself."""

        def validate(self) -> None: ...


D = TypeVar("D", bound="DataclassInstance")
C = TypeVar("C", bound="CheckedConfig")


def to_dict(config: Any) -> dict[str, Any]:
    """Plain data (dicts, lists, scalars) of a config dataclass, for YAML/JSON."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {field.name: plain(getattr(value, field.name)) for field in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(item) for item in value]
        return value

    return plain(config)


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise InputError(f"config key {key!r} is a section; give a mapping, not {value!r}")
        return from_dict(annotation, value, prefix=f"{key}.")
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except InputError as error:
                errors.append(str(error))
        raise InputError(errors[0] if errors else f"config key {key!r}: cannot use {value!r}")
    if origin is typing.Literal:
        allowed = typing.get_args(annotation)
        if value not in allowed:
            raise InputError(f"config key {key!r} must be one of {list(allowed)}, not {value!r}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise InputError(f"config key {key!r} must be a list, not {value!r}")
        item_type = typing.get_args(annotation)[0]
        return tuple(_coerce(item, item_type, f"{key}[{i}]") for i, item in enumerate(value))
    if annotation is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if annotation in (int, str, bool) and type(value) is annotation:
        return value
    if annotation is Any:
        return value
    raise InputError(f"config key {key!r} must be of type {getattr(annotation, '__name__', annotation)}, not {value!r}")


def from_dict(cls: type[D], data: dict[str, Any], prefix: str = "") -> D:
    """Build dataclass `cls` from `data`; missing keys keep their defaults, unknown keys are errors."""
    hints = typing.get_type_hints(cls)
    known = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(f"unknown config key {prefix + unknown[0]!r}; known keys here: {sorted(known)}")
    values = {name: _coerce(value, hints[name], prefix + name) for name, value in data.items()}
    return cls(**values)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `section.key=value` strings to a nested dict; values are parsed as YAML scalars or lists."""
    result = {key: (dict(value) if isinstance(value, dict) else value) for key, value in data.items()}
    for override in overrides:
        path, sep, raw = override.partition("=")
        if not sep or not path:
            raise InputError(f"--set {override!r} must look like section.key=value")
        keys = path.strip().split(".")
        node = result
        for key in keys[:-1]:
            child = node.get(key)
            node[key] = dict(child) if isinstance(child, dict) else {}
            node = node[key]
        node[keys[-1]] = yaml.safe_load(raw)
    return result


def load_config(cls: type[C], path: str | Path | None = None, overrides: list[str] | None = None) -> C:
    """Defaults of `cls`, then the YAML file, then `--set` overrides; validated."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"config file {path} does not exist")
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        if loaded is not None and not isinstance(loaded, dict):
            raise InputError(f"config file {path} must hold a mapping of sections")
        data = loaded or {}
    config = from_dict(cls, apply_overrides(data, overrides or []))
    config.validate()
    return config


def save_config(config: Any, path: str | Path) -> None:
    atomic_write_text(path, yaml.safe_dump(to_dict(config), sort_keys=False))
