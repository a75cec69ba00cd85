"""One way to fingerprint what a cached result depends on: the benchmark's cache of fused images,
the exported ONNX models and the background worker's identity."""

from __future__ import annotations

import hashlib
from pathlib import Path


def fingerprint(parts, length: int = 16) -> str:
    """The first ``length`` hex digits of a sha256 over ``parts``, in order: a string as it is, a
    :class:`~pathlib.Path` by the sha256 of its contents (``missing`` when there is no such file)."""
    def text(part) -> str:
        if isinstance(part, Path):
            return hashlib.sha256(part.read_bytes()).hexdigest() if part.is_file() else "missing"
        return str(part)

    return hashlib.sha256("|".join(text(p) for p in parts).encode()).hexdigest()[:length]
