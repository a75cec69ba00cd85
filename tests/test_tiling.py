"""Tiled inference reproduces the whole-image result, including the whole-image statistics
(BatchNorm with the image's own statistics, CoCoNet's channel-attention Gram matrices)."""

import os
import shutil
import tempfile

import numpy as np
import pytest
import torch
from conftest import dataset, peers

from contrafuse.errors import ContrafuseError
from contrafuse.io import luminance, read_image
from contrafuse.methods import create_method
from contrafuse.methods.staged import LevelPlan, NotStaged, _Run
from contrafuse.methods.tiles import Moments, auto_core_size, plan_tiles
from contrafuse.methods.tiling import run_tiled


@pytest.fixture(scope="module")
def pair():
    folder = dataset("TNO_CoCoNet")
    ir, vis = (luminance(read_image(folder / kind / "TNO_001.png")) for kind in ("ir", "vis"))
    return ir[100:260, 200:390], vis[100:260, 200:390]  # 190x160, odd sizes on purpose


@pytest.fixture(scope="module")
def wide_pair():
    folder = dataset("TNO_CoCoNet")
    ir, vis = (luminance(read_image(folder / kind / "TNO_001.png")) for kind in ("ir", "vis"))
    return ir[40:240, 60:300], vis[40:240, 60:300]  # 240x200: with coconet's border, 9 tiles of 96


def convolution_work(model):
    """A counter of the multiply-adds the model's convolutions do (forward hooks), and its hooks."""
    work = [0]

    def count(module, inputs, output):
        work[0] += output.numel() * module.weight[0].numel()

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    return work, hooks


@pytest.mark.parametrize("name, options", [
    ("coconet", {}),                          # authors: per-image BatchNorm statistics, 15 levels
    ("coconet", {"inference": "standard"}),   # running statistics; the attention Grams are global
    ("clfnet", {}),                           # local network, global min-max stretch at the end
])
def test_tiled_equals_whole_image(pair, name, options):
    whole = create_method(name, tile=0, precision="fp32", **options).fuse_grey(*pair)
    tiled = create_method(name, tile=112, precision="fp32", **options).fuse_grey(*pair)  # 2 x 2 tiles
    assert tiled.shape == whole.shape == pair[0].shape
    assert np.abs(tiled - whole).max() * 255 < 0.05


@pytest.mark.parametrize("name, tile", [("coconet", 96), ("tardal", 64)])
def test_many_tiles_by_levels_equal_the_whole_image_at_about_its_cost(wide_pair, name, tile):
    """Networks with per-image BatchNorm statistics run level by level (every layer once per pixel,
    with a few pixels of margin): over nine tiles the result is the whole image's to float rounding,
    and the convolutions do less than twice the whole image's work (the margins around 96-pixel
    cores; the passes that repeat the network once per level of statistics, with its whole reach
    around each tile, do it 46 times here)."""
    if name == "tardal":
        peers("weights", "tardal")
    whole_method = create_method(name, tile=0, precision="fp32")
    tiled_method = create_method(name, tile=tile, precision="fp32")
    whole_work, hooks = convolution_work(whole_method.model)
    whole = whole_method.fuse_grey(*wide_pair)
    tiled_work, more = convolution_work(tiled_method.model)
    tiled = tiled_method.fuse_grey(*wide_pair)
    for hook in hooks + more:
        hook.remove()
    assert np.abs(tiled - whole).max() * 255 < 0.01
    assert whole_work[0] < tiled_work[0] < 2 * whole_work[0]


