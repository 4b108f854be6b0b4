"""Typed configs with one override order: command line > config file (JSON) > dataclass defaults."""

from __future__ import annotations

import dataclasses
import json
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
