"""Sweeps: point names and resolved configs against hand-written expectations, one-line mistakes,
the scheduler's resume/skip/concurrency rules (with a fake training process), a tiny real point, and
every shipped sweep resolving to valid configs."""

import contextlib
import csv
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from contrafuse.cli import main
from contrafuse.errors import ContrafuseError
from contrafuse.train.config import load_config
from contrafuse.train.sweep import collect, load_point, load_sweep, run

REPO = Path(__file__).resolve().parents[1]
BASE = {"method": "clfnet", "split": "tno", "lr": 1e-3, "batch_size": 2, "patch_size": 16, "stride": 16,
        "seed": 0, "output": "runs/base", "stages": [{"name": "train", "epochs": 2}]}


def _write(path: Path, mapping: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(mapping, sort_keys=False))
    return path


def _sweep(tmp_path, **keys) -> Path:
    _write(tmp_path / "recipes" / "base.yaml", BASE)
    return _write(tmp_path / "sweeps" / "study.yaml", {"base": "../recipes/base.yaml", "output": "runs/study", **keys})


def test_points_are_axis_combinations_times_variants_in_order(tmp_path):
    path = _sweep(tmp_path, prefix="clf_", set={"threads": 1, "train.epochs": 3},
                  axes={"seed": [0, 1], "lambda_nce": [0.5, 1.0]},
                  variants=[{"name": "full"}, {"name": "b", "label": "strategy (b)", "set": {"negatives": "b"}}])
    points = load_sweep(path).points
    assert [p.name for p in points] == [
        "clf_full_seed0_lambda_nce0.5", "clf_b_seed0_lambda_nce0.5", "clf_full_seed0_lambda_nce1.0", "clf_b_seed0_lambda_nce1.0",
        "clf_full_seed1_lambda_nce0.5", "clf_b_seed1_lambda_nce0.5", "clf_full_seed1_lambda_nce1.0", "clf_b_seed1_lambda_nce1.0"]
    b = points[5]
    assert (b.variant, b.label, b.values) == ("b", "strategy (b)", {"seed": 1, "lambda_nce": 0.5})
    expected = {**BASE, "seed": 1, "lambda_nce": 0.5, "negatives": "b", "threads": 1,
                "stages": [{"name": "train", "epochs": 3}], "output": "runs/study/clf_b_seed1_lambda_nce0.5"}
    got = {k: v for k, v in b.config.items() if k not in ("_path", "split")}
    assert got == {k: v for k, v in expected.items() if k != "split"} and b.config["split"].endswith("tno.yaml")
    assert "negatives" not in points[4].config and points[0].label == "full"
    # one point through the training command's loader: the same config
    assert load_point(path, "clf_b_seed1_lambda_nce0.5") == b.config


@pytest.mark.parametrize("keys, fragments", [
    ({"axes": {"seed": [0]}, "variants": [{"name": "a", "set": {"seed": 3}}]}, ["variant 'a' sets 'seed', which is an axis"]),
    ({"variants": [{"name": "a"}, {"name": "a"}]}, ["two points are named 'a'"]),
    ({"variants": [{"name": "a/b"}]}, ["point name 'a/b' is not a usable folder name"]),
    ({"axes": {"seed": []}}, ["axes.seed must be a non-empty list"]),
    ({"axes": {"seed": [0]}, "set": {"output": "x"}}, ["set: output is the sweep's"]),
    ({"axes": {"seed": [0]}, "set": {"seedd": 1}}, ["study.yaml [seed0]", "unknown key 'seedd'", "did you mean 'seed'?"]),
    ({"axes": {"masks": ["mri"]}}, ["study.yaml [masksmri]", "key 'masks' is for method coconet"]),
    ({"variants": [{"name": "a", "set": {"stages.0.epochs": 0}}]}, ["[a]: stages[0].epochs must be at least 1"]),
    ({"variants": [{"name": "a"}], "axis": {"seed": [1]}}, ["unknown key 'axis'", "did you mean 'axes'?"]),
    ({"variants": [{"label": "x"}]}, ["missing required key variants[0].'name'"]),
])
def test_sweep_mistakes_are_one_line(tmp_path, keys, fragments):
    with pytest.raises(ContrafuseError) as exc:
        load_sweep(_sweep(tmp_path, **keys))
    assert "\n" not in str(exc.value) and all(f in str(exc.value) for f in fragments), str(exc.value)