def test_a_network_tracing_cannot_cut_gathers_its_statistics_in_passes(rng):
    """A layer the level tracer does not know (a reflection padding changes a value's size) sends the
    network to the passes over the tiles, which still give the whole image's result."""

    class Reflecting(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.out = torch.nn.Conv2d(2, 4, 3), torch.nn.Conv2d(4, 1, 3, padding=1)
            self.norm = torch.nn.BatchNorm2d(4, track_running_stats=False)  # the batch's own statistics

        def forward(self, a, b):
            x = self.conv(torch.nn.functional.pad(torch.cat([a, b], 1), (1, 1, 1, 1), mode="reflect"))
            return self.out(torch.relu(self.norm(x)))

    torch.manual_seed(0)
    model = Reflecting().eval()
    canvases = [rng.random((64, 48), dtype=np.float32) for _ in range(2)]

    def to_tensor(array):
        return torch.from_numpy(np.ascontiguousarray(array))[None, None]

    with pytest.raises(NotStaged, match="pad"):
        LevelPlan(model, 8, lambda height, width: [torch.zeros(1, 1, height, width)] * 2)
    with torch.inference_mode():
        whole = model(*map(to_tensor, canvases))[0].numpy()
    tiled = run_tiled(model, canvases, to_tensor, core=16, halo=8, multiple=8)  # 12 tiles
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_moments_merged_over_tiles_are_the_whole_images(rng):
    """Chan's merge of per-tile moments gives the mean and variance of all the values, even where the
    mean is a thousand times the spread (the sum-of-squares formula loses most digits there in float32)."""
    x = (50 + rng.normal(0, 0.05, (1, 3, 40, 70))).astype(np.float32)
    moments = Moments()
    for x0, x1 in ((0, 7), (7, 40), (40, 70)):
        moments.add(torch.from_numpy(np.ascontiguousarray(x[..., x0:x1])))
    mean, var = (v.numpy() for v in moments.mean_var())
    exact = x.astype(np.float64)
    np.testing.assert_allclose(mean, exact.mean(axis=(0, 2, 3)), rtol=1e-7)  # a float32 mean per tile
    np.testing.assert_allclose(var, exact.var(axis=(0, 2, 3)), rtol=1e-5)


def test_intermediate_files_are_freed_on_an_error(monkeypatch, tmp_path, pair):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    method = create_method("coconet", tile=112, precision="fp32")
    finish = _Run.finish

    def failing(run, level):
        finish(run, level)
        if level == 3:
            raise RuntimeError("stop")

    monkeypatch.setattr(_Run, "finish", failing)
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(RuntimeError, match="stop"):
        method.fuse_grey(*pair)
    assert len(os.listdir("/proc/self/fd")) == before and os.listdir(tmp_path) == []


def test_too_little_temporary_space_is_one_line_before_any_work(monkeypatch, pair):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**12, 10**12, 1000))
    monkeypatch.setattr(_Run, "tile", lambda *args: pytest.fail("started"))
    with pytest.raises(ContrafuseError, match="set TMPDIR"):
        create_method("coconet", tile=112, precision="fp32").fuse_grey(*pair)


@pytest.mark.parametrize("name", ["coconet", "clfnet"])
def test_a_short_halo_is_what_makes_tiles_differ(pair, monkeypatch, name):
    """The properties above are not vacuous: with halos shorter than the layers' reach the tiles'
    edges show (so the tests would catch tiles cut wrongly): CoCoNet's levels and CLF-Net's single
    pass, both without halos."""
    whole = create_method(name, tile=0, precision="fp32").fuse_grey(*pair)
    method = create_method(name, tile=112, precision="fp32")  # 2 x 2 tiles
    method.halo = 0
    monkeypatch.setattr(LevelPlan, "_input_margin", lambda plan, node, margin: 0)  # no layer reaches out
    assert np.abs(method.fuse_grey(*pair) - whole).max() * 255 > 1


@pytest.mark.parametrize("name", ["coconet", "clfnet"])
def test_tiles_in_bfloat16_add_nothing_to_its_rounding(pair, name):
    """With bfloat16 autocast (the default where the CPU has it) tiles round differently from the
    whole image (by up to two grey levels on a pixel), but stay as close to the float32 result as the
    whole image does."""
    exact = create_method(name, tile=0, precision="fp32").fuse_grey(*pair)
    whole = np.abs(create_method(name, tile=0, precision="bf16").fuse_grey(*pair) - exact) * 255
    tiled = np.abs(create_method(name, tile=112, precision="bf16").fuse_grey(*pair) - exact) * 255
    assert tiled.max() <= whole.max() + 0.1 and tiled.mean() <= 1.05 * whole.mean()


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
