"""Render the generated parts of README.md, docs/REPRODUCTION.md and the model cards from the
results files they quote.

    python benchmarks/render_docs.py                    # rewrite them
    python benchmarks/render_docs.py --check [FILE...]  # exit 1 if a file differs (tests/test_docs.py)

Two markers, both HTML comments that Markdown does not show:

- a block, ``<!-- generated:NAME ARG... -->`` on a line of its own, then everything up to
  ``<!-- /generated:NAME -->``, written by the renderer NAME of ``BLOCKS`` called with the ARGs;
  each renderer's docstring names its source;
- an inline value, ``<!-- value:FILE#KEY|SPEC -->7.659<!-- /value -->``: the value at KEY of FILE
  (JSON, YAML or a summary CSV, relative to the repository), written with the format spec SPEC
  (Python's; without one a float is written ``.4g``, anything else as it is). KEY is a path of keys
  joined by ``/``, where one key may itself hold a ``/`` (``tno/legacy``); a CSV row is named by its
  first column, then the column. A published cell such as ``"7.776 ± 0.081"`` gives its mean when
  SPEC is given.

Only what lies between the markers is rewritten: after a benchmark writes new results, running this
script updates every table and number that quotes them, and ``--check`` fails on a number edited by
hand or a results file changed without a re-render.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import re
import sys
from pathlib import Path

import yaml

from contrafuse.io import write_text_atomic

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", REPO / "docs" / "REPRODUCTION.md", REPO / "docs" / "cameras.md", REPO / "docs" / "metrics.md",
        *sorted((REPO / "contrafuse" / "weights").glob("*.md"))]
#: the reproduction report: ``contrafuse benchmark benchmarks/report.yaml -o docs/benchmark``
REPORT_CONFIG, REPORT = "benchmarks/report.yaml", "docs/benchmark"
#: our model -> how the papers' tables name it (their row labels start with it)
PAPER_NAMES = {"coconet": "CoCoNet", "coconet-medical": "CoCoNet", "clfnet": "CLF-Net", "densefuse": "DenseFuse",
               "ifcnn": "IFCNN", "seafusion": "SeAFusion", "tardal": "TarDAL"}
PEERS = ("densefuse", "ifcnn", "seafusion", "tardal")
#: the papers' columns, and the metric of ours each compares with under `legacy` (their VIF is the
#: toolbox's, which our legacy VIFP reproduces: docs/metrics.md)
PAPER_METRICS = {"EN": "EN", "SD": "SD", "SF": "SF", "AG": "AG", "MI": "MI", "VIF": "VIFP", "SCD": "SCD"}
#: shipped model -> (model card title, the report's method labels and datasets its card quotes)
CARDS = {
    "coconet": ("CoCoNet, infrared-visible (TNO)", ["coconet", "coconet-standard"], ["tno", "roadscene"]),
    "clfnet": ("CLF-Net, infrared-visible (TNO)", ["clfnet"], ["tno", "roadscene", "mri_t1t2", "lytro"]),
    "coconet-medical": ("CoCoNet, MRI-PET/SPECT (Harvard)", ["coconet-medical"], ["mri_pet", "mri_spect"]),
}
CARD_METRICS = ["EN", "SD", "SF", "AG", "MI", "VIFF", "VIFP", "SCD", "Qabf"]
#: since this date `legacy` VIFP is the toolbox's VIF on saturating uint8 products (docs/metrics.md)
LEGACY_TOOLBOX_VIF = "2026-12-06"


class DocsError(Exception):
    """A marker that names a missing file or key, or an unknown renderer."""


# --- sources -----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def load(source: str):
    """A results file relative to the repository: JSON or YAML as parsed; a CSV as
    ``{first column: {column: text}}``."""
    path = REPO / source
    if not path.is_file():
        raise DocsError(f"{source}: no such file")
    if path.suffix == ".csv":
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        return {next(iter(row.values())): row for row in rows}
    text = path.read_text()
    return yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)


def lookup(source: str, key: str):
    """The value at ``key`` (keys joined by ``/``; the shortest key that exists is taken first)."""
    node, parts, i = load(source), key.split("/"), 0
    while i < len(parts):
        for j in range(i + 1, len(parts) + 1):
            name = "/".join(parts[i:j])
            if isinstance(node, dict) and name in node:
                node, i = node[name], j
                break
            if isinstance(node, list) and j == i + 1 and name.isdigit() and int(name) < len(node):
                node, i = node[int(name)], j
                break
        else:
            raise DocsError(f"{source}: no key {key!r} (found up to {'/'.join(parts[:i]) or 'the top'!r})")
    return node


def number(value) -> float:
    """A value as a float; a published cell such as ``"7.776 ± 0.081"`` gives its mean."""
    return float(value) if isinstance(value, (int, float)) else float(str(value).split("±")[0])


def fmt(value: float) -> str:
    return f"{value:.4g}"


def mean_std(data: dict, method: str, metric: str) -> str:
    """One cell of a benchmark summary: mean ± standard deviation over the pairs."""
    if method not in data["mean"]:
        raise DocsError(f"no method {method!r} in the summary (it has {', '.join(data['mean'])})")
    mean = data["mean"][method]
    return f"{fmt(mean[metric])} ± {data['std'][method][metric]:.2g}" if metric in mean else "–"


def paper_rows(config: str, dataset: str, method: str) -> dict[str, dict]:
    """The published rows for ``method`` on ``dataset`` in ``config``'s ``paper`` section."""
    rows = (load(config).get("paper") or {}).get(dataset) or {}
    return {label: row for label, row in rows.items() if label.startswith(PAPER_NAMES.get(method, method) + " (")}


