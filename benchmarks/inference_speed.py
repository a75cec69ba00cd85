"""Warm 640x480 inference of the learned models: float32 eager (the default), bfloat16 autocast,
and ONNX Runtime; with what each changes in the results.

    python benchmarks/inference_speed.py [--repeats 5] [--pairs 22]

Speed: median seconds per fusion of one 640x480 pair (RoadScene FLIR_00006 resized, as
benchmarks/classical_speed.py), model loaded once. Differences: on the TNO test split (the
built-in ``tno`` split's 22 pairs), the largest per-pixel difference from float32 (grey levels)
and each metric's mean relative to float32's (``standard`` convention). Writes
benchmarks/results/inference_speed.json with the machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

VARIANTS = {"fp32": {"precision": "fp32"}, "bf16": {"precision": "bf16"}, "onnxruntime": {"backend": "onnxruntime"}}
METRICS = ["EN", "SD", "SF", "AG", "MI", "VIFF", "SCD", "Qabf"]


def main() -> None:
    from classical_speed import benchmark_pair

    from contrafuse.api import load_pair
    from contrafuse.bench.suites import suite_pairs
    from contrafuse.bench.timing import median_seconds, write_result
    from contrafuse.io import luminance
    from contrafuse.methods import create_method
    from contrafuse.metrics import evaluate

    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=22)
    args = parser.parse_args()
    ir, vis = benchmark_pair()
    pairs = suite_pairs("tno")[: args.pairs]
    sources = [tuple(luminance(x) for x in load_pair(p)) for p in pairs]
    result = {"speed_640x480": {}, "tno_test": {}}
    for name in ("coconet", "clfnet"):
        speed, fused, metrics = {}, {}, {}
        for variant, options in VARIANTS.items():
            method = create_method(name, **options)
            speed[variant] = round(median_seconds(lambda method=method: method.fuse_grey(ir, vis), repeats=args.repeats), 3)
            fused[variant] = [method.fuse_grey(a, b) for a, b in sources]
            rows = [evaluate(np.round(a * 255).astype(np.uint8), np.round(b * 255).astype(np.uint8),
                             np.round(f * 255).astype(np.uint8), metrics=METRICS)
                    for (a, b), f in zip(sources, fused[variant])]
            metrics[variant] = {m: float(np.mean([r[m] for r in rows])) for m in METRICS}
            print(name, variant, speed[variant], flush=True)
        result["speed_640x480"][name] = {
            "seconds": speed, "speedup_vs_fp32": {v: round(speed["fp32"] / s, 3) for v, s in speed.items()}}
        result["tno_test"][name] = {
            variant: {"max_grey_level_difference": round(float(max(np.abs(f - g).max() for f, g in
                                                                   zip(fused[variant], fused["fp32"]))) * 255, 3),
                      "metric_ratio_to_fp32": {m: round(metrics[variant][m] / metrics["fp32"][m], 5) for m in METRICS},
                      "largest_metric_change_percent": round(100 * max(abs(metrics[variant][m] / metrics["fp32"][m] - 1)
                                                                       for m in METRICS), 3)}
            for variant in VARIANTS}
    result["pairs"] = [p.name for p in pairs]
    write_result(HERE / "results" / "inference_speed.json", result)


if __name__ == "__main__":
    main()
