"""The papers' own ablations (issue 38): CoCoNet Tables 2 and 3, Figs. 15, 17 and 18; CLF-Net
Tables VI and VIII. One table of variants drives everything:

    .venv/bin/python benchmarks/paper_ablations.py configs      # (re)write configs/ablations/paper_*.yaml
    .venv/bin/python benchmarks/paper_ablations.py benchmarks   # (re)write benchmarks/paper_ablations/*.yaml
    nohup .venv/bin/python benchmarks/paper_ablations.py queue --jobs 2 > runs/paper_ablations/queue.log 2>&1 &
    .venv/bin/python benchmarks/paper_ablations.py status       # which runs are done, running, waiting
    .venv/bin/python benchmarks/paper_ablations.py evaluate coconet_table2   # benchmark the finished runs
    .venv/bin/python benchmarks/paper_ablations.py tables       # docs/ablations/paper_ablations.md

Every config is the shipped recipe (configs/coconet_tno.yaml, configs/clfnet_tno.yaml) with one
switch changed, one thread, and its own run folder under runs/paper_ablations/; seeds are paired
(every variant, and the full model, with the same seeds). ``queue`` trains them in priority order,
at most ``--jobs`` at a time, each under ``nice -n 19`` with one thread, resuming any run that has a
checkpoint and skipping finished ones: run the same command again in a later session to go on.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "ablations"
BENCHMARKS = ROOT / "benchmarks" / "paper_ablations"
RUNS = Path("runs") / "paper_ablations"          # relative to the repository root, like every run
DOCS = ROOT / "docs" / "ablations"

COCONET_SEEDS = (2, 3)   # 2: the shipped model's seed; 3: the second seed (docs/ablations/coconet_mask_pairs_seeds)
CLFNET_SEEDS = (0, 1)    # 0: the shipped model's seed
CLFNET_EPOCHS = 5        # as many as the shipped CLF-Net trained (its card); 20 x 8 runs would take weeks here
FIXED_WEIGHTS = (0.1, 0.3, 0.5, 0.7, 0.9)   # Fig. 15: "tuning from 0 to 1"

# (study, paper row label, slug, change to the shipped config). "full" rows are the shipped recipe.
VARIANTS = [
    ("coconet_table2", "w/o ca&vgg", "wo_ca_vgg", {"mam": {"channel_attention": False, "vgg_levels": []}}),
    ("coconet_table2", "w/o vgg", "wo_vgg", {"mam": {"vgg_levels": []}}),
    ("coconet_table2", "w/o ca", "wo_ca", {"mam": {"channel_attention": False}}),
    ("coconet_table3", "only low", "only_low", {"mam": {"vgg_levels": ["low"]}}),
    ("coconet_table3", "only middle", "only_middle", {"mam": {"vgg_levels": ["middle"]}}),
    ("coconet_table3", "only high", "only_high", {"mam": {"vgg_levels": ["high"]}}),
    ("coconet_table3", "w/o low", "wo_low", {"mam": {"vgg_levels": ["middle", "high"]}}),
    ("coconet_table3", "w/o middle", "wo_middle", {"mam": {"vgg_levels": ["low", "high"]}}),
    ("coconet_table3", "w/o high", "wo_high", {"mam": {"vgg_levels": ["low", "middle"]}}),
    *[("coconet_fig15", f"sigma = {v}", f"sigma{int(round(v * 10)):02d}", {"self_adaptive": {"sigma": v}})
      for v in FIXED_WEIGHTS],
    *[("coconet_fig15", f"gamma = {v}", f"gamma{int(round(v * 10)):02d}", {"self_adaptive": {"gamma": v}})
      for v in FIXED_WEIGHTS],
    ("coconet_fig17", "no contrastive", "no_contrastive", {"contrastive_loss": {"target": False, "detail": False}}),
    ("coconet_fig17", "target only", "target_only", {"contrastive_loss": {"detail": False}}),
    ("coconet_fig17", "detail only", "detail_only", {"contrastive_loss": {"target": False}}),
    ("coconet_fig17", "random", "random", {"contrastive_loss": {"sampling": "random"}}),
    # Fig. 18: "detector" = our automatic masks (Montabone & Soto's saliency-guided detector, thresholded:
    # docs/masks.md), which the full model uses; "ours" (the authors' hand-drawn masks) is not available.
    ("coconet_fig18", "saliency", "saliency_masks", {"masks": "saliency"}),
    ("clfnet_table6", "w/o PatchNCE", "wo_patchnce", {"lambda_nce": 0.0}),
    ("clfnet_table8", "strategy (a)", "strategy_a", {"negatives": "a"}),
    ("clfnet_table8", "strategy (b)", "strategy_b", {"negatives": "b"}),
]
#: the full model's row label in each study ("strategy (c)" is the full CLF-Net)
FULL_LABEL = {"coconet_fig18": "detector", "clfnet_table8": "strategy (c)"}
STUDIES = ("coconet_table2", "coconet_table3", "coconet_fig15", "coconet_fig17", "coconet_fig18",
           "clfnet_table6", "clfnet_table8")
#: the first runs to train (see :func:`order`)
PRIORITY = ["clfnet_wo_patchnce_seed0", "coconet_wo_ca_vgg_seed2", "clfnet_full_seed0", "coconet_full_seed2"]

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
#: where each study is measured: validation (roadscene_val, for any choice), our TNO test split,
#: RoadScene's test pairs; CLF-Net's tables also on the 20 TNO images of CLF-Net's test set
COCONET_DATASETS = ["roadscene_val", "tno", "roadscene"]
CLFNET_DATASETS = ["roadscene_val", "tno", {"name": "clfnet_test", "suite": {"dataset": "CLFNet_TNO_test"}}]


def runs() -> list[dict]:
    """Every training run of the sweep: name, method, study (None for the shared full runs), config."""
    out = []
    for method, seeds in (("coconet", COCONET_SEEDS), ("clfnet", CLFNET_SEEDS)):
        for seed in seeds:
            out.append({"name": f"{method}_full_seed{seed}", "method": method, "study": None, "label": "full",
                        "slug": "full", "seed": seed, "change": {}})
    for study, label, slug, change in VARIANTS:
        method = study.split("_")[0]
        for seed in (COCONET_SEEDS if method == "coconet" else CLFNET_SEEDS):
            out.append({"name": f"{method}_{slug}_seed{seed}", "method": method, "study": study, "label": label,
                        "slug": slug, "seed": seed, "change": change})
    return sorted(out, key=order)


def order(run: dict) -> tuple:
    """Training order: the brief's first runs; Table 2 and CLF-Net's tables with both seeds (the
    CLF-Net runs are the longest, so they start early); then Table 3, Figs. 17 and 18 seed by seed;
    Fig. 15's ten fixed weights last, seed by seed."""
    if run["name"] in PRIORITY:
        return (0, PRIORITY.index(run["name"]))
    primary = run["seed"] in (COCONET_SEEDS[0], CLFNET_SEEDS[0])
    early = run["method"] == "clfnet" or run["study"] in (None, "coconet_table2")
    if early:
        return (1 if primary else 2, run["method"] == "clfnet")
    if run["study"] == "coconet_fig15":
        return (5 if primary else 6,)
    return (3 if primary else 4,)


