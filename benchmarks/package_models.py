"""Copy trained runs into the package and write their model cards.

    python benchmarks/package_models.py --run coconet_tno=runs/coconet_tno \
        --run clfnet_tno=runs/clfnet_tno --run coconet_medical=runs/coconet_medical \
        --benchmark docs/benchmark

``--refresh NAME`` re-evaluates a shipped model whose run folder is gone: the card keeps its
training section and gets new test metrics and notes. Test-metric tables come from the
benchmark's summary.json (legacy and standard conventions).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from contrafuse.train.card import refresh_model_card, write_model_card

#: card name -> (title, benchmark method labels, datasets)
#: CoCoNet's weights (6.8 M parameters) are stored as float16 to keep each file under 20 MB
HALF = {"coconet_tno", "coconet_medical"}
CARDS = {
    "coconet_tno": ("CoCoNet, infrared-visible (TNO)", ["coconet", "coconet-standard"], ["tno", "roadscene"]),
    "clfnet_tno": ("CLF-Net, infrared-visible (TNO)", ["clfnet"], ["tno", "roadscene", "mri_t1t2", "lytro"]),
    "coconet_medical": ("CoCoNet, MRI-PET/SPECT (Harvard)", ["coconet-medical"], ["mri_pet", "mri_spect"]),
}
METRICS = ["EN", "SD", "SF", "AG", "MI", "VIFF", "VIFP", "SCD", "Qabf"]


def table(summary: dict, dataset: str, method: str) -> dict[str, str]:
    out = {}
    for convention in ("legacy", "standard"):
        data = summary.get(f"{dataset}/{convention}")
        if not data or method not in data["mean"]:
            continue
        mean, std = data["mean"][method], data["std"][method]
        out[f"{dataset}, `{convention}` convention, `{method}`"] = (
            "| " + " | ".join(METRICS) + " |\n" + "|---" * len(METRICS) + "|\n| "
            + " | ".join(f"{mean[m]:.4g} ± {std[m]:.2g}" for m in METRICS) + " |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", action="append", default=[], help="NAME=RUN_DIR")
    parser.add_argument("--refresh", action="append", default=[], help="NAME of a shipped model to re-evaluate")
    parser.add_argument("--benchmark", default="docs/benchmark")
    parser.add_argument("--note", action="append", default=[], help="NAME=text (repeatable)")
    args = parser.parse_args()
    summary = json.loads((Path(args.benchmark) / "summary.json").read_text())
    notes: dict[str, list[str]] = {}
    for item in args.note:
        name, text = item.split("=", 1)
        notes.setdefault(name, []).append(text)
    footer = ["Full comparison with the classical baselines and the papers' published rows: docs/benchmark/report.md."]
    for item in [*args.run, *args.refresh]:
        name, run_dir = item.split("=", 1) if "=" in item else (item, None)
        _, methods, datasets = CARDS[name]
        tables = {}
        for dataset in datasets:
            for method in methods:
                tables.update(table(summary, dataset, method))
        if run_dir:
            card = write_model_card(run_dir, name, CARDS[name][0], tables, notes.get(name, []) + footer, half=name in HALF)
        else:
            card = refresh_model_card(name, tables, notes.get(name, []) + footer, half=name in HALF)
        print(f"wrote {card}")


if __name__ == "__main__":
    main()