def paper_columns(rows) -> list[str]:
    return [m for m in PAPER_METRICS if any(m in row for row in rows)]


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"] + ["| " + " | ".join(r) + " |" for r in rows]


# --- inline values -----------------------------------------------------------------------------

VALUE = re.compile(r"<!-- value:(?P<source>[^#>]+)#(?P<key>[^|>]+?)(?:\|(?P<spec>[^ >]+))? -->"
                   r"[^<\n]*<!-- /value -->")


def value_text(source: str, key: str, spec: str | None) -> str:
    value = lookup(source, key)
    if spec is None and not isinstance(value, float):
        return str(value)
    return format(number(value), spec or ".4g")


def render_value(match: re.Match) -> str:
    head = match.group(0)[: match.group(0).index("-->") + 3]
    return f"{head}{value_text(match['source'], match['key'], match['spec'])}<!-- /value -->"


# --- blocks ------------------------------------------------------------------------------------

def report_header(folder: str) -> dict:
    """The machine, date and git state a benchmark report (FOLDER/report.md) records in its header."""
    header = re.search(r"^`(\{.*\})`$", (REPO / folder / "report.md").read_text(), re.M)
    if header is None:
        raise DocsError(f"{folder}/report.md: no machine line in its header")
    return json.loads(header.group(1))


def provenance_block() -> str:
    """docs/benchmark/report.md: the machine, date and git state its header records."""
    info = report_header(REPORT)
    git = info.get("git") or {}
    commit = (f"commit {git['commit'][:8]}{' with uncommitted changes' if git.get('dirty') else ''}"
              if git.get("commit") else "commit not recorded (a report from before it was)")
    lines = [f"docs/benchmark was generated on {info['date']} on {info['cpu']} ({info['cores']} cores), {commit}."]
    if info["date"] < LEGACY_TOOLBOX_VIF:
        lines.append(f"It predates the toolbox VIF ({LEGACY_TOOLBOX_VIF}): its `legacy` VIFP is still the "
                     "textbook VIF-P, which reads low against the papers' VIF column until the report is regenerated.")
    return " ".join(lines) + "\n"


