"""SAGE's distilled sub-network (Wu et al., "Every SAM Drop Counts: Embracing Semantic Priors for
Multi-Modality Image Fusion and Beyond", CVPR 2025, Fig. 2(d); distilled as in Fig. 2(c), the bi-level
distillation with triplet losses from the SAM-guided main network; the only network run at test time).

Layout and parameter names follow the authors' code (RollingPlain/SAGE_IVIF @ 377fdbef,
``model_sub/model.py``, the file whose keys match the released ``checkpoints/checkpoints.pt``), so
the checkpoint loads with ``strict=True``. Fig. 2(d) draws "stacked dense blocks"; the code is a small
three-level encoder-decoder instead, and we follow the code:

* The visible Y and the infrared are stacked as two channels (visible first).
* Five stages of three 3x3 convolutions (zero padding 1), each followed by BatchNorm and
  LeakyReLU(0.01); all of them 32 channels wide.
* Stage 1 at full resolution, stage 2 after a 2x2 max-pool, stage 3 after another (floor division
  of odd sides, as PyTorch pools).
* Decoding: stage 3 bilinearly resized (half-pixel centres) to stage 2's exact size, concatenated
  with it, a 1x1 convolution + BatchNorm + LeakyReLU back to 32 channels, stage 4; the same
  against stage 1 for stage 5. Resizing to the skip's size, not by a factor of two, is what lets
  any input size through: no padding to a multiple.
* A last 3x3 convolution to one channel and tanh. The official script saves that output as it is
  (clamped to [0, 1] by its 8-bit save), so the raw range is [-1, 1] but only [0, 1] is used.

135,617 parameters (BatchNorm running statistics not counted).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from . import NETWORKS

#: LeakyReLU's slope for negative inputs, everywhere in the network
SLOPE = 0.01


def _unit(c_in: int, c_out: int, kernel: int) -> list[nn.Module]:
    """Convolution (bias, zero padding keeping the size), BatchNorm, LeakyReLU."""
    return [nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2), nn.BatchNorm2d(c_out), nn.LeakyReLU(SLOPE)]


def _stage(c_in: int, width: int, convs: int = 3) -> nn.Sequential:
    """``convs`` 3x3 units, the first taking ``c_in`` channels (state-dict indices 0, 1, 3, 4, 6, 7)."""
    layers = []
    for i in range(convs):
        layers += _unit(c_in if i == 0 else width, width, 3)
    return nn.Sequential(*layers)


@NETWORKS.register("sage")
class SAGE(nn.Module):
    """``forward(vis_y, ir)`` on grey tensors (N, 1, H, W) in [0, 1] of any size (H, W >= 4); returns
    the tanh output (N, 1, H, W), which the official script clamps to [0, 1]."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.module1 = _stage(2, width)                          # full resolution
        self.module2 = _stage(width, width)                      # 1/2
        self.module3 = _stage(width, width)                      # 1/4
        self.adjust_channels4 = nn.Sequential(*_unit(2 * width, width, 1))
        self.module4 = _stage(width, width)                      # 1/2
        self.adjust_channels5 = nn.Sequential(*_unit(2 * width, width, 1))
        self.module5 = _stage(width, width)                      # full resolution
        self.final_decoder = nn.Sequential(nn.Conv2d(width, 1, 3, padding=1), nn.Tanh())

    def border_radius(self) -> int:
        """How far (input pixels) a result pixel sees: 37. Followed back along the deepest path (the
        last convolution and stage 5, the bilinear step from 1/2 (two source pixels), stage 4, the
        step from 1/4, stage 3, then the 2x2 pools and stages 2 and 1) for each of the four places
        a pixel can take in the pooling grid, the worst. No operation is global (BatchNorm uses its
        running statistics); tiles reproduce the whole image only where they keep its pooling grid
        and resize ratios (tile origins and image sides multiples of 4)."""
        def up(lo: int, hi: int) -> tuple[int, int]:
            """Source pixels of a bilinear x2 (half-pixel centres: floor(x / 2 - 1/4) and the next)."""
            return (2 * lo - 1) // 4, (2 * hi - 1) // 4 + 1

        def down(lo: int, hi: int) -> tuple[int, int]:
            """Pixels a 2x2 max-pool's outputs lo..hi look at, after a stage of three 3x3 layers."""
            return 2 * lo - 3, 2 * hi + 1 + 3

        reach = 0
        for x in range(4):
            lo, hi = up(x - 4, x + 4)                       # last convolution + stage 5, up from 1/2
            lo, hi = up(lo - 3, hi + 3)                     # stage 4, up from 1/4
            lo, hi = down(*down(lo - 3, hi + 3))            # stage 3, pool + stage 2, pool + stage 1
            reach = max(reach, x - lo, hi - x)
        return reach

    @staticmethod
    def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, vis: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        full = self.module1(torch.cat([vis, ir], 1))
        half = self.module2(F.max_pool2d(full, 2))
        quarter = self.module3(F.max_pool2d(half, 2))
        half = self.module4(self.adjust_channels4(torch.cat([self._up(quarter, half), half], 1)))
        full = self.module5(self.adjust_channels5(torch.cat([self._up(half, full), full], 1)))
        return self.final_decoder(full)
