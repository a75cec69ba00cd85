"""The papers' own ablations (issue 38): CoCoNet Tables 2 and 3, Figs. 15, 17 and 18; CLF-Net
Tables VI and VIII. One sweep file per table or figure, configs/sweeps/paper/<study>.yaml (the
shipped recipe with one switch changed, seeds paired), trained by ``contrafuse sweep`` in the order of
:data:`QUEUE` (resuming started runs; stop it any time):

    nohup nice -n 19 .venv/bin/python benchmarks/paper_ablations.py queue --jobs 2 >> runs/paper_ablations/queue.log 2>&1 &
    .venv/bin/python benchmarks/paper_ablations.py status       # per study: runs recorded, done, started, waiting
    .venv/bin/python benchmarks/paper_ablations.py benchmarks   # (re)write benchmarks/paper_ablations/*.yaml
    .venv/bin/python benchmarks/paper_ablations.py evaluate coconet_table2   # benchmark the finished runs
    .venv/bin/python benchmarks/paper_ablations.py tables       # docs/ablations/paper_ablations.md

A sweep's ``full`` variant is the shipped recipe; its run folder is shared by the studies of that
method (the same point in each sweep).

Run folders (``runs/``) are not kept in git and do not outlive the machine they trained on, so what a
study needs from them lands in docs/ablations/paper_<study>/ when it is evaluated: the benchmark's
per-image values (later evaluations read a run whose weights are gone from them, as a ``recorded``
method) and each run's training record (``training.json``). The queue skips runs whose values are there.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import json
import os
import shutil
import statistics
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from contrafuse.io import write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = ROOT / "configs" / "sweeps" / "paper"
BENCHMARKS = ROOT / "benchmarks" / "paper_ablations"
RUNS = Path("runs") / "paper_ablations"          # relative to the repository root, like every run
#: the fused images and metric values of every study's evaluation: a run shared by studies (full, the
#: shipped model) is fused and scored once
EVALUATION_CACHE = RUNS / "evaluation_cache"
DOCS = ROOT / "docs" / "ablations"
STUDIES = ("coconet_table2", "coconet_table3", "coconet_fig15", "coconet_fig17", "coconet_fig18",
           "clfnet_table6", "clfnet_table8")

# The papers' printed rows (CoCoNet Tables 2-3: TNO and RoadScene; CLF-Net Tables VI, VIII: 20 TNO images).
# Their VIF is the evaluation toolbox's pixel VIF summed over both sources: our VIFP (docs/REPRODUCTION.md).
COCONET_METRICS = ["EN", "SD", "VIFP", "SF", "AG", "SCD"]
CLFNET_METRICS = ["EN", "MI", "VIFP", "SD", "AG", "SF"]
PAPER = {
    "coconet_table2": {
        "tno": {"w/o ca&vgg": [6.564, 8.965, 0.705, 0.0531, 4.166, 1.736], "w/o vgg": [6.786, 9.288, 0.774, 0.0596, 5.645, 1.681],
                "w/o ca": [7.325, 9.511, 0.823, 0.0675, 6.536, 1.703], "full": [7.776, 10.591, 0.893, 0.0831, 7.967, 1.794]},
        "roadscene": {"w/o ca&vgg": [6.637, 9.431, 0.698, 0.0430, 4.31, 1.511], "w/o vgg": [6.839, 9.611, 0.769, 0.0514, 5.033, 1.524],
                      "w/o ca": [7.288, 9.980, 0.833, 0.0591, 5.653, 1.623], "full": [7.693, 10.674, 0.854, 0.0718, 6.537, 1.817]}},
    "coconet_table3": {
        "tno": {"only low": [7.387, 9.977, 0.797, 0.0694, 6.806, 1.774], "only middle": [7.078, 9.694, 0.764, 0.0497, 4.695, 1.688],
                "only high": [7.081, 9.642, 0.781, 0.0504, 4.719, 1.621], "w/o low": [6.796, 9.386, 0.712, 0.0444, 4.163, 1.544],
                "w/o middle": [7.338, 9.678, 0.756, 0.0685, 6.715, 1.693], "w/o high": [7.294, 9.555, 0.802, 0.0579, 5.762, 1.788],
                "full": [7.776, 10.591, 0.893, 0.0831, 7.967, 1.794]},
        "roadscene": {"only low": [7.491, 10.178, 0.768, 0.0648, 6.155, 1.652], "only middle": [7.155, 9.973, 0.753, 0.0483, 4.315, 1.390],
                      "only high": [7.255, 9.980, 0.787, 0.0488, 4.375, 1.424], "w/o low": [6.878, 9.516, 0.704, 0.0396, 3.570, 1.025],
                      "w/o middle": [7.394, 9.873, 0.728, 0.0638, 6.050, 1.475], "w/o high": [7.413, 9.830, 0.775, 0.0582, 5.571, 1.641],
                      "full": [7.693, 10.674, 0.854, 0.0718, 6.537, 1.817]}},
    "clfnet_table6": {"clfnet_test": {"w/o PatchNCE": [7.1474, 3.4332, 0.9703, 9.4721, 4.0682, 0.0389],
                                      "full": [7.2262, 3.6359, 1.0484, 9.6135, 4.9897, 0.0495]}},
    "clfnet_table8": {"clfnet_test": {"strategy (a)": [6.9340, 3.3141, 0.8139, 9.3358, 4.2819, 0.0479],
                                      "strategy (b)": [6.5267, 2.7148, 0.4436, 9.5201, 4.2593, 0.0465],
                                      "strategy (c)": [7.2262, 3.6359, 1.0484, 9.6135, 4.9897, 0.0495]}},
}
@dataclass(frozen=True)
class Claim:
    """One thing a paper argues with a study (shortened), and how our rows are read against it.

    ``kind="better"``: the first row of each pair scores better than the second; ``"alike"``: the rows
    score the same. ``pairs``: (row, row) labels; empty, the full model against every other row.
    ``metrics``: empty, all the study's columns. ``subject``: who the counts speak of."""
    text: str
    kind: str = "better"
    pairs: tuple = ()
    metrics: tuple = ()
    subject: str = "full"


