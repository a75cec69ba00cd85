"""Shared fixtures: paths to ../shared/datasets and small synthetic images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from PIL import Image

# Property tests: the default profile draws the same examples on every run (derandomize), so that CI
# is repeatable and bounded (the whole suite in about ten minutes on two cores); for a deeper,
# randomised search run with HYPOTHESIS_PROFILE=deep (2,000 examples per test).
settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("deep", max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Single-pair runs fuse in the test's own process; tests/test_worker.py turns the worker on.
os.environ["CONTRAFUSE_WORKER"] = "off"

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"
#: the peers' official weights and the official code's outputs (../shared/peers, see its README)
PEERS = REPO.parent / "shared" / "peers"
# This machine and CI reach no code host: official weights are read from the local copies.
if (PEERS / "weights").is_dir():
    os.environ.setdefault("CONTRAFUSE_WEIGHTS_DIR", str(PEERS / "weights"))


def _required(path: Path) -> Path:
    """``path`` under ../shared; a test needing an absent one is skipped, or fails where
    CONTRAFUSE_REQUIRE_DATA=1 (CI sets it, so that missing data cannot pass silently)."""
    if not path.exists():
        if os.environ.get("CONTRAFUSE_REQUIRE_DATA") == "1":
            pytest.fail(f"{path} not available (CONTRAFUSE_REQUIRE_DATA=1)")
        pytest.skip(f"{path} not available")
    return path


def dataset(*parts: str) -> Path:
    """A dataset folder of ../shared/datasets."""
    return _required(DATASETS.joinpath(*parts))


def peers(*parts: str) -> Path:
    """A path under ../shared/peers (official weights and the official code's outputs)."""
    return _required(PEERS.joinpath(*parts))


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


class TinyRecipe:
    """A one-convolution training recipe for tests of the training loop (seeded model, fixed data)."""

    def build_model(self, cfg):
        import torch
        torch.manual_seed(0)
        return torch.nn.Conv2d(2, 1, 3, padding=1)

    def stage_data(self, cfg, stage):
        return np.random.default_rng(0).random((8, 2, 8, 8)).astype(np.float32)

    def step(self, model, batch, stage):
        from torch.nn import functional as F
        return {"total": F.mse_loss(model(batch).float(), batch[:, :1])}
