"""Packaging a trained run: copy its weights into ``contrafuse/weights/`` and write a model card
from the run's own config and loss logs (data, split, schedule, wall time, hardware, final
losses) plus test-split metrics."""

from __future__ import annotations

import csv
import json
import os
import re
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


def store_half(source: Path, target: Path) -> None:
    """Write ``source``'s weights to ``target`` with float32 parameters stored as float16 (halves the
    package size; they load back into float32 models). BatchNorm running statistics stay float32
    (CoCoNet's variances exceed float16's range). Metadata is kept; the write is atomic."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(source), "pt") as handle:
        metadata = handle.metadata()
        names = handle.keys()  # a safe_open handle is not a mapping
        state = {k: handle.get_tensor(k) for k in names}
    wanted = {k for k, v in state.items() if v.dtype == torch.float32 and ".running_" not in k}
    if not wanted and Path(source).resolve() == Path(target).resolve():
        return  # already stored as float16: leave the file (and its benchmark cache key) alone
    state = {k: v.half() if k in wanted else v for k, v in state.items()}
    tmp = target.with_name(target.name + ".tmp")
    save_file(state, str(tmp), metadata=metadata)
    tmp.chmod(0o644)  # safetensors writes owner-only files
    os.replace(tmp, target)


def write_model_card(run_dir, name: str, title: str, test_tables: dict[str, str], notes: list[str],
                     half: bool = False) -> Path:
    """Copy ``run_dir/model.safetensors`` (or the newest export) to the package as ``name``.safetensors
    (float16 storage when ``half``) and write ``name``.md. ``test_tables``: heading -> markdown
    table of test metrics."""
    run_dir = Path(run_dir)
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    for key in ("split", "init_weights", "mask_dir"):  # resolved at load time; shown from here
        if key in cfg and Path(cfg[key]).is_absolute() and Path(cfg[key]).is_relative_to(Path.cwd()):
            cfg[key] = str(Path(cfg[key]).relative_to(Path.cwd()))
    source = run_dir / "model.safetensors"
    if not source.exists():
        source = run_dir / "export.safetensors"
    target = PACKAGE_WEIGHTS / f"{name}.safetensors"
    PACKAGE_WEIGHTS.mkdir(parents=True, exist_ok=True)
    if half:
        store_half(source, target)
    else:
        shutil.copyfile(source, target)
    stages = stage_summaries(run_dir, cfg)
    wall = max((s["end_seconds"] for s in stages), default=0.0)
    lines = [f"# Model card: {title}", "",
             weights_line(name, half), "",
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
    lines += [""] + test_section(test_tables) + ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    card = PACKAGE_WEIGHTS / f"{name}.md"
    card.write_text("\n".join(lines))
    return card


def weights_line(name: str, half: bool) -> str:
    size = (PACKAGE_WEIGHTS / f"{name}.safetensors").stat().st_size / 1e6
    return (f"Weights: `contrafuse/weights/{name}.safetensors` ({size:.1f} MB, safetensors, trainable parameters "
            f"and BatchNorm statistics only{', stored as float16' if half else ''}).")


def test_section(test_tables: dict[str, str]) -> list[str]:
    lines = ["## Test metrics", ""]
    for heading, table in test_tables.items():
        lines += [f"### {heading}", "", table, ""]
    return lines


def refresh_model_card(name: str, test_tables: dict[str, str], notes: list[str], half: bool = False) -> Path:
    """Re-evaluate a shipped model whose training run is no longer at hand: rewrite the card's
    weights line, test metrics and notes, keeping its training section; store the weights as
    float16 when ``half``."""
    card = PACKAGE_WEIGHTS / f"{name}.md"
    weights = PACKAGE_WEIGHTS / f"{name}.safetensors"
    if half:
        store_half(weights, weights)
    text = card.read_text()
    text = re.sub(r"^Weights: .*$", lambda _: weights_line(name, half), text, count=1, flags=re.MULTILINE)
    head = text[: text.index("## Test metrics")]
    card.write_text(head + "\n".join(test_section(test_tables) + ["## Notes", ""] + [f"- {n}" for n in notes] + [""]))
    return card
