"""Time the metric suite on one 640x480 triple (issue 40 targets: one convention's full suite
<= 0.5 s, all three conventions together <= 0.8 s, on 2 cores).

    python benchmarks/metrics_speed.py [--repeats 5]

The triple is the one ``../shared/checks/run metrics-speed`` uses (TNO_CoCoNet TNO_012, fused =
the rounded-down mean of the sources). Writes benchmarks/results/metrics_speed.json: per convention
the warm median wall and CPU seconds (``time.process_time``, every thread of the process) of
``evaluate`` with every metric, the same for ``evaluate_conventions`` (all three at once), wall and
CPU seconds per metric alone (standard), and the load average around the run: the figures are
absolute, so a busy machine inflates the wall time (and, less, the CPU time).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from contrafuse.bench.timing import write_result
from contrafuse.metrics import CONVENTIONS, METRICS, evaluate, evaluate_conventions

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "datasets" / "TNO_CoCoNet"
TARGET_ONE, TARGET_ALL = 0.5, 0.8


def check_triple():
    ir = np.asarray(Image.open(DATA / "ir" / "TNO_012.png").convert("L"))
    vis = np.asarray(Image.open(DATA / "vis" / "TNO_012.png").convert("L"))
    return ir, vis, ((ir.astype(np.uint16) + vis) // 2).astype(np.uint8)


def timed(func, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``func()`` after one warm-up call."""
    func()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        func()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return round(statistics.median(walls), 4), round(statistics.median(cpus), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    triple = check_triple()
    load_before = os.getloadavg()
    per_convention = {}
    for convention in CONVENTIONS:
        wall, cpu = timed(lambda c=convention: evaluate(*triple, convention=c), args.repeats)
        per_convention[convention] = {"wall_seconds": wall, "cpu_seconds": cpu}
        print(f"{convention:9s} {wall:.3f} s wall, {cpu:.3f} s CPU")
    wall, cpu = timed(lambda: evaluate_conventions(*triple), args.repeats)
    together = {"wall_seconds": wall, "cpu_seconds": cpu}
    print(f"all three {wall:.3f} s wall, {cpu:.3f} s CPU")
    per_metric, per_metric_cpu = {}, {}
    for name in METRICS:
        per_metric[name], per_metric_cpu[name] = timed(lambda n=name: evaluate(*triple, metrics=[n]), 3)
    load_after = os.getloadavg()
    worst = max(v["wall_seconds"] for v in per_convention.values())
    write_result(HERE / "results" / "metrics_speed.json", {
        "what": f"full suite of {len(METRICS)} metrics on one 640x480 grey triple (TNO_012, as the "
                "metrics-speed check): warm medians of evaluate() per convention and of "
                "evaluate_conventions() for all three; wall and CPU seconds per metric alone (standard)",
        "threads": os.environ.get("CONTRAFUSE_METRIC_THREADS", "2"),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "target_one_convention_seconds": TARGET_ONE, "target_all_conventions_seconds": TARGET_ALL,
        "one_convention_met": worst <= TARGET_ONE, "all_conventions_met": together["wall_seconds"] <= TARGET_ALL,
        "per_convention": per_convention, "all_conventions": together,
        "seconds_per_metric_standard": per_metric, "cpu_seconds_per_metric_standard": per_metric_cpu})


if __name__ == "__main__":
    main()
