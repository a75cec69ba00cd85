"""Speed of every pretrained model on one 640x480 pair, float32 and bfloat16, beside the official
code's forward time, and how far bfloat16 moves the result.

    python benchmarks/zoo_speed.py [--repeats 3]

The pair is VIFB's labMan (640x480), the pair ../shared/peers/reference/timing.csv timed the
official code on (2 threads); our time is the whole ``fuse_grey`` call (pre- and post-processing
included). Writes benchmarks/results/zoo_speed.json; compare times only within one run, on a
quiet machine.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from contrafuse.api import as_unit_image
from contrafuse.bench.timing import median_seconds, write_result
from contrafuse.io import luminance
from contrafuse.methods import create_method
from contrafuse.models import MODEL_SPECS

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"


def official_seconds() -> dict[str, float]:
    path = SHARED / "peers" / "reference" / "timing.csv"
    if not path.is_file():
        return {}
    with open(path, newline="") as handle:
        return {row["method"]: float(row["median_s"]) for row in csv.DictReader(handle)}


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    folder = SHARED / "datasets" / "VIFB_calib"
    ir, vis = (luminance(as_unit_image(folder / kind / "labMan.jpg")) for kind in ("ir", "vis"))
    official = official_seconds()
    rows = {}
    for name in MODEL_SPECS:
        if MODEL_SPECS[name].functional_first:
            continue  # the medical model: same network and cost as coconet
        row = {}
        outputs = {}
        for precision in ("fp32", "bf16"):
            method = create_method(name, precision=precision, tile=0)
            outputs[precision] = method.fuse_grey(ir, vis)
            row[f"{precision}_seconds"] = round(median_seconds(lambda m=method: m.fuse_grey(ir, vis),
                                                               repeats=args.repeats), 4)
        diff = np.abs(outputs["bf16"] - outputs["fp32"]) * 255
        row["bf16_vs_fp32_grey_levels"] = {"mean": round(float(diff.mean()), 4), "max": round(float(diff.max()), 3)}
        if name in official:
            row["official_code_seconds"] = official[name]
        rows[name] = row
        print(name, row)
    write_result(HERE / "results" / "zoo_speed.json",
                 {"what": "median seconds of fuse_grey on VIFB labMan (640x480), float32 and bfloat16 autocast; "
                          "official_code_seconds: the official code's forward time on the same pair "
                          "(../shared/peers/reference/timing.csv, 2 threads, another run)",
                  "repeats": args.repeats, "torch_threads": torch.get_num_threads(), "methods": rows})


if __name__ == "__main__":
    main()