TABLE3_ABLATED = ("only low", "only middle", "only high", "w/o low", "w/o middle", "w/o high")
CLAIMS = {
    "coconet_table2": (
        Claim("the full MAM, with channel attention and VGG-19 features, beats each variant without one or both "
              "(Sec. 4.3, Table 2)"),
        Claim("removing the pretrained VGG features lowers the metrics: ours above w/o vgg, w/o ca above "
              "w/o ca&vgg (Table 2's text)", pairs=(("full", "w/o vgg"), ("w/o ca", "w/o ca&vgg")),
              subject="the row with VGG features"),
        Claim("channel attention raises EN, SF, SD and VIF: w/o vgg above w/o ca&vgg, ours above w/o ca "
              "(Table 2's text)", pairs=(("w/o vgg", "w/o ca&vgg"), ("full", "w/o ca")),
              metrics=("EN", "SF", "SD", "VIFP"), subject="the row with channel attention")),
    "coconet_table3": (
        Claim("the full model, with features from all three VGG levels, is best in every metric (Table 3)"),
        Claim("only low comes second in most metrics, above every other variant (Table 3's text)",
              pairs=tuple(("only low", other) for other in TABLE3_ABLATED if other != "only low"),
              subject="only low"),
        Claim("w/o low performs worst (Table 3's text)",
              pairs=tuple((other, "w/o low") for other in ("full",) + TABLE3_ABLATED if other != "w/o low"),
              subject="the other row")),
    "coconet_fig15": (Claim("self-adaptive weights score higher than a fixed sigma or gamma in most cases (Fig. 15)"),),
    "coconet_fig17": (Claim("the coupled contrastive loss beats no contrast, either constraint alone and random samples "
                            "(Fig. 17, shown by images only; the metrics are our measure)"),),
    "coconet_fig18": (Claim("the result is almost independent of how the masks are obtained (Fig. 18, shown by images "
                            "only; the metrics are our measure)", kind="alike"),),
    "clfnet_table6": (Claim("the PatchNCE loss improves on the SSIM loss alone (Table VI)"),),
    "clfnet_table8": (Claim("negatives from the rest of the same image, strategy (c), are best in every metric "
                            "(Table VIII)"),),
}
#: the test sets the papers' ablations report (validation is for choices, not verdicts)
PAPER_DATASETS = {"coconet": ("tno", "roadscene"), "clfnet": ("clfnet_test",)}
#: where each study is measured: validation (roadscene_val, for any choice), our TNO test split and
#: RoadScene's test pairs; CLF-Net's tables on CLF-Net's 10 released TNO test pairs instead of RoadScene's
COCONET_DATASETS = ["roadscene_val", "tno", "roadscene"]
CLFNET_DATASETS = ["roadscene_val", "tno", {"name": "clfnet_test", "suite": {"dataset": "CLFNet_TNO_test"}}]


