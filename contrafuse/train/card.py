"""Packaging a trained run: copy its weights into ``contrafuse/weights/`` and write a model card
from the run's own config and loss logs (data, split, schedule, wall time, hardware, final
losses) plus test-split metrics."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import yaml

from ..bench.timing import machine_info
from ..weights import PACKAGE_WEIGHTS


def stage_summaries(run_dir: Path, cfg: dict) -> list[dict]:
    rows = []
    for stage in cfg["stages"]:
        log = run_dir / f"log_{stage['name']}.csv"
        if not log.exists():
            continue
        with open(log, newline="") as handle:
            entries = list(csv.DictReader(handle))
        last = entries[-1]
        losses = {k: float(v) for k, v in last.items() if k not in ("stage", "epoch", "batch", "step", "seconds")}
        tail = entries[-20:]
        mean_tail = {k: sum(float(r[k]) for r in tail) / len(tail) for k in losses}
        rows.append({"stage": stage["name"], "planned_epochs": stage["epochs"], "epochs_run": int(last["epoch"]),
                     "last_batch": int(last["batch"]), "steps": len(entries), "end_seconds": float(last["seconds"]),
                     "final_losses_mean_of_last_20_steps": mean_tail})
    return rows


def write_model_card(run_dir, name: str, title: str, test_tables: dict[str, str], notes: list[str]) -> Path:
    """Copy ``run_dir/model.safetensors`` (or the newest export) to the package as ``name``.safetensors
    and write ``name``.md. ``test_tables``: heading -> markdown table of test metrics."""
    run_dir = Path(run_dir)
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    source = run_dir / "model.safetensors"
    if not source.exists():
        source = run_dir / "export.safetensors"
    target = PACKAGE_WEIGHTS / f"{name}.safetensors"
    PACKAGE_WEIGHTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    stages = stage_summaries(run_dir, cfg)
    wall = max((s["end_seconds"] for s in stages), default=0.0)
    lines = [f"# Model card: {title}", "",
             (f"Weights: `contrafuse/weights/{name}.safetensors` ({target.stat().st_size / 1e6:.1f} MB, "
              "safetensors, trainable parameters and BatchNorm statistics only)."), "",
             "## Training", "",
             f"- Config: `{json.dumps({k: v for k, v in cfg.items() if k != 'stages'})}`",
             f"- Split: `{cfg['split']}` (see docs/data.md); no test pair in training.",
             (f"- Wall time: {wall / 3600:.2f} h of training steps on `{json.dumps(machine_info())}` "
              "(shared with other jobs part of the time)."), "",
             "| stage | planned epochs | reached (epoch, batch) | steps | final losses (mean of last 20 steps) |",
             "|---|---|---|---|---|"]
    for s in stages:
        losses = ", ".join(f"{k} {v:.4g}" for k, v in s["final_losses_mean_of_last_20_steps"].items())
        lines.append(f"| {s['stage']} | {s['planned_epochs']} | ({s['epochs_run']}, {s['last_batch']}) | "
                     f"{s['steps']} | {losses} |")
    lines += ["", "## Test metrics", ""]
    for heading, table in test_tables.items():
        lines += [f"### {heading}", "", table, ""]
    lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    card = PACKAGE_WEIGHTS / f"{name}.md"
    card.write_text("\n".join(lines))
    return card
