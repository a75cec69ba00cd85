"""Speed and memory of the learned methods on this machine.

    python benchmarks/learned_speed.py

For CoCoNet and CLF-Net: median seconds to fuse one 640x480 pair (targets: CoCoNet <= 4 s,
CLF-Net <= 1.5 s), peak resident memory of a fresh process doing it (targets: <= 3 GB, <= 2 GB),
and training throughput in patches/s for every stage of the shipped configs (CoCoNet: 64x64
patches, batch 30, stage 1 without and stage 2 with the contrastive loss; CLF-Net: 128x128
patches, batch 4). Each measurement runs in its own process so that peak memory is its own.
Writes benchmarks/results/learned_speed.json.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

FUSE = """
import json, sys, torch
sys.path.insert(0, {here!r})
from classical_speed import benchmark_pair
from contrafuse.bench.timing import median_seconds, peak_rss_mb
from contrafuse.methods import create_method
method = create_method({name!r})
ir, vis = benchmark_pair()
seconds = median_seconds(lambda: method.fuse_grey(ir, vis), repeats=3)
print(json.dumps({{'seconds': seconds, 'peak_rss_mb': peak_rss_mb(), 'threads': torch.get_num_threads()}}))
"""

TRAIN = """
import json, time, torch, yaml
from contrafuse.train.config import load_config
from contrafuse.train.recipes import RECIPES
cfg = load_config({config!r}); stage = cfg['stages'][{stage}]
recipe = RECIPES.get(cfg['method'])()
model = recipe.build_model(cfg); model.train()
opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=float(cfg['lr']))
data = torch.from_numpy(recipe.stage_data(cfg, stage))
bs = int(stage.get('batch_size', cfg['batch_size']))
times = []
for i in range({steps} + 1):
    batch = data[i * bs:(i + 1) * bs]
    start = time.perf_counter()
    loss = recipe.step(model, batch, stage)['total']; opt.zero_grad(); loss.backward(); opt.step()
    if i: times.append(time.perf_counter() - start)
mean = sum(times) / len(times)
print(json.dumps({{'seconds_per_batch': mean, 'batch_size': bs, 'patches_per_second': bs / mean,
                  'threads': torch.get_num_threads()}}))
"""


def run(code: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    from contrafuse.bench.timing import write_result

    fuse = {name: run(FUSE.format(here=str(HERE), name=name)) for name in ("coconet", "clfnet")}
    training = {
        "coconet stage 1 (self-adaptive)": run(TRAIN.format(config="configs/ablations/coconet_tno_4epochs.yaml", stage=0, steps=3)),
        "coconet stage 2 (+contrastive)": run(TRAIN.format(config="configs/ablations/coconet_tno_4epochs.yaml", stage=1, steps=2)),
        "clfnet": run(TRAIN.format(config="configs/clfnet_tno.yaml", stage=0, steps=5)),
    }
    for name, row in {**fuse, **training}.items():
        print(name, row)
    write_result(HERE / "results" / "learned_speed.json", {
        "what": "fusing one 640x480 pair (median of 3 after a warm-up) and training throughput",
        "targets": {"coconet_fuse_seconds": 4.0, "coconet_peak_gb": 3.0, "clfnet_fuse_seconds": 1.5,
                    "clfnet_peak_gb": 2.0},
        "fuse_640x480": fuse, "training": training})


if __name__ == "__main__":
    main()