def points(study: str) -> list:
    """The training runs of a study: the points of its sweep (paths relative to the repository root)."""
    from contrafuse.train.sweep import load_sweep

    with contextlib.chdir(ROOT):
        return load_sweep(SWEEPS.relative_to(ROOT) / f"{study}.yaml").points


def full_label(study: str) -> str:
    """The full model's row label in a study ("detector" in Fig. 18, "strategy (c)" in Table VIII)."""
    return next(p.label for p in points(study) if p.variant == "full")


#: training order: CLF-Net's tables, then one seed of every CoCoNet variant, so that every table has a
#: first reading, Fig. 15's eleven fixed weights last; then the CoCoNet second seeds in the same order.
#: A run takes about 1-2 h on one thread here (each table's training record; for CoCoNet mostly the
#: contrastive stage, whose VGG-19 passes cost about 3x a stage-1 step)
QUEUE = ("clfnet_table6", "clfnet_table8", "coconet_table2", "coconet_table3", "coconet_fig17", "coconet_fig18",
         "coconet_fig15")
FIRST_PASS = ("clfnet_*", "coconet_*_seed2")

#: run as the reproduction report runs the shipped models (benchmarks/report.yaml): float32, untiled
REPORT_OPTIONS = {"precision": "fp32", "tile": 0}


def study_metrics(study: str) -> list[str]:
    """The columns of the paper's table for a study (CoCoNet's or CLF-Net's metric set)."""
    return COCONET_METRICS if study.startswith("coconet") else CLFNET_METRICS


def method_entry(point) -> dict:
    return {"name": point.config["method"], "label": point.name,
            "options": {"weights": str(point.folder / "model.safetensors"), **REPORT_OPTIONS}}


def benchmark_config(study: str) -> dict:
    method = study.split("_")[0]
    members = sorted(points(study), key=lambda p: (p.variant == "full", p.values["seed"], p.name))
    shipped = {"name": method, "label": f"{method}-shipped", "options": dict(REPORT_OPTIONS)}
    return {"methods": [method_entry(p) for p in members] + [shipped],
            "metrics": ["EN", "SD", "SF", "AG", "MI", "VIFF", "VIFP", "SCD", "Qabf"],
            "conventions": ["legacy"],
            "grids": {"images": ["FLIR_04932"], "box": [0.4, 0.4, 0.2, 0.2], "include_sources": False},
            "datasets": COCONET_DATASETS if method == "coconet" else CLFNET_DATASETS}


def cmd_benchmarks(args) -> int:
    BENCHMARKS.mkdir(parents=True, exist_ok=True)
    for study in STUDIES:
        tests = "RoadScene's test pairs" if study.startswith("coconet") else "CLF-Net's released TNO test pairs"
        text = (f"# Issue 38: {study} -- every run of configs/sweeps/paper/{study}.yaml and the shipped model,\n"
                f"# legacy convention, on the validation pairs, our TNO test split and {tests}.\n"
                f"#   .venv/bin/python benchmarks/paper_ablations.py evaluate {study}   # only the finished runs\n"
                f"#   contrafuse benchmark benchmarks/paper_ablations/{study}.yaml -o docs/ablations/paper_{study} "
                f"--cache {EVALUATION_CACHE}   # all\n")
        (BENCHMARKS / f"{study}.yaml").write_text(text + yaml.safe_dump(benchmark_config(study), sort_keys=False,
                                                                         default_flow_style=None))
    print(f"wrote {len(STUDIES)} benchmark configs to {BENCHMARKS.relative_to(ROOT)}")
    return 0


def recorded_runs(study: str) -> set[str]:
    """The runs whose values a study's committed evaluation holds (its ``summary.json``), the shipped
    model's row aside."""
    path = DOCS / f"paper_{study}" / "summary.json"
    if not path.is_file():
        return set()
    blocks = [v for k, v in json.loads(path.read_text()).items() if k not in ("machine", "git")]
    return {name for block in blocks for name in block["mean"] if not name.endswith("-shipped")}


def run_states(study: str) -> dict[str, str]:
    """Each run of the study: ``recorded`` (its values are in the docs), else its state here (``done``:
    trained, not evaluated yet; ``started``: a checkpoint to resume; ``waiting``)."""
    recorded = recorded_runs(study)
    return {p.name: "recorded" if p.name in recorded else p.state() for p in points(study)}


def cmd_status(args) -> int:
    """Per study, how many runs are in each :func:`run_states` state, and which are done or started here."""
    for study in STUDIES:
        states = run_states(study)
        counts = Counter(states.values())
        print(f"{study}: " + ", ".join(f"{counts[s]} {s}" for s in ("recorded", "done", "started", "waiting") if counts[s]))
        for state in ("done", "started"):
            if counts[state]:
                print(f"  {state}: " + ", ".join(n for n, s in states.items() if s == state))
    return 0


