"""Time every metric on one 640x480 triple (target: the full suite <= 2 s).

    python benchmarks/metrics_speed.py

Writes benchmarks/results/metrics_speed.json: seconds per metric (standard convention, median of
3 runs) and the total.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from classical_speed import benchmark_pair

import contrafuse
from contrafuse.bench.timing import median_seconds, write_result
from contrafuse.metrics import METRICS, evaluate

HERE = Path(__file__).resolve().parent


def main() -> None:
    ir, vis = benchmark_pair()
    fused = contrafuse.fuse(ir, vis, method="gff")
    triple = [np.round(x * 255).astype(np.uint8) for x in (ir, vis, fused)]
    seconds = {}
    for name in METRICS:
        seconds[name] = round(median_seconds(lambda n=name: evaluate(*triple, metrics=[n]), repeats=3), 4)
        print(f"{name:10s} {seconds[name]:.3f} s")
    total = round(sum(seconds.values()), 3)
    print(f"total      {total:.3f} s")
    write_result(HERE / "results" / "metrics_speed.json",
                 {"what": "median seconds per metric on one 640x480 grey triple (standard convention)",
                  "target_total_seconds": 2.0, "total_seconds": total, "seconds": seconds})


if __name__ == "__main__":
    main()