def paper_table(dataset: str, *methods: str) -> str:
    """docs/benchmark/summary.json (`legacy`) and the pair count of its per-image CSV, beside the
    papers' rows in benchmarks/report.yaml; the first method is also divided by the papers' values,
    and the best of our classical methods (contrafuse/methods/classical.py) is shown per column."""
    from contrafuse.methods import METHODS
    from contrafuse.metrics import METRICS

    data = lookup(f"{REPORT}/summary.json", f"{dataset}/legacy")
    papers = {label: row for m in methods for label, row in paper_rows(REPORT_CONFIG, dataset, m).items()}
    columns = paper_columns(papers.values())
    pairs = len(load(f"{REPORT}/{dataset}/per_image_legacy.csv"))  # one entry per image
    rows = [[f"ours, `{m}`"] + [mean_std(data, m, PAPER_METRICS[c]) for c in columns] for m in methods]
    rows += [[label] + [str(row.get(c, "–")) for c in columns] for label, row in papers.items()]
    first = data["mean"][methods[0]]
    rows += [[f"`{methods[0]}` / {label}"] + [f"{first[PAPER_METRICS[c]] / number(row[c]):.2f}" if c in row else "–"
                                              for c in columns] for label, row in papers.items()]
    classical = [m for m in data["mean"] if m in METHODS and METHODS.get(m).__module__ == "contrafuse.methods.classical"]
    if classical:
        best = []
        for c in columns:
            metric = PAPER_METRICS[c]
            pick = (max if METRICS[metric].higher_is_better else min)(classical, key=lambda m: data["mean"][m][metric])
            best.append(f"{fmt(data['mean'][pick][metric])} (`{pick}`)")
        rows.append(["best classical method of ours"] + best)
    caption = (f"`legacy`, {pairs} pairs; ours: mean ± standard deviation over the pairs"
               + ("; VIF: our `VIFP`, the toolbox's VIF" if "VIF" in columns else "") + ".")
    return "\n".join([caption, ""] + table([""] + columns, rows)) + "\n"


def peers_block() -> str:
    """docs/peers/summary.json (`legacy`) beside the papers' rows in benchmarks/peers.yaml."""
    summary = load("docs/peers/summary.json")
    lines = []
    for dataset, title in (("tno", "TNO test split"), ("roadscene", "RoadScene (20 pairs)")):
        data = summary.get(f"{dataset}/legacy")
        if not data:
            continue
        columns = paper_columns((load("benchmarks/peers.yaml")["paper"].get(dataset) or {}).values())
        rows = []
        for name in PEERS:
            if name in data["mean"]:
                rows.append([f"{PAPER_NAMES[name]}, ours (`{name}`)"]
                            + [mean_std(data, name, PAPER_METRICS[c]) for c in columns])
            rows += [[label] + [str(row.get(c, "–")) for c in columns]
                     for label, row in paper_rows("benchmarks/peers.yaml", dataset, name).items()]
        lines += [f"**{title}**, `legacy` (ours: mean ± standard deviation over the pairs; VIF: our `VIFP`):", ""]
        lines += table(["method"] + columns, rows) + [""]
    return "\n".join(lines)


