"""Any size in bounded memory, at linear cost: a 4000x3000 pair through both learned models.

    python benchmarks/large_image.py [--sizes 4000x3000 ...] [--methods coconet clfnet]
                                     [--linear coconet] [--extra OPTION ...]

The pair is TNO_001 (TNO_CoCoNet) up-sampled bicubically, as a 12 MP visible camera would give.
Two measurements, each in a fresh process, recorded with the machine, the commit and the load
average around each run in benchmarks/results/large_image.json:

* ``runs``: one `contrafuse fuse` process per size and method, with the defaults (automatic
  tiling above CONTRAFUSE_TILE_MEMORY, 1.2 GB): its wall time and peak resident memory (the
  kernel's ru_maxrss of that child);
* ``linear``: for the ``--linear`` methods, the large pair's time beside 640x480's in one process,
  as ``../shared/checks/run large-image-linear`` measures it (the median of three warm 640x480
  fusions, then the large one): ``ratio`` is the large wall time over the 640x480 one scaled by the
  pixel ratio (1 = linear cost), ``cpu_ratio`` the same of the CPU time (every thread of the
  process; less sensitive to other work on the machine), with that process's peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent.parent / "shared" / "datasets" / "TNO_CoCoNet"
SMALL = (640, 480)


def source_pair(width: int, height: int):
    from PIL import Image
    return [Image.open(SOURCE / kind / "TNO_001.png").convert("L").resize((width, height), Image.BICUBIC)
            for kind in ("ir", "vis")]


def load() -> float:
    return round(os.getloadavg()[0], 2)


def fuse_in_child(ir: Path, vis: Path, out: Path, method: str, extra: list[str]) -> dict:
    """Wall time and peak RSS (this child's own ru_maxrss, via wait4) of one `contrafuse fuse`."""
    with tempfile.TemporaryFile() as log:
        before, start = load(), time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "contrafuse", "fuse", "--ir", str(ir), "--vis", str(vis),
                                 "-o", str(out), "--method", method, *extra], stdout=log, stderr=log)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            log.seek(0)
            raise SystemExit(f"{method} failed ({proc.returncode}): {log.read().decode()[-500:]}")
    return {"seconds": round(seconds, 1), "peak_rss_gb": round(usage.ru_maxrss / 2**20, 3),
            "load_before": before, "load_after": load()}


def linear_in_process(method: str, width: int, height: int) -> dict:
    """The measurement of ``linear`` (see the module docstring), in this process."""
    import resource
    import statistics

    import numpy as np

    import contrafuse
    from contrafuse.methods import create_method

    small, large = ([np.asarray(image) for image in source_pair(*size)] for size in (SMALL, (width, height)))
    model = create_method(method)
    pixels = width * height / (SMALL[0] * SMALL[1])

    def timed(pair):
        wall, cpu = time.perf_counter(), time.process_time()
        contrafuse.fuse(*pair, method=model)
        return time.perf_counter() - wall, time.process_time() - cpu

    timed(small)
    small_wall, small_cpu = (statistics.median(times) for times in zip(*(timed(small) for _ in range(3))))
    wall, cpu = timed(large)
    return {"small_seconds": round(small_wall, 3), "seconds": round(wall, 1),
            "ratio": round(wall / (small_wall * pixels), 3), "small_cpu_seconds": round(small_cpu, 3),
            "cpu_seconds": round(cpu, 1),
            "cpu_ratio": round(cpu / (small_cpu * pixels), 3),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)}


def main() -> None:
    from contrafuse.bench.timing import write_result

    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", nargs="+", default=["4000x3000"])
    parser.add_argument("--methods", nargs="+", default=["coconet", "clfnet"])
    parser.add_argument("--linear", nargs="*", default=["coconet"], help="methods timed against 640x480 in one process")
    parser.add_argument("--in-process", nargs=2, metavar=("METHOD", "SIZE"), help=argparse.SUPPRESS)
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more options for contrafuse fuse")
    args = parser.parse_args()
    if args.in_process:
        method, size = args.in_process
        print(json.dumps(linear_in_process(method, *map(int, size.split("x")))))
        return
    rows, linear = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for size in args.sizes:
            width, height = map(int, size.split("x"))
            ir, vis = tmp / f"ir_{size}.png", tmp / f"vis_{size}.png"
            for image, path in zip(source_pair(width, height), (ir, vis)):
                image.save(path)
            for method in args.methods:
                result = fuse_in_child(ir, vis, tmp / f"{method}_{size}.png", method, args.extra)
                rows.append({"size": size, "method": method, "options": " ".join(args.extra), **result})
                print(rows[-1], flush=True)
            for method in args.linear:
                before = load()
                child = subprocess.run([sys.executable, __file__, "--in-process", method, size], capture_output=True,
                                       text=True, env={**os.environ, "CONTRAFUSE_WORKER": "off"})
                if child.returncode != 0:
                    raise SystemExit(f"{method} failed: {child.stderr[-500:]}")
                linear.append({"size": size, "method": method, **json.loads(child.stdout.splitlines()[-1]),
                               "load_before": before, "load_after": load()})
                print(linear[-1], flush=True)
    write_result(HERE / "results" / "large_image.json", {"runs": rows, "linear": linear})


if __name__ == "__main__":
    main()
