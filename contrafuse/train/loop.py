"""One training loop for every learned method: staged schedule, seeds, CSV log, progress bar,
time-based checkpoints and exact resume (stage, epoch and batch; the batch order of an epoch is a
function of the seed, so a resumed run sees the same batches). What a run writes and reads back
lives in :mod:`contrafuse.train.run_folder`; this module builds the model and optimiser and runs
the schedule.

Under ``torchrun`` (:mod:`contrafuse.distributed`) each configured batch is split evenly across the
processes and PyTorch's DistributedDataParallel averages their gradients: the effective batch and
learning rate are the config's for any number of processes, and a run may resume with another
number. BatchNorm layers become SyncBatchNorm on GPUs (statistics over the whole batch); on CPUs,
where PyTorch has no SyncBatchNorm, each process normalises with the statistics of its share.

A method supplies a *recipe* (see :mod:`contrafuse.train.recipes`): ``build_model(cfg)``,
``stage_data(cfg, stage)`` -> float32 array (N, C, H, W), and ``step(model, batch, stage)`` ->
dict of scalar losses including ``total``.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .. import distributed
from .. import progress as progress_bars
from ..errors import ContrafuseError
from ..io import check_folder_writable
from ..precision import autocast, resolve_precision, torch_device
from .run_folder import RunFolder


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


def build_optimizer(cfg: dict, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The trainable parameters' optimiser: ``optimizer: {type: Adam, ...}`` (keyword arguments of
    the torch.optim class, one of :data:`~contrafuse.train.config.OPTIMIZERS`; ``lr`` is the
    config's), Adam by default as both papers train."""
    options = dict(cfg.get("optimizer") or {})
    kind = getattr(torch.optim, options.pop("type", "Adam"))
    return kind([p for p in model.parameters() if p.requires_grad], lr=float(cfg["lr"]), **options)


def prepare_model(recipe, cfg: dict, device: torch.device, group) -> torch.nn.Module:
    """The recipe's network on ``device`` in the memory layout the recipe asks for (channels-last:
    faster convolutions, measured per method); SyncBatchNorm across GPUs."""
    memory_format = torch.channels_last if getattr(recipe, "channels_last", False) else torch.contiguous_format
    model = recipe.build_model(cfg).to(device, memory_format=memory_format)
    if group.active and device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


class TrainingStep(torch.nn.Module):
    """The recipe's loss computation as one module call, so that DistributedDataParallel sees every
    parameter the step uses (CLF-Net's step calls the encoder and the decoder, not ``forward``)."""

    def __init__(self, model: torch.nn.Module, recipe):
        super().__init__()
        self.model, self.recipe = model, recipe

    def forward(self, batch: torch.Tensor, stage: dict) -> dict:
        return self.recipe.step(self.model, batch, stage)


def distributed_step(model, recipe, group, device: torch.device) -> torch.nn.Module:
    """The step module, wrapped in DistributedDataParallel under torchrun (gradients averaged over
    the processes; each process keeps its own BatchNorm statistics on CPUs, as without it)."""
    step = TrainingStep(model, recipe)
    if not group.active:
        return step
    return torch.nn.parallel.DistributedDataParallel(
        step, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False,
        find_unused_parameters=True)


def _load_initial_weights(model, path: str | os.PathLike) -> None:
    """Start from exported weights (``init_weights``): fine-tuning, or continuing a run whose
    checkpoint (optimizer state) is gone. The optimizer starts afresh."""
    from ..weights import load_trained_weights

    if not Path(path).is_file():
        raise ContrafuseError(path, "init_weights file not found")
    load_trained_weights(model, path, "init_weights")
    print(f"initialised from {path}")


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
    threads = torch.get_num_threads()
    try:
        return _train(cfg, recipe, RunFolder(out, is_main=group.is_main), resume, max_steps, device, group)
    finally:
        torch.set_num_threads(threads)  # the run's thread count ends with it (train() may run in-process)
        group.close()


def _stage_batches(cfg: dict, recipe, stage: dict, stage_name: str, group) -> tuple[torch.Tensor, int, int]:
    """A stage's training patches, its batch size and the number of whole batches per epoch."""
    data = torch.from_numpy(recipe.stage_data(cfg, stage))
    batch_size = int(stage.get("batch_size", cfg.get("batch_size", 1)))
    if batch_size % group.world_size:
        raise ContrafuseError(cfg.get("_path"), f"batch_size {batch_size} cannot be split evenly "
                              f"across {group.world_size} processes")
    batches = len(data) // batch_size
    if not batches:
        raise ContrafuseError(cfg.get("_path"), f"stage {stage_name!r} has {len(data)} training patch(es), "
                              f"fewer than batch_size {batch_size}")
    return data, batch_size, batches