def ranking_block(config: str, folder: str, dataset: str, convention: str) -> str:
    """FOLDER/DATASET/summary_CONVENTION.csv (average rank over its metrics, as `contrafuse benchmark
    CONFIG -o FOLDER` wrote it); which rows score published images: CONFIG's `external` methods."""
    rows = load(f"{folder}/{dataset}/summary_{convention}.csv")
    cfg = load(config)
    entries = next((e.get("methods", cfg.get("methods", [])) for e in cfg["datasets"]
                    if isinstance(e, dict) and e.get("name") == dataset), cfg.get("methods", []))
    published = {e.get("label", e["name"]) for e in entries if isinstance(e, dict) and "external" in e}
    metrics = [c[: -len("_mean")] for c in next(iter(rows.values())) if c.endswith("_mean")]
    ordered = sorted(rows, key=lambda m: float(rows[m]["avg_rank"]))
    body = [[str(place), f"`{m}`" if m not in published else m, "published" if m in published else "ours",
             f"{float(rows[m]['avg_rank']):.2f}"] for place, m in enumerate(ordered, 1)]
    caption = (f"Average rank over {', '.join(metrics)} (`{convention}`; 1 = best) among the {len(rows)} rows of "
               f"`{folder}/{dataset}`; published: the fused images the dataset distributes, scored by our metrics.")
    return "\n".join([caption, ""] + table(["place", "method", "images", "average rank"], body)) + "\n"


def rows_block(csv_path: str, metrics: str, *labels: str) -> str:
    """CSV_PATH, a benchmark's summary_CONVENTION.csv: the means of the named rows and their average
    rank among all its rows."""
    rows = load(csv_path)
    columns = metrics.split(",")
    body = [[f"`{label}`"] + [fmt(float(rows[label][f"{c}_mean"])) for c in columns]
            + [f"{float(rows[label]['avg_rank']):.2f}"] for label in labels]
    lines = table(["row"] + columns + [f"avg rank (of {len(rows)})"], body)
    date = report_header(str(Path(csv_path).parents[1]))["date"]
    if "VIFP" in columns and csv_path.endswith("_legacy.csv") and date < LEGACY_TOOLBOX_VIF:
        lines += ["", f"(A report of {date}, before the toolbox VIF ({LEGACY_TOOLBOX_VIF}): its `legacy` VIFP is "
                  "the textbook VIF-P, not the toolbox's VIF of the tables above.)"]
    return "\n".join(lines) + "\n"


def complexity_block() -> str:
    """docs/benchmark/complexity.json beside the papers' rows in benchmarks/report.yaml (`paper.complexity`)."""
    result = load(f"{REPORT}/complexity.json")
    machine, (fh, fw), (rh, rw) = result["machine"], result["flops_size"], result["runtime_size"]
    rows = []
    for name, row in result["methods"].items():
        if not row["parameters"]:
            continue
        rows.append([f"ours, `{name}`", f"{row['parameters'] / 1e6:.4f}", f"{row['trainable_parameters'] / 1e6:.4f}",
                     f"{row['flops'] / 1e9:.3f}", f"{row['runtime_seconds']:.3f}"])
        rows += [[label, str(p.get("parameters_M", "–")), "–", str(p.get("GFLOPs", "–")), str(p.get("seconds", "–"))]
                 for label, p in paper_rows(REPORT_CONFIG, "complexity", name).items()]
    caption = (f"Ours: FLOPs at {fw}x{fh}, runtime the median to fuse one {rw}x{rh} grey pair on {machine['cpu']} "
               f"({machine['cores']} cores, {machine['date']}); parameters include CoCoNet's frozen VGG-19 layers. "
               "The papers' FLOPs and times are for their own image sizes and GPUs.")
    return "\n".join([caption, ""] + table(["", "parameters (M)", "trainable (M)", "GFLOPs", "seconds per pair"],
                                            rows)) + "\n"


def training_speed_block() -> str:
    """benchmarks/results/training_speed.json."""
    result = load("benchmarks/results/training_speed.json")
    rows = []
    for stage, row in result["stages"].items():
        def step(version, row=row):
            return f"{row[version]['seconds_per_step']:.4g}" if version in row else ""
        rows.append([stage, step("before"), step("after-fp32"), step("after"),
                     f"{row['speed-up']:.3f}×" if "speed-up" in row else ""])
    caption = (f"Seconds per optimiser step on {result['machine']['cpu']} ({result['machine']['cores']} cores), "
               f"`python benchmarks/training_speed.py --before {result['before']} --steps {result['steps']}`.")
    return "\n".join([caption, ""] + table(["stage", f"before ({result['before']})", "now, float32",
                                            "now, bfloat16 autocast (default)", "speed-up"], rows)) + "\n"


