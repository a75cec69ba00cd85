"""torchrun with 2 local processes on gloo (loopback): data-parallel training equals one process on
the whole batch, a 2-process run resumes as 1 process, and folder fusion shards the pairs."""

import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import save

from contrafuse.distributed import failed_on_bad_input

TORCHRUN = Path(sys.executable).with_name("torchrun")
pytestmark = pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun not installed beside this Python")

SCRIPT = textwrap.dedent('''
    import sys, numpy as np, torch
    from torch.nn import functional as F
    from contrafuse.train.loop import train

    class Recipe:  # a BatchNorm-free network and a per-sample mean loss: exact to compare
        def build_model(self, cfg):
            torch.manual_seed(0)
            return torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.Tanh(), torch.nn.Conv2d(4, 1, 1))
        def stage_data(self, cfg, stage):
            return np.random.default_rng(0).random((16, 2, 8, 8)).astype(np.float32)
        def step(self, model, batch, stage):
            return {"total": F.mse_loss(model(batch), batch[:, :1] * batch[:, 1:])}

    out, steps, resume = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "resume"
    cfg = {"method": "tiny", "lr": 0.05, "batch_size": 8, "seed": 0, "precision": "fp32", "threads": 1,
           "stages": [{"name": "train", "epochs": 3}]}
    train(cfg, Recipe(), out_dir=out, resume=resume, max_steps=steps)
    import os
    task = f"/proc/{os.getpid()}/task"
    if os.path.isdir(task):  # the threads left once training has left its process group
        print("threads after training:", sorted(open(f"{task}/{t}/comm").read().strip() for t in os.listdir(task)))
''')


def run(args, cwd):
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc


def weights(run_dir: Path):
    import torch
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    return state["model"], state["progress"]


def torchrun(n: int, *args):
    return [str(TORCHRUN), "--standalone", f"--nproc_per_node={n}", *args]


def test_two_processes_train_like_one_and_resume_as_one(tmp_path):
    script = tmp_path / "tiny_train.py"
    script.write_text(SCRIPT)
    run([sys.executable, str(script), str(tmp_path / "one"), "4", "new"], tmp_path)
    two_processes = run(torchrun(2, str(script), str(tmp_path / "two"), "4", "new"), tmp_path)
    # gloo's threads still running at interpreter exit made one process abort now and then
    if Path("/proc/self/task").is_dir():
        assert two_processes.stdout.count("threads after training:") == 2
        assert "gloo" not in two_processes.stdout
    one, progress_one = weights(tmp_path / "one")
    two, progress_two = weights(tmp_path / "two")
    assert progress_one["step"] == progress_two["step"] == 4
    for key in one:
        np.testing.assert_allclose(two[key].numpy(), one[key].numpy(), rtol=1e-5, atol=1e-6)
    assert "world_size: 2" in (tmp_path / "two" / "config.yaml").read_text()
    # 2 processes for 2 steps, then 1 process resumes for 2 more: the same as 4 steps of one
    run(torchrun(2, str(script), str(tmp_path / "mixed"), "2", "new"), tmp_path)
    run([sys.executable, str(script), str(tmp_path / "mixed"), "2", "resume"], tmp_path)
    mixed, progress = weights(tmp_path / "mixed")
    assert progress["step"] == 4
    for key in one:
        np.testing.assert_allclose(mixed[key].numpy(), one[key].numpy(), rtol=1e-5, atol=1e-6)
    assert "world_size: 1" in (tmp_path / "mixed" / "config.yaml").read_text()


def test_sharded_folder_fusion_fuses_every_pair_once(tmp_path, rng):
    for i in range(5):
        for kind in ("ir", "vis"):
            save(tmp_path / kind / f"p{i}.png", (rng.random((12, 16)) * 255).astype(np.uint8))
    proc = run(torchrun(2, "-m", "contrafuse", "fuse", "--ir-dir", str(tmp_path / "ir"), "--vis-dir",
                        str(tmp_path / "vis"), "--out-dir", str(tmp_path / "out"), "--method", "average"), tmp_path)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"p{i}.png" for i in range(5)]
    summaries = [line for line in proc.stdout.splitlines() if "fused," in line]
    assert summaries == [f"5 fused, 0 skipped, 0 failed -> {tmp_path / 'out'}"]
    shutil.rmtree(tmp_path / "out")


def test_torchrun_exits_2_on_bad_input_like_contrafuse(tmp_path, rng):
    """One unreadable pair among three under torchrun: the others fused, one summary, and the launcher
    exits 2 with no ChildFailedError traceback (contrafuse's torchrun.handlers entry point)."""
    for i in range(3):
        for kind in ("ir", "vis"):
            save(tmp_path / kind / f"p{i}.png", (rng.random((12, 16)) * 255).astype(np.uint8))
    for kind in ("ir", "vis"):
        (tmp_path / kind / "p3.png").write_text("junk")
    proc = subprocess.run(torchrun(2, "-m", "contrafuse", "fuse", "--ir-dir", str(tmp_path / "ir"), "--vis-dir",
                                   str(tmp_path / "vis"), "--out-dir", str(tmp_path / "out"), "--method", "average"),
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "ChildFailedError" not in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p0.png", "p1.png", "p2.png"]
    assert "not a readable image" in proc.stdout + proc.stderr


@pytest.mark.parametrize("exit_codes, bad_input", [
    ((2, 2), True),
    ((2, -signal.SIGTERM), True),    # one process exited 2 first; the launcher stopped the other
    ((-signal.SIGTERM, 2), True),
    ((1, -signal.SIGTERM), False),   # a crash keeps torchrun's own report
    ((2, 1), False),
    ((-signal.SIGTERM,), False),     # stopped from outside: no process reported bad input
    ((2, -signal.SIGKILL), False),
])
def test_torchrun_reports_bad_input_only_when_no_other_failure(exit_codes, bad_input):
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    failures = {rank: ProcessFailure(local_rank=rank, pid=100 + rank, exitcode=code, error_file="")
                for rank, code in enumerate(exit_codes)}
    assert failed_on_bad_input(ChildFailedError("contrafuse", failures)) is bad_input
