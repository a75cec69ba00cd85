"""Any size in bounded memory: a 4000x3000 pair through `contrafuse fuse`, both learned models.

    python benchmarks/large_image.py [--sizes 4000x3000 ...] [--methods coconet clfnet]

The pair is TNO_001 (TNO_CoCoNet) up-sampled bicubically, as a 12 MP visible camera would give.
Each run is a fresh `contrafuse fuse` process with the defaults (automatic tiling above
CONTRAFUSE_TILE_MEMORY, 1.2 GB); its wall time and peak resident memory (the kernel's
ru_maxrss of that child) are recorded with the machine in benchmarks/results/large_image.json.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent.parent / "shared" / "datasets" / "TNO_CoCoNet"


def fuse_in_child(ir: Path, vis: Path, out: Path, method: str, extra: list[str]) -> dict:
    """Wall time and peak RSS (this child's own ru_maxrss, via wait4) of one `contrafuse fuse`."""
    with tempfile.TemporaryFile() as log:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "contrafuse", "fuse", "--ir", str(ir), "--vis", str(vis),
                                 "-o", str(out), "--method", method, *extra], stdout=log, stderr=log)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            log.seek(0)
            raise SystemExit(f"{method} failed ({proc.returncode}): {log.read().decode()[-500:]}")
    return {"seconds": round(seconds, 1), "peak_rss_gb": round(usage.ru_maxrss / 2**20, 3)}


def main() -> None:
    from PIL import Image

    from contrafuse.bench.timing import write_result

    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", nargs="+", default=["4000x3000"])
    parser.add_argument("--methods", nargs="+", default=["coconet", "clfnet"])
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more options for contrafuse fuse")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for size in args.sizes:
            width, height = map(int, size.split("x"))
            ir, vis = tmp / f"ir_{size}.png", tmp / f"vis_{size}.png"
            for kind, path in (("ir", ir), ("vis", vis)):
                Image.open(SOURCE / kind / "TNO_001.png").convert("L").resize((width, height), Image.BICUBIC).save(path)
            for method in args.methods:
                result = fuse_in_child(ir, vis, tmp / f"{method}_{size}.png", method, args.extra)
                rows.append({"size": size, "method": method, "options": " ".join(args.extra), **result})
                print(rows[-1], flush=True)
    write_result(HERE / "results" / "large_image.json", {"runs": rows})


if __name__ == "__main__":
    main()