def _train(cfg, recipe, run: RunFolder, resume: bool, max_steps, device, group) -> Path:
    threads = int(cfg.get("threads") or 0) or (torch.get_num_threads() if not group.active else os.cpu_count() or 1)
    torch.set_num_threads(max(1, threads // group.local_world_size))  # the processes of a machine share its cores
    seed = int(cfg.get("seed", 0))
    torch.manual_seed(seed)
    np.random.seed(seed)

    device = torch_device(f"cuda:{group.local_rank}" if group.active and str(device).startswith("cuda") else device)
    precision = resolve_precision(str(cfg.get("precision", "auto")), device)
    model = prepare_model(recipe, cfg, device, group)
    optimizer = build_optimizer(cfg, model)
    progress = {"stage": 0, "epoch": int(cfg.get("start_epoch", 0)), "batch": 0, "step": 0, "seconds": 0.0}
    resuming = resume and run.checkpoint_path.exists()
    if cfg.get("init_weights") and not resuming:
        _load_initial_weights(model, cfg["init_weights"])
    if resuming:
        progress = _reopen_last_stage(run.load_checkpoint(model, optimizer, device), cfg["stages"])
        if group.is_main:
            print(f"resuming {run.path} at stage {progress['stage']} epoch {progress['epoch']} batch {progress['batch']}")
    step = distributed_step(model, recipe, group, device)
    memory_format = torch.channels_last if getattr(recipe, "channels_last", False) else torch.contiguous_format
    record = {k: v for k, v in cfg.items() if not k.startswith("_")}

    def start_records() -> None:
        run.start(record, step=progress["step"], device=device, precision=precision, world_size=group.world_size)

    def metadata(**extra) -> dict:
        return {"method": cfg["method"], **extra}

    every = 60.0 * float(cfg.get("checkpoint_minutes", 3))
    last_ckpt, start = time.time(), time.time() - progress["seconds"]
    steps_this_call = 0
    try:
        for stage_index in range(progress["stage"], len(cfg["stages"])):
            stage = cfg["stages"][stage_index]
            name = stage.get("name", stage_index)
            data, batch_size, batches = _stage_batches(cfg, recipe, stage, name, group)
            share = batch_size // group.world_size
            start_records()
            with run.loss_log(name, fresh=not resume) as log:
                for epoch in range(progress["epoch"], int(stage["epochs"])):
                    order = np.random.default_rng([seed, stage_index, epoch]).permutation(len(data))
                    bar = progress_bars.bar(range(progress["batch"], batches), total=batches, initial=progress["batch"],
                                            desc=f"{name} epoch {epoch + 1}/{stage['epochs']}", hide=not group.is_main)
                    model.train()
                    for b in bar:
                        mine = order[b * batch_size:(b + 1) * batch_size][group.rank * share:(group.rank + 1) * share]
                        with autocast(device, precision):
                            losses = step(data[mine].to(device).contiguous(memory_format=memory_format), stage)
                        optimizer.zero_grad(set_to_none=True)
                        losses["total"].backward()
                        optimizer.step()
                        losses = {k: float(v.detach()) for k, v in losses.items()}
                        if group.active:  # log the batch's losses, not one process's share
                            losses = dict(zip(losses, group.sum([v / group.world_size for v in losses.values()])))
                        progress.update(batch=b + 1, step=progress["step"] + 1, seconds=time.time() - start)
                        progress["epoch_loss"] = progress.get("epoch_loss", 0.0) + losses["total"]
                        log({"stage": name, "epoch": epoch + 1, "batch": b + 1, "step": progress["step"],
                             "seconds": round(progress["seconds"], 1), **{k: round(v, 6) for k, v in losses.items()}})
                        bar.set_postfix(loss=f"{losses['total']:.4f}")
                        steps_this_call += 1
                        if time.time() - last_ckpt > every:
                            run.save_checkpoint(model, optimizer, progress)
                            last_ckpt = time.time()
                        if max_steps is not None and steps_this_call >= max_steps:
                            run.save_checkpoint(model, optimizer, progress)
                            return run.path
                    means = progress.setdefault("epoch_means", []) + [progress.pop("epoch_loss", 0.0) / batches]
                    progress.update(epoch=epoch + 1, batch=0, epoch_means=means)
                    run.save_checkpoint(model, optimizer, progress)
                    run.export(f"{name}_epoch{epoch + 1}.safetensors", model,
                               metadata(stage=name, epoch=epoch + 1, steps=progress["step"], precision=precision))
                    if converged(means, stage.get("converge")):
                        print(f"{name}: converged after epoch {epoch + 1} "
                              f"(epoch mean losses {', '.join(f'{m:.4g}' for m in means[-3:])})")
                        progress["converged"] = True
                        break
            # what the finished stage did, so that a longer last stage can be resumed later
            finished = {"epochs": progress["epoch"], "epoch_means": progress.get("epoch_means", []),
                        "converged": progress.pop("converged", False)}
            progress.update(stage=stage_index + 1, epoch=0, batch=0, epoch_means=[], finished_stage=finished)
            run.save_checkpoint(model, optimizer, progress)
            run.export(f"after_{name}.safetensors", model, metadata(stage=name, steps=progress["step"]))
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: keep the progress of the completed steps
        if not run.started and not resuming:
            raise  # interrupted before the first step: there is nothing to keep
        run.save_checkpoint(model, optimizer, progress)
        if group.is_main:
            print(f"interrupted: checkpoint saved in {run.path}; continue with --resume", file=sys.stderr)
        raise
    start_records()
    run.export("model.safetensors", model, metadata(steps=progress["step"], seconds=round(progress["seconds"])))
    return run.path
