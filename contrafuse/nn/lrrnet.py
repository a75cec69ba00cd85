"""LRRNet fusion network (Li, Xu, Wu, Lu & Kittler, "LRRNet: A Novel Representation Learning Guided
Fusion Network for Infrared and Visible Images", IEEE TPAMI 45(9) 2023, Sec. 3: the learnable
low-rank representation (LLRR) block unrolled from the LRR objective, and the fusion network built
on two of them).

Each source has its own LLRR encoder: a 3x3 convolution lifts the grey image to 2n = 256 maps,
which are soft-thresholded (per-channel thresholds ``lamj``) into the initial code Z. Four unrolled
ISTA-like iterations follow, each with its own pair of 3x3 convolutions D (2n -> 1) and D^T (1 -> 2n):

    Z <- soft(lamz * Z + D^T(x - D Z), lamj)

The first n maps of the final Z are the low-rank part L, the other n the salient (sparse) part S.
The decoder maps each of the four parts (L and S of each source) to one channel by a 3x3
convolution, concatenates the two low-rank channels and the two salient channels, reduces each pair
with a 3x3 convolution, and adds the two results: that sum is the fused image. No activation
other than the soft threshold, no normalisation, no down-sampling.

Where the authors' code (hli1221/imagefusion-LRRNet @ e489fc32, ``net_lista.py``, whose
``final_lrr_net_..._block_4.model`` this module loads unchanged) decides what the paper leaves
open, we follow the code:

* every convolution (bias included) is preceded by 1-pixel reflection padding;
* the soft threshold is ``sign(r) * max(|r| - lam, 0)`` literally, so a negative learned threshold
  (the released ``get_ls1.lamj`` has one) widens instead of shrinking; ``lamz`` is one scalar per
  encoder, and all four iterations share ``lamj`` and ``lamz``;
* fusion type ``cat`` (the released model), n = 128, four blocks: 49,204 parameters.

The raw output is unbounded (about 0..0.27 for inputs on [0, 1]); the official test script
min-max stretches it per image, without clipping, before the 8-bit cast (see the spec).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from . import NETWORKS


class ReflectConv(nn.Module):
    """Reflection padding by ``kernel // 2`` then a convolution (state-dict key ``conv2d``); no
    activation.

    Most of LRRNet's convolutions map one channel to 256 or 256 (128) to one, which oneDNN runs an
    order of magnitude below its speed on square layers. The same sums are computed instead as a 1x1
    convolution over the ``kernel**2`` shifted copies of a thin input ("gather"), or as a 1x1
    convolution to ``kernel**2`` thin maps that are reflection-padded and summed shifted ("scatter":
    padding commutes with a per-pixel channel mix, so this equals padding the wide input first).
    1x1 convolutions as matrix products. Same result up to float rounding order, 4-10x faster on
    a CPU, and plain ops for an ONNX export.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int = 3):
        super().__init__()
        self.pad = kernel // 2
        self.conv2d = nn.Conv2d(c_in, c_out, kernel)
        taps = kernel * kernel
        self.mode = "gather" if c_in * taps < c_out else "scatter" if c_out * taps < c_in else "direct"

    def _padded(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (self.pad,) * 4, mode="reflect") if self.pad else x

    def _shifted(self, padded: torch.Tensor, height: int, width: int) -> list[torch.Tensor]:
        """The ``kernel**2`` crops of ``padded`` of the output's size, in the weight's (row, column) order."""
        k = self.conv2d.kernel_size[0]
        return [padded[:, :, i:i + height, j:j + width] for i in range(k) for j in range(k)]

    @staticmethod
    def _mix(weight: torch.Tensor, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """A 1x1 convolution without bias, as a matrix product: (C_out, C_in) on (N, C_in, H, W),
        written into ``out`` (contiguous, of the result's shape) if given."""
        n, c_in, height, width = x.shape
        weight, x = weight.expand(n, -1, -1), x.reshape(n, c_in, -1)
        if out is not None:   # in out's dtype (autocast leaves out= calls alone)
            weight, x = weight.to(out.dtype), x.to(out.dtype)
            return torch.bmm(weight, x, out=out.view(n, weight.shape[1], -1)).view(out.shape)
        return torch.bmm(weight, x).view(n, -1, height, width)

    def forward(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """``out``: a spare tensor of the result's shape to write into (without autograd, "gather" only)."""
        weight, bias = self.conv2d.weight, self.conv2d.bias
        c_out, c_in, k, _ = weight.shape
        height, width = x.shape[-2:]
        if self.mode == "gather":     # (c_out, c_in, k, k) -> (c_out, taps * c_in), tap-major
            stacked = torch.cat(self._shifted(self._padded(x), height, width), 1)
            weight = weight.permute(0, 2, 3, 1).reshape(c_out, k * k * c_in)
            if _in_place():
                return self._mix(weight, stacked, out).add_(bias.view(1, -1, 1, 1))
            return self._mix(weight, stacked) + bias.view(1, -1, 1, 1)
        if self.mode == "scatter":    # (c_out, c_in, k, k) -> (taps * c_out, c_in), tap-major
            per_tap = self._mix(weight.permute(2, 3, 0, 1).reshape(k * k * c_out, c_in), x)
            crops = self._shifted(self._padded(per_tap), height, width)
            out = crops[0][:, :c_out] + bias.view(1, -1, 1, 1)
            for t, crop in enumerate(crops[1:], 1):
                out = out + crop[:, t * c_out:(t + 1) * c_out]
            return out
        return self.conv2d(self._padded(x))


def _in_place() -> bool:
    """Eager inference (no autograd) runs each encoder in two 256-channel buffers, updated in place:
    on a CPU a fresh map of that size costs more (page faults) than the arithmetic on it. Training,
    ``torch.compile`` and ONNX export see plain out-of-place operations (same values)."""
    return not torch.is_grad_enabled() and not torch.compiler.is_compiling()


def soft_threshold(r: torch.Tensor, lam: torch.Tensor, scratch: torch.Tensor | None = None) -> torch.Tensor:
    """``sign(r) * max(|r| - lam, 0)`` with one threshold per channel (``lam`` of shape (1, C)).
    In place (see :func:`_in_place`) ``r`` is overwritten with the result and ``scratch`` (a spare
    tensor of ``r``'s shape, if any) holds the intermediate."""
    lam = lam.view(1, -1, 1, 1)
    if _in_place():
        shrunk = r.abs() if scratch is None else torch.abs(r, out=scratch)
        shrunk.sub_(lam).relu_()
        return r.sign_().mul_(shrunk)
    return torch.sign(r) * F.relu(r.abs() - lam)


class LLRRIteration(nn.Module):
    """One unrolled iteration: the residual of the image against the code's reconstruction
    (``conv_Wdz``: code -> image) is mapped back onto the code (``conv_Wdtz``), added to the scaled
    code and soft-thresholded."""

    def __init__(self, code: int, channels: int, kernel: int = 3):
        super().__init__()
        self.conv_Wdz = ReflectConv(code, channels, kernel)
        self.conv_Wdtz = ReflectConv(channels, code, kernel)

    def forward(self, x: torch.Tensor, z: torch.Tensor, lam: torch.Tensor, scale: torch.Tensor,
                spare: torch.Tensor | None = None) -> torch.Tensor:
        """The next code. In place (see :func:`_in_place`) it overwrites ``z``, and ``spare`` (a
        tensor of ``z``'s shape) holds the update and then the threshold's intermediate."""
        update = self.conv_Wdtz(x - self.conv_Wdz(z), out=spare)
        if _in_place():   # (scale * z) + update, rounded as the official code does
            return soft_threshold(z.mul_(scale).add_(update), lam, scratch=update)
        return soft_threshold(scale * z + update, lam)


class LLRREncoder(nn.Module):
    """An image -> its low-rank and salient codes, ``n`` maps each."""

    def __init__(self, n: int = 128, channels: int = 1, blocks: int = 4, kernel: int = 3):
        super().__init__()
        self.n, self.blocks = n, blocks
        self.conv_W00 = ReflectConv(channels, 2 * n, kernel)
        self.lamj = nn.Parameter(torch.rand(1, 2 * n))   # per-channel thresholds
        self.lamz = nn.Parameter(torch.rand(1, 1))       # the code's weight in each update
        for i in range(blocks):
            self.add_module(f"lrrblock{i}", LLRRIteration(2 * n, channels, kernel))

    def iterations(self) -> list[LLRRIteration]:
        return [getattr(self, f"lrrblock{i}") for i in range(self.blocks)]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.conv_W00(x)
        spare = torch.empty_like(z) if _in_place() else None
        z = soft_threshold(z, self.lamj, spare)
        for iteration in self.iterations():
            z = iteration(x, z, self.lamj, self.lamz, spare)
        return z[:, :self.n], z[:, self.n:]


class LRRDecoder(nn.Module):
    """Four codes -> one image each; low-rank pair and salient pair merged ("cat": concatenated,
    "add": summed) by one convolution each; the two merged maps added."""

    def __init__(self, n: int = 128, channels: int = 1, fusion: str = "cat", kernel: int = 3):
        super().__init__()
        self.concatenate = "cat" in fusion
        self.conv_ReZx, self.conv_ReUx, self.conv_ReZy, self.conv_ReUy = (
            ReflectConv(n, channels, kernel) for _ in range(4))
        merged = 2 * channels if self.concatenate else channels
        self.conv_ReL = ReflectConv(merged, channels, kernel)
        self.conv_ReH = ReflectConv(merged, channels, kernel)

    def merge(self, conv: ReflectConv, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return conv(torch.cat([a, b], 1) if self.concatenate else a + b)

    def forward(self, low_x, sparse_x, low_y, sparse_y) -> torch.Tensor:
        low = self.merge(self.conv_ReL, self.conv_ReZx(low_x), self.conv_ReZy(low_y))
        high = self.merge(self.conv_ReH, self.conv_ReUx(sparse_x), self.conv_ReUy(sparse_y))
        return low + high


@NETWORKS.register("lrrnet")
class LRRNet(nn.Module):
    """``forward(ir, vis)`` on grey tensors ``(N, 1, H, W)`` (H, W >= 2), each min-max stretched to
    [0, 1] as the official script feeds them; returns the raw fused image, same size, unbounded."""

    def __init__(self, n: int = 128, channels: int = 1, blocks: int = 4, fusion: str = "cat", kernel: int = 3):
        super().__init__()
        self.get_ls1 = LLRREncoder(n, channels, blocks, kernel)   # infrared
        self.get_ls2 = LLRREncoder(n, channels, blocks, kernel)   # visible
        self.decoder = LRRDecoder(n, channels, fusion, kernel)

    def border_radius(self) -> int:
        """How far (pixels) the receptive field reaches from a pixel: the longest path is the first
        convolution, two convolutions per iteration, and two in the decoder: 1 + 2 * 4 + 2 = 11."""
        encoder = self.get_ls1
        path = [encoder.conv_W00, *(c for it in encoder.iterations() for c in (it.conv_Wdz, it.conv_Wdtz)),
                self.decoder.conv_ReZx, self.decoder.conv_ReL]
        return sum(conv.pad for conv in path)

    def forward(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        return self.decoder(*self.get_ls1(ir), *self.get_ls2(vis))
