"""Devices and arithmetic precision: :func:`torch_device` checks a device name; bfloat16 autocast where the hardware runs it natively, float32 otherwise.

The networks' convolutions and VGG feature extractors run under :func:`torch.autocast` in
bfloat16; every loss reduction (SSIM, MSE, L1 feature distances, PatchNCE logits) is computed in
float32 (:func:`full_precision`), where bfloat16's 8-bit mantissa would distort variances and
small differences. Measured speed-ups and the check that a model trained this way is no worse:
``benchmarks/results/training_speed.json`` and docs/REPRODUCTION.md. PyTorch is imported when a
function needs it, so that :data:`PRECISIONS` costs the command line nothing.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ContrafuseError

if TYPE_CHECKING:
    import torch

#: the precisions a learned method runs and trains in; ``auto`` picks one of the others per device
PRECISIONS = ("auto", "bf16", "fp32")


def cpu_has_native_bf16() -> bool:
    """True where the CPU has bfloat16 dot-product instructions (AVX512-BF16 or AMX); elsewhere
    PyTorch emulates bfloat16 on the CPU and it is slower than float32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags for flag in (" avx512_bf16", " amx_bf16"))


def torch_device(name: str | torch.device) -> torch.device:
    """``name`` as a :class:`torch.device`, or a one-line error if it is malformed or absent here."""
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ContrafuseError("--device", f"{name!r} is not a torch device (cpu, cuda, cuda:1, ...)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ContrafuseError("--device", f"{name}: CUDA is not available on this machine (this PyTorch "
                                  f"build: {torch.__version__}); use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ContrafuseError("--device", f"{name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type not in ("cpu", "mps", "xpu"):
        raise ContrafuseError("--device", f"{name!r}: unsupported device type")
    return device


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``auto`` -> ``bf16`` on a CUDA device with bfloat16 or a CPU with native bfloat16, else ``fp32``."""
    if precision not in PRECISIONS:
        raise ContrafuseError("precision", f"must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision != "auto":
        return precision
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"


def autocast(device: torch.device | str, precision: str) -> contextlib.AbstractContextManager:
    """The context a training step runs in: bfloat16 autocast for ``bf16``, nothing for ``fp32``."""
    import torch

    device = torch.device(device)
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def full_precision(*tensors: torch.Tensor):
    """Disable autocast and return ``tensors`` as float32: ``with full_precision(a, b) as (a, b): ...``."""
    import torch

    @contextlib.contextmanager
    def manager():
        device_type = tensors[0].device.type
        with torch.autocast(device_type, enabled=False):
            yield tuple(t.float() for t in tensors)

    return manager()
