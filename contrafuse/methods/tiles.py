"""What both tiled runners share (:mod:`contrafuse.methods.tiling`'s passes and
:mod:`contrafuse.methods.staged`'s levels): the tile grid, the memory budget that sizes it, and the
*sites*, layers holding a statistic of the whole image, with the moments they gather over tiles."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import positive_setting

#: Memory one tile's forward may use, unless ``CONTRAFUSE_TILE_MEMORY`` (bytes) says otherwise.
DEFAULT_TILE_MEMORY = 1_200_000_000


def is_batch_statistics_norm(module) -> bool:
    """BatchNorm normalising with the statistics of its input rather than running ones."""
    from torch import nn
    return isinstance(module, nn.BatchNorm2d) and (module.training or module.running_mean is None)


def is_site(module) -> bool:
    """Whether ``module`` holds a statistic of the whole image: BatchNorm normalising with the
    batch's own statistics, or a module declaring ``sums_over_pixels = True``, whose output is a
    sum over every pixel of its inputs (so the sum of its outputs on the tile cores is its output on
    the whole image; e.g. CoCoNet's :class:`~contrafuse.nn.coconet.SpatialGram`)."""
    return is_batch_statistics_norm(module) or getattr(module, "sums_over_pixels", False) is True


class Moments:
    """Per-channel count, mean and sum of squared deviations of ``(N, C, H, W)`` values added tile
    by tile, merged by Chan's formula in float64: the whole-image mean and (biased) variance with
    which BatchNorm normalises a batch."""

    def __init__(self):
        self.count, self.mean, self.squares = 0, None, None

    def add(self, x) -> None:
        import torch
        n = x.numel() // x.shape[1]
        # the tile's own moments by BatchNorm's per-channel reduction (eps 0: its invstd is 1/std)
        _, mean, invstd = torch.native_batch_norm(x, None, None, None, None, True, 0.0, 0.0)
        mean, squares = mean.double(), invstd.double().reciprocal().square() * n
        if self.mean is None:
            self.count, self.mean, self.squares = n, mean, squares
            return
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.squares = self.squares + squares + delta.square() * (self.count * n / total)
        self.count = total

    def mean_var(self):
        return self.mean, self.squares / self.count


def normalise(module, x, mean, var):
    """BatchNorm ``module`` applied to ``x`` with the whole-image ``mean`` and ``var`` (float64): in
    ``x``'s type, computed in float32 as BatchNorm computes a bfloat16 batch."""
    import torch
    return torch.nn.functional.batch_norm(x, mean.float(), var.float(), module.weight, module.bias,
                                          training=False, eps=module.eps)


@dataclass
class Tile:
    """A tile of the canvas ``[y0:y1, x0:x1]`` and the core it contributes ``[cy0:cy1, cx0:cx1]``
    (canvas coordinates)."""
    y0: int
    y1: int
    x0: int
    x1: int
    cy0: int
    cy1: int
    cx0: int
    cx1: int


def plan_tiles(height: int, width: int, core: int, halo: int, multiple: int) -> list[Tile]:
    """Cores of side ``core`` (a multiple of ``multiple``) covering the canvas, each grown by
    ``halo`` on every side and clipped to the canvas (where the whole-image run pads too)."""
    tiles = []
    for cy0 in range(0, height, core):
        for cx0 in range(0, width, core):
            cy1, cx1 = min(cy0 + core, height), min(cx0 + core, width)
            tiles.append(Tile(max(0, cy0 - halo), min(height, cy1 + halo), max(0, cx0 - halo),
                              min(width, cx1 + halo), cy0, cy1, cx0, cx1))
    return tiles


def tile_memory_budget() -> int:
    return positive_setting("CONTRAFUSE_TILE_MEMORY", DEFAULT_TILE_MEMORY, "number of bytes", lambda v: int(float(v)))


def auto_core_size(bytes_per_pixel: float, halo: int, multiple: int, budget: int | None = None) -> int:
    """The largest core side whose tile (core + 2 halo) fits the memory budget."""
    side = int(math.sqrt((budget or tile_memory_budget()) / bytes_per_pixel)) - 2 * halo
    return max(multiple, side // multiple * multiple, 4 * multiple)
