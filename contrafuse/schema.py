"""Declared YAML schemas: a table of :class:`Key` per config section, checked by :func:`check_keys`.

Used by training configs (``contrafuse/train/config.py``) and benchmark configs
(``contrafuse/bench/config.py``). Unknown keys, missing required keys, wrong types, values outside
the allowed choices or below the minimum (NaN and infinities included) are one-line errors that
name the key and the file (an unknown key with the closest known name). A key may declare the
table of its mapping value (``table``) or of the mappings its list holds (``items``), which are
checked in turn; :func:`check_dotted` checks a dotted key (``stages.finetune.epochs``) against them.
"""

from __future__ import annotations

import difflib
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
    table: dict | None = None  # the keys of a mapping value
    items: dict | None = None  # the keys of each mapping of a list value


def unknown_key(table: dict, name, where: str, path) -> ContrafuseError:
    """The one-line error for a key ``table`` does not declare, with the closest declared name."""
    close = difflib.get_close_matches(str(name), [str(k) for k in table], n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return ContrafuseError(path, f"unknown key {where}{name!r} ({hint}known: {', '.join(sorted(table))})")


def check_keys(table: dict[str, Key], values: dict, where: str, path: Path) -> None:
    """Validate the mapping ``values`` against ``table``; ``where`` prefixes key names in errors."""
    unknown = sorted(set(values) - set(table), key=str)
    if unknown:
        raise unknown_key(table, unknown[0], where, path)
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
        if key.table is not None:
            check_keys(key.table, value, f"{where}{name}.", path)
        for i, item in enumerate(value if key.items is not None else []):
            if not isinstance(item, dict):
                raise ContrafuseError(path, f"{where}{name}[{i}] must be a mapping, not {item!r}")
            check_keys(key.items, item, f"{where}{name}[{i}].", path)


def check_dotted(table: dict[str, Key], dotted: str, path) -> None:
    """A dotted key (an override such as ``stages.finetune.epochs``) must name declared keys: list
    items are selected by index or name, and only mappings have sub-keys."""
    parts = dotted.split(".")
    i = 0
    while i < len(parts):
        where = ".".join(parts[:i]) + "." if i else ""
        if table is None:
            raise ContrafuseError(path, f"{dotted}: {where[:-1]} has no sub-keys")
        if parts[i] not in table:
            raise unknown_key(table, parts[i], where, path)
        key = table[parts[i]]
        if key.items is not None and i + 1 < len(parts):
            i += 1  # the item's index or name
            table = key.items
        else:
            table = key.table
        i += 1


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
