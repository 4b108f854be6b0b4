"""Typed configs with one override order: command line > config file (JSON) > dataclass defaults."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def load_config(cls: type[T], path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> T:
    """Build ``cls`` from its defaults, then a JSON file's values, then non-None ``overrides``.

    Unknown keys in the file or the overrides raise, naming them, so a typo never passes silently.
    """
    known = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    if path is not None:
        with open(path, encoding="utf-8") as f:
            from_file = json.load(f)
        unknown = sorted(set(from_file) - known)
        if unknown:
            raise ValueError(f"{path}: unknown {cls.__name__} field(s) {unknown}; known: {sorted(known)}")
        values.update(from_file)
    for key, value in (overrides or {}).items():
        if key not in known:
            raise ValueError(f"unknown {cls.__name__} field {key!r}; known: {sorted(known)}")
        if value is not None:
            values[key] = value
    return cls(**values)


def save_config(config: Any, path: str | Path) -> None:
    """Write a dataclass config as JSON, so a run records exactly what it ran with."""
    Path(path).write_text(json.dumps(dataclasses.asdict(config), indent=2, default=str) + "\n", encoding="utf-8")


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _parser_for(annotation: Any):
    """A string parser for a field type: int, float, str, bool, ``X | None``, and ``list[X]`` and
    ``tuple[X, ...]`` (comma-separated)."""
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        inner = _parser_for(args[0])
        return lambda text: None if text.lower() == "none" else inner(text)
    if origin is list:
        inner = _parser_for(args[0])
        return lambda text: [inner(part.strip()) for part in text.split(",") if part.strip()]
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        inner = _parser_for(args[0])
        return lambda text: tuple(inner(part.strip()) for part in text.split(",") if part.strip())
    if annotation is bool:
        return _parse_bool
    if dataclasses.is_dataclass(annotation):  # a nested config (e.g. a model's): given as the path of its JSON
        return str
    if annotation in (int, float, str):
        return annotation
    raise TypeError(f"no command-line parser for field type {annotation}")


def add_config_arguments(parser, cls: type) -> None:
    """One ``--field-name`` option per dataclass field (default None = not given), for :func:`config_overrides`."""
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(f"{cls.__name__} fields (override the --config file)")
    for f in dataclasses.fields(cls):
        group.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=_parser_for(hints[f.name]),
                           default=None, metavar=hints[f.name].__name__ if isinstance(hints[f.name], type) else "VALUE")


def config_overrides(args, cls: type) -> dict[str, Any]:
    """The dataclass fields given on the command line (None means not given)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if getattr(args, f.name) is not None}
