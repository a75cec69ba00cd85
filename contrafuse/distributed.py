"""Running under ``torchrun``: several processes, one machine or several, gloo on CPUs, NCCL on GPUs.

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; without them everything runs as one
process, unchanged. Training (:func:`contrafuse.train.loop.train`) splits each configured batch
across the processes and averages their gradients (DistributedDataParallel), so the effective batch and learning rate are
the config's whatever the number of processes (and a run may resume with a different number);
folder fusion gives each process a disjoint shard of the pairs.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

from .errors import ContrafuseError


@dataclass
class Group:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum of ``values`` over all processes (unchanged for one process)."""
        if not self.active:
            return list(values)
        import torch
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as dist
            dist.barrier()

    def close(self) -> None:
        if self.active:
            import torch.distributed as dist
            if dist.is_initialized():
                dist.destroy_process_group()


def launched() -> bool:
    """Whether this is one of several processes of a torchrun launch."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        raise ContrafuseError("WORLD_SIZE", f"must be a whole number, not {os.environ['WORLD_SIZE']!r}") from None


def rank() -> int:
    """This process's rank in a torchrun launch (0 without one)."""
    try:
        return int(os.environ.get("RANK", "0")) if launched() else 0
    except ValueError:
        raise ContrafuseError("RANK", f"must be a whole number, not {os.environ['RANK']!r}") from None


def join(device_type: str = "cpu") -> Group:
    """The process group of a torchrun launch (initialised here), or a one-process group."""
    if not launched():
        return Group()
    try:
        group = Group(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", "0")),
                      int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"])))
    except (KeyError, ValueError) as exc:
        raise ContrafuseError("torchrun", f"incomplete launch environment ({exc})") from None
    import torch._dynamo  # noqa: F401  (see below)
    import torch.distributed as dist

    if not dist.is_initialized():
        # torch._dynamo, first imported by constructing an optimizer, keeps references to a process
        # group that exists when it is imported: destroy_process_group then leaves gloo's threads
        # running, and tearing them down at interpreter exit aborted a process now and then
        # ("terminate called without an active exception"). Imported before the group, it holds none.
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return group


def failed_on_bad_input(error) -> bool:
    """Whether torchrun's ``ChildFailedError`` comes from bad input alone: some process exited 2 and
    every other failed process either exited 2 too or was stopped by the launcher (SIGTERM), as it
    stops the rest once one has failed."""
    codes = {failure.exitcode for failure in error.failures.values()}
    return 2 in codes and codes <= {2, -signal.SIGTERM}


def torchrun_exit_status():
    """Make ``torchrun ... contrafuse ...`` end like ``contrafuse`` itself: exit 2, with the one-line
    errors and the summary the processes printed, when the processes failed on bad input alone
    (:func:`failed_on_bad_input`).

    torchrun itself exits 1 with a ``ChildFailedError`` traceback whenever a process fails. This
    function is the ``torchrun.handlers`` entry point of the package (pyproject.toml), which
    torchrun's launcher loads at start: only where the launcher runs contrafuse does it hook the
    launcher's exit; any other failure keeps torchrun's own report. It returns what the entry point
    must: a rendezvous backend (here c10d's, registered under the name ``contrafuse``)."""
    import sys

    from torch.distributed.elastic.rendezvous.registry import _create_c10d_handler

    argv = sys.argv[1:]
    runs_contrafuse = any(a == "contrafuse" and i and argv[i - 1] == "-m" for i, a in enumerate(argv)) or any(
        os.path.basename(a) == "contrafuse" for a in argv)
    if runs_contrafuse and os.path.basename(sys.argv[0]) in ("torchrun", "run.py", "__main__.py"):
        previous = sys.excepthook

        def exit_like_contrafuse(kind, exc, traceback):
            from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
            if isinstance(exc, ChildFailedError) and failed_on_bad_input(exc):
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(2)
            previous(kind, exc, traceback)

        sys.excepthook = exit_like_contrafuse
    return _create_c10d_handler
