"""Tiled inference reproduces the whole-image result, including the whole-image statistics
(BatchNorm with the image's own statistics, CoCoNet's channel-attention Gram matrices)."""

import numpy as np
import pytest
from conftest import dataset

from contrafuse.io import luminance, read_image
from contrafuse.methods import create_method
from contrafuse.methods.tiling import auto_core_size, plan_tiles


@pytest.fixture(scope="module")
def pair():
    folder = dataset("TNO_CoCoNet")
    ir, vis = (luminance(read_image(folder / kind / "TNO_001.png")) for kind in ("ir", "vis"))
    return ir[100:260, 200:390], vis[100:260, 200:390]  # 190x160, odd sizes on purpose


@pytest.mark.parametrize("name, options", [
    ("coconet", {}),                          # authors: per-image BatchNorm statistics, 14 passes
    ("coconet", {"inference": "standard"}),   # running statistics; the attention Grams are global
    ("clfnet", {}),                           # local network, global min-max stretch at the end
])
def test_tiled_equals_whole_image(pair, name, options):
    whole = create_method(name, tile=0, precision="fp32", **options).fuse_grey(*pair)
    tiled = create_method(name, tile=112, precision="fp32", **options).fuse_grey(*pair)  # 2 x 2 tiles
    assert tiled.shape == whole.shape == pair[0].shape
    assert np.abs(tiled - whole).max() * 255 < 0.05


def test_a_short_halo_is_what_makes_tiles_differ(pair):
    """The property above is not vacuous: with a halo shorter than the network's reach the tiles'
    edges show (so the test would catch tiles cut wrongly)."""
    whole = create_method("coconet", tile=0, inference="standard", precision="fp32").fuse_grey(*pair)
    method = create_method("coconet", tile=112, inference="standard", precision="fp32")  # 2 x 2 tiles
    method.halo = 8
    assert np.abs(method.fuse_grey(*pair) - whole).max() * 255 > 1


@pytest.mark.parametrize("name", ["coconet", "clfnet"])
def test_tiled_equals_whole_image_in_bfloat16_within_a_grey_level(pair, name):
    """With bfloat16 autocast (the default where the CPU has it) tiles round differently from the
    whole image, but stay within one grey level of it."""
    whole = create_method(name, tile=0, precision="bf16").fuse_grey(*pair)
    tiled = create_method(name, tile=112, precision="bf16").fuse_grey(*pair)
    assert np.abs(tiled - whole).max() * 255 <= 1.0


def test_tile_cores_partition_the_canvas():
    tiles = plan_tiles(200, 136, core=64, halo=16, multiple=8)
    cover = np.zeros((200, 136), int)
    for t in tiles:
        cover[t.cy0:t.cy1, t.cx0:t.cx1] += 1
        assert 0 <= t.y0 <= t.cy0 and t.cy1 <= t.y1 <= 200 and t.cy0 - t.y0 in (0, 16)
        assert all(v % 8 == 0 for v in (t.y0, t.x0, t.cy0, t.cx0))
    assert (cover == 1).all()


def test_auto_tile_fits_the_budget():
    core = auto_core_size(1300.0, 96, 8, budget=1_000_000_000)
    assert core % 8 == 0 and (core + 192) ** 2 * 1300 <= 1_000_000_000 < (core + 8 + 192) ** 2 * 1300


def test_bad_tile_option_is_a_one_line_error():
    from contrafuse.errors import ContrafuseError
    with pytest.raises(ContrafuseError, match="tile must be"):
        create_method("clfnet", tile=-5)