def config_path(run: dict) -> Path:
    return CONFIGS / f"paper_{run['name']}.yaml"


def run_dir(run: dict) -> Path:
    return RUNS / run["name"]


def build_config(run: dict) -> tuple[dict, str]:
    base = "configs/coconet_tno.yaml" if run["method"] == "coconet" else "configs/clfnet_tno.yaml"
    cfg = yaml.safe_load((ROOT / base).read_text())
    for key, value in run["change"].items():  # nested switches change only the keys they name
        cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) and isinstance(cfg.get(key), dict) else value
    cfg["seed"] = run["seed"]
    if run["method"] == "clfnet":
        cfg["stages"] = [{**cfg["stages"][0], "epochs": CLFNET_EPOCHS}]
    cfg.update(threads=1, checkpoint_minutes=3, output=str(run_dir(run)))
    for key in ("split", "init_weights", "mask_dir"):  # relative to the config file, which sits one level lower
        if key in cfg and not str(cfg[key]).startswith("package:") and "/" in str(cfg[key]):
            cfg[key] = "../" + cfg[key]
    what = "the full model" if run["study"] is None else f"{run['study']}: {run['label']}"
    header = (f"# Issue 38, the papers' ablations ({what}), seed {run['seed']}: {base} with "
              f"{json.dumps(run['change']) if run['change'] else 'no switch changed'}"
              f"{f', {CLFNET_EPOCHS} epochs' if run['method'] == 'clfnet' else ''}, one thread.\n"
              "# Written by benchmarks/paper_ablations.py (configs); trained by its `queue`.\n")
    return cfg, header


