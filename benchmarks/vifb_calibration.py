"""Check the `vifb` convention against VIFB's own MATLAB values on all of VIFB_calib.

    python benchmarks/vifb_calibration.py

10 image pairs x 25 published methods x 13 metrics; writes the worst relative error per metric
to benchmarks/results/vifb_calibration.json. (CI runs five of the methods: tests/test_metrics.py.)
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
from PIL import Image

from contrafuse.bench.timing import write_result
from contrafuse.metrics import VIFB_COLUMNS

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent / "shared" / "datasets" / "VIFB_calib"


def main() -> None:
    with open(ROOT / "vifb_reference_metrics.csv") as handle:
        reference = {(r["image"], r["method"], r["metric"]): float(r["value"]) for r in csv.DictReader(handle)}
    triples = sorted({(img, m) for img, m, _ in reference if (ROOT / "fused" / f"{img}_{m}.jpg").exists()})
    worst = {name: {"relative_error": 0.0} for name in VIFB_COLUMNS}
    by_method: dict[str, float] = {}
    start = time.time()
    for image, method in triples:
        vis = np.asarray(Image.open(ROOT / "vis" / f"{image}.jpg"))
        ir = np.asarray(Image.open(ROOT / "ir" / f"{image}.jpg"))
        fused = np.asarray(Image.open(ROOT / "fused" / f"{image}_{method}.jpg"))
        for name, (_, func) in VIFB_COLUMNS.items():
            got, expected = func(ir, vis, fused), reference[(image, method, name)]
            error = abs(got - expected) / max(abs(expected), 1e-12)
            by_method[method] = max(by_method.get(method, 0.0), error)
            if error >= worst[name]["relative_error"]:
                worst[name] = {"relative_error": error, "image": image, "method": method,
                               "ours": got, "vifb": expected}
    for name, row in worst.items():
        print(f"{name:18s} worst relative error {row['relative_error']:.2e}")
    within = sorted(m for m, e in by_method.items() if e <= 1e-3)
    print(f"methods with every metric within 1e-3: {len(within)} of {len(by_method)}")
    write_result(HERE / "results" / "vifb_calibration.json", {
        "what": "worst relative error of the vifb convention against VIFB's MATLAB values",
        "triples": len(triples), "tolerance": 1e-3, "seconds": round(time.time() - start, 1),
        "all_within_tolerance": all(r["relative_error"] <= 1e-3 for r in worst.values()),
        "methods_within_tolerance": within,
        "worst_relative_error_by_method": dict(sorted(by_method.items(), key=lambda kv: -kv[1])),
        "worst": worst})


if __name__ == "__main__":
    main()