def agreement_block() -> str:
    """benchmarks/results/zoo_reference.json."""
    result = load("benchmarks/results/zoo_reference.json")
    lines = ["| model | pairs | worst mean \\|difference\\| (grey levels) | worst % of pixels within 1 level |",
             "|---|---|---|---|"]
    for name, row in result["official_code"].items():
        lines.append(f"| `{name}` | {len(row['pairs'])} | {row['worst_mean_abs_grey_levels']} | "
                     f"{row['worst_within_1_level_percent']} |")
    if result.get("published_images"):
        lines += ["", "Against images the authors' side published (not the official protocol's output, see the "
                  "script's docstring): " + "; ".join(
                      f"`{name}` {row['mean_abs_grey_levels']} grey levels from {row['images']} ({row['pairs']} pairs)"
                      for name, row in result["published_images"].items()) + "."]
    return "\n".join(lines) + "\n"


def speed_block() -> str:
    """benchmarks/results/zoo_speed.json."""
    result = load("benchmarks/results/zoo_speed.json")
    machine = result["machine"]
    lines = [f"Median seconds per 640x480 pair (VIFB labMan) on {machine['cpu']} ({machine['cores']} cores), "
             f"commit {str(result['git']['commit'])[:8]}; the official code's forward time is from "
             "../shared/peers/reference/timing.csv (same pair, 2 threads, another run).", "",
             "| model | fp32 (s) | bf16 (s) | peak memory, bf16 (MB) | official code (s) | bf16 vs fp32, mean / max "
             "(grey levels) |", "|---|---|---|---|---|---|"]
    for name, row in result["methods"].items():
        bf = row["bf16_vs_fp32_grey_levels"]
        lines.append(f"| `{name}` | {row['fp32_seconds']} | {row['bf16_seconds']} | {row['bf16_peak_rss_mb']} | "
                     f"{row.get('official_code_seconds', '–')} | {bf['mean']} / {bf['max']} |")
    return "\n".join(lines) + "\n"


def commit_text(result: dict) -> str:
    """The git state a results file records, in words."""
    git = result["git"]
    return f"commit {str(git['commit'])[:8]}" + (" with uncommitted changes" if git.get("dirty") else "")


def video_stability_block() -> str:
    """benchmarks/results/video.json: temporal stability per method and sequence, plain and stabilised."""
    result = load("benchmarks/results/video.json")
    names = list(result["sources"])

    def cells(rows: dict) -> list[str]:
        return [f"{rows[n]['ratio']:.2f} / {rows[n]['level_ratio']:.2f}" for n in names]

    lines = [f"The first {result['frames_per_sequence']} frames of each sequence ({result['size']}), every method "
             "at its defaults (`precision auto`); each cell: `ratio` / `level_ratio` (1: the fused frames change "
             f"as much as the sources; above 1: more); {commit_text(result)}.", ""]
    lines += table(["sources: change per frame (grey levels), infrared / visible"] + names,
                   [["mean absolute change"] + [f"{result['sources'][n]['ir']:.2f} / {result['sources'][n]['vis']:.2f}"
                                                for n in names],
                    ["change of the mean"] + [f"{result['sources'][n]['ir_level']:.2f} / "
                                              f"{result['sources'][n]['vis_level']:.2f}" for n in names]])
    lines += [""] + table(["method"] + names, [[f"`{m}`"] + cells(row["stability"])
                                               for m, row in result["methods"].items()])
    stabilised = [(m, strength, rows) for m, row in result["methods"].items()
                  for strength, rows in row.get("stabilised", {}).items()]
    if stabilised:
        lines += ["", "Stabilised (`--stabilise STRENGTH`), the same cells, then the mean absolute difference from "
                  "the plain frames (grey levels) per sequence:", ""]
        lines += table(["method", "strength"] + names + ["difference from plain"],
                       [[f"`{m}`", strength] + cells(rows) + [" / ".join(f"{rows[n]['difference_from_plain']:.2f}"
                                                                         for n in names)]
                        for m, strength, rows in stabilised])
    return "\n".join(lines) + "\n"