def cmd_configs(args) -> int:
    for run in runs():
        cfg, header = build_config(run)
        config_path(run).write_text(header + yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None))
    print(f"wrote {len(runs())} configs to {CONFIGS.relative_to(ROOT)}/paper_*.yaml")
    return 0


def state(run: dict) -> str:
    folder = ROOT / run_dir(run)
    if (folder / "model.safetensors").is_file():
        return "done"
    if (folder / "checkpoint.pt").is_file():
        return "started"
    return "waiting"


def cmd_status(args) -> int:
    for run in runs():
        folder = ROOT / run_dir(run)
        progress, shown = "", state(run)
        if shown == "waiting" and (folder / "config.yaml").is_file():
            shown = "started"  # no checkpoint yet: the first minutes of a run
        if shown == "started":
            logs = sorted(folder.glob("log_*.csv"), key=lambda p: p.stat().st_mtime)
            if logs:
                last = logs[-1].read_text().strip().splitlines()[-1].split(",")
                progress = f" (stage {last[0]}, epoch {last[1]}, batch {last[2]}, {float(last[4]) / 3600:.2f} h)"
        print(f"{shown:8s} {run['name']}{progress}")
    return 0


def cmd_queue(args) -> int:
    """Train every waiting or started run, ``--jobs`` at a time, resuming started ones."""
    os.chdir(ROOT)
    (ROOT / RUNS / "logs").mkdir(parents=True, exist_ok=True)
    todo = [r for r in runs() if state(r) != "done" and (not args.only or any(s in r["name"] for s in args.only))]
    active: list[tuple[subprocess.Popen, dict]] = []

    def stop(signum, frame):  # pass a SIGTERM on: each training run checkpoints and exits
        for proc, _ in active:
            proc.send_signal(signal.SIGTERM)
        for proc, _ in active:
            proc.wait()
        sys.exit(1)

    signal.signal(signal.SIGTERM, stop)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    while todo or active:
        for proc, run in list(active):
            if proc.poll() is not None:
                active.remove((proc, run))
                print(f"{time.strftime('%F %T')} {run['name']} exited with {proc.returncode}", flush=True)
        while todo and len(active) < args.jobs:
            run = todo.pop(0)
            command = ["nice", "-n", "19", str(ROOT / ".venv/bin/contrafuse"), "train", run["method"],
                       "--config", str(config_path(run).relative_to(ROOT))]
            if state(run) == "started":
                command.append("--resume")
            log = open(ROOT / RUNS / "logs" / f"{run['name']}.log", "a")
            print(f"{time.strftime('%F %T')} start {' '.join(command[3:])}", flush=True)
            active.append((subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT), run))
        time.sleep(30)
    return 0


def method_entry(run: dict) -> dict:
    return {"name": run["method"], "label": run["name"],
            "options": {"weights": str(run_dir(run) / "model.safetensors")}}


def benchmark_config(study: str) -> dict:
    method = study.split("_")[0]
    members = [r for r in runs() if r["study"] == study or (r["study"] is None and r["method"] == method)]
    members.sort(key=lambda r: (r["study"] is None, r["seed"], r["name"]))
    shipped = {"name": method, "label": f"{method}-shipped"}
    return {"methods": [method_entry(r) for r in members] + [shipped],
            "metrics": ["EN", "SD", "SF", "AG", "MI", "VIFF", "VIFP", "SCD", "Qabf"],
            "conventions": ["legacy"],
            "grids": {"images": ["FLIR_04932"], "box": [0.4, 0.4, 0.2, 0.2], "include_sources": False},
            "datasets": COCONET_DATASETS if method == "coconet" else CLFNET_DATASETS}


