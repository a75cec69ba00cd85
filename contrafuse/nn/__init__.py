"""The fusion networks by name: one registry serving inference (:mod:`contrafuse.methods`),
training (:mod:`contrafuse.train`) and the complexity table (:mod:`contrafuse.bench.complexity`).

    >>> from contrafuse.nn import build_network
    >>> model = build_network("clfnet")

Each network class registers itself with :data:`NETWORKS`. A network may name the parameters
that only training uses (``training_only``: name prefixes, e.g. CLF-Net's projection head), which
are not part of the fusion network's size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..registry import Registry

NETWORKS: Registry = Registry("network")


def to_signed(unit):
    """[0, 1] intensities onto [-1, 1], the range both networks train on and output (tanh).
    Works on NumPy arrays and tensors alike."""
    return unit * 2 - 1


def to_unit(signed):
    """Inverse of :func:`to_signed`: [-1, 1] back onto [0, 1] (not clipped)."""
    return (signed + 1) / 2


def pad_to_multiple(x, multiple: int):
    """A ``(..., H, W)`` tensor reflect-padded at the bottom and right to multiples of ``multiple``
    (replicated where a side is too short to reflect); ``x`` itself when it already is one."""
    from torch.nn import functional as F

    height, width = x.shape[-2:]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if not (pad_h or pad_w):
        return x
    mode = "reflect" if min(height, width) > max(pad_h, pad_w) else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def crop_to(x, like):
    """``x`` cropped (bottom, right) to the height and width of ``like``."""
    return x[..., :like.shape[-2], :like.shape[-1]]


#: the modules that define networks (each registers its own); imported on first use, so that
#: importing this package needs no torch
NETWORK_MODULES = ("clfnet", "coconet", "datfuse", "densefuse", "gifnet", "ifcnn", "lrrnet", "lutfuse", "mmdrfuse", "sage", "seafusion", "tardal")


def _register_all() -> None:
    import importlib
    for module in NETWORK_MODULES:
        importlib.import_module(f"{__name__}.{module}")


def build_network(name: str, **options: Any):
    """A fresh (untrained) network ``name`` built with keyword ``options``."""
    _register_all()
    return NETWORKS.get(name)(**options)


def fusion_parameters(model) -> list:
    """The parameters of ``model`` that fusion uses (all but its ``training_only`` ones)."""
    skip = tuple(getattr(model, "training_only", ()))
    return [p for name, p in model.named_parameters() if not (skip and name.startswith(skip))]


def source_files(network: str | None = None) -> list[Path]:
    """The source files a network's results depend on (exported models and benchmark results are
    cached under a hash of them): the module registering it, the modules of this package it
    imports, and :mod:`contrafuse.nn.protocol`; every file of the package with ``network=None``.
    Found by reading the sources, so that a cached ONNX model runs without importing PyTorch."""
    import ast
    import re

    folder = Path(__file__).resolve().parent
    if network is None:
        return sorted(folder.glob("*.py"))
    mark = re.compile(rf"@NETWORKS\.register\(\s*[\"']{re.escape(network)}[\"']\s*\)")
    todo = [p for p in folder.glob("*.py") if mark.search(p.read_text())]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                names = [node.module] if node.module else [alias.name for alias in node.names]
                todo += [folder / f"{name}.py" for name in names if (folder / f"{name}.py").is_file()]
    return sorted(seen | {folder / "protocol.py"})
