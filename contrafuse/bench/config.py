"""Benchmark configs (``contrafuse benchmark CONFIG.yaml``), validated against declared key tables
before any work, so a mistake is a one-line error naming the key and the file
(see :mod:`contrafuse.schema`; the format is described in :mod:`contrafuse.bench.runner`).

Keys starting with ``x-`` are ignored: use them to hold YAML anchors shared by several entries
(``x-ivif: &ivif [coconet, clfnet, gff]``).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ContrafuseError
from ..io import read_yaml_mapping
from ..methods import METHODS
from ..metrics import CONVENTIONS, METRICS
from ..schema import NUMBER, Key, check_keys, check_list
from .misalign import STRENGTHS
from .suites import SUITES

KEYS = {
    "methods": Key(list),
    "metrics": Key(list),
    "conventions": Key(list),
    "datasets": Key(list),
    "grids": Key(dict),
    "complexity": Key(dict),
    "misalignment": Key(dict),
    "paper": Key(dict),
    "paper_note": Key(str),
}
# A method: registered (by name, with options), someone else's fused images: ``fused_dir`` (one
# image per pair, named by the pair's base name, any image type) or ``external`` with a ``pattern``,
# or ``recorded``: the per-image values an earlier benchmark wrote (its output folder), read, not recomputed.
METHOD_KEYS = {"name": Key(str, required=True), "label": Key(str), "options": Key(dict),
               "fused_dir": Key(str), "external": Key(str), "pattern": Key(str), "recorded": Key(str)}
#: the method keys that say where a method's results come from, instead of running it; at most one
SOURCE_KEYS = ("fused_dir", "external", "recorded")
# A dataset entry: a suite name, or a mapping that names it and gives the suite (by name, as your own
# folders {ir_dir, vis_dir}, or as {dataset, names, every} / {split, part}), optionally with methods
# of its own.
SUITE_KEYS = {"ir_dir": Key(str), "vis_dir": Key(str), "dataset": Key(str), "names": Key(list),
              "every": Key(int, minimum=1), "split": Key(str), "part": Key(str, choices=("train", "test"))}
DATASET_KEYS = {"name": Key(str), "suite": Key((str, dict)), "methods": Key(list), **SUITE_KEYS}
PATH_KEYS = ("ir_dir", "vis_dir", "fused_dir", "external", "recorded")  # relative to the config file
GRID_KEYS = {"images": Key(list), "box": Key(list), "include_sources": Key(bool)}
COMPLEXITY_KEYS = {"flops_size": Key(list), "runtime_size": Key(list)}
MISALIGNMENT_KEYS = {"datasets": Key(list), "pairs": Key(int, minimum=1), "seed": Key(int), "strengths": Key(dict)}


def _check_methods(entries, where: str, path: Path) -> None:
    check_list(entries, where, path, (str, dict))
    for i, entry in enumerate(entries):
        entry = {"name": entry} if isinstance(entry, str) else entry
        check_keys(METHOD_KEYS, entry, f"{where}[{i}].", path)
        given = [key for key in SOURCE_KEYS if key in entry]
        if len(given) > 1:
            raise ContrafuseError(path, f"{where}[{i}]: give one of {', '.join(map(repr, given))}, not several")
        if not given and entry["name"] not in METHODS:
            raise ContrafuseError(path, f"{where}[{i}]: unknown method {entry['name']!r} "
                                        f"(known: {', '.join(METHODS.names())}; or give 'fused_dir')")


def _check_suite(spec, where: str, path: Path) -> None:
    if isinstance(spec, str):
        if spec not in SUITES:
            raise ContrafuseError(path, f"{where}: unknown suite {spec!r} (known: {', '.join(SUITES)})")
        return
    if not isinstance(spec, dict):
        raise ContrafuseError(path, f"{where} must be a suite name or a mapping, not {spec!r}")
    suite = {k: v for k, v in spec.items() if k in SUITE_KEYS}
    if "suite" in spec:
        _check_suite(spec["suite"], f"{where}.suite", path)
    elif ("ir_dir" in suite) != ("vis_dir" in suite):
        raise ContrafuseError(path, f"{where}: give both 'ir_dir' and 'vis_dir'")
    elif not ("dataset" in suite or "split" in suite or "ir_dir" in suite):
        raise ContrafuseError(path, f"{where} needs 'suite', 'ir_dir' and 'vis_dir', 'dataset' or 'split'")
    if "names" in suite:
        check_list(suite["names"], f"{where}.names", path, (str,))


def _check_sizes(values: dict, where: str, path: Path) -> None:
    for name, size in values.items():
        check_list(size, f"{where}{name}", path, (int,))
        if len(size) != 2 or min(size) < 1:
            raise ContrafuseError(path, f"{where}{name} must be [height, width] in pixels, not {size!r}")


def load_benchmark_config(path: str | os.PathLike) -> dict:
    """Read and validate a benchmark config; external method folders are resolved relative to it."""
    path = Path(path)
    cfg = {k: v for k, v in read_yaml_mapping(path).items() if not str(k).startswith("x-")}
    check_keys(KEYS, cfg, "", path)
    _check_methods(cfg.get("methods", []), "methods", path)
    check_list(cfg.get("metrics", []), "metrics", path, (str,), choices=tuple(METRICS))
    check_list(cfg.get("conventions", []), "conventions", path, (str,), choices=tuple(CONVENTIONS))
    for i, entry in enumerate(check_list(cfg.get("datasets", []), "datasets", path, (str, dict))):
        if isinstance(entry, dict):
            check_keys(DATASET_KEYS, entry, f"datasets[{i}].", path)
            if "methods" in entry:
                _check_methods(entry["methods"], f"datasets[{i}].methods", path)
        _check_suite(entry, f"datasets[{i}]", path)
    if "grids" in cfg:
        check_keys(GRID_KEYS, cfg["grids"], "grids.", path)
        check_list(cfg["grids"].get("images", []), "grids.images", path, (str,))
        box = check_list(cfg["grids"].get("box", [0, 0, 1, 1]), "grids.box", path, NUMBER)
        if len(box) != 4 or any(not 0 <= v <= 1 for v in box):
            raise ContrafuseError(path, f"grids.box must be [top, left, height, width] as fractions, not {box!r}")
    if "complexity" in cfg:
        check_keys(COMPLEXITY_KEYS, cfg["complexity"], "complexity.", path)
        _check_sizes(cfg["complexity"], "complexity.", path)
    if "misalignment" in cfg:
        check_keys(MISALIGNMENT_KEYS, cfg["misalignment"], "misalignment.", path)
        for i, spec in enumerate(check_list(cfg["misalignment"].get("datasets", []), "misalignment.datasets",
                                            path, (str, dict))):
            _check_suite(spec, f"misalignment.datasets[{i}]", path)
        for level, values in cfg["misalignment"].get("strengths", {}).items():
            if level not in STRENGTHS or not isinstance(values, dict):
                raise ContrafuseError(path, f"misalignment.strengths: {level!r} must be one of "
                                            f"{', '.join(STRENGTHS)}, each a mapping")
            check_keys({k: Key(NUMBER, minimum=0) for k in STRENGTHS[level]}, values,
                       f"misalignment.strengths.{level}.", path)
    for name, rows in cfg.get("paper", {}).items():
        if not isinstance(rows, dict) or not all(isinstance(r, dict) for r in rows.values()):
            raise ContrafuseError(path, f"paper.{name} must map a row label to {{metric: value}}")
    _resolve_paths(cfg, path.parent)
    return cfg


def _resolve_paths(node, base: Path) -> None:
    """Make folder paths (and split files that are not built-in names) absolute, relative to ``base``."""
    from ..data.datasets import SPLITS

    if isinstance(node, list):
        for item in node:
            _resolve_paths(item, base)
    elif isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, str) and (key in PATH_KEYS or key == "split" and value not in SPLITS):
                node[key] = str((base / value).resolve())
            else:
                _resolve_paths(value, base)
