"""What a training run writes, and what a resume reads back: the state-saving half of the loop
(as BasicSR's ``models/base_model.py`` keeps it apart from the training step).

A run folder holds ``config.yaml`` (the resolved config, the precision and the number of
processes), ``sessions.jsonl`` (the machine, device and precision of every start and resume, which
model cards quote), one CSV of losses per stage, ``checkpoint.pt`` (model, optimiser, progress and
random state: an exact resume) and the exported weights (safetensors, trainable layers only).
Every file is written atomically; under ``torchrun`` only the main process writes.
"""

from __future__ import annotations

import csv
import json
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import torch
import yaml
from safetensors.torch import save as safetensors_bytes

from ..bench.timing import machine_info
from ..errors import ContrafuseError
from ..io import atomic_file, write_text_atomic


def export_weights(model, path: str | Path, metadata: dict) -> Path:
    """Write the trainable state (no frozen VGG) as safetensors, atomically."""
    state = model.trainable_state_dict() if hasattr(model, "trainable_state_dict") else model.state_dict()
    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    with atomic_file(path) as handle:
        handle.write(safetensors_bytes(state, metadata={k: str(v) for k, v in metadata.items()}))
    return Path(path)


class RunFolder:
    """The files of one run; every writing method is a no-op on processes other than the main one."""

    def __init__(self, path: Path, *, is_main: bool = True):
        self.path, self.is_main = Path(path), is_main
        self.checkpoint_path = self.path / "checkpoint.pt"
        self.started = False

    def start(self, config: dict, *, step: int, device, precision: str, world_size: int) -> None:
        """Make the folder and record this session (once per call of the loop): the folder appears
        only when the first stage's data is ready, so a config that cannot train leaves nothing."""
        if self.started:
            return
        self.started = True
        if not self.is_main:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.path / "config.yaml", yaml.safe_dump({**config, "precision": precision,
                                                                     "world_size": world_size}))
        with open(self.path / "sessions.jsonl", "a") as sessions:
            sessions.write(json.dumps({"started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                       "step": step, "machine": machine_info(), "device": str(device),
                                       "precision": precision, "world_size": world_size}) + "\n")

    @contextmanager
    def loss_log(self, stage_name: str, *, fresh: bool):
        """A CSV writer for one stage's per-batch losses (``write(row)``), appending on resume."""
        path = self.path / f"log_{stage_name}.csv"
        if not self.is_main:
            yield lambda row: None
            return
        if fresh:
            path.unlink(missing_ok=True)
        with open(path, "a", newline="") as handle:
            writer = None

            def write(row: dict) -> None:
                nonlocal writer
                if writer is None:
                    writer = csv.DictWriter(handle, fieldnames=list(row))
                    if handle.tell() == 0:
                        writer.writeheader()
                writer.writerow(row)
                handle.flush()

            yield write

    def save_checkpoint(self, model, optimizer, progress: dict) -> None:
        if self.is_main:
            with atomic_file(self.checkpoint_path) as handle:
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                            "progress": dict(progress), "torch_rng": torch.get_rng_state()}, handle)

    def load_checkpoint(self, model, optimizer, device) -> dict:
        """Restore model, optimiser and random state; returns the saved progress."""
        saved = torch.load(self.checkpoint_path, map_location=device, weights_only=True)
        model.load_state_dict(saved["model"], strict=False)
        optimizer.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["torch_rng"])
        return saved["progress"]

    def export(self, name: str, model, metadata: dict) -> None:
        if self.is_main:
            export_weights(model, self.path / name, metadata)


def export_checkpoint(run_dir: str | Path, recipe, cfg: dict, out_path: str | Path) -> Path:
    """Export the trainable weights of a run's latest checkpoint (e.g. a run stopped early)."""
    ckpt = Path(run_dir) / "checkpoint.pt"
    if not ckpt.is_file():
        raise ContrafuseError(ckpt, "no checkpoint in this run folder")
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    model = recipe.build_model(cfg)
    model.load_state_dict(saved["model"], strict=False)
    progress = saved["progress"]
    return export_weights(model, out_path, {"method": cfg["method"], "steps": progress["step"],
                                            "stage": progress["stage"], "epoch": progress["epoch"],
                                            "seconds": round(progress["seconds"])})
