"""Folder mode against warm in-process inference (single-pair runs: benchmarks/startup.py).

    python benchmarks/folder_throughput.py [--pairs 48] [--head 16]

Folder: ``contrafuse fuse --ir-dir --vis-dir --out-dir`` run as a user runs it (a fresh process:
start-up, model loading, reading, fusing with colour handling, writing), once on the first
``--head`` pairs of RoadScene's CDDFuse test list and once on the first ``--pairs``. End to end:
pairs / wall time of the long run. Steady state: the extra pairs of the long run over the extra
seconds it took, which cancels the start-up both runs pay. Warm: the same extra pairs fused by
``contrafuse.api.fuse_images`` with the model built once and the images already in memory, after
one warm-up fusion. Writes benchmarks/results/folder_throughput.json with the machine.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLI = [sys.executable, "-m", "contrafuse"]


def main() -> None:
    from contrafuse.api import fuse_images, load_pair
    from contrafuse.bench.timing import write_result
    from contrafuse.data.datasets import datasets_root
    from contrafuse.methods import create_method

    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=48)
    parser.add_argument("--head", type=int, default=16)
    args = parser.parse_args()
    road = datasets_root() / "RoadScene"
    names = (road / "splits" / "CDDFuse_test50.txt").read_text().split()[: args.pairs]
    result = {"pairs": names, "folder": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for count in (args.head, len(names)):
            for kind in ("ir", "vis"):
                (tmp / f"{kind}{count}").mkdir()
                for name in names[:count]:
                    source = next((road / kind).glob(f"{name}.*"))
                    (tmp / f"{kind}{count}" / source.name).symlink_to(source)
        pairs = [type("Pair", (), {"first": next((road / "ir").glob(f"{n}.*")), "second": next((road / "vis").glob(f"{n}.*"))})
                 for n in names]
        images = [load_pair(p, resize=None) for p in pairs]
        for name in ("coconet", "clfnet"):
            method = create_method(name)
            fuse_images(*images[0], method)
            start = time.perf_counter()
            for first, second in images[args.head:]:
                fuse_images(first, second, method)
            warm = time.perf_counter() - start
            seconds = {}
            for count in (args.head, len(names)):
                start = time.perf_counter()
                subprocess.run([*CLI, "fuse", "--ir-dir", str(tmp / f"ir{count}"), "--vis-dir", str(tmp / f"vis{count}"),
                                "--out-dir", str(tmp / f"out_{name}{count}"), "--method", name],
                               check=True, capture_output=True)
                seconds[count] = time.perf_counter() - start
            extra = len(names) - args.head
            steady = extra / (seconds[len(names)] - seconds[args.head])
            result["folder"][name] = {"warm_pairs_per_second": extra / warm,
                                      "folder_steady_pairs_per_second": steady,
                                      "steady_ratio": steady / (extra / warm),
                                      "folder_end_to_end_pairs_per_second": len(names) / seconds[len(names)],
                                      "end_to_end_ratio": len(names) / seconds[len(names)] / (extra / warm),
                                      "folder_seconds": seconds}
            print(name, result["folder"][name], flush=True)
    write_result(HERE / "results" / "folder_throughput.json", result)


if __name__ == "__main__":
    main()
