"""Training configs: one YAML file per experiment, validated against the keys of its method.

The keys every method reads are declared here (:data:`KEYS`, :data:`STAGE_KEYS` for an entry of
``stages``); each method's own keys with its recipe (``keys``, ``stage_keys`` in
:mod:`contrafuse.train.recipes`), so a key of another method is an error too. Unknown keys,
missing required keys, wrong types and out-of-range values are one-line errors naming the key and
the file. A config may extend another (``base:``, dotted keys, ``null`` to delete an inherited key:
:mod:`contrafuse.inherit`), and the command line may override keys (``seed=3``; a stage's keys
also by its name: ``finetune.epochs=10``); a sweep file (:mod:`contrafuse.train.sweep`) describes
many configs, one per point.

Input paths (``split``, ``init_weights``, ``mask_dir``) are relative to the file that names them
(an override's: to the working directory), so a config works from any directory;
``package:NAME`` names a file shipped in ``contrafuse/weights``, and ``split`` may name a built-in
split (``tno``, ``harvard_medical``: ``contrafuse/data/splits``). ``output`` is relative to the
working directory, where runs are written.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import ContrafuseError
from ..inherit import apply, load_layers, parse_override
from ..io import read_yaml_mapping
from ..precision import PRECISIONS
from ..schema import NUMBER, Key, check_dotted, check_keys
from .recipes import RECIPES

#: the torch.optim classes a config's ``optimizer.type`` may name
OPTIMIZERS = ("Adam", "AdamW", "SGD")

KEYS = {
    "method": Key(str, required=True),  # a registered recipe (RECIPES)
    "split": Key(str, required=True, path=True),
    "lr": Key(NUMBER, required=True, minimum=1e-12),
    "batch_size": Key(int, required=True, minimum=1),
    "patch_size": Key(int, required=True, minimum=8),
    "seed": Key(int),
    "output": Key(str),
    "checkpoint_minutes": Key(NUMBER, minimum=0.01),
    "threads": Key(int, minimum=1),
    "precision": Key(str, choices=PRECISIONS),
    "init_weights": Key(str, path=True),
    "start_epoch": Key(int, minimum=0),
    # the optimiser (Adam by default, as both papers train): a torch.optim class and its keyword arguments
    "optimizer": Key(dict, table={"type": Key(str, choices=OPTIMIZERS), "betas": Key(list),
                                  "eps": Key(NUMBER, minimum=0), "weight_decay": Key(NUMBER, minimum=0),
                                  "momentum": Key(NUMBER, minimum=0)}),
}
STAGE_KEYS = {
    "name": Key(str),
    "epochs": Key(int, required=True, minimum=1),
    "batch_size": Key(int, minimum=1),
    "converge": Key(dict, table={"tolerance": Key(NUMBER, minimum=0), "patience": Key(int, minimum=1)}),
}


def method_keys(method: str) -> dict[str, Key]:
    """Every key a config for ``method`` may hold (the shared ones and its recipe's)."""
    recipe = RECIPES.get(method)
    stages = Key(list, required=True, items={**STAGE_KEYS, **recipe.stage_keys})
    return {**KEYS, "stages": stages, **recipe.keys}


def path_keys() -> set[str]:
    """The keys that hold input paths, for any method."""
    return {name for method in RECIPES.names() for name, key in method_keys(method).items() if key.path}


def resolve_input_path(value: str, base: Path) -> str:
    """``package:NAME`` -> the shipped file; a relative path -> relative to ``base``."""
    if value.startswith("package:"):
        from ..weights import PACKAGE_WEIGHTS
        return str(PACKAGE_WEIGHTS / value[len("package:"):])
    return str(base / value) if not os.path.isabs(value) else value


def resolve_paths(layer: dict, base: Path) -> None:
    """Resolve the input paths one config layer names, relative to ``base`` (its folder)."""
    from ..data.datasets import SPLITS

    for name in path_keys() & set(layer):
        value = layer[name]
        if isinstance(value, str):
            layer[name] = str(SPLITS[value]) if name == "split" and value in SPLITS else resolve_input_path(value, base)


def validate(cfg: dict, where, changed: Iterable[str] = ()) -> dict:
    """Check a resolved config against its method's keys (``changed``: dotted keys set on top of a
    file, checked by name first so that a mistaken one is named as written); adds ``_path``."""
    method = cfg.get("method")
    if "method" not in cfg:
        raise ContrafuseError(where, "missing required key 'method'")
    if not isinstance(method, str) or method not in RECIPES:
        raise ContrafuseError(where, f"method must be one of {', '.join(RECIPES.names())}, not {method!r}")
    table = method_keys(method)
    for name in cfg:
        owners = [m for m in RECIPES.names() if m != method and name not in table and name in method_keys(m)]
        if owners:
            raise ContrafuseError(where, f"key {name!r} is for method {' and '.join(owners)}; method {method!r} does not use it")
    for dotted in changed:
        check_dotted(table, dotted, where)
    check_keys(table, cfg, "", where)
    if not cfg["stages"]:
        raise ContrafuseError(where, "stages must list at least one stage")
    check = getattr(RECIPES.get(method), "check_config", None)
    if check is not None:
        check(cfg, where)
    cfg["_path"] = str(where)
    return cfg


def stage_key(cfg: dict, key: str) -> str:
    """A dotted key that starts with a stage's name reaches into that stage (``finetune.epochs`` is
    ``stages.finetune.epochs``); other keys are returned as they are."""
    first = key.split(".")[0]
    names = [stage.get("name") for stage in cfg.get("stages", []) if isinstance(stage, dict)]
    known = {name for method in RECIPES.names() for name in method_keys(method)}
    return f"stages.{key}" if "." in key and first not in known and first in names else key


def apply_overrides(cfg: dict, overrides: Iterable[str]) -> list[str]:
    """Apply command-line ``key=value`` overrides (input paths relative to the working directory);
    returns the keys they set."""
    keys = []
    for text in overrides:
        key, value = parse_override(text)
        key = stage_key(cfg, key)
        layer = {key: value}
        resolve_paths(layer, Path())
        apply(cfg, key, layer[key], f"override {text!r}")
        keys.append(key)
    return keys


def is_sweep(mapping: dict) -> bool:
    """A config file with ``axes`` or ``variants`` is a sweep (:mod:`contrafuse.train.sweep`)."""
    return "axes" in mapping or "variants" in mapping


def with_overrides(cfg: dict, where, overrides: Iterable[str]) -> dict:
    """``cfg`` (resolved, from ``where``) with command-line ``overrides`` applied, validated."""
    overrides = list(overrides)
    changed = apply_overrides(cfg, overrides)
    try:
        return validate(cfg, where, changed)
    except ContrafuseError as exc:
        if changed:  # the overrides may be what is wrong: say so
            raise ContrafuseError(exc.where, f"{exc.problem} (with overrides {' '.join(overrides)})") from None
        raise


def load_config(path: str | os.PathLike, overrides: Iterable[str] = ()) -> dict:
    """Read, resolve and validate a training config (see the module docstring); ``overrides``
    (``key=value``) are applied last. A point of a sweep: :func:`contrafuse.train.sweep.load_point`."""
    path = Path(path)
    if is_sweep(read_yaml_mapping(path)):
        raise ContrafuseError(path, "is a sweep: train one of its points with --point NAME, or all of them with "
                                    "'contrafuse sweep run'")
    return with_overrides(load_layers(path, resolve_paths), path, overrides)