def cmd_benchmarks(args) -> int:
    BENCHMARKS.mkdir(parents=True, exist_ok=True)
    for study in STUDIES:
        text = (f"# Issue 38: {study} -- every run of the sweep (benchmarks/paper_ablations.py) and the shipped model,\n"
                f"# legacy convention, on the validation pairs, our TNO test split and RoadScene's test pairs.\n"
                f"#   .venv/bin/python benchmarks/paper_ablations.py evaluate {study}   # only the finished runs\n"
                f"#   contrafuse benchmark benchmarks/paper_ablations/{study}.yaml -o docs/ablations/paper_{study}   # all\n")
        (BENCHMARKS / f"{study}.yaml").write_text(text + yaml.safe_dump(benchmark_config(study), sort_keys=False,
                                                                         default_flow_style=None))
    print(f"wrote {len(STUDIES)} benchmark configs to {BENCHMARKS.relative_to(ROOT)}")
    return 0


def cmd_evaluate(args) -> int:
    """``contrafuse benchmark`` on the study's finished runs (a filtered copy of its config)."""
    os.chdir(ROOT)
    for study in args.studies or STUDIES:
        cfg = yaml.safe_load((BENCHMARKS / f"{study}.yaml").read_text())
        cfg["methods"] = [m for m in cfg["methods"] if "options" not in m or Path(m["options"]["weights"]).is_file()]
        if len(cfg["methods"]) < 2:
            print(f"{study}: no finished run yet")
            continue
        filtered = RUNS / "benchmarks" / f"{study}.yaml"
        filtered.parent.mkdir(parents=True, exist_ok=True)
        filtered.write_text(yaml.safe_dump(cfg, sort_keys=False))
        command = [str(ROOT / ".venv/bin/contrafuse"), "benchmark", str(filtered), "-o", f"docs/ablations/paper_{study}"]
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


def study_table(study: str, summary: dict) -> list[str]:
    """Markdown rows: the paper's labels, our mean ± half-range over seeds beside the paper's numbers."""
    method = study.split("_")[0]
    metrics = COCONET_METRICS if method == "coconet" else CLFNET_METRICS
    members = [r for r in runs() if r["study"] == study or (r["study"] is None and r["method"] == method)]
    labels = []
    for r in members:
        label = FULL_LABEL.get(study, "full") if r["study"] is None else r["label"]
        if label not in labels:
            labels.append(label)
    labels.append(labels.pop(labels.index(FULL_LABEL.get(study, "full"))))  # the full model last, as the papers
    lines = []
    for key, block in summary.items():
        dataset, convention = key.split("/")
        means = block["mean"]
        paper = PAPER.get(study, {}).get({"clfnet_test": "clfnet_test"}.get(dataset, dataset), {})
        lines += [f"#### {study}: {dataset}, `{convention}` (mean ± half-range over the seeds; paper in brackets)", "",
                  "| variant | seeds | " + " | ".join(metrics) + " |", "|---|---|" + "---|" * len(metrics)]
        for label in labels:
            names = [r["name"] for r in members
                     if (FULL_LABEL.get(study, "full") if r["study"] is None else r["label"]) == label]
            found = [n for n in names if n in means]
            printed = paper.get(label) or (paper.get("full") if label == FULL_LABEL.get(study) else None)
            cells = []
            for i, metric in enumerate(metrics):
                cell = _fmt([means[n][metric] for n in found if metric in means[n]])
                cells.append(f"{cell} [{printed[i]:g}]" if printed else cell)
            lines.append(f"| {label} | {len(found)}/{len(names)} | " + " | ".join(cells) + " |")
        shipped = f"{method}-shipped"
        if shipped in means:
            lines.append(f"| (shipped model) | – | " + " | ".join(_fmt([means[shipped][m]]) for m in metrics) + " |")
        lines.append("")
    return lines