def cmd_queue(args) -> int:
    """Train every run of :data:`QUEUE` neither done here nor recorded in the docs, in one sweep (no
    core idles between passes): first the points of :data:`FIRST_PASS`, then the rest."""
    recorded = set().union(*(recorded_runs(study) for study in QUEUE))
    todo = list(dict.fromkeys(p.name for study in QUEUE for p in points(study) if p.name not in recorded))
    if not todo:
        return 0
    todo.sort(key=lambda name: not any(fnmatch.fnmatch(name, pattern) for pattern in FIRST_PASS))
    command = [str(ROOT / ".venv/bin/contrafuse"), "sweep", "run", *(f"configs/sweeps/paper/{s}.yaml" for s in QUEUE),
               "--jobs", str(args.jobs), "-q", *(arg for name in todo for arg in ("--only", name))]
    return subprocess.run(command).returncode


def cmd_evaluate(args) -> int:
    """``contrafuse benchmark`` on the study's finished runs (a filtered copy of its config), every
    study's fusions and metric values kept in :data:`EVALUATION_CACHE`. A run whose weights are gone
    here but whose values the study's docs hold is read from a copy of them (``recorded``); the
    finished runs' training records join the study's ``training.json``."""
    os.chdir(ROOT)
    for study in args.studies or STUDIES:
        cfg = yaml.safe_load((BENCHMARKS / f"{study}.yaml").read_text())
        docs, earlier = DOCS / f"paper_{study}", (RUNS / "recorded" / study).resolve()
        recorded = recorded_runs(study)
        if recorded:  # the docs' per-image tables, copied: the benchmark rewrites them
            shutil.rmtree(earlier, ignore_errors=True)
            for table in docs.glob("*/per_image_*.csv"):
                (earlier / table.parent.name).mkdir(parents=True, exist_ok=True)
                shutil.copy2(table, earlier / table.parent.name / table.name)
        methods = []
        for m in cfg["methods"]:
            if "weights" not in m["options"] or Path(m["options"]["weights"]).is_file():
                methods.append(m)
            elif m["label"] in recorded:
                methods.append({"name": m["name"], "label": m["label"], "recorded": str(earlier)})
        if not any("weights" in m.get("options", {}) for m in methods):
            print(f"{study}: no run finished here since its last evaluation")
            continue
        cfg["methods"] = methods
        record_training(study)
        filtered = RUNS / "benchmarks" / f"{study}.yaml"
        filtered.parent.mkdir(parents=True, exist_ok=True)
        filtered.write_text(yaml.safe_dump(cfg, sort_keys=False))
        command = [str(ROOT / ".venv/bin/contrafuse"), "benchmark", str(filtered), "-o", str(docs),
                   "--cache", str(EVALUATION_CACHE)]
        print(" ".join(command), flush=True)
        subprocess.run(command, check=True)
    return 0


def _fmt(values: list[float]) -> str:
    if not values:
        return "–"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.4g}"
    return f"{mean:.4g} ± {(max(values) - min(values)) / 2:.2g}"


def pair_count(study: str, dataset: str, convention: str) -> int | None:
    """How many pairs a study's report measured on ``dataset`` (its per-image CSV)."""
    table = DOCS / f"paper_{study}" / dataset / f"per_image_{convention}.csv"
    if not table.is_file():
        return None
    return len({line.split(",", 1)[0] for line in table.read_text().splitlines()[1:] if line})


def study_table(study: str, summary: dict) -> list[str]:
    """Markdown rows: the paper's labels, our mean ± half-range over seeds beside the paper's numbers."""
    method = study.split("_")[0]
    metrics = study_metrics(study)
    members, full = points(study), full_label(study)
    labels = list(dict.fromkeys(p.label for p in members))
    labels.append(labels.pop(labels.index(full)))  # the full model last, as the papers
    lines = []
    for key, block in summary.items():
        dataset, convention = key.split("/")
        means = block["mean"]
        paper = PAPER.get(study, {}).get({"clfnet_test": "clfnet_test"}.get(dataset, dataset), {})
        pairs = pair_count(study, dataset, convention)
        lines += [f"#### {study}: {dataset}{f' ({pairs} pairs)' if pairs else ''}, `{convention}` "
                  "(mean ± half-range over the seeds; paper in brackets)", "",
                  "| variant | seeds | " + " | ".join(metrics) + " |", "|---|---|" + "---|" * len(metrics)]
        for label in labels:
            names = [p.name for p in members if p.label == label]
            found = [n for n in names if n in means]
            printed = paper.get(label) or (paper.get("full") if label == full else None)
            cells = []
            for i, metric in enumerate(metrics):
                cell = _fmt([means[n][metric] for n in found if metric in means[n]])
                cells.append(f"{cell} [{printed[i]:g}]" if printed else cell)
            lines.append(f"| {label} | {len(found)}/{len(names)} | " + " | ".join(cells) + " |")
        shipped = f"{method}-shipped"
        if shipped in means:
            lines.append("| (shipped model) | – | " + " | ".join(_fmt([means[shipped][m]]) for m in metrics) + " |")
        lines.append("")
    return lines


