"""Copy trained runs into the package and write their model cards (a maintainer's script: the
package never writes into itself).

    python benchmarks/package_models.py --run coconet=runs/coconet_tno \
        --run clfnet=runs/clfnet_tno --run coconet-medical=runs/coconet_medical

NAME is a model spec (``contrafuse/models/NAME.yaml``) whose weights ship in the package: the spec
names the weights file, its model card and whether it is stored as float16.

A model trained in several runs, each continuing the previous one's weights, is named by its run
folders joined with ``+``; ``@EPOCH`` after the last picks that epoch's checkpoint of its last stage
(an early stop chosen on validation) instead of the run's final weights, and its logs are read up
to that epoch:

    python benchmarks/package_models.py \
        --run coconet=runs/coconet_tno+runs/coconet_tno_more@9

A card's training section is written here from the run folders, which are not committed: their
configs, loss logs (schedule, final losses, wall time) and ``sessions.jsonl`` (the hardware each
training session recorded). Its weights line and test metrics are generated blocks that
benchmarks/render_docs.py renders from the spec, the weights file and docs/benchmark/summary.json,
and re-renders (``--check`` in the tests) whenever the report is regenerated; numbers in ``--note``
texts can be bound to their results file the same way (``<!-- value:FILE#KEY -->``).
``--refresh NAME`` rewrites the notes of a shipped model whose run folder is gone, keeping its
training section.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

import yaml

from render_docs import CARDS, render  # benchmarks/, beside this script

from contrafuse.io import write_text_atomic
from contrafuse.models import MODEL_SPECS
from contrafuse.weights import PACKAGE_WEIGHTS, store_half


def stage_summaries(run_dir: Path, cfg: dict, until_epoch: int | None = None) -> list[dict]:
    """One row per stage logged in ``run_dir``; the last stage's log is cut after ``until_epoch``."""
    rows = []
    for index, stage in enumerate(cfg["stages"]):
        log = run_dir / f"log_{stage['name']}.csv"
        if not log.exists():
            continue
        with open(log, newline="") as handle:
            entries = list(csv.DictReader(handle))
        if until_epoch is not None and index == len(cfg["stages"]) - 1:
            entries = [row for row in entries if int(row["epoch"]) <= until_epoch]
        last = entries[-1]
        losses = {k: float(v) for k, v in last.items() if k not in ("stage", "epoch", "batch", "step", "seconds")}
        tail = entries[-20:]
        mean_tail = {k: sum(float(r[k]) for r in tail) / len(tail) for k in losses}
        rows.append({"stage": stage["name"], "planned_epochs": stage["epochs"], "epochs_run": int(last["epoch"]),
                     "last_batch": int(last["batch"]), "steps": len(entries), "end_seconds": float(last["seconds"]),
                     "final_losses_mean_of_last_20_steps": mean_tail})
    return rows


def training_hardware(run_dir: Path) -> str:
    """The machines a run trained on, from the ``sessions.jsonl`` its training loop appends one line
    to per start or resume (machine, device, precision, processes)."""
    log = run_dir / "sessions.jsonl"
    if not log.is_file():
        return "not recorded (a run from before sessions.jsonl)"
    seen = []
    for line in log.read_text().splitlines():
        session = json.loads(line)
        text = (f"{session['machine'].get('cpu')} ({session['machine'].get('cores')} cores), {session['device']}, "
                f"{session['precision']}, {session['world_size']} process(es), torch {session['machine'].get('torch')}")
        if text not in seen:
            seen.append(text)
    return "; ".join(f"`{t}`" for t in seen)


def run_config(run_dir: Path) -> dict:
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    for key in ("split", "init_weights", "mask_dir"):  # resolved at load time; shown from here
        if key in cfg and Path(cfg[key]).is_absolute() and Path(cfg[key]).is_relative_to(Path.cwd()):
            cfg[key] = str(Path(cfg[key]).relative_to(Path.cwd()))
    return cfg


