"""LUT-Fuse (Yi, Zhang, Xiang, Yan, Xu, Ma, "LUT-Fuse: Towards Extremely Fast Infrared and Visible
Image Fusion via Distillation to Learnable Look-Up Tables", ICCV 2025, arXiv:2509.00346): the
multi-modal look-up table (MM-LUT) of the paper's method section, as distilled from its MM-Net.

The fused luma of a pixel is read from a learned 4-D table of 16^4 entries, interpolated
quadrilinearly (linear along each axis in turn) at four coordinates, each an intensity on
0..255 divided by 16:

* the visible's BT.601 luma (the *low-order* encoding of the visible),
* the visible luma's Sobel gradient magnitude (zero-padded 3x3 kernels), min-max normalised over
  the whole image,
* a *context* value from a small convolutional generator that sees the visible RGB and the
  infrared together (the *high-level joint contextual* encoding): a 3x3 convolution 4 -> 16, three
  more 16 -> 16, each followed by LeakyReLU(0.2) and an affine InstanceNorm, a skip from the first
  block's output to the last one's, then a 3x3 convolution 16 -> 1 and a sigmoid,
* the infrared intensity.

The fused luma replaces the visible's Y and the visible's Cb/Cr are kept: the network returns RGB.
Where that colour leaves the RGB cube the official script clamps each channel, which moves the
luma; here the chroma is scaled toward grey just enough to fit and the (clamped) luma is kept, as
the project recolours every fused Y (``keep_luma=False``: the official unclamped RGB).

Where the paper leaves details open we follow the official code (zyb5/LUT-Fuse @ ab5878e2, whose
``ckpts/generator_context.pth`` loads here unchanged and whose ``ckpts/fine_tuned_lut.npy`` is the
``lut`` parameter): the upper neighbour of each axis is clamped to the table's last node, the axes
nest as visible luma (outermost), gradient, context, infrared (innermost), convolutions pad with
zeros, the generator's dropout is inactive at inference. 73,361 parameters: 7,825 in the
generator and 65,536 table entries.

Not local: the InstanceNorms and the gradient's normalisation use whole-image statistics.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from . import NETWORKS

#: BT.601 rows of the luma and of the chroma (centred on 0), with the official code's coefficients
_LUMA = (0.299, 0.587, 0.114)
_CB = (-0.168736, -0.331264, 0.5)
_CR = (0.5, -0.418688, -0.081312)
#: Pillow's integer luma for ``convert('L')``, in 16-bit fixed point (exact in float32 on 0..255)
_PIL_LUMA = (19595 / 65536, 38470 / 65536, 7471 / 65536)


def _stage(c_in: int, c_out: int) -> list[nn.Module]:
    """A zero-padded 3x3 convolution, LeakyReLU(0.2), an affine InstanceNorm (three entries)."""
    return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.LeakyReLU(0.2), nn.InstanceNorm2d(c_out, affine=True)]


def _rows(image: torch.Tensor, weights: tuple[float, float, float]) -> torch.Tensor:
    """``sum_k weights[k] * image[:, k]`` keeping the channel axis: ``(N, 1, H, W)``."""
    return image[:, 0:1] * weights[0] + image[:, 1:2] * weights[1] + image[:, 2:3] * weights[2]


def _sobel_magnitude(luma: torch.Tensor) -> torch.Tensor:
    """|gradient| of ``(N, 1, H, W)`` with 3x3 Sobel kernels over a zero border."""
    smooth = torch.tensor([1.0, 2.0, 1.0], dtype=luma.dtype, device=luma.device)
    step = torch.tensor([1.0, 0.0, -1.0], dtype=luma.dtype, device=luma.device)
    across = torch.outer(smooth, step).view(1, 1, 3, 3)      # differences along x
    down = torch.outer(step, smooth).view(1, 1, 3, 3)        # differences along y
    return torch.sqrt(F.conv2d(luma, across, padding=1) ** 2 + F.conv2d(luma, down, padding=1) ** 2)


def _fit_in_cube(luma: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """``luma + offset`` (``(N, 1, H, W)`` and ``(N, 3, H, W)``) brought into the RGB cube keeping the
    luma: the luma clamped to [0, 1], the chroma offset scaled toward grey just enough to fit (as
    :func:`contrafuse.io.ycbcr_to_rgb` recolours a fused Y)."""
    luma = luma.clamp(0.0, 1.0)
    tiny = 1e-12
    room = torch.where(offset > 0, (1.0 - luma) / offset.clamp_min(tiny),
                       torch.where(offset < 0, luma / (-offset).clamp_min(tiny), torch.ones_like(offset)))
    scale = room.amin(dim=1, keepdim=True).clamp(max=1.0)
    return luma + scale * offset


@NETWORKS.register("lutfuse")
class LUTFuse(nn.Module):
    """``forward(visible, infrared)``: the visible RGB ``(N, 3, H, W)`` and the infrared ``(N, 1, H, W)``
    (or ``(N, 3, H, W)``: reduced to whole-level luma with Pillow's ``convert('L')`` arithmetic, as
    the official script reads a colour infrared file), both on 0..255, any size; returns the fused
    RGB ``(N, 3, H, W)`` on [0, 1] (with ``keep_luma=False`` unclamped, as the official code does)."""

    def __init__(self, bins: int = 16, in_channels: int = 4, width: int = 16, keep_luma: bool = True):
        super().__init__()
        self.bins, self.keep_luma = bins, keep_luma
        # the context generator, named as in the official state dict (``input_layer.0.weight``, ...)
        self.input_layer = nn.Sequential(*_stage(in_channels, width))
        self.mid_layer = nn.Sequential(*(m for _ in range(3) for m in _stage(width, width)))
        # entry 0 is the official layout's dropout, inactive at inference
        self.output_layer = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(width, 1, 3, padding=1), nn.Sigmoid())
        #: the table, indexed [visible luma, visible gradient, context, infrared, output channel]
        self.lut = nn.Parameter(torch.zeros(bins, bins, bins, bins, 1))

    def context(self, sources: torch.Tensor) -> torch.Tensor:
        """The joint context map in (0, 1) from the visible RGB and the infrared stacked, on 0..255."""
        first = self.input_layer(sources)
        return self.output_layer(self.mid_layer(first) + first)

    def border_radius(self) -> int:
        """Not local: the four InstanceNorms and the gradient's min-max normalisation take statistics
        of the whole image, so no halo makes tiles exact (the spec never tiles). The convolutions
        alone reach 5 pixels, the Sobel kernels 1 more; this is a large value, a multiple of 16."""
        return 64

    def _interpolate(self, coords: list[torch.Tensor]) -> torch.Tensor:
        """Quadrilinear look-up at ``coords`` (four ``(N, H, W)`` tensors on [0, bins)), the first
        the outermost axis; each axis' lower node is the floor, the upper one clamped to the last."""
        last = self.bins - 1
        table = self.lut.reshape(-1)
        nodes = []
        for coord in coords:
            low = torch.floor(coord)
            weight = coord - low
            low = low.long().clamp(0, last)
            nodes.append((low, (low + 1).clamp(max=last), weight))
        strides = [self.bins ** (len(coords) - 1 - i) for i in range(len(coords))]

        def blend(axis: int, offset):
            if axis == len(nodes):
                return table[offset]
            low, high, weight = nodes[axis]
            below = blend(axis + 1, offset + low * strides[axis])
            above = blend(axis + 1, offset + high * strides[axis])
            return below * (1 - weight) + above * weight

        return blend(0, 0)

    def forward(self, visible: torch.Tensor, infrared: torch.Tensor) -> torch.Tensor:
        if infrared.shape[1] == 3:
            infrared = torch.floor(_rows(infrared, _PIL_LUMA) + 0.5)
        context = self.context(torch.cat([visible, infrared], 1))
        unit = visible / 255.0
        luma = _rows(unit, _LUMA)
        gradient = _sobel_magnitude(luma)
        low = gradient.amin(dim=(-2, -1), keepdim=True)
        high = gradient.amax(dim=(-2, -1), keepdim=True)
        gradient = (gradient - low) / (high - low + 1e-8)
        step = 255.0 / 16.0
        fused = self._interpolate([(luma * step)[:, 0], (gradient * step)[:, 0], (context * step)[:, 0],
                                   (infrared / 16.0)[:, 0]]).unsqueeze(1)
        cb, cr = _rows(unit, _CB), _rows(unit, _CR)          # the visible's chroma, centred on 0
        offset = torch.cat([cr * 1.402, -cb * 0.344136 - cr * 0.714136, cb * 1.772], 1)  # RGB minus luma
        if not self.keep_luma:
            return fused + offset
        return _fit_in_cube(fused, offset)

