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
import json
from pathlib import Path

import numpy as np

from contrafuse.bench.timing import write_result
from contrafuse.models import MODEL_SPECS

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"


def official_seconds() -> dict[str, float]:
    path = SHARED / "peers" / "reference" / "timing.csv"
    if not path.is_file():
        return {}
    with open(path, newline="") as handle:
        return {row["method"]: float(row["median_s"]) for row in csv.DictReader(handle)}


CHILD = """
import json, sys, numpy as np, torch
from contrafuse.api import as_unit_image
from contrafuse.bench.timing import median_seconds, peak_rss_mb
from contrafuse.io import luminance
from contrafuse.methods import create_method
name, precision, repeats, folder, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
ir, vis = (luminance(as_unit_image(f"{folder}/{kind}/labMan.jpg")) for kind in ("ir", "vis"))
method = create_method(name, precision=precision, tile=0)
np.save(out, method.fuse_grey(ir, vis))
seconds = median_seconds(lambda: method.fuse_grey(ir, vis), repeats=repeats)
print(json.dumps({"seconds": round(seconds, 4), "peak_rss_mb": round(peak_rss_mb()), "threads": torch.get_num_threads()}))
"""


def main() -> None:
    import subprocess
    import sys
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", nargs="*", help="default: every model")
    args = parser.parse_args()
    folder = SHARED / "datasets" / "VIFB_calib"
    official = official_seconds()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.methods or list(MODEL_SPECS):
            if MODEL_SPECS[name].functional_first:
                continue  # the medical model: same network and cost as coconet
            row, outputs = {}, {}
            for precision in ("fp32", "bf16"):
                out = Path(tmp) / f"{name}-{precision}.npy"
                done = subprocess.run([sys.executable, "-c", CHILD, name, precision, str(args.repeats), str(folder),
                                       str(out)], capture_output=True, text=True, check=True)
                measured = json.loads(done.stdout.strip().splitlines()[-1])
                row[f"{precision}_seconds"], row[f"{precision}_peak_rss_mb"] = measured["seconds"], measured["peak_rss_mb"]
                row["threads"] = measured["threads"]
                outputs[precision] = np.load(out)
            diff = np.abs(outputs["bf16"] - outputs["fp32"]) * 255
            row["bf16_vs_fp32_grey_levels"] = {"mean": round(float(diff.mean()), 4), "max": round(float(diff.max()), 3)}
            if name in official:
                row["official_code_seconds"] = official[name]
                row["speed_up_at_bf16"] = round(official[name] / row["bf16_seconds"], 2)
            rows[name] = row
            print(name, row, flush=True)
    write_result(HERE / "results" / "zoo_speed.json",
                 {"what": "median seconds of fuse_grey on VIFB labMan (640x480), float32 and bfloat16 autocast, "
                          "each in its own process (peak resident memory of that process); official_code_seconds: "
                          "the official code's forward time on the same pair (../shared/peers/reference/timing.csv, "
                          "2 threads, another run)",
                  "repeats": args.repeats, "methods": rows})


if __name__ == "__main__":
    main()
