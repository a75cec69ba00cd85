"""Data-parallel training throughput: CLF-Net training steps/s with 1 and 2 torchrun processes.

    python benchmarks/distributed_training.py [--steps 12]

Each run trains configs/clfnet_tno.yaml for ``--steps`` steps (the config's batch of 4 patches,
split across the processes) into a temporary folder, under ``torchrun --standalone`` (gloo on the
CPU); seconds per step come from the run's CSV log (the first two steps, warm-up, left out). The
processes share the machine's cores (threads per process = cores / processes). Writes
benchmarks/results/distributed_training.json with the machine.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIG = HERE.parent / "configs" / "clfnet_tno.yaml"


def seconds_per_step(run: Path) -> float:
    with open(run / "log_train.csv") as log:
        rows = list(csv.DictReader(log))
    times = [float(r["seconds"]) for r in rows]
    return (times[-1] - times[1]) / (len(times) - 2)


def main() -> None:
    from contrafuse.bench.timing import write_result

    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args()
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for processes in (1, 2):
            run = Path(tmp) / f"run{processes}"
            subprocess.run([torchrun, "--standalone", f"--nproc_per_node={processes}", "-m", "contrafuse", "train",
                            "clfnet", "--config", str(CONFIG), "--out", str(run), "--max-steps", str(args.steps)],
                           check=True, capture_output=True)
            seconds = seconds_per_step(run)
            rows.append({"processes": processes, "seconds_per_step": round(seconds, 3),
                         "steps_per_second": round(1 / seconds, 3), "batch": 4})
            print(rows[-1], flush=True)
    write_result(HERE / "results" / "distributed_training.json", {
        "config": "configs/clfnet_tno.yaml", "steps": args.steps, "runs": rows,
        "speedup_2_processes": round(rows[0]["seconds_per_step"] / rows[1]["seconds_per_step"], 3)})


if __name__ == "__main__":
    main()
