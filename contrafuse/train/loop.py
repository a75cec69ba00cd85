"""One training loop for every learned method: staged schedule, seeds, CSV log, progress bar,
time-based checkpoints and exact resume (stage, epoch and batch; the batch order of an epoch is a
function of the seed, so a resumed run sees the same batches). Every start and resume appends the
machine, device and precision to the run's ``sessions.jsonl``, which model cards quote.

Under ``torchrun`` (:mod:`contrafuse.distributed`) each configured batch is split evenly across the
processes and their gradients are averaged before every step: the effective batch and learning
rate are the config's for any number of processes, and a run may resume with another number.
BatchNorm layers become SyncBatchNorm on GPUs (statistics over the whole batch); on CPUs, where
PyTorch has no SyncBatchNorm, each process normalises with the statistics of its share. Only
process 0 writes the run folder (``config.yaml`` records ``world_size``).

A method supplies a *recipe* (see :mod:`contrafuse.train.recipes`): ``build_model(cfg)``,
``stage_data(cfg, stage)`` -> float32 array (N, C, H, W), and ``step(model, batch, stage)`` ->
dict of scalar losses including ``total``.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import yaml
from safetensors.torch import save_file

from .. import distributed
from ..bench.timing import machine_info
from .. import progress as progress_bars
from ..errors import ContrafuseError
from ..io import atomic_replace, check_folder_writable, write_text_atomic
from ..precision import autocast, resolve_precision, torch_device


def _write_atomic(path: Path, save) -> None:
    """``save(tmp)`` then move ``tmp`` over ``path`` with normal permissions; a failed write (disk
    full, ...) leaves no temporary file and is a one-line error naming ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        save(tmp)
        atomic_replace(tmp, path)
    except (OSError, RuntimeError, ValueError) as exc:  # torch.save and safetensors report disk errors as these
        tmp.unlink(missing_ok=True)
        reason = getattr(exc, "strerror", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ContrafuseError(path, f"cannot write ({reason})") from None


def _atomic_torch_save(obj, path: Path) -> None:
    _write_atomic(path, lambda tmp: torch.save(obj, tmp))


def export_weights(model, path: Path, metadata: dict) -> Path:
    """Write the trainable state (no frozen VGG) as safetensors, atomically, with the permissions
    of the run's other files (safetensors alone writes owner-only files)."""
    state = model.trainable_state_dict() if hasattr(model, "trainable_state_dict") else model.state_dict()
    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    _write_atomic(Path(path), lambda tmp: save_file(state, str(tmp), metadata={k: str(v) for k, v in metadata.items()}))
    return path


def export_checkpoint(run_dir: str | os.PathLike, recipe, cfg: dict, out_path: str | os.PathLike) -> Path:
    """Export the trainable weights of a run's latest checkpoint (e.g. a run stopped early)."""
    ckpt = Path(run_dir) / "checkpoint.pt"
    if not ckpt.is_file():
        raise ContrafuseError(ckpt, "no checkpoint in this run folder")
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    model = recipe.build_model(cfg)
    model.load_state_dict(saved["model"], strict=False)
    progress = saved["progress"]
    return export_weights(model, Path(out_path), {"method": cfg["method"], "steps": progress["step"],
                                                  "stage": progress["stage"], "epoch": progress["epoch"],
                                                  "seconds": round(progress["seconds"])})


def _load_initial_weights(model, path: str | os.PathLike) -> None:
    """Start from exported weights (``init_weights``): fine-tuning, or continuing a run whose
    checkpoint (optimizer state) is gone. The optimizer starts afresh."""
    from ..weights import load_trained_weights

    if not Path(path).is_file():
        raise ContrafuseError(path, "init_weights file not found")
    load_trained_weights(model, path, "init_weights")
    print(f"initialised from {path}")


def converged(epoch_means: list[float], rule: dict | None) -> bool:
    """A stage's stopping rule ``converge: {tolerance: 0.01, patience: 2}``: the epoch-mean total
    loss fell by less than ``tolerance`` (relative) in each of the last ``patience`` epochs.
    CoCoNet's Algorithm 1 trains stage 1 "until convergence"; ``epochs`` stays the cap."""
    if not rule:
        return False
    tolerance, patience = float(rule.get("tolerance", 0.01)), int(rule.get("patience", 2))
    if len(epoch_means) <= patience:
        return False
    recent = epoch_means[-patience - 1:]
    return all(before - after < tolerance * abs(before) for before, after in itertools.pairwise(recent))


def _reopen_last_stage(progress: dict, stages: list[dict]) -> dict:
    """A finished run resumed with more ``epochs`` in its last stage goes on with that stage (with
    the optimiser state it ended with) unless the stage had stopped by converging."""
    finished = progress.get("finished_stage")
    if (progress["stage"] == len(stages) and finished and not finished["converged"]
            and finished["epochs"] < int(stages[-1]["epochs"])):
        return {**progress, "stage": len(stages) - 1, "epoch": finished["epochs"], "batch": 0,
                "epoch_means": list(finished["epoch_means"])}
    return progress


def train(cfg: dict, recipe, *, out_dir: str | os.PathLike | None = None, resume: bool = False,
          max_steps: int | None = None, device: str = "cpu") -> Path:
    """Run (or resume) the staged schedule of ``cfg``; returns the output folder."""
    out = Path(out_dir or cfg.get("output", f"runs/{cfg['method']}"))
    ckpt_path = out / "checkpoint.pt"
    if ckpt_path.exists() and not resume:
        raise ContrafuseError(ckpt_path, "a run exists here; pass --resume to continue it or choose another --out")
    if out.exists() and not out.is_dir():
        raise ContrafuseError(out, "is a file; the run needs a folder here")
    check_folder_writable(out)  # before any work; creates nothing
    group = distributed.join(torch.device(device).type if isinstance(device, str) and device else "cpu")
    try:
        return _train(cfg, recipe, out, ckpt_path, resume, max_steps, device, group)
    finally:
        group.close()


def _train(cfg, recipe, out: Path, ckpt_path: Path, resume: bool, max_steps, device, group) -> Path:
    """The run folder is made, and its records written, once the first stage's data is ready: a
    config whose data cannot be cut into batches leaves nothing behind."""
    threads = int(cfg.get("threads") or 0) or (torch.get_num_threads() if not group.active else os.cpu_count() or 1)
    torch.set_num_threads(max(1, threads // group.local_world_size))  # the processes of a machine share its cores
    seed = int(cfg.get("seed", 0))
    torch.manual_seed(seed)
    np.random.seed(seed)

    device = torch_device(f"cuda:{group.local_rank}" if group.active and str(device).startswith("cuda") else device)
    precision = resolve_precision(str(cfg.get("precision", "auto")), device)
    # channels-last memory where the recipe asks for it (faster convolutions, measured per method)
    memory_format = torch.channels_last if getattr(recipe, "channels_last", False) else torch.contiguous_format
    model = recipe.build_model(cfg).to(device, memory_format=memory_format)
    if group.active and device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=float(cfg["lr"]))
    progress = {"stage": 0, "epoch": int(cfg.get("start_epoch", 0)), "batch": 0, "step": 0, "seconds": 0.0}
    if cfg.get("init_weights") and not (resume and ckpt_path.exists()):
        _load_initial_weights(model, cfg["init_weights"])
    if resume and ckpt_path.exists():
        saved = torch.load(ckpt_path, map_location=device, weights_only=True)
        model.load_state_dict(saved["model"], strict=False)
        optimizer.load_state_dict(saved["optimizer"])
        progress = _reopen_last_stage(saved["progress"], cfg["stages"])
        torch.set_rng_state(saved["torch_rng"])
        if group.is_main:
            print(f"resuming {out} at stage {progress['stage']} epoch {progress['epoch']} batch {progress['batch']}")
    recorded = {k: v for k, v in cfg.items() if not k.startswith("_")}
    started = False

    def start_records() -> None:
        nonlocal started
        if started or not group.is_main:
            return
        started = True
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / "config.yaml", yaml.safe_dump({**recorded, "precision": precision,
                                                               "world_size": group.world_size}))
        with open(out / "sessions.jsonl", "a") as sessions:  # the hardware of every start and resume
            sessions.write(json.dumps({"started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                       "step": progress["step"], "machine": machine_info(), "device": str(device),
                                       "precision": precision, "world_size": group.world_size}) + "\n")

    def checkpoint():
        if group.is_main:
            _atomic_torch_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                "progress": dict(progress), "torch_rng": torch.get_rng_state()}, ckpt_path)

    def export(path: Path, metadata: dict) -> None:
        if group.is_main:
            export_weights(model, path, metadata)

    every = 60.0 * float(cfg.get("checkpoint_minutes", 3))
    last_ckpt, start = time.time(), time.time() - progress["seconds"]
    steps_this_call = 0
    try:
        for stage_index in range(progress["stage"], len(cfg["stages"])):
            stage = cfg["stages"][stage_index]
            log_path = out / f"log_{stage.get('name', stage_index)}.csv"  # one CSV of losses per stage
            data = torch.from_numpy(recipe.stage_data(cfg, stage))
            batch_size = int(stage.get("batch_size", cfg.get("batch_size", 1)))
            if batch_size % group.world_size:
                raise ContrafuseError(cfg.get("_path"), f"batch_size {batch_size} cannot be split evenly "
                                      f"across {group.world_size} processes")
            share = batch_size // group.world_size
            batches = len(data) // batch_size
            if not batches:
                raise ContrafuseError(cfg.get("_path"), f"stage {stage.get('name', stage_index)!r} has "
                                      f"{len(data)} training patch(es), fewer than batch_size {batch_size}")
            start_records()
            if not resume and log_path.exists() and group.is_main:
                log_path.unlink()
            with open(log_path if group.is_main else os.devnull, "a", newline="") as log_file:
                writer = None
                for epoch in range(progress["epoch"], int(stage["epochs"])):
                    order = np.random.default_rng([seed, stage_index, epoch]).permutation(len(data))
                    bar = progress_bars.bar(range(progress["batch"], batches), total=batches, initial=progress["batch"],
                                            desc=f"{stage.get('name', stage_index)} epoch {epoch + 1}/{stage['epochs']}",
                                            hide=not group.is_main)
                    model.train()
                    for b in bar:
                        mine = order[b * batch_size:(b + 1) * batch_size][group.rank * share:(group.rank + 1) * share]
                        batch = data[mine].to(device)
                        with autocast(device, precision):
                            losses = recipe.step(model, batch.contiguous(memory_format=memory_format), stage)
                        optimizer.zero_grad(set_to_none=True)
                        losses["total"].backward()
                        group.average_gradients(params)
                        optimizer.step()
                        if group.active:  # log the batch's losses, not one process's share
                            names = list(losses)
                            means = group.sum([float(losses[k].detach()) / group.world_size for k in names])
                            losses = {k: torch.tensor(v) for k, v in zip(names, means)}
                        progress.update(batch=b + 1, step=progress["step"] + 1, seconds=time.time() - start)
                        progress["epoch_loss"] = progress.get("epoch_loss", 0.0) + float(losses["total"].detach())
                        row = {"stage": stage.get("name", stage_index), "epoch": epoch + 1, "batch": b + 1,
                               "step": progress["step"], "seconds": round(progress["seconds"], 1),
                               **{k: round(float(v.detach()), 6) for k, v in losses.items()}}
                        if writer is None:
                            writer = csv.DictWriter(log_file, fieldnames=list(row))
                            if log_file.tell() == 0:
                                writer.writeheader()
                        writer.writerow(row)
                        log_file.flush()
                        bar.set_postfix(loss=f"{float(losses['total'].detach()):.4f}")
                        steps_this_call += 1
                        if time.time() - last_ckpt > every:
                            checkpoint()
                            last_ckpt = time.time()
                        if max_steps is not None and steps_this_call >= max_steps:
                            checkpoint()
                            return out
                    means = progress.setdefault("epoch_means", []) + [progress.pop("epoch_loss", 0.0) / batches]
                    progress.update(epoch=epoch + 1, batch=0, epoch_means=means)
                    checkpoint()
                    export(out / f"{stage.get('name', stage_index)}_epoch{epoch + 1}.safetensors",
                                   {"method": cfg["method"], "stage": stage.get("name", stage_index),
                                    "epoch": epoch + 1, "steps": progress["step"], "precision": precision})
                    if converged(means, stage.get("converge")):
                        print(f"{stage.get('name', stage_index)}: converged after epoch {epoch + 1} "
                              f"(epoch mean losses {', '.join(f'{m:.4g}' for m in means[-3:])})")
                        progress["converged"] = True
                        break
            # what the finished stage did, so that a longer last stage can be resumed later
            finished = {"epochs": progress["epoch"], "epoch_means": progress.get("epoch_means", []),
                        "converged": progress.pop("converged", False)}
            progress.update(stage=stage_index + 1, epoch=0, batch=0, epoch_means=[], finished_stage=finished)
            checkpoint()
            export(out / f"after_{stage.get('name', stage_index)}.safetensors",
                           {"method": cfg["method"], "stage": stage.get("name", stage_index), "steps": progress["step"]})
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: keep the progress of the completed steps
        if not started and not (resume and ckpt_path.exists()):
            raise  # interrupted before the first step: there is nothing to keep
        checkpoint()
        if group.is_main:
            print(f"interrupted: checkpoint saved in {out}; continue with --resume", file=sys.stderr)
        raise
    start_records()
    export(out / "model.safetensors",
                   {"method": cfg["method"], "steps": progress["step"], "seconds": round(progress["seconds"])})
    return out