def training_record(study: str) -> list[str]:
    """Where and how long the study's finished runs trained (their sessions.jsonl and loss logs)."""
    method = study.split("_")[0]
    machines, hours = set(), []
    for run in runs():
        folder = ROOT / run_dir(run)
        if not (run["study"] == study or (run["study"] is None and run["method"] == method)) or state(run) != "done":
            continue
        for line in (folder / "sessions.jsonl").read_text().splitlines():
            machine = json.loads(line)["machine"]
            machines.add(f"{machine.get('cpu')} ({machine.get('cores')} cores, torch threads {machine.get('torch_threads')})")
        logs = sorted(folder.glob("log_*.csv"), key=lambda p: p.stat().st_mtime)
        hours.append(float(logs[-1].read_text().strip().splitlines()[-1].split(",")[4]) / 3600)
    if not hours:
        return []
    return [f"Training: {len(hours)} runs on {'; '.join(sorted(machines))}, one thread each, shared with other "
            f"work; {min(hours):.2f}-{max(hours):.2f} h of training steps per run.", ""]


def fig15_plot(summary: dict, out: Path) -> bool:
    """Fig. 15's layout: each metric against the fixed sigma (top) and gamma (bottom), the
    self-adaptive (full) value as a horizontal line; our TNO test split."""
    key = "tno/legacy" if "tno/legacy" in summary else next(iter(summary), None)
    if key is None:
        return False
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    means = summary[key]["mean"]
    fig, axes = plt.subplots(2, len(COCONET_METRICS), figsize=(3 * len(COCONET_METRICS), 5.5))
    for row, weight in enumerate(("sigma", "gamma")):
        for col, metric in enumerate(COCONET_METRICS):
            ax = axes[row, col]
            for seed in COCONET_SEEDS:
                points = [(v, means[f"coconet_{weight}{int(round(v * 10)):02d}_seed{seed}"][metric]) for v in FIXED_WEIGHTS
                          if f"coconet_{weight}{int(round(v * 10)):02d}_seed{seed}" in means]
                if points:
                    ax.plot(*zip(*points), ":o", markersize=3, label=f"fixed, seed {seed}")
                full = f"coconet_full_seed{seed}"
                if full in means:
                    ax.axhline(means[full][metric], linestyle="-", linewidth=1, label=f"self-adaptive, seed {seed}")
            ax.set_title(f"{metric} vs fixed {weight}", fontsize=8)
            ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=6)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return True


def cmd_tables(args) -> int:
    lines = ["# The papers' ablations (issue 38)", "",
             "Generated by `.venv/bin/python benchmarks/paper_ablations.py tables` from the benchmark summaries",
             "`docs/ablations/paper_<study>/summary.json` (written by `benchmarks/paper_ablations.py evaluate`).",
             "Rows carry the papers' variant names; `full` is the shipped recipe trained with the same seeds.",
             "The papers' VIF is read against our `VIFP` (docs/REPRODUCTION.md). `n/m` seeds: finished runs of",
             "those configured. Training hardware and wall time of every run: its `sessions.jsonl` and logs.", ""]
    for study in STUDIES:
        path = DOCS / f"paper_{study}" / "summary.json"
        lines += [f"## {study}", ""]
        if not path.is_file():
            lines += ["Not evaluated yet: its runs have not finished (`benchmarks/paper_ablations.py status`).", ""]
            continue
        summary = {k: v for k, v in json.loads(path.read_text()).items() if k not in ("machine", "git")}  # results only
        lines += study_table(study, summary) + training_record(study)
        if study == "coconet_fig15" and fig15_plot(summary, DOCS / "paper_coconet_fig15" / "fig15.svg"):
            lines += ["![Fig. 15 layout](paper_coconet_fig15/fig15.svg)", ""]
    (DOCS / "paper_ablations.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {(DOCS / 'paper_ablations.md').relative_to(ROOT)}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("configs")
    sub.add_parser("benchmarks")
    sub.add_parser("status")
    p = sub.add_parser("queue")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--only", nargs="*", help="only runs whose names contain one of these")
    p = sub.add_parser("evaluate")
    p.add_argument("studies", nargs="*", choices=STUDIES)
    sub.add_parser("tables")
    args = parser.parse_args()
    return {"configs": cmd_configs, "benchmarks": cmd_benchmarks, "status": cmd_status, "queue": cmd_queue,
            "evaluate": cmd_evaluate, "tables": cmd_tables}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