def video_speed_block() -> str:
    """benchmarks/results/video.json: frames per second per method and precision."""
    result = load("benchmarks/results/video.json")
    machine = result["machine"]
    columns = ["numpy", "bf16", "fp32", "onnxruntime"]

    def cell(entry) -> str:
        if entry is None:
            return "–"
        if "error" in entry:
            return "n/a"
        fps = entry["fps"]
        return (f"{fps:,.0f}" if fps >= 100 else f"{fps:.3g}") + f" ({entry['cpu_seconds_per_frame']:.3g})"

    lines = [f"Frames per second, wall (CPU seconds per frame in parentheses), {result['size']} frames on "
             f"{machine['cpu']} ({machine['cores']} cores, {machine['torch_threads']} threads), {commit_text(result)}, "
             f"load average (5 minutes) {result['load_average_start'][1]} at the start and "
             f"{result['load_average_end'][1]} at the end (about 2: this run alone on the 2 cores; well above: "
             "other work too, and wall times are that shared machine's); "
             f"`numpy`: the classical methods; `auto` is the precision `--precision auto` chose.", ""]
    lines += table(["method", "auto"] + columns,
                   [[f"`{m}`", row["precision"] or "–"] + [cell(row["speed"].get(c)) for c in columns]
                    for m, row in result["methods"].items()])
    return "\n".join(lines) + "\n"


def methods_block() -> str:
    """contrafuse/models/*.yaml (every pretrained model's spec)."""
    from contrafuse.models import MODEL_SPECS

    lines = ["| name | method | paper | parameters | weights: source, licence |", "|---|---|---|---|---|"]
    for name, spec in MODEL_SPECS.items():
        p = spec.paper
        lines.append(f"| `{name}` | {spec.description} | {p['authors']}, {p['venue']} {p['year']} | "
                     f"{spec.parameters:,} | {spec.weights.source}; {spec.weights.licence} |")
    return "\n".join(lines) + "\n"


def metric_list_block() -> str:
    """contrafuse.metrics.METRICS (the metric table): how many metrics, and their names."""
    from contrafuse.metrics import METRICS

    return f"`contrafuse.metrics` computes {len(METRICS)} no-reference fusion metrics: `{' '.join(METRICS)}`.\n"


def card_weights_block(model: str) -> str:
    """contrafuse/models/MODEL.yaml (the shipped weights file and how it is stored) and that file's size."""
    from contrafuse.models import MODEL_SPECS
    from contrafuse.weights import PACKAGE_WEIGHTS

    weights = MODEL_SPECS[model].weights
    size = (PACKAGE_WEIGHTS / weights.file).stat().st_size / 1e6
    return (f"Weights: `contrafuse/weights/{weights.file}` ({size:.1f} MB, safetensors, trainable parameters and "
            f"BatchNorm statistics only{', stored as float16' if weights.stored == 'float16' else ''}).\n")


def card_tests_block(model: str) -> str:
    """docs/benchmark/summary.json (both conventions) for the card's methods and datasets (``CARDS``),
    and beside the papers' rows (:func:`paper_table`)."""
    summary = load(f"{REPORT}/summary.json")
    if model not in CARDS:
        raise DocsError(f"no model card {model!r}; known: {', '.join(CARDS)}")
    _, methods, datasets = CARDS[model]
    lines = []
    for dataset in datasets:
        rows = [[f"`{m}`, `{convention}`"] + [mean_std(data, m, metric) for metric in CARD_METRICS]
                for convention in ("legacy", "standard") if (data := summary.get(f"{dataset}/{convention}"))
                for m in methods if m in data["mean"]]
        lines += [f"### {dataset}", "", "Mean ± standard deviation over the test pairs:", ""]
        lines += table(["method, convention"] + CARD_METRICS, rows) + [""]
        if paper_rows(REPORT_CONFIG, dataset, methods[0]):
            lines += ["Beside the paper:", "", paper_table(dataset, *methods)]
    return "\n".join(lines)


