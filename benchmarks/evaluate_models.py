"""Fuse each test suite with every method, evaluate, and write tables next to the papers' values.

    python benchmarks/evaluate_models.py [--suites tno,roadscene,mri_pet,mri_spect,mri_t1t2,lytro]
                                         [--methods coconet,clfnet,gff,...]

Fused images are cached under runs/eval/<suite>/<method>/ (not committed; re-used when present).
Writes benchmarks/results/eval_<suite>.json (per-image values, both conventions) and
docs/results/<suite>.md (mean ± std tables beside the published rows). Every number is produced
by this script from the committed code and weights.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from contrafuse.api import as_unit_image, fuse_images, match_sizes
from contrafuse.bench.timing import machine_info
from contrafuse.data.datasets import dataset_pairs, datasets_root, load_split
from contrafuse.errors import ContrafuseError
from contrafuse.io import read_image, write_image
from contrafuse.methods import create_method
from contrafuse.metrics import evaluate, summarise

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
METRICS = ["EN", "SD", "SF", "AG", "MI", "VIFF", "VIFP", "SCD", "Qabf", "SSIM"]
CLASSICAL = ["gff", "laplacian", "dwt", "average", "maximum"]

#: published mean (± std) rows of the learned methods, as printed in the papers
PAPER = {
    "tno": {
        "CoCoNet (IJCV'23 Table 1)": {"EN": "7.776 ± 0.081", "SD": "10.591 ± 0.477", "VIF": "0.893 ± 0.268",
                                      "SF": "0.0851 ± 0.0280", "AG": "7.967 ± 2.696", "SCD": "1.794 ± 0.091"},
        "CLF-Net (TIM'22 Table II)": {"EN": "7.2262", "MI": "3.6359", "VIF": "1.0484", "SD": "9.6135",
                                      "AG": "4.9897", "SF": "0.0495"},
    },
    "roadscene": {
        "CoCoNet (IJCV'23 Table 1)": {"EN": "7.693 ± 0.094", "SD": "10.674 ± 0.509", "VIF": "0.854 ± 0.091",
                                      "SF": "0.0718 ± 0.0193", "AG": "6.537 ± 2.001", "SCD": "1.817 ± 0.051"},
        "CLF-Net (TIM'22 Table III)": {"EN": "7.4540", "MI": "5.1649", "VIF": "1.0838", "SD": "10.4617",
                                       "AG": "6.0765", "SF": "0.0683"},
    },
    "mri_pet": {"CoCoNet (IJCV'23 Table 5)": {"EN": "4.498 ± 0.359", "SD": "8.737 ± 0.694", "VIF": "0.645 ± 0.057",
                                              "SF": "0.1081 ± 0.0166", "AG": "7.049 ± 1.387", "SCD": "1.454 ± 0.240"}},
    "mri_spect": {"CoCoNet (IJCV'23 Table 5)": {"EN": "4.142 ± 0.221", "SD": "8.871 ± 0.452", "VIF": "0.404 ± 0.022",
                                                "SF": "0.0653 ± 0.0029", "AG": "4.658 ± 0.317", "SCD": "0.874 ± 0.028"}},
    "mri_t1t2": {"CLF-Net (TIM'22 Table IV)": {"EN": "4.8480", "MI": "2.8499", "VIF": "0.8314", "SD": "9.0204",
                                               "AG": "7.1763", "SF": "0.1040"}},
    "lytro": {"CLF-Net (TIM'22 Table V)": {"EN": "7.4048", "MI": "6.2178", "VIF": "1.6919", "SD": "10.2464",
                                           "AG": "7.3844", "SF": "0.0936"}},
}


def suite_pairs(suite: str):
    if suite == "tno":
        return load_split(REPO / "configs" / "splits" / "tno.yaml")["test"]
    if suite == "roadscene":
        names = (datasets_root() / "RoadScene" / "splits" / "CDDFuse_test50.txt").read_text().split()[:20]
        return dataset_pairs("RoadScene", [Path(n).stem for n in names])
    if suite in ("mri_pet", "mri_spect"):
        test = load_split(REPO / "configs" / "splits" / "harvard_medical.yaml")["test"]
        wanted = "Harvard_MRI_PET_CDDFuse" if suite == "mri_pet" else "Harvard_MRI_SPECT_CDDFuse"
        return [p for p in test if p.dataset == wanted]
    if suite == "mri_t1t2":
        return dataset_pairs("IFCNN_MD")
    if suite == "lytro":
        return dataset_pairs("Lytro")
    raise ContrafuseError(None, f"unknown suite {suite!r}")


def default_methods(suite: str) -> list[str]:
    if suite in ("mri_pet", "mri_spect"):
        return ["coconet-medical", "coconet", "clfnet", *CLASSICAL]
    return ["coconet", "clfnet", *CLASSICAL]


def fused_path(suite, method, pair) -> Path:
    return REPO / "runs" / "eval" / suite / method / f"{pair.name}.png"


def run_suite(suite: str, methods: list[str]) -> dict:
    pairs = suite_pairs(suite)
    results = {"suite": suite, "pairs": [p.name for p in pairs], "metrics": METRICS, "methods": {}}
    for method_name in methods:
        try:
            method = create_method(method_name)
        except ContrafuseError as exc:
            print(f"skip {method_name}: {exc}")
            continue
        seconds, per_image = [], {"standard": [], "legacy": []}
        for pair in pairs:
            out = fused_path(suite, method_name, pair)
            first, second = as_unit_image(pair.first), as_unit_image(pair.second)
            first, second = match_sizes(first, second, resize="ir")
            if not out.exists():
                start = time.perf_counter()
                fused = fuse_images(first, second, method)
                seconds.append(time.perf_counter() - start)
                write_image(out, fused, overwrite=True)
            fused = read_image(out)
            src = [np.round(x * 255).astype(np.uint8) for x in (first, second)]
            for convention in per_image:
                values = evaluate(src[0], src[1], fused, metrics=METRICS, convention=convention)
                per_image[convention].append({"image": pair.name, **values})
        summary = {c: dict(zip(("mean", "std"), summarise(rows, METRICS))) for c, rows in per_image.items()}
        results["methods"][method_name] = {"per_image": per_image, "summary": summary,
                                           "fuse_seconds_median": float(np.median(seconds)) if seconds else None}
        print(f"{suite:10s} {method_name:16s} " + " ".join(
            f"{m}={summary['legacy']['mean'][m]:.4g}" for m in ("EN", "SD", "SF", "AG", "VIFF")))
    return results


def markdown(results: dict) -> str:
    suite = results["suite"]
    lines = [f"# Results: {suite}", "",
             f"{len(results['pairs'])} test pairs: {', '.join(results['pairs'])}.", "",
             "Generated by `python benchmarks/evaluate_models.py --suites " + suite + "`; every number below "
             "was computed by the committed code. Mean ± population std over the pairs.", ""]
    for convention in ("legacy", "standard"):
        lines += [f"## `{convention}` convention", "", "| method | " + " | ".join(METRICS) + " |",
                  "|---" * (len(METRICS) + 1) + "|"]
        for name, data in results["methods"].items():
            mean, std = data["summary"][convention]["mean"], data["summary"][convention]["std"]
            lines.append(f"| {name} | " + " | ".join(f"{mean[m]:.4g} ± {std[m]:.2g}" for m in METRICS) + " |")
        lines.append("")
    if suite in PAPER:
        lines += ["## Published values (the papers' own test images and evaluation code)", "",
                  "The papers' VIF column is placed under both VIFF and VIFP candidates in our discussion "
                  "(docs/REPRODUCTION.md); their SD/SF/AG follow the `legacy` convention.", "",
                  "| paper | " + " | ".join(["EN", "SD", "SF", "AG", "MI", "VIF", "SCD"]) + " |",
                  "|---" * 8 + "|"]
        for name, row in PAPER[suite].items():
            lines.append(f"| {name} | " + " | ".join(row.get(m, "–") for m in ["EN", "SD", "SF", "AG", "MI", "VIF", "SCD"]) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--suites", default="tno,roadscene,mri_pet,mri_spect,mri_t1t2,lytro")
    parser.add_argument("--methods", help="comma-separated; default depends on the suite")
    args = parser.parse_args()
    (REPO / "docs" / "results").mkdir(parents=True, exist_ok=True)
    for suite in args.suites.split(","):
        methods = args.methods.split(",") if args.methods else default_methods(suite)
        results = run_suite(suite, methods)
        results["machine"] = machine_info()
        (HERE / "results" / f"eval_{suite}.json").write_text(json.dumps(results, indent=1) + "\n")
        (REPO / "docs" / "results" / f"{suite}.md").write_text(markdown(results))


if __name__ == "__main__":
    main()
