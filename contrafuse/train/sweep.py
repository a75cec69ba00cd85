"""Sweeps: many training runs described by one file, each point a run folder (``contrafuse sweep``).

A sweep file (``configs/sweeps/<study>.yaml``)::

    base: ../coconet_tno.yaml            # the training config every point starts from
    output: runs/my_study                # each point's run folder: <output>/<point name>
    prefix: coconet_                     # point names: <prefix><variant>_<axis><value>...
    set: {threads: 1}                    # keys every point changes
    axes: {seed: [0, 1]}                 # every combination of these values ...
    variants:                            # ... with each of these named changes
      - {name: full}
      - {name: wo_ca, label: "w/o ca", set: {mam.channel_attention: false}}

A point applies ``set``, then its variant's ``set``, then its axis values to the base, by the rules
of :mod:`contrafuse.inherit` (dotted keys, mappings merged, ``null`` deletes); input paths in the
sweep are relative to it. Points are ordered by axis values (outer) and variants (inner); an axis
is named by its last key in point names (``seed2``, ``channel_attentionfalse``). Each point's
config is validated as a training config, and ``contrafuse train METHOD --config SWEEP --point
NAME`` trains one point. :func:`run` trains the points that are not done, ``jobs`` at a time, each
in its own process; a point with a checkpoint is resumed (first), a finished one skipped, and
points that several sweeps share (the same run folder) are trained once.
"""

from __future__ import annotations

import copy
import csv
import difflib
import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from ..errors import ContrafuseError
from ..inherit import apply, load_layers
from ..io import read_yaml_mapping
from ..schema import Key, check_keys
from .config import is_sweep, resolve_paths, stage_key, validate, with_overrides

KEYS = {
    "base": Key(str, required=True),
    "output": Key(str, required=True),
    "prefix": Key(str),
    "set": Key(dict),
    "axes": Key(dict),
    "variants": Key(list, items={"name": Key(str, required=True), "label": Key(str), "set": Key(dict)}),
}
STATES = ("done", "started", "waiting")


@dataclass
class Point:
    """One training run of a sweep: its name, variant (name and label), axis values and validated config."""
    name: str
    variant: str | None
    label: str
    values: dict
    config: dict
    sweep: Path

    @property
    def folder(self) -> Path:
        return Path(self.config["output"])

    def state(self) -> str:
        """``done`` (exported model), ``started`` (a checkpoint to resume) or ``waiting``."""
        if (self.folder / "model.safetensors").is_file():
            return "done"
        return "started" if (self.folder / "checkpoint.pt").is_file() else "waiting"