def write_model_card(runs: str, model: str, title: str, notes: list[str]) -> Path:
    """Copy the last run's ``model.safetensors`` (or the newest export, or with ``@EPOCH`` that
    epoch's checkpoint) into the package as the file ``model``'s spec names (float16 storage where it
    says so) and write its card beside it. ``runs``: run folders joined by ``+``, each continuing the
    one before."""
    weights = MODEL_SPECS[model].weights
    name, half = Path(weights.file).stem, weights.stored == "float16"
    last, _, epoch = runs.rpartition("@") if "@" in runs else (runs, "", "")
    run_dirs = [Path(d) for d in last.split("+")]
    until = int(epoch) if epoch else None
    configs = [run_config(d) for d in run_dirs]
    if until is None:
        source = run_dirs[-1] / "model.safetensors"
        if not source.exists():
            source = run_dirs[-1] / "export.safetensors"
    else:
        source = run_dirs[-1] / f"{configs[-1]['stages'][-1]['name']}_epoch{until}.safetensors"
    target = PACKAGE_WEIGHTS / f"{name}.safetensors"
    PACKAGE_WEIGHTS.mkdir(parents=True, exist_ok=True)
    if half:
        store_half(source, target)
    else:
        shutil.copyfile(source, target)
    stages, wall, hardware = [], 0.0, []
    for position, (run_dir, cfg) in enumerate(zip(run_dirs, configs)):
        run_stages = stage_summaries(run_dir, cfg, until if position == len(run_dirs) - 1 else None)
        stages += run_stages
        wall += max((s["end_seconds"] for s in run_stages), default=0.0)
        recorded = training_hardware(run_dir)
        if recorded not in hardware:
            hardware.append(recorded)
    if len(run_dirs) == 1:
        config_lines = [f"- Config: `{json.dumps({k: v for k, v in configs[0].items() if k != 'stages'})}`"]
    else:
        config_lines = [f"- Config of run {i} of {len(run_dirs)} (`{d}`): "
                        f"`{json.dumps({k: v for k, v in c.items() if k != 'stages'})}`"
                        for i, (d, c) in enumerate(zip(run_dirs, configs), 1)]
    if until is not None:
        config_lines.append(f"- Weights: the last run's checkpoint after {configs[-1]['stages'][-1]['name']} "
                            f"epoch {until} (`{source}`); the table below stops there.")
    wall_line = (f"- Wall time: {wall / 3600:.2f} h of training steps; hardware, as the "
                 f"{'run' if len(run_dirs) == 1 else 'runs'} recorded it: {'; '.join(hardware)}.")
    lines = [f"# Model card: {title}", "",
             block("card-weights", model), "",
             "## Training", "",
             *config_lines,
             f"- Split: `{configs[0]['split']}` (see docs/data.md); no test pair in training.",
             wall_line, "",
             "| stage | planned epochs | reached (epoch, batch) | steps | final losses (mean of last 20 steps) |",
             "|---|---|---|---|---|"]
    for s in stages:
        losses = ", ".join(f"{k} {v:.4g}" for k, v in s["final_losses_mean_of_last_20_steps"].items())
        lines.append(f"| {s['stage']} | {s['planned_epochs']} | ({s['epochs_run']}, {s['last_batch']}) | "
                     f"{s['steps']} | {losses} |")
    card = PACKAGE_WEIGHTS / f"{name}.md"
    write_text_atomic(card, render("\n".join(lines) + "\n\n" + card_tail(model, notes)))
    return card


def block(kind: str, model: str) -> str:
    """A generated block of benchmarks/render_docs.py, empty until rendered."""
    return f"<!-- generated:{kind} {model} -->\n<!-- /generated:{kind} -->"


def card_tail(model: str, notes: list[str]) -> str:
    """A card from its test metrics on: the generated tables, then the notes."""
    return "\n".join(["## Test metrics", "", block("card-tests", model), "", "## Notes", ""]
                     + [f"- {n}" for n in notes] + [""])


def refresh_model_card(model: str, notes: list[str]) -> Path:
    """Rewrite the notes of a shipped model whose training run is no longer at hand, keeping its
    training section, and re-render its generated blocks; store the weights as float16 where the
    spec says so."""
    weights = MODEL_SPECS[model].weights
    path = PACKAGE_WEIGHTS / weights.file
    if weights.stored == "float16":
        store_half(path, path)
    card = path.with_suffix(".md")
    text = card.read_text()
    write_text_atomic(card, render(text[: text.index("## Test metrics")] + card_tail(model, notes)))
    return card


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", action="append", default=[], help="NAME=RUN_DIR[+RUN_DIR...][@EPOCH]")
    parser.add_argument("--refresh", action="append", default=[], help="NAME of a shipped model whose notes to rewrite")
    parser.add_argument("--note", action="append", default=[], help="NAME=text (repeatable)")
    args = parser.parse_args()
    notes: dict[str, list[str]] = {}
    for item in args.note:
        name, text = item.split("=", 1)
        notes.setdefault(name, []).append(text)
    footer = ["Full comparison with the classical baselines and the papers' published rows: docs/benchmark/report.md."]
    for item in [*args.run, *args.refresh]:
        model, run_dir = item.split("=", 1) if "=" in item else (item, None)
        if run_dir:
            card = write_model_card(run_dir, model, CARDS[model][0], notes.get(model, []) + footer)
        else:
            card = refresh_model_card(model, notes.get(model, []) + footer)
        print(f"wrote {card}")


if __name__ == "__main__":
    main()