def paper_ablations_block() -> str:
    """docs/ablations/paper_<study>/summary.json and configs/sweeps/paper/ (benchmarks/paper_ablations.py):
    each paper ablation's verdict sentence, and how many of its runs the summary holds."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import paper_ablations as ablations
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    lines = []
    for study in ablations.STUDIES:
        names = [p.name for p in ablations.points(study)]
        source = REPO / "docs" / "ablations" / f"paper_{study}" / "summary.json"
        if not source.is_file():
            lines.append(f"- `{study}` ({len(names)} runs): not evaluated yet.")
            continue
        summary = {k: v for k, v in load(str(source.relative_to(REPO))).items() if k not in ("machine", "git")}
        found = sum(any(n in block["mean"] for block in summary.values()) for n in names)
        lines.append(f"- `{study}` ({found} of {len(names)} runs): {' '.join(ablations.verdicts(study, summary))}")
    return "\n".join(lines) + "\n"


BLOCKS = {"methods": methods_block, "metric-list": metric_list_block, "peers": peers_block, "peer-agreement": agreement_block,
          "paper-ablations": paper_ablations_block, "peer-speed": speed_block, "provenance": provenance_block, "paper-table": paper_table,
          "ranking": ranking_block, "rows": rows_block, "complexity": complexity_block,
          "training-speed": training_speed_block, "card-weights": card_weights_block,
          "card-tests": card_tests_block, "video-stability": video_stability_block, "video-speed": video_speed_block}
BLOCK = re.compile(r"(?P<open><!-- generated:(?P<name>[\w-]+)(?P<args>[^>\n]*?) -->\n).*?"
                   r"(?P<close><!-- /generated:(?P=name) -->)", re.S)


def render_block(match: re.Match) -> str:
    if match["name"] not in BLOCKS:
        raise DocsError(f"unknown block {match['name']!r}; known: {', '.join(BLOCKS)}")
    return match["open"] + BLOCKS[match["name"]](*match["args"].split()) + match["close"]


def render(text: str) -> str:
    """``text`` with every block and inline value rendered from its source."""
    return VALUE.sub(render_value, BLOCK.sub(render_block, text))


def first_difference(old: str, new: str) -> str:
    """Where ``old`` first differs from its rendering ``new``: line number and the text around it."""
    for line, (a, b) in enumerate(zip(old.splitlines(), new.splitlines()), 1):
        if a != b:
            column = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            start = max(0, column - 40)
            return f"line {line}: {a[start:column + 40]!r} should read {b[start:column + 40]!r}"
    return "length differs"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is out of date")
    parser.add_argument("files", nargs="*", type=Path, help="files to render (default: README.md, "
                                                            "docs/REPRODUCTION.md, contrafuse/weights/*.md)")
    args = parser.parse_args(argv)
    stale = []
    for doc in args.files or DOCS:
        text = doc.read_text()
        try:
            new = render(text)
        except DocsError as exc:
            print(f"render_docs: {doc}: {exc}", file=sys.stderr)
            return 2
        if new != text:
            stale.append(f"{doc}: {first_difference(text, new)}")
            if not args.check:
                write_text_atomic(doc, new)
    if args.check and stale:
        print("out of date (python benchmarks/render_docs.py):\n" + "\n".join(stale))
    return int(args.check and bool(stale))


if __name__ == "__main__":
    sys.exit(main())
