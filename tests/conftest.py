"""Shared fixtures: paths to ../shared/datasets and small synthetic images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"


def dataset(*parts: str) -> Path:
    path = DATASETS.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"dataset {path} not available")
    return path


def save(path: Path, array: np.ndarray, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, **kwargs).save(path)
    return path


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def grey_pair(tmp_path, rng):
    """A small infrared/visible pair written as PNG."""
    ir = (rng.random((40, 56)) * 255).astype(np.uint8)
    vis = (rng.random((40, 56)) * 255).astype(np.uint8)
    return save(tmp_path / "ir" / "a.png", ir), save(tmp_path / "vis" / "a.png", vis)
