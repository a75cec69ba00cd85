"""Declared YAML schemas: a table of :class:`Key` per config section, checked by :func:`check_keys`.

Used by training configs (``contrafuse/train/config.py``) and benchmark configs
(``contrafuse/bench/config.py``). Unknown keys, missing required keys, wrong types, values outside
the allowed choices or below the minimum (NaN and infinities included) are one-line errors that
name the key and the file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .errors import ContrafuseError

NUMBER = (int, float)


@dataclass(frozen=True)
class Key:
    kind: type | tuple
    required: bool = False
    minimum: float | None = None  # for a dict value: the minimum of each of its values
    choices: tuple = ()
    path: bool = False  # an input path, resolved relative to the config file


def check_keys(table: dict[str, Key], values: dict, where: str, path: Path) -> None:
    """Validate the mapping ``values`` against ``table``; ``where`` prefixes key names in errors."""
    unknown = sorted(set(values) - set(table))
    if unknown:
        raise ContrafuseError(path, f"unknown key {where}{unknown[0]!r} (known: {', '.join(sorted(table))})")
    for name, key in table.items():
        if name not in values:
            if key.required:
                raise ContrafuseError(path, f"missing required key {where}{name!r}")
            continue
        value = values[name]
        kinds = key.kind if isinstance(key.kind, tuple) else (key.kind,)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            expected = " or ".join(k.__name__ for k in kinds)
            raise ContrafuseError(path, f"{where}{name} must be {expected}, not {value!r}")
        if key.choices and value not in key.choices:
            raise ContrafuseError(path, f"{where}{name} must be one of {', '.join(key.choices)}, not {value!r}")
        numbers = value.values() if isinstance(value, dict) else [value]
        if key.minimum is not None and any(
                isinstance(v, bool) or not isinstance(v, NUMBER) or not math.isfinite(v) or v < key.minimum
                for v in numbers):
            raise ContrafuseError(path, f"{where}{name} must be at least {key.minimum:g}, not {value!r}")


def check_list(values, where: str, path: Path, item_kinds: tuple, *, choices: tuple = ()) -> list:
    """``values`` must be a list whose items are of ``item_kinds`` (and among ``choices`` if given)."""
    if not isinstance(values, list):
        raise ContrafuseError(path, f"{where} must be a list, not {values!r}")
    for i, item in enumerate(values):
        if isinstance(item, bool) or not isinstance(item, item_kinds):
            expected = " or ".join(k.__name__ for k in item_kinds)
            raise ContrafuseError(path, f"{where}[{i}] must be {expected}, not {item!r}")
        if choices and item not in choices:
            raise ContrafuseError(path, f"{where}[{i}] must be one of {', '.join(map(str, choices))}, not {item!r}")
    return values
