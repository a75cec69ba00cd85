"""Time every classical fusion method on a 640x480 pair (target: GFF <= 0.3 s).

    python benchmarks/classical_speed.py [--repeats 5]

Writes benchmarks/results/classical_speed.json. The pair is RoadScene FLIR_00006 resampled
to 640x480 (read in place from ../shared/datasets).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from contrafuse.api import as_unit_image, resize_to
from contrafuse.bench.timing import median_seconds, write_result
from contrafuse.io import luminance
from contrafuse.methods import create_method

HERE = Path(__file__).resolve().parent
PAIR = HERE.parent.parent / "shared" / "datasets" / "RoadScene"


def benchmark_pair():
    ir = resize_to(as_unit_image(PAIR / "ir" / "FLIR_00006.jpg"), (480, 640))
    vis = resize_to(luminance(as_unit_image(PAIR / "vis" / "FLIR_00006.jpg")), (480, 640))
    return ir, vis


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    ir, vis = benchmark_pair()
    rows = {}
    for name in ("average", "maximum", "laplacian", "dwt", "gff"):
        method = create_method(name)
        rows[name] = round(median_seconds(lambda m=method: m.fuse_grey(ir, vis), repeats=args.repeats), 4)
        print(f"{name:10s} {rows[name]:.4f} s")
    write_result(HERE / "results" / "classical_speed.json",
                 {"what": "median seconds to fuse one 640x480 grey pair", "repeats": args.repeats,
                  "targets": {"gff": 0.3}, "seconds": rows})


if __name__ == "__main__":
    main()
