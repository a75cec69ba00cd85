"""Configs that inherit: ``base:`` files, dotted keys, deletions and command-line overrides.

A YAML config may start from another: ``base: ../coconet_tno.yaml`` (relative to the file; the
base may have a base of its own, and a cycle is an error). Its other keys are then applied on top
of the base's, one by one, as :func:`apply` says:

* a mapping merges into the inherited mapping key by key (recursively); any other value, lists
  included, replaces the inherited one;
* ``null`` deletes the inherited key (it is an error where nothing is inherited);
* a dotted key ``a.b.c`` reaches into nested mappings, creating them as needed, and into lists by
  index (``stages.1``) or by the ``name`` of an item (``stages.finetune.epochs``).

Command-line overrides ``key=value`` (:func:`parse_override`) are applied the same way, their value
read as YAML (``seed=3``, ``mam.vgg_levels=[low]``, ``lr=null``).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path

from .errors import ContrafuseError
from .io import read_yaml_mapping


def parse_override(text: str) -> tuple[str, object]:
    """``key.sub=value`` -> (``"key.sub"``, the value read as YAML), or a one-line error."""
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key or any(c.isspace() for c in key) or "" in key.split("."):
        raise ContrafuseError(None, f"override {text!r} must be key=value (dotted keys reach nested ones: stages.finetune.epochs=10)")
    try:
        return key, yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise ContrafuseError(None, f"override {text!r}: the value is not valid YAML "
                              f"({getattr(exc, 'problem', None) or exc})") from None


def _child(container, segment: str, dotted: str, where):
    """The index or key ``segment`` selects in ``container`` (a list: an index or an item's name)."""
    if isinstance(container, dict):
        return segment
    names = [item.get("name") if isinstance(item, dict) else None for item in container]
    if segment.isdigit() and int(segment) < len(container):
        return int(segment)
    if names.count(segment) == 1:
        return names.index(segment)
    known = ", ".join(f"{i}" + (f" ({n})" if n is not None else "") for i, n in enumerate(names))
    raise ContrafuseError(where, f"{dotted}: no item {segment!r} in the list (items: {known or 'none'})")


def apply(target: dict, key: str, value, where) -> None:
    """Apply one key of a config layer (or one override) to ``target`` in place (module docstring)."""
    *parents, last = key.split(".")
    node = target
    for i, segment in enumerate(parents):
        index = _child(node, segment, key, where)
        if isinstance(node, dict) and index not in node:
            if value is None:
                raise ContrafuseError(where, f"{key}: null deletes an inherited key, but nothing sets {'.'.join(parents[:i + 1])}")
            node[index] = {}
        child = node[index]
        if not isinstance(child, (dict, list)):
            raise ContrafuseError(where, f"{key}: {'.'.join(parents[:i + 1])} is {child!r}, which has no keys")
        node = child
    index = _child(node, last, key, where)
    present = index in node if isinstance(node, dict) else True
    if value is None:
        if not present:
            raise ContrafuseError(where, f"{key}: null deletes an inherited key, but none is set")
        del node[index]
    elif isinstance(value, dict) and present and isinstance(node[index], dict):
        for sub, sub_value in value.items():
            apply(node[index], str(sub), sub_value, where)
    else:
        node[index] = copy.deepcopy(value)


def load_layers(path: str | os.PathLike, prepare: Callable[[dict, Path], None] | None = None,
                _chain: tuple[Path, ...] = ()) -> dict:
    """The mapping a config file describes, its ``base:`` chain applied. ``prepare(layer, path)``
    sees each file's own keys first (to resolve input paths relative to the file that names them)."""
    path = Path(path)
    layer = read_yaml_mapping(path)
    here = path.resolve()
    if here in _chain:
        raise ContrafuseError(path, "base: cycle " + " -> ".join(str(p) for p in (*_chain, here)))
    merged: dict = {}
    if "base" in layer:
        base = layer.pop("base")
        if not isinstance(base, str) or not base:
            raise ContrafuseError(path, f"base must name a config file (relative to this one), not {base!r}")
        merged = load_layers(path.parent / base, prepare, (*_chain, here))
    if prepare is not None:
        prepare(layer, path.parent)
    for key, value in layer.items():
        apply(merged, str(key), value, path)
    return merged
