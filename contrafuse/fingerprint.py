"""One way to fingerprint what a cached result depends on: the benchmark's cache of fused images,
the exported ONNX models and the background worker's identity."""

from __future__ import annotations

import hashlib
from pathlib import Path


def digest(part) -> str:
    """One part of a fingerprint as text: a string as it is, a :class:`~pathlib.Path` by the sha256 of
    its contents (``missing`` when there is no such file)."""
    if isinstance(part, Path):
        return hashlib.sha256(part.read_bytes()).hexdigest() if part.is_file() else "missing"
    return str(part)


def fingerprint(parts, length: int = 16) -> str:
    """The first ``length`` hex digits of a sha256 over ``parts`` (each by :func:`digest`), in order.
    A part already digested gives the same fingerprint as the part itself."""
    return hashlib.sha256("|".join(digest(p) for p in parts).encode()).hexdigest()[:length]