def verdicts(study: str, summary: dict) -> list[str]:
    """One sentence per claim of the study (:data:`CLAIMS`): does our result support it? Every (row pair,
    metric, paper dataset) cell compares the two rows' seed means; a difference counts only beyond the
    larger half-range over seeds of the two rows (a one-seed row has none, so a one-seed row against a
    two-seed row is judged by the latter's spread, and two one-seed rows by any difference).
    "better" is supported when the claimed row is better in over half the cells and worse in under a
    quarter, and not supported when it is better in no more cells than worse; "alike" is supported
    when under a quarter of the cells differ and not supported when over half do; anything between
    supports it in part. "Alike" is not judged while two one-seed rows are compared: their relative
    differences are given instead."""
    from contrafuse.metrics import METRICS

    method = study.split("_")[0]
    members, full = points(study), full_label(study)
    labels = list(dict.fromkeys(p.label for p in members))
    datasets = [k for k in summary if k.split("/")[0] in PAPER_DATASETS[method]]
    where = " and ".join(k.split("/")[0] for k in datasets)
    sentences = []
    for claim in CLAIMS[study]:
        pairs = claim.pairs or tuple((full, label) for label in labels if label != full)
        metrics = claim.metrics or study_metrics(study)
        involved = {label for pair in pairs for label in pair}
        better = cells = 0
        worse_by_pair: Counter = Counter()  # the cells the claimed row loses, by pair of rows
        seeds_short = runs_missing = no_spread = False
        gaps = []  # (relative difference, metric, dataset) of every cell
        for key in datasets:
            means = summary[key]["mean"]
            runs = {label: [means[p.name] for p in members if p.label == label and p.name in means] for label in involved}
            runs_missing |= any(p.name not in means for p in members if p.label in involved)
            for first, second in pairs:
                if not runs[first] or not runs[second]:
                    continue
                seeds_short |= len(runs[first]) < 2 or len(runs[second]) < 2
                no_spread |= len(runs[first]) < 2 and len(runs[second]) < 2
                for metric in metrics:
                    ours, theirs = [r[metric] for r in runs[first]], [r[metric] for r in runs[second]]
                    spread = max((max(v) - min(v)) / 2 for v in (ours, theirs))
                    mine = sum(ours) / len(ours)  # the claimed row: differences are relative to it
                    diff = (mine - sum(theirs) / len(theirs)) * (1 if METRICS[metric].higher_is_better else -1)
                    gaps.append((abs(diff / mine) if mine else float("inf"), metric, key.split("/")[0]))
                    cells += 1
                    better += diff > spread
                    worse_by_pair[f"{first} vs {second}"] += diff < -spread
        worse = worse_by_pair.total()
        if not cells:
            sentences.append(f"The paper's claim that {claim.text} cannot be judged yet: its rows have not finished.")
            continue
        term = "pair-metric" if claim.pairs else "variant-metric"
        if claim.kind == "better":
            reading = ("supports" if better > cells / 2 and worse < cells / 4 else
                       "does not support" if better <= worse else "partly supports")
            counts = f"{claim.subject} is better in {better} and worse in {worse} of {cells} {term} cells"
            if worse:
                counts += " (worse: " + ", ".join(f"{pair} {n}" for pair, n in worse_by_pair.most_common() if n) + ")"
        elif no_spread:  # every difference would count: say how large they are instead
            largest = max(gaps)
            sentences.append(f"The paper's claim that {claim.text} cannot be judged until its rows have two seeds "
                             f"(with one seed, any difference counts): on {where}, the rows differ by "
                             f"{100 * statistics.median(g[0] for g in gaps):.1f} % at the median of {cells} cells, "
                             f"at most {100 * largest[0]:.1f} % ({largest[1]} on {largest[2]}).")
            continue
        else:
            differ = better + worse
            reading = "supports" if differ < cells / 4 else "does not support" if differ > cells / 2 else "partly supports"
            counts = f"{differ} of {cells} {term} cells differ from {claim.subject}"
        caveats = [c for c, on in (("not all runs have finished", runs_missing),
                                   ("some rows have one seed, so their spread is unknown", seeds_short)) if on]
        tail = f" (preliminary: {'; '.join(caveats)})" if caveats else ""
        sentences.append(f"Our result {reading} the paper's claim that {claim.text}: on {where}, {counts} "
                         f"beyond the seed spread{tail}.")
    return sentences


