"""A single-pair ``contrafuse fuse`` run against one warm in-process fusion of the same pair.

    python benchmarks/startup.py [--method coconet] [--repeats 3]

RoadScene FLIR_00006 (the ``startup`` acceptance check's pair). Warm: ``contrafuse.fuse`` with the
method built once, after one warm-up fusion. CLI runs, each a fresh process as a user starts it:

* ``first``: with no worker running, so the run starts one and waits for it (what the first run of a
  session costs);
* ``worker``: later runs, served by that worker;
* ``in_process``: with ``CONTRAFUSE_WORKER=off``, every run paying Python start-up, the PyTorch
  import and model loading itself.

Warm, worker and in-process runs alternate, medians of ``--repeats``. Also ``contrafuse --help``.
Writes benchmarks/results/startup.json with the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLI = [sys.executable, "-m", "contrafuse"]


def timed(command: list[str], **env: str) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, **env})
    return time.perf_counter() - start


def main() -> None:
    import contrafuse
    from contrafuse import worker
    from contrafuse.bench.timing import write_result
    from contrafuse.data.datasets import datasets_root
    from contrafuse.methods import create_method

    parser = argparse.ArgumentParser()
    parser.add_argument("--method", default="coconet")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    road = datasets_root() / "RoadScene"
    ir, vis = road / "ir" / "FLIR_00006.jpg", road / "vis" / "FLIR_00006.jpg"
    method = create_method(args.method)
    contrafuse.fuse(ir, vis, method=method)
    worker.stop_all()
    warm, served, alone = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        def fuse_cli(out: str, **env: str) -> float:
            return timed([*CLI, "fuse", "--ir", str(ir), "--vis", str(vis), "-o", f"{tmp}/{out}.png",
                          "--method", args.method], CONTRAFUSE_WORKER=env.get("worker", "auto"))

        first = fuse_cli("first")
        for i in range(args.repeats):
            start = time.perf_counter()
            contrafuse.fuse(ir, vis, method=method)
            warm.append(time.perf_counter() - start)
            served.append(fuse_cli(f"served{i}"))
            alone.append(fuse_cli(f"alone{i}", worker="off"))
    worker.stop_all()
    help_seconds = timed([*CLI, "--help"])
    w = statistics.median(warm)
    result = {"pair": "RoadScene/FLIR_00006", "method": args.method, "repeats": args.repeats,
              "warm_seconds": w,
              "cli_first_seconds": first, "cli_first_ratio": first / w,
              "cli_worker_seconds": statistics.median(served), "cli_worker_ratio": statistics.median(served) / w,
              "cli_in_process_seconds": statistics.median(alone), "cli_in_process_ratio": statistics.median(alone) / w,
              "help_seconds": help_seconds}
    print(result, flush=True)
    write_result(HERE / "results" / "startup.json", result)


if __name__ == "__main__":
    main()
