"""Training steps per second, before and after a change, in one run on one machine.

    python benchmarks/training_speed.py [--before REF] [--steps N]

For every training stage of the shipped configs (CoCoNet stage 1 and stage 2 on TNO, CLF-Net),
times optimiser steps of the committed code at ``REF`` (checked out into a temporary git
worktree) and of the working tree, alternating the two so that both see the same machine state.
Each measurement runs in its own process: the seeded model, the config's batch size, the first
``N`` batches of the config's patches, after one warm-up step. The working tree runs with the
config's default precision (``auto``: bfloat16 autocast where the CPU has native bfloat16); the
``after-fp32`` rows isolate what the structural changes alone bring. Writes
benchmarks/results/training_speed.json with the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from contrafuse.data.datasets import datasets_root
from contrafuse.train.sweep import load_point

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

STEP = """
import json, sys, time, torch
sys.path.insert(0, {code!r})
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f)]  # only the checkout's modules
from contrafuse.train.recipes import RECIPES
try:
    from contrafuse.train.config import load_config
except ImportError:  # code from before the config schema
    from contrafuse.train.loop import load_config
try:
    from contrafuse.precision import autocast, resolve_precision
except ImportError:  # code from before mixed precision existed
    import contextlib
    autocast, resolve_precision = (lambda device, precision: contextlib.nullcontext()), (lambda p, d: "fp32")
torch.manual_seed(0)
cfg = load_config({config!r}); stage = cfg["stages"][{stage}]
precision = resolve_precision({precision!r} or str(cfg.get("precision", "auto")), "cpu")
recipe = RECIPES.get(cfg["method"])()
layout = torch.channels_last if getattr(recipe, "channels_last", False) else torch.contiguous_format
model = recipe.build_model(cfg).to(memory_format=layout); model.train()
opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=float(cfg["lr"]))
data = torch.from_numpy(recipe.stage_data(cfg, stage))
bs = int(stage.get("batch_size", cfg["batch_size"]))
times = []
for i in range({steps} + 1):
    batch = data[i * bs:(i + 1) * bs].contiguous(memory_format=layout)
    start = time.perf_counter()
    with autocast("cpu", precision):
        loss = recipe.step(model, batch, stage)["total"]
    opt.zero_grad(); loss.backward(); opt.step()
    if i:
        times.append(time.perf_counter() - start)
mean = sum(times) / len(times)
print(json.dumps({{"seconds_per_step": mean, "steps_per_second": 1 / mean, "batch_size": bs,
                  "precision": precision, "threads": torch.get_num_threads()}}))
"""

STAGES = {
    "coconet stage 1 (self-adaptive)": ("configs/ablations/coconet_tno_4epochs.yaml", 0),
    "coconet stage 2 (+contrastive)": ("configs/ablations/coconet_tno_4epochs.yaml", 1),
    "clfnet": ("configs/clfnet_tno.yaml", 0),
}
#: where the same recipes live in the default ``--before`` checkout (f1f3604), whose code reads
#: splits by path: the 4-epoch CoCoNet recipe was then configs/coconet_tno.yaml
BEFORE_CONFIGS = {"configs/ablations/coconet_tno_4epochs.yaml": "configs/coconet_tno.yaml"}
#: the shipped CoCoNet config's fine-tuning stage splits each batch as the authors' code does
#: (10 fused anchors, 20 patches lending negatives): a step costs a third; timed after only
AFTER_ONLY = {"coconet stage 2, 10 anchors of 30 (coconet_tno_converged.yaml)":
              ("configs/sweeps/coconet_converged_schedule.yaml", 1, "coconet_tno_converged")}
#: epochs x steps per epoch of configs/ablations/coconet_tno_4epochs.yaml (4 + 5 epochs of 47 batches), the schedule
#: the shipped model had before; the same epochs timed with the new code and the 10-anchor split
SCHEDULE = {"coconet stage 1 (self-adaptive)": 4 * 47, "coconet stage 2 (+contrastive)": 5 * 47}


def measure(code: Path, config: str, stage: int, steps: int, precision: str = "") -> dict:
    """Time ``steps`` steps of ``code`` (a checkout) on its own copy of ``config``."""
    script = STEP.format(code=str(code), config=config, stage=stage, steps=steps, precision=precision)
    env = {**os.environ, "CONTRAFUSE_DATASETS": str(datasets_root())}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=code, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="f1f3604", help="git ref of the code before the change")
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    from contrafuse.bench.timing import write_result

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(before), args.before], cwd=REPO, check=True,
                       capture_output=True)
        try:
            for name, (config, stage) in STAGES.items():
                row = {"before": measure(before, BEFORE_CONFIGS.get(config, config), stage, args.steps),
                       "after-fp32": measure(REPO, config, stage, args.steps, "fp32"),
                       "after": measure(REPO, config, stage, args.steps)}
                row["speed-up"] = row["before"]["seconds_per_step"] / row["after"]["seconds_per_step"]
                row["speed-up fp32"] = row["before"]["seconds_per_step"] / row["after-fp32"]["seconds_per_step"]
                rows[name] = row
                print(name, json.dumps(row))
            for name, (sweep, stage, point) in AFTER_ONLY.items():  # a sweep's point, written out as a config
                config = Path(tmp) / f"{point}.yaml"
                config.write_text(yaml.safe_dump({k: v for k, v in load_point(REPO / sweep, point).items() if k != "_path"}))
                rows[name] = {"after": measure(REPO, str(config), stage, args.steps)}
                print(name, json.dumps(rows[name]))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=REPO, check=False)
    stage1, stage2 = SCHEDULE
    anchors = next(iter(AFTER_ONLY))
    seconds = {
        "before": sum(n * rows[name]["before"]["seconds_per_step"] for name, n in SCHEDULE.items()),
        "after, 30 anchors": sum(n * rows[name]["after"]["seconds_per_step"] for name, n in SCHEDULE.items()),
        "after, 10 anchors": (SCHEDULE[stage1] * rows[stage1]["after"]["seconds_per_step"]
                              + SCHEDULE[stage2] * rows[anchors]["after"]["seconds_per_step"]),
    }
    seconds.update({f"speed-up, {k}": seconds["before"] / seconds[k] for k in ("after, 30 anchors", "after, 10 anchors")})
    write_result(HERE / "results" / "training_speed.json", {
        "what": "seconds per optimiser step of the shipped training configs, code at 'before' vs the working tree",
        "before": args.before, "steps": args.steps, "stages": rows,
        "coconet 4 + 5 epoch schedule, seconds": seconds})


if __name__ == "__main__":
    main()
