"""Shipped float16 CoCoNet weights against the float32 weights they were made from.

    python benchmarks/half_weights.py --source runs/coconet_tno_converged30/model.safetensors [--name coconet_tno]

Fuses the TNO test split in float32 arithmetic with both weight files (the default `authors`
protocol) and records the largest and mean absolute difference in grey levels between the two
8-bit results. Writes benchmarks/results/half_weights.json with the machine.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main() -> None:
    from contrafuse.api import fuse_images, load_pair
    from contrafuse.bench.suites import suite_pairs
    from contrafuse.bench.timing import write_result
    from contrafuse.io import to_uint
    from contrafuse.methods import create_method
    from contrafuse.weights import PACKAGE_WEIGHTS

    parser = argparse.ArgumentParser()
    parser.add_argument("--source", required=True, help="the float32 weights file the package copy was made from")
    parser.add_argument("--name", default="coconet_tno")
    parser.add_argument("--method", default="coconet")
    args = parser.parse_args()
    full = create_method(args.method, weights=args.source, precision="fp32", tile=0)
    half = create_method(args.method, weights=str(PACKAGE_WEIGHTS / f"{args.name}.safetensors"), precision="fp32", tile=0)
    largest, means = 0.0, []
    pairs = suite_pairs("tno")
    for pair in pairs:
        first, second = load_pair(pair, resize=None)
        a, b = (to_uint(fuse_images(first, second, m)).astype(np.int16) for m in (full, half))
        largest = max(largest, float(np.abs(a - b).max()))
        means.append(float(np.abs(a - b).mean()))
    result = {"weights": f"contrafuse/weights/{args.name}.safetensors", "source": args.source, "suite": "tno",
              "pairs": len(pairs), "max_grey_level_difference": largest,
              "mean_grey_level_difference": float(np.mean(means))}
    print(result)
    write_result(HERE / "results" / "half_weights.json", result)


if __name__ == "__main__":
    main()