def run_logs(point) -> list[list[dict]]:
    """A run's loss logs (:func:`contrafuse.train.sweep.stage_logs`: stages in training order, one row
    per step), each row's numbers as floats."""
    from contrafuse.train.sweep import stage_logs

    return [[{k: float(v) for k, v in row.items() if k != "stage"} for row in rows] for _, rows in stage_logs(point)]


def median_step(rows: list[dict], start: float = 0.0) -> float:
    """The median seconds between consecutive logged steps of a stage (``start``: the clock before its
    first step), what a step costs when the run is neither paused nor crowded out."""
    times = [row["seconds"] for row in rows]
    return statistics.median(b - a for a, b in zip([start] + times, times))


def run_record(study: str, point) -> dict:
    """What a finished run's folder tells of its training (its sessions.jsonl and loss logs): the
    machines, the logged wall time, which counts the hours the run was paused or slowed by other work,
    the time at the median step of each stage (steps x median), what the run costs on its own, and
    for a study of :data:`DYNAMICS` its named loss term (first 50 steps of the last stage, its first
    epoch, its last) and minutes per epoch at the median step."""
    machines, sessions = set(), ROOT / point.folder / "sessions.jsonl"
    for line in sessions.read_text().splitlines() if sessions.is_file() else []:
        machine = json.loads(line)["machine"]
        machines.add(f"{machine.get('cpu')} ({machine.get('cores')} cores, torch threads {machine.get('torch_threads')})")
    logs = run_logs(point)
    seconds, cost = 0.0, 0.0
    for rows in logs:
        cost += median_step(rows, seconds) * len(rows)
        seconds = rows[-1]["seconds"]
    record = {"label": point.label, "machines": sorted(machines), "logged_h": seconds / 3600, "steady_h": cost / 3600}
    spec = DYNAMICS.get(study)
    if spec and logs:
        last = logs[-1]
        first, final = [r for r in last if r["epoch"] == 1], [r for r in last if r["epoch"] == last[-1]["epoch"]]
        loss = lambda rows: sum(r[spec["loss"]] for r in rows) / len(rows)  # noqa: E731
        record["dynamics"] = [loss(last[:50]), loss(first), loss(final), median_step(last) * len(first) / 60]
    return record


def record_training(study: str) -> None:
    """Add the training record of every run finished here to the study's ``training.json`` (kept in
    the docs, since run folders do not outlive their machine), replacing a run's earlier record."""
    path = DOCS / f"paper_{study}" / "training.json"
    stored = json.loads(path.read_text()) if path.is_file() else {}
    runs = stored.setdefault("runs", {})
    runs.update({p.name: run_record(study, p) for p in points(study) if p.state() == "done"})
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(stored, indent=1, sort_keys=True) + "\n")


def training_records(study: str) -> dict:
    """The study's ``training.json``: ``runs`` (name: :func:`run_record`) and, where run folders were
    lost before records were kept per run, ``recovered``: those runs' names and the lines the report
    of that time printed for them (``training``, ``dynamics``), with the ``commit`` of that report."""
    path = DOCS / f"paper_{study}" / "training.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def training_record(study: str) -> list[str]:
    """Where and how long the study's runs trained (:func:`training_records`): the range over runs of
    the logged wall time and of the time at each stage's median step."""
    stored = training_records(study)
    runs, lines = list(stored.get("runs", {}).values()), []
    if runs:
        wall, steady = [r["logged_h"] for r in runs], [r["steady_h"] for r in runs]
        machines = sorted({m for r in runs for m in r["machines"]})
        lines.append(f"Training: {len(runs)} runs on {'; '.join(machines)}, one thread each, two at a time on "
                     f"a machine shared with other work; {min(wall):.2f}-{max(wall):.2f} h logged per run, "
                     f"{min(steady):.2f}-{max(steady):.2f} h at each stage's median step time.")
    if "recovered" in stored:
        old = stored["recovered"]
        lines.append(f"{'Before that, r' if runs else 'R'}uns {', '.join(old['runs'])}, whose run folders were lost with "
                     f"their machine, as the report at {old['commit'][:7]} recorded them: {old['training']}")
    return [" ".join(lines), ""] if lines else []


