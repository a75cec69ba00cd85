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


def build_network(name: str, **options: Any):
    """A fresh (untrained) network ``name`` built with keyword ``options``."""
    from . import clfnet, coconet, densefuse, ifcnn, seafusion, tardal  # noqa: F401  (register on first use:
    # importing this package needs no torch)
    return NETWORKS.get(name)(**options)


def fusion_parameters(model) -> list:
    """The parameters of ``model`` that fusion uses (all but its ``training_only`` ones)."""
    skip = tuple(getattr(model, "training_only", ()))
    return [p for name, p in model.named_parameters() if not (skip and name.startswith(skip))]


def source_files() -> list[Path]:
    """Every source file of the networks (exported models are cached under a hash of them)."""
    return sorted(Path(__file__).resolve().parent.glob("*.py"))
