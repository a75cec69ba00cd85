"""DenseFuse fusion network (Li & Wu, IEEE TIP 2019, Sec. III-A, Fig. 1, Table I; grey model).

One encoder, shared by both sources: a 3x3 convolution (1 -> 16 channels) then a dense block of
three 3x3 convolutions (16 channels each), every one seeing the concatenation of all maps before
it, so the encoder emits 16 + 3 * 16 = 64 channels. The two 64-channel feature stacks are fused by
the addition strategy (Sec. III-C, Eq. 4) and a plain decoder of four 3x3 convolutions
(64 -> 64 -> 32 -> 16 -> 1) reconstructs the image. No down-sampling anywhere.

Where the authors' PyTorch code (hli1221/densefuse-pytorch @ 4394b63e, whose ``densefuse_gray.model``
this module loads unchanged) decides what the paper leaves open, we follow the code:

* Every convolution, the last one included, is preceded by 1-pixel reflection padding and followed
  by ReLU, so the raw output is >= 0 (and unbounded above).
* "Addition" is the mean of the two feature stacks, ``(phi_ir + phi_vis) / 2``, not the sum of Eq. 4.
* Intensities on 0..255 in and out, no normalisation; 74,193 parameters.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from . import NETWORKS


class PaddedConv(nn.Module):
    """Reflection padding by ``kernel // 2``, a convolution, ReLU (state-dict key ``conv2d``)."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3):
        super().__init__()
        self.pad = kernel // 2
        self.conv2d = nn.Conv2d(c_in, c_out, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2d(F.pad(x, (self.pad,) * 4, mode="reflect")))


class DenseLayer(nn.Module):
    """Appends ``growth`` new maps, computed from all the incoming ones, to the incoming ones."""

    def __init__(self, c_in: int, growth: int):
        super().__init__()
        self.dense_conv = PaddedConv(c_in, growth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.dense_conv(x)], 1)


class DenseBlock(nn.Module):
    def __init__(self, c_in: int, growth: int = 16, layers: int = 3):
        super().__init__()
        self.denseblock = nn.Sequential(*(DenseLayer(c_in + i * growth, growth) for i in range(layers)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.denseblock(x)


@NETWORKS.register("densefuse")
class DenseFuse(nn.Module):
    """``forward(ir, vis)`` on grey tensors ``(N, 1, H, W)`` in 0..255 (H, W >= 2); returns the
    fused image on the same scale, same size, unclamped."""

    def __init__(self, channels: int = 1, width: int = 16):
        super().__init__()
        encoded = 4 * width                                   # 16 + 3 * 16 = 64
        self.conv1 = PaddedConv(channels, width)
        self.DB1 = DenseBlock(width, growth=width)
        self.conv2 = PaddedConv(encoded, encoded)
        self.conv3 = PaddedConv(encoded, encoded // 2)
        self.conv4 = PaddedConv(encoded // 2, encoded // 4)
        self.conv5 = PaddedConv(encoded // 4, channels)

    def border_radius(self) -> int:
        """How far (pixels) the receptive field reaches from a pixel: one per 3x3 convolution
        along encoder and decoder, 8 in all."""
        return sum(m.pad for m in self.modules() if isinstance(m, PaddedConv))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.DB1(self.conv1(x))

    @staticmethod
    def fuse(f_ir: torch.Tensor, f_vis: torch.Tensor) -> torch.Tensor:
        return (f_ir + f_vis) / 2

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        return self.conv5(self.conv4(self.conv3(self.conv2(f))))

    def forward(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        return self.decode(self.fuse(self.encode(ir), self.encode(vis)))
