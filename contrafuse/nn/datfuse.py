"""DATFuse fusion network (Tang, He, Liu, Duan, Si, "DATFuse: Infrared and Visible Image Fusion via
Dual Attention Transformer", IEEE TCSVT 33(7), 2023, Sec. III: the dual attention residual module,
DARM, and the Transformer module, TRM).

Written from the architecture of the authors' ``Networks/network.py`` (tthinking/DATFuse @ 0cd93f15,
whose ``model_10.pth`` this module loads unchanged, strict). Infrared and visible grey are stacked as
two channels (infrared first) on [0, 1]:

* stem: 5x5 convolution (2 -> 16), replicate padding 2, BatchNorm, ReLU;
* DARM: a feature block (3x3 convolution, BatchNorm, ReLU, then *the same* convolution and BatchNorm
  again, replicate padding 1 each time, no final ReLU); a channel attention (global average pool,
  1x1 16 -> 4, ReLU, 1x1 4 -> 16, sigmoid) and a spatial attention (3x3 16 -> 4, BatchNorm, ReLU,
  3x3 4 -> 1, BatchNorm, sigmoid; zero padding) each re-weight the block's output; their sum and a
  residual give the DARM's output. The encoder's DARM adds the stem's output and ends in ReLU; the
  decoder's DARM, which shares every weight with the encoder's, adds its own block output instead;
* TRM: two Swin-style blocks (LayerNorm, attention with a projection, LayerNorm, MLP 16 -> 64 -> 16
  with exact GELU, both residual) on 16-dimensional tokens;
* output: 1x1 convolution (16 -> 1) and tanh.

Where the code decides what the paper describes differently, we follow the code:

* Tokens. The authors' block reinterprets the contiguous ``(N, C, H, W)`` tensor as ``(N, H, W, C)``
  (a ``view``, not a permutation) and back, so a "token" is 16 consecutive values of the flat
  channel-major memory: 16 horizontally adjacent pixels of one channel, running on into the next row
  (or channel) where the width is not a multiple of 16. Reproduced here with ``reshape``.
* Attention. The windows are 1x1 (``window_size=1``, no shift), so each token attends only to itself:
  the softmax over a single key is exactly 1, and the attention is ``proj(v)``, with ``v`` the last
  third of the ``qkv`` projection. The query/key rows and the relative position bias are loaded
  (strict loading) but cannot change the result, so they are not computed.
* The ``patch_embed.norm`` LayerNorm (96 channels) is in the state dict but never applied.
* BatchNorm uses its running statistics (the official script calls ``eval()``); the raw output is
  tanh, on [-1, 1], and the official script casts ``out * 255`` to uint8 without clipping, so
  negative values wrap (the spec's ``output_8bit: wrap``).

10,760 parameters, of which 1,296 cannot affect the output (the unused ``patch_embed.norm``, 192;
the query/key rows of both ``qkv`` projections, 1,088; the position biases, 16); 10,840 state-dict
values.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from . import NETWORKS


class _ConvBN(nn.Module):
    """A ``kernel`` x ``kernel`` convolution on a replicate-padded input, then BatchNorm."""

    def __init__(self, c_in: int, c_out: int, kernel: int):
        super().__init__()
        self.pad = kernel // 2
        self.conv = nn.Conv2d(c_in, c_out, kernel)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(F.pad(x, (self.pad,) * 4, mode="replicate")))


class _Stem(_ConvBN):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(super().forward(x))


class _FeatureBlock(_ConvBN):
    """One convolution and BatchNorm applied twice, with ReLU in between."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.relu(super().forward(x)))


class _ChannelAttention(nn.Module):
    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = channels // reduction
        self.fc = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc(x.mean(dim=(2, 3), keepdim=True)))


class _SpatialAttention(nn.Module):
    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = channels // reduction
        self.body = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1), nn.BatchNorm2d(hidden), nn.ReLU(),
            nn.Conv2d(hidden, 1, 3, padding=1), nn.BatchNorm2d(1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class _SelfAttention(nn.Module):
    """The state of a windowed multi-head attention (``qkv``, ``proj``, a relative position bias for
    1x1 windows); with one token per window only the value projection reaches the output."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.dim = dim
        self.relative_position_bias_table = nn.Parameter(torch.zeros(1, heads))
        self.register_buffer("relative_position_index", torch.zeros(1, 1, dtype=torch.long))
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value = F.linear(x, self.qkv.weight[2 * self.dim:], self.qkv.bias[2 * self.dim:])
        return self.proj(value)  # softmax over a single key: weight exactly 1


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class _TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = _SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = _Mlp(dim, dim * mlp_ratio)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = tokens + self.attn(self.norm1(tokens))
        return tokens + self.mlp(self.norm2(tokens))


class _TransformerLayer(nn.Module):
    def __init__(self, dim: int, heads: int, depth: int, mlp_ratio: int):
        super().__init__()
        self.blocks = nn.ModuleList(_TransformerBlock(dim, heads, mlp_ratio) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        tokens = x.reshape(n, h * w, c)  # flat channel-major memory cut into runs of c values
        for block in self.blocks:
            tokens = block(tokens)
        return tokens.reshape(n, c, h, w)


class _PatchEmbed(nn.Module):
    """Holds the official file's ``patch_embed.norm``, which the forward pass never applies."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)


@NETWORKS.register("datfuse")
class DATFuse(nn.Module):
    """``forward(ir, vis)`` on grey tensors ``(N, 1, H, W)`` in [0, 1], any size; returns the tanh
    output in [-1, 1], same size (the official script casts ``out * 255`` to uint8 unclipped)."""

    def __init__(self, features: int = 16, heads: int = 8, depth: int = 2, mlp_ratio: int = 4,
                 embed_dim: int = 96):
        super().__init__()
        self.convolutional = _Stem(2, features, 5)
        self.fem = _FeatureBlock(features, features, 3)
        self.cam = _ChannelAttention(features)
        self.sam = _SpatialAttention(features)
        self.patch_embed = _PatchEmbed(embed_dim)
        self.basicLayer = _TransformerLayer(features, heads, depth, mlp_ratio)
        self.convolutional_out = nn.Module()
        self.convolutional_out.conv = nn.Conv2d(features, 1, 1)

    def border_radius(self) -> int:
        """The network is not local: the channel attention averages over the whole image, and a
        Transformer token gathers 16 pixels along a row (running into the next row where the width
        is not a multiple of 16), so the grouping depends on the image's width and each pixel's
        place in it. No halo makes tiles exact; this is a large one (the convolutions alone reach
        2 + 2 + 2 + 2 + 2 = 10 pixels, a token 15 more along a row)."""
        return 64

    def _attend(self, x: torch.Tensor) -> torch.Tensor:
        """The DARM's attention part: ``x`` re-weighted by channel and by spatial attention."""
        return x * self.cam(x) + x * self.sam(x)

    def forward(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        stem = self.convolutional(torch.cat([ir, vis], 1))
        block = self.fem(stem)
        encoded = F.relu(self._attend(block) + stem)
        block = self.fem(self.basicLayer(encoded))
        return torch.tanh(self.convolutional_out.conv(self._attend(block) + block))