@dataclass
class Sweep:
    path: Path
    points: list[Point]

    def point(self, name: str) -> Point:
        for point in self.points:
            if point.name == name:
                return point
        names = [p.name for p in self.points]
        close = difflib.get_close_matches(name, names, n=1)
        raise ContrafuseError(self.path, f"no point named {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                              + f"; its points: {', '.join(names)}")


def _value_text(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "-".join(map(_value_text, value)) or "none"
    return str(value)


def load_sweep(path: str | os.PathLike) -> Sweep:
    """Read a sweep file and resolve and validate every point (module docstring)."""
    path = Path(path)
    raw = read_yaml_mapping(path)
    if not is_sweep(raw):
        raise ContrafuseError(path, "is not a sweep (a sweep lists axes or variants; see contrafuse/train/sweep.py)")
    check_keys(KEYS, raw, "", path)
    axes = {str(axis): values for axis, values in raw.get("axes", {}).items()}
    for axis, values in axes.items():
        if not isinstance(values, list) or not values:
            raise ContrafuseError(path, f"axes.{axis} must be a non-empty list of values, not {values!r}")
    variants = raw.get("variants", [{}] if axes else [])
    if not variants:
        raise ContrafuseError(path, "variants must list at least one variant")
    for entry in variants:
        if "output" in entry.get("set", {}):
            raise ContrafuseError(path, f"variant {entry['name']!r} sets output; a point's run folder is <output>/<name>")
        if clash := set(entry.get("set", {})) & set(axes):
            raise ContrafuseError(path, f"variant {entry['name']!r} sets {sorted(clash)[0]!r}, which is an axis")
        resolve_paths(entry.setdefault("set", {}), path.parent)
    common = raw.get("set", {})
    if "output" in common:
        raise ContrafuseError(path, "set: output is the sweep's 'output' folder and each point's name")
    resolve_paths(common, path.parent)
    base = load_layers(path.parent / raw["base"], resolve_paths)
    points, seen = [], set()
    for combination in itertools.product(*axes.values()):
        values = dict(zip(axes, combination))
        for entry in variants:
            parts = ([entry["name"]] if "name" in entry else []) + [
                f"{axis.split('.')[-1]}{_value_text(value)}" for axis, value in values.items()]
            name = raw.get("prefix", "") + "_".join(parts)
            if not re.fullmatch(r"[A-Za-z0-9_.+-]+", name) or name in (".", ".."):
                raise ContrafuseError(path, f"point name {name!r} is not a usable folder name (letters, digits, _ . + -)")
            if name in seen:
                raise ContrafuseError(path, f"two points are named {name!r}")
            seen.add(name)
            cfg = copy.deepcopy(base)
            changed = []
            for key, value in [*common.items(), *entry["set"].items(), *values.items()]:
                changed.append(stage_key(cfg, str(key)))
                apply(cfg, changed[-1], value, path)
            cfg["output"] = str(Path(raw["output"]) / name)
            validate(cfg, f"{path} [{name}]", changed)
            points.append(Point(name, entry.get("name"), entry.get("label", entry.get("name", "")), values, cfg, path))
    return Sweep(path, points)


def load_point(path: str | os.PathLike, name: str, overrides: Iterable[str] = ()) -> dict:
    """The training config of one point of a sweep, command-line ``overrides`` applied last."""
    point = load_sweep(path).point(name)
    return with_overrides({k: v for k, v in point.config.items() if k != "_path"}, point.config["_path"], overrides)


def collect(paths: Iterable[str | os.PathLike], only: list[str] | None = None) -> list[Point]:
    """The points of several sweeps in order, each run folder once (sweeps that share a point must
    agree on its config), and of those only the ones whose names match a glob of ``only``, in the
    order of the first glob each matches."""
    chosen: dict[str, Point] = {}
    for path in paths:
        for point in load_sweep(path).points:
            folder = os.path.normpath(point.folder)
            if folder not in chosen:
                chosen[folder] = point
            elif {**chosen[folder].config, "_path": ""} != {**point.config, "_path": ""}:
                raise ContrafuseError(path, f"point {point.name}: run folder {folder} belongs to "
                                            f"{chosen[folder].sweep} too, with another config")
    points = list(chosen.values())
    if only:
        rank = {p.name: next((i for i, pattern in enumerate(only) if fnmatch(p.name, pattern)), None) for p in points}
        points = sorted((p for p in points if rank[p.name] is not None), key=lambda p: rank[p.name])
        if not points:
            raise ContrafuseError("--only", f"{' '.join(only)} matches no point")
    return points


def launch(point: Point, resume: bool, device: str) -> subprocess.Popen:
    """Train one point in a child process of its own session (so that a Ctrl-C reaches it once, passed
    on by :func:`run`); its output goes to ``<output>/logs/<name>.log``."""
    log = point.folder.parent / "logs" / f"{point.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "contrafuse", "train", point.config["method"], "--config", str(point.sweep),
               "--point", point.name, "--device", device] + (["--resume"] if resume else [])
    with open(log, "a") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def run(points: list[Point], jobs: int = 1, device: str = "cpu", *,
        start: Callable[[Point, bool, str], subprocess.Popen] = launch, poll: float = 5.0) -> int:
    """Train every point that is not done, ``jobs`` at a time, started ones first (resumed); on
    Ctrl-C or SIGTERM each running point checkpoints and stops. Exit status 2 if a point failed."""
    todo = sorted((p for p in points if p.state() != "done"), key=lambda p: p.state() != "started")
    print(f"{len(points)} points: {len(points) - len(todo)} done, {len(todo)} to train", flush=True)
    active: list[tuple[subprocess.Popen, Point]] = []
    failed = []
    try:
        while todo or active:
            for proc, point in list(active):
                if proc.poll() is not None:
                    active.remove((proc, point))
                    if proc.returncode:
                        failed.append(point.name)
                    print(f"{time.strftime('%F %T')} {point.name} "
                          f"{'exited with ' + str(proc.returncode) if proc.returncode else 'finished'}", flush=True)
            while todo and len(active) < jobs:
                point = todo.pop(0)
                resume = point.state() == "started"
                print(f"{time.strftime('%F %T')} start {point.name}{' (resume)' if resume else ''}", flush=True)
                active.append((start(point, resume, device), point))
            if active:
                time.sleep(poll)
    except KeyboardInterrupt:
        for proc, _ in active:
            proc.send_signal(signal.SIGTERM)  # each run checkpoints and exits
        for proc, _ in active:
            proc.wait()
        raise
    print(f"{len(points) - len(failed)} points done, {len(failed)} failed{': ' + ', '.join(failed) if failed else ''}")
    return 2 if failed else 0


def stage_logs(point: Point) -> list[tuple[str, list[dict]]]:
    """The loss log of each stage that has one, in training order: (stage name, rows), one row per
    step in step order. A run resumed from a checkpoint logs the steps after it again; the later row
    is the one its weights kept."""
    logs = []
    for index, stage in enumerate(point.config["stages"]):
        name = str(stage.get("name", index))
        path = point.folder / f"log_{name}.csv"
        if path.is_file():
            with open(path, newline="") as f:
                rows = {int(row["step"]): row for row in csv.DictReader(f)}
            if rows:
                logs.append((name, [rows[step] for step in sorted(rows)]))
    return logs


def progress(point: Point) -> str:
    """Where a started run is: stage, epoch, batch and hours of training from its last log row."""
    logs = stage_logs(point)
    if not logs:
        return ""
    stage, rows = logs[-1]
    last = rows[-1]
    return f"stage {stage}, epoch {last['epoch']}, batch {last['batch']}, {float(last['seconds']) / 3600:.2f} h"


def summary_rows(points: list[Point]) -> list[dict]:
    """One row per point: label, axis values, state, steps, hours, and each stage's mean total loss
    over its last logged epoch (what the run folder records)."""
    rows = []
    for point in points:
        row = {"point": point.name, **({"variant": point.label} if point.variant is not None else {}),
               **{k.split(".")[-1]: _value_text(v) for k, v in point.values.items()},
               "state": point.state(), "steps": "", "hours": ""}
        for stage, log in stage_logs(point):
            last_epoch = [r for r in log if r["epoch"] == log[-1]["epoch"]]
            row[f"{stage} loss"] = f"{sum(float(r['total']) for r in last_epoch) / len(last_epoch):.5g}"
            row.update(steps=log[-1]["step"], hours=f"{float(log[-1]['seconds']) / 3600:.2f}")
        rows.append(row)
    return rows


def markdown_table(rows: list[dict]) -> str:
    columns = list(dict.fromkeys(c for row in rows for c in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"
