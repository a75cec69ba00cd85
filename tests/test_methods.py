"""Properties every classical method must have, and a sweep over the real datasets."""

import numpy as np
import pytest
from conftest import dataset

import contrafuse
from contrafuse.io import pair_folders
from contrafuse.methods import create_method

CLASSICAL = ["average", "maximum", "laplacian", "dwt", "gff"]


def textured_scene(rng, shape=(96, 128)):
    """Visible: textured background, the target hidden (flat, as behind smoke); infrared: flat
    background plus one hot target."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    vis = 0.5 + 0.25 * np.sin(xx / 1.5) * np.sin(yy / 2.0) + 0.02 * rng.standard_normal(shape)
    ir = np.full(shape, 0.2)
    target = (slice(30, 60), slice(40, 70))
    ir[target] = 0.95
    vis[target] = 0.5
    return np.clip(ir, 0, 1).astype(np.float32), np.clip(vis, 0, 1).astype(np.float32), target


@pytest.mark.parametrize("name", CLASSICAL)
def test_self_fusion_is_identity(name, rng):
    image = rng.random((61, 77)).astype(np.float32)
    fused = create_method(name).fuse_grey(image, image)
    assert fused.shape == image.shape and fused.dtype == np.float32
    assert np.abs(fused - image).max() < 1 / 510  # within 8-bit rounding


@pytest.mark.parametrize("name", CLASSICAL)
def test_hot_target_survives(name, rng):
    ir, vis, target = textured_scene(rng)
    fused = create_method(name).fuse_grey(ir, vis)
    inside = fused[target][5:-5, 5:-5].mean()
    outside = fused[:, :25].mean()
    # the target is much brighter than its surroundings in the IR; at least half of that contrast stays
    assert inside - outside > 0.5 * (0.95 - 0.2) * 0.5


@pytest.mark.parametrize("name", [n for n in CLASSICAL if n != "maximum"])
def test_visible_texture_survives(name, rng):
    ir, vis, _ = textured_scene(rng)
    fused = create_method(name).fuse_grey(ir, vis)
    region = (slice(70, 96), slice(0, 128))  # background: texture exists only in the visible image
    corr = np.corrcoef(fused[region].ravel(), vis[region].ravel())[0, 1]
    assert corr > 0.8
    assert fused[region].std() > 0.4 * vis[region].std()


def test_maximum_keeps_visible_texture_where_brighter(rng):
    ir, vis, _ = textured_scene(rng)
    fused = create_method("maximum").fuse_grey(ir, vis)
    assert np.array_equal(fused[80:, :], np.maximum(ir, vis)[80:, :])


@pytest.mark.parametrize("name", CLASSICAL)
@pytest.mark.parametrize("folder", ["TNO_CoCoNet", "RoadScene"])
def test_every_dataset_pair_fuses(name, folder):
    root = dataset(folder)
    for pair in pair_folders(root / "ir", root / "vis"):
        fused = contrafuse.fuse(pair.first, pair.second, method=name)
        vis = contrafuse.api.as_unit_image(pair.second)
        assert fused.shape == vis.shape, pair.name  # colour visible -> colour result
        assert fused.min() >= 0 and fused.max() <= 1
