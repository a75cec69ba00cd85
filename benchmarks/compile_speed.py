"""torch.compile against eager inference at 640x480, default precision, for both learned models.

    python benchmarks/compile_speed.py [--repeats 5]

For each model: seconds for the first compiled call (compilation included), median seconds per
fusion eager and compiled afterwards (RoadScene FLIR_00006 resized, as
benchmarks/classical_speed.py), and the largest difference between the two results in grey
levels. The compiler's on-disk cache starts empty (a temporary folder), so the first call
includes a cold compilation. Writes benchmarks/results/compile_speed.json with the machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main() -> None:
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-")  # a cold compile, before torch loads
    from classical_speed import benchmark_pair

    from contrafuse.bench.timing import median_seconds, write_result
    from contrafuse.methods import create_method

    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    ir, vis = benchmark_pair()
    result = {}
    for name in ("coconet", "clfnet"):
        eager, compiled = create_method(name), create_method(name, compile=True)
        start = time.perf_counter()
        fused_compiled = compiled.fuse_grey(ir, vis)
        first_call = time.perf_counter() - start
        seconds = {"eager": median_seconds(lambda m=eager: m.fuse_grey(ir, vis), repeats=args.repeats),
                   "compiled": median_seconds(lambda m=compiled: m.fuse_grey(ir, vis), repeats=args.repeats)}
        result[name] = {"precision": eager.precision, "first_compiled_call_seconds": first_call, "seconds": seconds,
                        "speedup": seconds["eager"] / seconds["compiled"],
                        "max_grey_level_difference": float(np.abs(eager.fuse_grey(ir, vis) - fused_compiled).max() * 255)}
        print(name, result[name], flush=True)
    write_result(HERE / "results" / "compile_speed.json", result)


if __name__ == "__main__":
    main()
