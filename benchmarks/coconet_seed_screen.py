"""Screen seeds of the shipped CoCoNet recipe on the validation pairs, finishing only the sharp ones.

    python benchmarks/coconet_seed_screen.py --seeds 3-12 [--threshold 0.056] [--out runs/seed_screen]

Under the authors' inference protocol the sharpness of a trained CoCoNet is mostly a draw of the
seed (docs/REPRODUCTION.md, "Seed variance"), and it shows after stage 1 already: on every run so
far the validation SF after stage 1 ranked the runs as after fine-tuning. For each seed this trains
``configs/coconet_tno.yaml`` with that seed, scores the stage-1 weights (``after_train``) on every
third pair of ``roadscene_val`` (`legacy` SD/SF/AG, default inference), and lets fine-tuning run
only when SF reaches ``--threshold``; otherwise the run stops there. A run whose SF after stage-1
epoch 3 is below ``--early`` stops then (on the six runs before the screen, epoch 3 already split
the sharp runs, SF 0.048-0.049, from the others, 0.040-0.042). Nothing touches a test split.
Every decision goes to ``<out>/screen.json`` as it is made, so a stopped screen resumes where it was
(a seed whose run was interrupted resumes from its checkpoint). ``--score FILE...`` only scores
weights files the same way. Each pass (or ``--publish`` alone) ends by writing
benchmarks/results/coconet_seed_screen.json: the screen, the same scores of the six runs of
docs/ablations/coconet_seeds for reference, and the machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from contrafuse.bench.timing import write_result
from contrafuse.io import write_text_atomic

REPO = Path(__file__).resolve().parent.parent
RECIPE = REPO / "configs" / "coconet_tno.yaml"
#: the runs of configs/coconet_tno.yaml before the screen (docs/ablations/coconet_seeds)
EARLIER_RUNS = {"seed 0 (shipped)": "runs/coconet_tno_converged30", "seed 1": "runs/coconet_tno_seed1",
                "seed 2": "runs/coconet_tno_seed2", "seed 0 again": "runs/coconet_tno_seed0_rerun",
                "seed 0, seed 1's patches": "runs/coconet_tno_seed0_patches1",
                "seed 1, seed 0's patches": "runs/coconet_tno_seed1_patches0"}


def parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        seeds.extend(range(int(low), int(high or low) + 1))
    return seeds


def validation_scores(method) -> dict[str, float]:
    """Mean `legacy` SD, SF and AG of every third validation pair fused by ``method``."""
    from contrafuse.bench.suites import SUITES
    from contrafuse.data.datasets import load_grey_pair
    from contrafuse.metrics import evaluate

    rows = []
    for pair in SUITES["roadscene_val"]()[::3]:
        ir, vis = load_grey_pair(pair)
        rows.append(evaluate(ir, vis, method.fuse_grey(ir, vis), ["SD", "SF", "AG"], convention="legacy"))
    return {name: round(float(np.mean([row[name] for row in rows])), 5) for name in rows[0]}


def score(weights: Path) -> dict[str, float]:
    """:func:`validation_scores` of ``coconet`` with ``weights`` and its default inference."""
    from contrafuse.methods import create_method

    return validation_scores(create_method("coconet", weights=str(weights)))


def stop(process: subprocess.Popen) -> None:
    """Stop a training run with SIGTERM (it checkpoints first) and wait for it."""
    process.terminate()
    process.wait()


def screen_seed(seed: int, out: Path, threshold: float, early: float, record: dict) -> dict:
    run = out / f"seed{seed}"
    run.mkdir(parents=True, exist_ok=True)
    config = run / "recipe.yaml"
    cfg = yaml.safe_load(RECIPE.read_text())
    cfg.update(seed=seed, output=str(run))
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    command = [sys.executable, "-m", "contrafuse", "train", "coconet", "--config", str(config)]
    if (run / "checkpoint.pt").exists():
        command.append("--resume")
    with open(run / "train.log", "a") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        stage1, epoch3 = run / "after_train.safetensors", run / "train_epoch3.safetensors"
        while "epoch3" not in record and process.poll() is None and not epoch3.exists():
            time.sleep(10)
        if "epoch3" not in record and epoch3.exists():
            time.sleep(2)  # let the file be complete
            record["epoch3"] = score(epoch3)
            if record["epoch3"]["SF"] < early:
                record["finetune"] = False
                print(f"seed {seed}: stage-1 epoch 3 {record['epoch3']} -> stop", flush=True)
                stop(process)
                return record
        while "stage1" not in record and process.poll() is None and not stage1.exists():
            time.sleep(10)
        if "stage1" not in record:
            if not stage1.exists():
                raise RuntimeError(f"seed {seed}: training stopped before stage 1 ended (see {run / 'train.log'})")
            time.sleep(2)  # let the file be complete
            record["stage1"] = score(stage1)
            record["stage1_epochs"] = sum(1 for _ in run.glob("train_epoch*.safetensors"))
            record["finetune"] = record["stage1"]["SF"] >= threshold
            print(f"seed {seed}: stage 1 {record['stage1']} -> {'fine-tune' if record['finetune'] else 'stop'}", flush=True)
            if not record["finetune"]:
                stop(process)
                return record
        if process.wait() != 0:
            raise RuntimeError(f"seed {seed}: training failed (see {run / 'train.log'})")
    record["final"] = score(run / "model.safetensors")
    print(f"seed {seed}: fine-tuned {record['final']}", flush=True)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="3-12", help="e.g. 3-12 or 3,5,7")
    parser.add_argument("--threshold", type=float, default=0.056, help="stage-1 SF that earns fine-tuning")
    parser.add_argument("--early", type=float, default=0.045, help="SF after stage-1 epoch 3 below which a run stops")
    parser.add_argument("--out", default="runs/seed_screen")
    parser.add_argument("--publish", action="store_true", help="train nothing: only write the results file")
    parser.add_argument("--score", nargs="+", metavar="FILE", help="only score these weights files")
    args = parser.parse_args()
    if args.score:
        for path in args.score:
            print(path, score(Path(path)), flush=True)
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "screen.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    for seed in [] if args.publish else parse_seeds(args.seeds):
        record = results.get(str(seed), {})
        if "final" in record or record.get("finetune") is False:
            continue
        results[str(seed)] = screen_seed(seed, out, args.threshold, args.early, record)
        write_text_atomic(results_path, json.dumps(results, indent=1) + "\n")
    earlier = {label: {stage: score(REPO / run / f"{name}.safetensors")
                       for stage, name in (("epoch3", "train_epoch3"), ("stage1", "after_train"), ("final", "model"))}
               for label, run in EARLIER_RUNS.items() if (REPO / run / "model.safetensors").exists()}
    write_result(REPO / "benchmarks" / "results" / "coconet_seed_screen.json",
                 {"recipe": "configs/coconet_tno.yaml", "threshold": args.threshold,
                  "early": args.early, "pairs": "every third pair of roadscene_val, legacy, default inference",
                  "screen": results, "earlier_runs": earlier})


if __name__ == "__main__":
    main()
