"""TarDAL fusion generator (Liu et al., "Target-aware Dual Adversarial Learning and a
Multi-scenario Multi-Modality Benchmark to Fuse Infrared and Visible for Object Detection",
CVPR 2022, Sec. 3.2, the generator G of the dual adversarial network).

Layer layout and parameter names follow the authors' pre-v1.0 code (JinyuanLiu-CV/TarDAL @ 8ef276f,
``modules/generator.py``), so their ``tardal.pt`` loads with ``strict=True``. Infrared and visible
grey are stacked as two channels; a 3x3 convolution lifts them to ``dim`` features; ``depth`` densely
connected 3x3 layers each add ``dim`` features to the running concatenation; four 3x3 layers
(``dim * (depth + 1)`` -> 4 dim -> 2 dim -> dim -> 1) reduce it to the output, which ends in tanh.
Every convolution has a bias and zero padding 1 (no reflection); BatchNorm follows each one except
the first and the last of the reducing stage; ReLU throughout. dim 32, depth 3: 296,577 parameters.

Protocol notes (official ``fuse.py`` without ``--eval``): inputs on [0, 1], infrared first; the
network is run in *train* mode, so every BatchNorm normalises with the statistics of the image being
fused (fuse one image per batch; whole-image statistics also make tiling inexact); the raw output is
tanh, i.e. [-1, 1], and the official script clips it to [0, 1] without any rescaling.
"""

from __future__ import annotations

import torch
from torch import nn

from . import NETWORKS


def _conv(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=1)


def _conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(_conv(c_in, c_out), nn.BatchNorm2d(c_out), nn.ReLU())


@NETWORKS.register("tardal")
class TarDAL(nn.Module):
    """``forward(ir, vis)`` on grey tensors (N, 1, H, W) in [0, 1] of any size; returns the tanh
    output in [-1, 1], same size (the official script clips it to [0, 1])."""

    def __init__(self, dim: int = 32, depth: int = 3):
        super().__init__()
        self.depth = depth
        self.encoder = _conv_bn_relu(2, dim)
        self.dense = nn.ModuleList(_conv_bn_relu(dim * (i + 1), dim) for i in range(depth))
        self.fuse = nn.Sequential(
            nn.Sequential(_conv(dim * (depth + 1), dim * 4), nn.ReLU()),  # no BatchNorm here
            _conv_bn_relu(dim * 4, dim * 2),
            _conv_bn_relu(dim * 2, dim),
            nn.Sequential(_conv(dim, 1), nn.Tanh()),
        )

    def border_radius(self) -> int:
        """How far (pixels) the convolutions' zero padding reaches into the output: one pixel per
        3x3 layer on the longest path (encoder, every dense layer, the four reducing layers): 8.
        In train mode each BatchNorm's whole-image statistics reach further still."""
        return sum(m.padding[0] for part in (self.encoder, self.dense, self.fuse)
                   for m in part.modules() if isinstance(m, nn.Conv2d))

    def forward(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        x = self.encoder(torch.cat([ir, vis], 1))
        for layer in self.dense:
            x = torch.cat([x, layer(x)], 1)
        return self.fuse(x)