def test_a_sweep_file_is_not_a_training_config_and_points_are_looked_up_by_name(tmp_path):
    path = _sweep(tmp_path, axes={"seed": [0, 1]})
    with pytest.raises(ContrafuseError, match="is a sweep: train one of its points with --point NAME"):
        load_config(path)
    with pytest.raises(ContrafuseError, match=r"no point named 'seed3' \(did you mean 'seed1'\?\); its points: seed0, seed1"):
        load_point(path, "seed3")
    assert load_point(path, "seed1", ["seed=5"])["seed"] == 5  # an override still comes last


def test_points_that_sweeps_share_run_once_and_must_agree(tmp_path):
    first = _sweep(tmp_path, axes={"seed": [0, 1]})
    second = _write(tmp_path / "sweeps" / "other.yaml", {"base": "../recipes/base.yaml", "output": "runs/study",
                                                          "axes": {"seed": [1, 2]}})
    assert [p.name for p in collect([first, second])] == ["seed0", "seed1", "seed2"]
    assert [p.name for p in collect([first, second], only=["seed[12]"])] == ["seed1", "seed2"]
    assert [p.name for p in collect([first, second], only=["seed2", "seed*"])] == ["seed2", "seed0", "seed1"]
    _write(second, {"base": "../recipes/base.yaml", "output": "runs/study", "axes": {"seed": [1]}, "set": {"lr": 0.5}})
    with pytest.raises(ContrafuseError, match="point seed1: run folder runs/study/seed1 belongs to .*study.yaml too, with another config"):
        collect([first, second])
    with pytest.raises(ContrafuseError, match="--only: nothing matches no point"):
        collect([first], only=["nothing"])


def _fake_training(log: list, seconds: float = 0.0, code: int = 0):
    """A launcher whose 'training' writes the exported model (exit 0) after ``seconds``; ``log`` gets
    (point, resume, how many earlier launches still run) at each start."""
    started: list = []

    def start(point, resume, device):
        log.append((point.name, resume, sum(p.poll() is None for p in started)))
        point.folder.mkdir(parents=True, exist_ok=True)
        done = f"open({str(point.folder / 'model.safetensors')!r}, 'w')" if code == 0 else "None"
        proc = subprocess.Popen([sys.executable, "-c", f"import time, sys; time.sleep({seconds}); {done}; sys.exit({code})"])
        started.append(proc)
        return proc
    return start


