"""IFCNN fusion network, IFCNN-MAX variant (Zhang et al., Information Fusion 54, 2020, Sec. 3.1, Fig. 2).

Two convolutional layers extract features from each source with shared weights, the two feature
stacks are fused element-wise (maximum, the rule of IFCNN-MAX used for infrared/visible), and two
convolutional layers reconstruct the fused image. Layout, names and padding follow the authors'
code (uzeful/IFCNN @ 8fe59c2b, ``Code/model.py``), so their ``Code/snapshots/IFCNN-MAX.pth``
loads unchanged:

* ``conv1``: the 7x7, 3 -> 64 stem convolution of an ImageNet ResNet-101 (no bias, no
  BatchNorm, no activation after it), run at stride 1 on the input padded by 3 with replicated
  edges. It is frozen in the authors' training; here too.
* ``conv2`` (before fusion) and ``conv3`` (after it): 3x3, 64 -> 64, no bias, BatchNorm, ReLU,
  each on its input padded by 1 with replicated edges.
* ``conv4``: 1x1, 64 -> 3 with bias; no activation, so the output is not confined to [0, 1].

Stride 1 and dilation 1 throughout: any input size works and the output has the input's size.
83,587 parameters (83,843 state-dict values with BatchNorm's running statistics).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from . import NETWORKS


class ConvBNReLU(nn.Module):
    """Replicate-pad by 1, 3x3 convolution without bias, BatchNorm, ReLU (keys ``conv``, ``bn``)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(F.pad(x, (1, 1, 1, 1), mode="replicate"))))


@NETWORKS.register("ifcnn")
class IFCNN(nn.Module):
    """``forward(first, second)`` on RGB tensors ``(N, 3, H, W)`` as the authors' infrared/visible
    script passes them (visible first, infrared as RGB second, both on [0, 1]); returns the raw
    ``(N, 3, H, W)`` output, unclamped. ``fuse`` picks the rule: ``"max"`` (IFCNN-MAX, the
    default and the released IV weights), ``"sum"`` or ``"mean"``."""

    STEM_PAD = 3  # replicate padding before the 7x7 stem

    def __init__(self, fuse: str = "max", width: int = 64, channels: int = 3):
        super().__init__()
        if fuse not in ("max", "sum", "mean"):
            raise ValueError(f"unknown fusion rule {fuse!r}")
        self.fuse_rule = fuse
        self.conv2 = ConvBNReLU(width, width)
        self.conv3 = ConvBNReLU(width, width)
        self.conv4 = nn.Conv2d(width, channels, 1)
        self.conv1 = nn.Conv2d(channels, width, 7, bias=False)  # registered last, as in the .pth
        # Authors' initialisation: N(0, sqrt(2 / (k*k*out))) for the trained convolutions (biases
        # keep PyTorch's default); the stem is ImageNet's (loaded with the weights) and frozen.
        for conv in (self.conv2.conv, self.conv3.conv, self.conv4):
            fan_out = conv.kernel_size[0] * conv.kernel_size[1] * conv.out_channels
            nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / fan_out))
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.conv1.weight.requires_grad_(False)

    def border_radius(self) -> int:
        """Reach of the receptive field (and of the replicated borders) in pixels: 3 + 1 + 1 = 5."""
        return self.STEM_PAD + 2

    def extract(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(F.pad(x, (self.STEM_PAD,) * 4, mode="replicate")))

    def fuse(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.fuse_rule == "max":
            return torch.maximum(a, b)
        return a + b if self.fuse_rule == "sum" else (a + b) / 2

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return self.conv4(self.conv3(self.fuse(self.extract(first), self.extract(second))))