#: studies whose paper argues from training itself: the loss term it names, its time per epoch, and why
DYNAMICS = {
    "clfnet_table8": {
        "loss": "patch_nce",
        "paper_time": {"strategy (a)": "16'52\"", "strategy (b)": "17'29\"", "strategy (c)": "16'50\""},
        "why": "CLF-Net Sec. IV-H explains Table VIII by training: with strategy (a) the contrastive loss \"is "
               "maintained at a low value from the beginning of training\", and (b) costs more per epoch (its "
               "Time row, on the authors' GPU)."},
}


def training_dynamics(study: str) -> list[str]:
    """For a study of :data:`DYNAMICS`: per row, the named loss term over the first 50 steps of the last
    stage, over its first epoch and over its last (means over the logged steps, then over the recorded
    seeds), and the minutes per epoch at the median step beside the paper's time per epoch; then the
    rows recovered from an earlier report (:func:`training_records`)."""
    spec = DYNAMICS.get(study)
    if spec is None:
        return []
    stored = training_records(study)
    runs = [r for r in stored.get("runs", {}).values() if "dynamics" in r]
    table = []
    for label in dict.fromkeys(p.label for p in points(study)):
        cells = [r["dynamics"] for r in runs if r["label"] == label]
        if cells:
            means = [sum(column) / len(column) for column in zip(*cells)]
            table.append(f"| {label} | {len(cells)} | " + " | ".join(f"{c:.4g}" for c in means[:3])
                         + f" | {means[3]:.1f} [{spec['paper_time'].get(label, '–')}] |")
    table += [row.replace("| ", f"| {stored['recovered']['commit'][:7]}: ", 1)
              for row in stored.get("recovered", {}).get("dynamics", [])]
    if not table:
        return []
    return [f"{spec['why']} Ours, from the runs' logs (`{spec['loss']}`, mean over the logged steps, then over the "
            "seeds; minutes per epoch at the median step on this machine's one thread, paper in brackets):", "",
            f"| variant | seeds | `{spec['loss']}`, first 50 steps | epoch 1 | last epoch | min per epoch |",
            "|---|---|---|---|---|---|", *table, ""]


def fig15_series(means: dict) -> dict:
    """Fig. 15's curves from one dataset's per-run means: for each fixed weight ("sigma", "gamma") and
    seed, the points (fixed value, metric values) in increasing order, and the self-adaptive (full)
    run's metric values. Unfinished runs are left out."""
    members = points("coconet_fig15")
    series = {}
    for weight in ("sigma", "gamma"):
        for seed in dict.fromkeys(p.values["seed"] for p in members):
            of_seed = [p for p in members if p.values["seed"] == seed and p.name in means]
            fixed = sorted((p.config["self_adaptive"][weight], means[p.name]) for p in of_seed
                           if weight in p.config.get("self_adaptive", {}))
            adaptive = next((means[p.name] for p in of_seed if p.variant == "full"), None)
            if fixed or adaptive:
                series[weight, seed] = {"fixed": fixed, "adaptive": adaptive}
    return series


def fig15_plot(summary: dict, out: Path) -> bool:
    """Fig. 15's layout: each metric against the fixed sigma (top) and gamma (bottom), the
    self-adaptive (full) value as a horizontal line; our TNO test split."""
    key = "tno/legacy" if "tno/legacy" in summary else next(iter(summary), None)
    if key is None:
        return False
    from contrafuse.bench.plots import plt, save_figure  # Matplotlib with the Agg backend

    fig, axes = plt.subplots(2, len(COCONET_METRICS), figsize=(3 * len(COCONET_METRICS), 5.5))
    for (weight, seed), curves in fig15_series(summary[key]["mean"]).items():
        for col, metric in enumerate(COCONET_METRICS):
            ax = axes[("sigma", "gamma").index(weight), col]
            if curves["fixed"]:
                ax.plot([v for v, _ in curves["fixed"]], [m[metric] for _, m in curves["fixed"]], ":o", markersize=3,
                        label=f"fixed, seed {seed}")
            if curves["adaptive"]:
                ax.axhline(curves["adaptive"][metric], linestyle="-", linewidth=1, label=f"self-adaptive, seed {seed}")
            ax.set_title(f"{metric} vs fixed {weight}", fontsize=8)
            ax.tick_params(labelsize=7)
    for ax in axes.flat:
        ax.set_xlim(0, 1)  # the range of the fixed weights, as in the paper's figure
    axes[0, 0].legend(fontsize=6)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, out, dpi=110, tight=False)
    return True


