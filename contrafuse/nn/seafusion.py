"""SeAFusion fusion network (Tang et al., "Image fusion in the loop of high-level vision tasks: A
semantic-aware real-time infrared and visible image fusion network", Information Fusion 82, 2022,
Sec. 3, network architecture and gradient residual dense block, GRDB).

Written from the architecture of the authors' ``FusionNet.py`` as shipped with ``SeAFusion.pth`` in
Linfeng-Tang/VIF-Benchmark @ 23f2e51f (``SeAFusion/``; same network as Linfeng-Tang/SeAFusion).
The state-dict keys match that file, so the official weights load strictly.

* Two encoders (visible luma, infrared) without down-sampling: a 3x3 convolution to 16 channels,
  then two GRDBs (16 -> 32 -> 48). A GRDB adds a dense path (two 3x3 convolutions, each seeing the
  concatenation of all earlier features; a 1x1 convolution of the 3C stack) and a gradient path
  (|Sobel-x| + |Sobel-y|, depthwise, no bias; a 1x1 convolution), then LeakyReLU(0.1).
  The Sobel kernels start as the fixed operator but are ordinary weights; the shipped ones were
  trained away from it slightly, so they are loaded, not rebuilt.
* Decoder on the concatenated features (visible first): 3x3 convolutions 96 -> 64 -> 32 -> 16 -> 1,
  LeakyReLU(0.2) after all but the last, which ends in tanh(x)/2 + 1/2 (output on 0..1).
* Every 3x3 convolution zero-pads by 1 (size kept, any size accepted); every convolution has a bias
  except the Sobel ones; other LeakyReLUs have slope 0.2.
* The four decoder layers carry BatchNorm layers that the forward pass never applies (the shipped
  file has their keys, at their initial values): kept only so that strict loading works. Train and
  eval mode therefore give the same output.

166,883 parameters (226 of them the unused BatchNorm affines), 167,113 state-dict values.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from . import NETWORKS

_SOBEL_X = ((1.0, 0.0, -1.0), (2.0, 0.0, -2.0), (1.0, 0.0, -1.0))


class _Unit(nn.Module):
    """One convolution (attribute ``conv``) and its activation: ``"lrelu"`` (slope 0.2), ``"tanh"``
    (tanh/2 + 1/2) or ``None``. ``dead_bn`` adds a BatchNorm that is stored but never applied."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, act: str | None = "lrelu",
                 dead_bn: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2)
        if dead_bn:
            self.bn = nn.BatchNorm2d(c_out)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.act == "lrelu":
            return F.leaky_relu(y, 0.2)
        if self.act == "tanh":
            return torch.tanh(y) / 2 + 0.5
        return y


class _Dense(nn.Module):
    """Two 3x3 layers, each appending C channels to the running stack: C -> 3C."""

    def __init__(self, c: int):
        super().__init__()
        self.conv1 = _Unit(c, c)
        self.conv2 = _Unit(2 * c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat((x, self.conv1(x)), 1)
        return torch.cat((x, self.conv2(x)), 1)


class _Gradient(nn.Module):
    """Per-channel |horizontal Sobel| + |vertical Sobel| (learnable depthwise kernels)."""

    def __init__(self, c: int):
        super().__init__()
        self.convx = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)
        self.convy = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)
        kx = torch.tensor(_SOBEL_X)
        with torch.no_grad():
            self.convx.weight.copy_(kx.expand_as(self.convx.weight))
            self.convy.weight.copy_(kx.t().expand_as(self.convy.weight))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convx(x).abs() + self.convy(x).abs()


class GRDB(nn.Module):
    """Gradient residual dense block, C -> C_out."""

    radius = 2  # two stacked 3x3 convolutions on the dense path (the Sobel path reaches 1)

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.dense = _Dense(c_in)
        self.convdown = _Unit(3 * c_in, c_out, kernel=1, act=None)
        self.sobelconv = _Gradient(c_in)
        self.convup = _Unit(c_in, c_out, kernel=1, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.convdown(self.dense(x)) + self.convup(self.sobelconv(x))
        return F.leaky_relu(y, 0.1)


@NETWORKS.register("seafusion")
class SeAFusion(nn.Module):
    """``forward(vis_y, ir)``: visible luma first, infrared second, each (N, 1, H, W) on 0..1 (only
    the first channel of ``vis_y`` is used, as officially); returns (N, output, H, W) on 0..1, the
    raw tanh/2 + 1/2 output of the official model, not stretched or clamped."""

    def __init__(self, output: int = 1, widths: tuple[int, int, int] = (16, 32, 48)):
        super().__init__()
        w0, w1, w2 = widths
        self.vis_conv = _Unit(1, w0)
        self.vis_rgbd1 = GRDB(w0, w1)
        self.vis_rgbd2 = GRDB(w1, w2)
        self.inf_conv = _Unit(1, w0)
        self.inf_rgbd1 = GRDB(w0, w1)
        self.inf_rgbd2 = GRDB(w1, w2)
        self.decode4 = _Unit(2 * w2, 2 * w1, dead_bn=True)
        self.decode3 = _Unit(2 * w1, 2 * w0, dead_bn=True)
        self.decode2 = _Unit(2 * w0, w0, dead_bn=True)
        self.decode1 = _Unit(w0, output, act="tanh", dead_bn=True)

    def border_radius(self) -> int:
        """Receptive-field radius in pixels: stem 3x3, two GRDBs of two 3x3 each, four decoder 3x3
        layers (9 with the shipped layout); the zero padding reaches this far into the output."""
        decoder = (self.decode4, self.decode3, self.decode2, self.decode1)
        return (self.vis_conv.conv.padding[0] + self.vis_rgbd1.radius + self.vis_rgbd2.radius
                + sum(d.conv.padding[0] for d in decoder))

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        vis = self.vis_rgbd2(self.vis_rgbd1(self.vis_conv(first[:, :1])))
        ir = self.inf_rgbd2(self.inf_rgbd1(self.inf_conv(second)))
        x = self.decode4(torch.cat((vis, ir), 1))
        return self.decode1(self.decode2(self.decode3(x)))
