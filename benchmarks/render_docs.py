"""Render the generated blocks of README.md and docs/REPRODUCTION.md from their sources.

    python benchmarks/render_docs.py          # rewrite the blocks
    python benchmarks/render_docs.py --check  # exit 1 if a block differs (tests/test_docs.py)

A block sits between ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->``; each renderer
below names the file its content comes from.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", REPO / "docs" / "REPRODUCTION.md"]
#: model name -> how the papers' tables name it
PEERS = {"densefuse": "DenseFuse", "ifcnn": "IFCNN", "seafusion": "SeAFusion", "tardal": "TarDAL"}
#: the papers' columns, and the metric of ours each compares with under `legacy` (their VIF is the
#: toolbox's, which our legacy VIFP reproduces: docs/metrics.md)
PAPER_METRICS = {"EN": "EN", "SD": "SD", "SF": "SF", "AG": "AG", "MI": "MI", "VIF": "VIFP", "SCD": "SCD"}


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def peers_block() -> str:
    """docs/peers/summary.json (`legacy`) beside the papers' rows in benchmarks/peers.yaml."""
    summary = json.loads((REPO / "docs" / "peers" / "summary.json").read_text())
    papers = yaml.safe_load((REPO / "benchmarks" / "peers.yaml").read_text())["paper"]
    lines = []
    for dataset, title in (("tno", "TNO test split"), ("roadscene", "RoadScene (20 pairs)")):
        data = summary.get(f"{dataset}/legacy")
        if not data:
            continue
        metrics = [m for m in PAPER_METRICS if any(m in row for row in papers.get(dataset, {}).values())]
        lines += [f"**{title}**, `legacy` (ours: mean ± standard deviation over the pairs; VIF: our `VIFP`):", "",
                  "| method | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
        for name, shown in PEERS.items():
            if name in data["mean"]:
                mean, std = data["mean"][name], data["std"][name]
                cells = [f"{_fmt(mean[PAPER_METRICS[m]])} ± {std[PAPER_METRICS[m]]:.2g}" if PAPER_METRICS[m] in mean
                         else "–" for m in metrics]
                lines.append(f"| {shown}, ours (`{name}`) | " + " | ".join(cells) + " |")
            for label, row in papers.get(dataset, {}).items():
                if label.startswith(shown + " ("):
                    lines.append(f"| {label} | " + " | ".join(str(row.get(m, "–")) for m in metrics) + " |")
        lines.append("")
    return "\n".join(lines)


def agreement_block() -> str:
    """benchmarks/results/zoo_reference.json."""
    result = json.loads((REPO / "benchmarks" / "results" / "zoo_reference.json").read_text())
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
    result = json.loads((REPO / "benchmarks" / "results" / "zoo_speed.json").read_text())
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


def methods_block() -> str:
    """contrafuse/models/*.yaml (every pretrained model's spec)."""
    from contrafuse.models import MODEL_SPECS

    lines = ["| name | method | paper | parameters | weights: source, licence |", "|---|---|---|---|---|"]
    for name, spec in MODEL_SPECS.items():
        p = spec.paper
        lines.append(f"| `{name}` | {spec.description} | {p['authors']}, {p['venue']} {p['year']} | "
                     f"{spec.parameters:,} | {spec.weights.source}; {spec.weights.licence} |")
    return "\n".join(lines) + "\n"


BLOCKS = {"methods": methods_block, "peers": peers_block, "peer-agreement": agreement_block,
          "peer-speed": speed_block}


def render(text: str) -> str:
    for name, make in BLOCKS.items():
        pattern = re.compile(rf"(<!-- generated:{name} -->\n).*?(<!-- /generated:{name} -->)", re.S)
        if pattern.search(text):
            text = pattern.sub(lambda m, make=make: m.group(1) + make() + m.group(2), text)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    stale = []
    for doc in DOCS:
        text = doc.read_text()
        new = render(text)
        if new != text:
            stale.append(doc.name)
            if not args.check:
                doc.write_text(new)
    if args.check and stale:
        print("out of date: " + ", ".join(stale) + " (python benchmarks/render_docs.py)")
    return int(args.check and bool(stale))


if __name__ == "__main__":
    sys.exit(main())