def cmd_tables(args) -> int:
    lines = ["# The papers' ablations (issue 38)", "",
             "Generated by `.venv/bin/python benchmarks/paper_ablations.py tables` from the benchmark summaries",
             "`docs/ablations/paper_<study>/summary.json` (written by `benchmarks/paper_ablations.py evaluate`).",
             "Rows carry the papers' variant names; `full` is the shipped recipe trained with the same seeds",
             "(CoCoNet: seed 2 is the shipped run; CLF-Net: configs/clfnet_tno.yaml for the shipped model's 5",
             "epochs with the paper's SSIM term throughout, while the shipped weights' fifth epoch used the",
             "authors' code's SSIM term, CHANGELOG 2026-11-22, so its row is not one of the seeds).",
             "The papers' VIF is read against our `VIFP` (docs/REPRODUCTION.md). `n/m` seeds: finished runs of",
             "those configured. Training hardware and wall time: `docs/ablations/paper_<study>/training.json`,",
             "from each run's `sessions.jsonl` and logs; rows marked with a commit were recovered from that report.",
             "A benchmark report's \"Recorded, not recomputed\" runs were read from `runs/paper_ablations/recorded/",
             "<study>`, a copy of the study's committed per-image tables made at evaluation, their weights being gone.",
             "CLF-Net's Tables VI and VIII report 20 TNO pairs; `clfnet_test` is the 10 test pairs its authors",
             "released (zzj-dyj/CLF-Net), so its bracketed values are the paper's 20-pair means. CoCoNet's tables",
             "report 20 TNO and 20 RoadScene pairs that it does not list; ours are our 22-pair TNO test split and",
             "the first 20 CDDFuse RoadScene test names (docs/REPRODUCTION.md, 'Test images').",
             "Each verdict reads one claim of the paper (its table, or the text around it) as pairs of rows, by",
             "default `full` against every other row, in each metric on the paper's test sets: a difference",
             "counts when it exceeds the larger seed half-range of the two rows. \"Supports\": the claimed row is",
             "better in over half of these cells and worse in under a quarter (for Fig. 18, under a quarter",
             "differ); \"does not support\": it is better in no more cells than it is worse (over half differ);",
             "otherwise \"partly supports\". Where the paper claims \"best in every metric\", a supported",
             "verdict may still hide cells that full loses: the counts are given.", ""]
    for study in STUDIES:
        path = DOCS / f"paper_{study}" / "summary.json"
        lines += [f"## {study}", ""]
        if not path.is_file():
            lines += [f"Not evaluated yet: its runs have not finished (`contrafuse sweep status "
                      f"configs/sweeps/paper/{study}.yaml`).", ""]
            continue
        summary = {k: v for k, v in json.loads(path.read_text()).items() if k not in ("machine", "git")}  # results only
        found = verdicts(study, summary)
        lines += ([f"**Verdict:** {found[0]}", ""] if len(found) == 1 else
                  ["**Verdicts:**", ""] + [f"- {sentence}" for sentence in found] + [""])
        lines += study_table(study, summary) + training_dynamics(study) + training_record(study)
        if study == "coconet_fig15" and fig15_plot(summary, DOCS / "paper_coconet_fig15" / "fig15.png"):
            lines += ["![Fig. 15 layout](paper_coconet_fig15/fig15.png)", ""]
        if study in ("coconet_fig17", "coconet_fig18"):  # the papers' figures are image grids: the benchmark's
            # grid of a TNO pair (the only grids git keeps: .gitignore)
            lines += [f"![{grid.parent.name} {grid.stem}]({grid.relative_to(DOCS).as_posix()})"
                      for grid in sorted((DOCS / f"paper_{study}" / "tno").glob("grid_*.png"))] + [""]
    (DOCS / "paper_ablations.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {(DOCS / 'paper_ablations.md').relative_to(ROOT)}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("benchmarks")
    p = sub.add_parser("queue")
    p.add_argument("--jobs", type=int, default=2, help="runs trained at once, one thread each")
    p = sub.add_parser("evaluate")
    p.add_argument("studies", nargs="*", choices=STUDIES)
    sub.add_parser("tables")
    sub.add_parser("status")
    args = parser.parse_args()
    os.chdir(ROOT)  # sweeps name their run folders relative to the repository root
    return {"benchmarks": cmd_benchmarks, "queue": cmd_queue, "evaluate": cmd_evaluate, "status": cmd_status,
            "tables": cmd_tables}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