def test_run_skips_finished_points_and_resumes_started_ones_first(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    points = load_sweep(_sweep(tmp_path, axes={"seed": [0, 1, 2, 3]})).points
    for name, made in (("seed1", "model.safetensors"), ("seed2", "checkpoint.pt")):
        (tmp_path / "runs/study" / name).mkdir(parents=True)
        (tmp_path / "runs/study" / name / made).touch()
    log: list = []
    assert run(points, jobs=1, start=_fake_training(log), poll=0.01) == 0
    assert [(name, resume) for name, resume, _ in log] == [("seed2", True), ("seed0", False), ("seed3", False)]
    assert all(p.state() == "done" for p in points)
    log.clear()
    assert run(points, jobs=1, start=_fake_training(log), poll=0.01) == 0 and log == []  # all done: nothing to train
    assert "4 points: 4 done, 0 to train" in capsys.readouterr().out


def test_run_keeps_at_most_jobs_points_training_and_reports_failures(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    points = load_sweep(_sweep(tmp_path, axes={"seed": [0, 1, 2, 3]})).points
    log: list = []
    assert run(points, jobs=2, start=_fake_training(log, seconds=0.3), poll=0.01) == 0
    running = [count for _, _, count in log]
    assert len(running) == 4 and running[:2] == [0, 1] and max(running) == 1  # two at once, never three
    log.clear()
    failing = load_sweep(_sweep(tmp_path, axes={"seed": [7]})).points
    assert run(failing, jobs=2, start=_fake_training(log, code=2), poll=0.01) == 2
    assert "seed7 exited with 2" in capsys.readouterr().out and failing[0].state() == "waiting"


def test_a_tiny_point_trains_and_status_and_summarise_read_its_run(tmp_path, monkeypatch, capsys):
    """One real (tiny) CLF-Net point through ``contrafuse train --point``; ``sweep status`` and
    ``sweep summarise`` then read what the run folder records (checked against its loss log)."""
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        for kind in ("ir", "vis"):
            (tmp_path / "data/RoadScene" / kind).mkdir(parents=True, exist_ok=True)
            Image.fromarray((rng.random((32, 32)) * 255).astype(np.uint8)).save(tmp_path / "data/RoadScene" / kind / f"{name}.png")
    monkeypatch.setenv("CONTRAFUSE_DATASETS", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "split.yaml", {"train": [{"dataset": "RoadScene"}]})
    _write(tmp_path / "base.yaml", {**BASE, "split": "split.yaml", "samples": 4, "threads": 1,
                                    "stages": [{"name": "train", "epochs": 2}]})
    sweep = _write(tmp_path / "sweep.yaml", {"base": "base.yaml", "output": "runs/tiny", "axes": {"seed": [0, 1]}})
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["train", "clfnet", "--config", str(sweep), "--point", "seed1"]) == 0
    recorded = yaml.safe_load((tmp_path / "runs/tiny/seed1/config.yaml").read_text())
    assert recorded["seed"] == 1 and recorded["output"] == "runs/tiny/seed1"
    capsys.readouterr()
    assert main(["sweep", "status", str(sweep)]) == 0
    assert capsys.readouterr().out.splitlines() == ["waiting  seed0", "done     seed1"]
    with open(tmp_path / "runs/tiny/seed1/log_train.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    last = [float(r["total"]) for r in rows if r["epoch"] == "2"]
    assert main(["sweep", "summarise", str(sweep), "-o", str(tmp_path / "table.csv")]) == 0
    with open(tmp_path / "table.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [r["state"] for r in table] == ["waiting", "done"]
    assert table[1]["steps"] == rows[-1]["step"] == "8" and table[1]["seed"] == "1"  # 2 pairs x 4 patches / 2, 2 epochs
    assert float(table[1]["train loss"]) == pytest.approx(sum(last) / len(last), rel=1e-4)
    assert main(["sweep", "summarise", str(sweep), "-o", str(tmp_path / "table.csv")]) == 2  # exists: not replaced


def test_every_shipped_sweep_resolves_to_valid_configs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # paths resolve relative to the files, from any directory
    sweeps = sorted((REPO / "configs" / "sweeps").rglob("*.yaml"))
    points = collect(sweeps)
    assert len(sweeps) >= 10 and len(points) >= 100
    assert {p.folder.parent.name for p in points} == {"runs", "paper_ablations"}
    paper = [p for p in points if p.folder.parent.name == "paper_ablations"]
    seeds = {}
    for p in paper:  # seeds paired: every variant of a method with the same seeds as its full model
        seeds.setdefault((p.config["method"], p.variant), set()).add(p.values["seed"])
    assert {m: s for (m, v), s in seeds.items() if v == "full"} == {"coconet": {2, 3}, "clfnet": {0, 1}}
    assert all(s == seeds[(m, "full")] for (m, v), s in seeds.items())
