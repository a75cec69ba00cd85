"""GIFNet fusion network (Cheng, Xu, Feng, Wu, Tang, Li, Zhang, Atito, Awais, Kittler, "One Model for
ALL: Low-Level Task Interaction Is a Key to Task-Agnostic Image Fusion", CVPR 2025, Sec. 3, Fig. 2:
the shared encoder S-Enc, the cross-fusion gating mechanism CFGM and the global decoder G-Dec).

Written from the architecture of the authors' ``GIFNet_model.py`` (AWCXV/GIFNet @ c8ad04ae, whose
``model/Final.model`` this module loads unchanged, strict), as their ``test.py`` runs it for
infrared-visible fusion. The two grey sources on [0, 1], infrared first, are stacked as two channels:

* S-Enc: three 3x3 convolutions with ReLU (2 -> 32, 34 -> 32, 66 -> 32), each on the concatenation
  of the input and every earlier output, reflection padding 1; the encoding is that concatenation,
  2 + 3 * 32 = 98 channels.
* CFGM: the encoding, reflect-padded (bottom, right) to a multiple of 4, enters two task branches
  (multi-modal, "ivif", and digital photography, "mfif"), each embedded by its own 3x3 convolution
  (reflect padding). Two DehazeFormer-style blocks follow, with one weight set per branch: a revised
  LayerNorm (mean and standard deviation of the whole feature map; from them 1x1 convolutions make
  a rescale and a rebias for the mixer's output), then 8x8 window attention (2 heads, relative
  position bias from an MLP on log-spaced offsets) plus a 5x5 depthwise convolution (reflect) of the
  values, summed, projected, rescaled, rebiased, added back; then a 1x1 MLP (98 -> 196 -> 98, ReLU),
  added back. The second block's windows start 4 pixels before the map (reflect padding, not a
  cyclic roll); windows reaching past the bottom/right edge are reflect-padded. After the first
  block the mfif features gain ``weights_mfif.0`` times the ivif features. The script runs the mfif
  path (``trainingTag=2``), where the first block's ivif attention uses the *mfif* queries with its
  own keys and values, and the second block's ivif output is never used (not computed here). A 3x3
  convolution (reflect) maps the mfif features out; the padding is cropped.
* G-Dec: the encoding and the CFGM output (196 channels) through two bias-free 1x1 convolutions
  (-> 98, ReLU, -> 128), then four 3x3 convolutions with reflection padding (128 -> 64 -> 32 -> 16
  -> 1, ReLU, the last tanh); the output is ``tanh / 2 + 1/2``, on [0, 1].

The reconstruction decoder ``decoder_rec`` (REC branch, training only), the ``weights`` of the ivif
path and the second block's ivif weights are loaded but cannot change the output.

Memory: the CFGM blocks run in bands of rows (whole windows, with two rows of context for the 5x5
convolution) after the norms' whole-map statistics, so only the branches' inputs and outputs are
held whole (about 2.5 kB per pixel in all at 768 x 576, instead of about 9); the arithmetic per
pixel is the same. Under ``torch.export`` (symbolic sizes) the whole map is one band. Reflect
padding beyond a side's length (sides under 5 pixels, which the authors' code refuses) continues
the reflection periodically. 822,780 parameters; the state dict also holds two 64 x 64 x 2 relative-position tables
(839,164 values in all).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from . import NETWORKS

WIDTH = 98      # 2 inputs + 3 x 32 encoder maps
WINDOW = 8
HEADS = 2
BAND = 16       # rows of windows per band in eager runs (a multiple of WINDOW)


def _static(*sizes) -> bool:
    """Plain integers (an eager run), not the symbolic sizes of an export."""
    return all(isinstance(s, int) for s in sizes)


def _reflect_indices(n, start, stop, device) -> torch.Tensor:
    """Indices ``start .. stop - 1`` reflected into ``0 .. n - 1`` (no edge repeat; n >= 2)."""
    period = torch.full((), 2 * (n - 1), dtype=torch.long, device=device)  # a tensor: exports to ONNX
    i = torch.arange(start, stop, device=device).abs() % period
    return torch.where(i > n - 1, period - i, i)


def reflected(x: torch.Tensor, top, bottom, left, right) -> torch.Tensor:
    """Rows ``top .. bottom - 1`` and columns ``left .. right - 1`` of ``x`` (its last two
    dimensions, in its coordinates), places outside ``x`` reflected as reflect padding reflects
    them: a slice and ``F.pad`` where that can, else gathered indices."""
    height, width = x.shape[-2:]
    if _static(height, width, top, bottom, left, right):
        r0, r1, c0, c1 = max(top, 0), min(bottom, height), max(left, 0), min(right, width)
        pads = (c0 - left, right - c1, r0 - top, bottom - r1)
        if max(pads[:2]) < c1 - c0 and max(pads[2:]) < r1 - r0:
            piece = x[:, :, r0:r1, c0:c1]
            return F.pad(piece, pads, mode="reflect") if any(pads) else piece
    rows = _reflect_indices(height, top, bottom, x.device)
    return x.index_select(-2, rows).index_select(-1, _reflect_indices(width, left, right, x.device))


class _ConvLayer(nn.Module):
    """Reflection padding 1, a 3x3 convolution, ReLU (state-dict key ``conv2d``)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv2d = nn.Conv2d(c_in, c_out, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect")))


class SharedEncoder(nn.Module):
    """S-Enc: densely connected 3x3 layers; returns the input and all three outputs stacked."""

    def __init__(self, channels: int = 2, growth: int = 32):
        super().__init__()
        self.conv_1 = _ConvLayer(channels, growth)
        self.conv_2 = _ConvLayer(channels + growth, growth)
        self.conv_3 = _ConvLayer(channels + 2 * growth, growth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in (self.conv_1, self.conv_2, self.conv_3):
            x = torch.cat([x, conv(x)], 1)
        return x


def _decoder(c_in: int, widths: tuple[int, ...]) -> nn.Sequential:
    """[reflection pad 1, 3x3 convolution, ReLU] per width, the last with tanh (the convolutions
    at indices 1, 4, 7, 10, as in the authors' Sequential)."""
    layers: list[nn.Module] = []
    for i, c_out in enumerate(widths):
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(c_in, c_out, 3),
                   nn.Tanh() if i == len(widths) - 1 else nn.ReLU()]
        c_in = c_out
    return nn.Sequential(*layers)


class ReconstructionDecoder(nn.Module):
    """The REC branch's decoder (training only; kept for the state dict)."""

    def __init__(self, c_in: int = WIDTH, width: int = 64):
        super().__init__()
        self.decoder = _decoder(c_in, (width, width // 2, width // 4, 1))

    def forward(self, encoding: torch.Tensor) -> torch.Tensor:
        return self.decoder(encoding)


class RevisedLayerNorm(nn.Module):
    """Normalised by the mean and standard deviation of the whole (C, H, W) map, then an affine map;
    1x1 convolutions make a rescale from the deviation and a rebias from the mean."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1, dim, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, dim, 1, 1))
        self.meta1 = nn.Conv2d(1, dim, 1)
        self.meta2 = nn.Conv2d(1, dim, 1)

    def statistics(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return mean, torch.sqrt((x - mean).pow(2).mean(dim=(1, 2, 3), keepdim=True) + self.eps)

    def normalise(self, x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        """Any part of the map, with the whole map's :meth:`statistics`."""
        return (x - mean) / std * self.weight + self.bias

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mean, std = self.statistics(x)
        return self.normalise(x, mean, std), self.meta1(std), self.meta2(mean)


def _relative_offsets(window: int) -> torch.Tensor:
    """(window^2, window^2, 2): the (row, column) offset between every two places of a window,
    as sign(d) * log(1 + |d|)."""
    rows, cols = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    places = torch.stack([rows.flatten(), cols.flatten()])                 # 2, window^2
    offsets = (places[:, :, None] - places[:, None, :]).permute(1, 2, 0).float()
    return torch.sign(offsets) * torch.log(1.0 + offsets.abs())


class PositionBias(nn.Module):
    """A window's relative position bias per head, from an MLP on the log-spaced offsets
    (state-dict keys ``relative_positions``, ``meta``)."""

    def __init__(self, heads: int = HEADS, window: int = WINDOW):
        super().__init__()
        self.register_buffer("relative_positions", _relative_offsets(window))
        self.meta = nn.Sequential(nn.Linear(2, 256), nn.ReLU(), nn.Linear(256, heads))

    def forward(self) -> torch.Tensor:
        return self.meta(self.relative_positions).permute(2, 0, 1)       # heads, N, N


class WindowMixer(nn.Module):
    """One block's token-mixer weights for both branches (suffix ``_mfif``: the photography
    branch's): values ``V``, queries and keys ``QK`` (1x1), the 5x5 depthwise ``conv`` of the
    values, the projection ``proj``, and the position bias ``attn``."""

    def __init__(self, dim: int = WIDTH, heads: int = HEADS, window: int = WINDOW, shift: int = 0):
        super().__init__()
        self.dim, self.heads, self.window, self.shift = dim, heads, window, shift
        for suffix in ("", "_mfif"):
            setattr(self, "conv" + suffix, nn.Conv2d(dim, dim, 5, padding=2, groups=dim, padding_mode="reflect"))
            setattr(self, "V" + suffix, nn.Conv2d(dim, dim, 1))
            setattr(self, "proj" + suffix, nn.Conv2d(dim, dim, 1))
            setattr(self, "QK" + suffix, nn.Conv2d(dim, 2 * dim, 1))
        self.attn = PositionBias(heads, window)

    def frame(self, height, width) -> tuple:
        """Padding (top, bottom, left, right) that lays whole windows over a map, the first
        ``shift`` pixels before it."""
        w, s = self.window, self.shift
        return s, (w - s + (-height) % w) % w, s, (w - s + (-width) % w) % w

    def qkv(self, x: torch.Tensor, suffix: str) -> torch.Tensor:
        """Q, K and V stacked (3 dim channels), one 1x1 convolution."""
        qk, v = getattr(self, "QK" + suffix), getattr(self, "V" + suffix)
        return F.conv2d(x, torch.cat([qk.weight, v.weight]), torch.cat([qk.bias, v.bias]))

    def windows(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W), sides multiples of the window -> (B * windows, C / head_dim, window^2,
        head_dim): channel group g is channels [g head_dim, (g + 1) head_dim) (for stacked Q, K, V
        the heads of Q, then of K, then of V), a window's places in row-major order."""
        w, d = self.window, self.dim // self.heads
        b, c, height, width = x.shape
        x = x.reshape(b, c // d, d, height // w, w, width // w, w)
        return x.permute(0, 3, 5, 1, 4, 6, 2).reshape(-1, c // d, w * w, d)

    def merge(self, x: torch.Tensor, batch, height, width) -> torch.Tensor:
        """Inverse of :meth:`windows` for the attention's output (heads merged): (B, dim, H, W)."""
        w, d = self.window, self.dim // self.heads
        x = x.reshape(batch, height // w, width // w, self.heads, w, w, d)
        return x.permute(0, 3, 6, 1, 4, 2, 5).reshape(batch, self.dim, height, width)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        q = q * (self.dim // self.heads) ** -0.5
        return torch.softmax(q @ k.transpose(-2, -1) + bias, dim=-1) @ v

    def local(self, v: torch.Tensor, suffix: str) -> torch.Tensor:
        """The depthwise convolution on values that already carry 2 rows and columns of context."""
        conv = getattr(self, "conv" + suffix)
        return F.conv2d(v, conv.weight, conv.bias, groups=self.dim)


class _PointMLP(nn.Module):
    """1x1 convolution, ReLU, 1x1 convolution (state-dict key ``mlp``)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Conv2d(dim, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


class CFGMBlock(nn.Module):
    """Per branch: revised LayerNorm; window attention plus the depthwise convolution of the values,
    projected, rescaled and rebiased by the norm, added back; point-wise MLP, added back."""

    def __init__(self, dim: int = WIDTH, shift: int = 0, mlp_ratio: float = 2.0):
        super().__init__()
        self.norm1 = RevisedLayerNorm(dim)
        self.norm1_mfif = RevisedLayerNorm(dim)
        self.attn = WindowMixer(dim, shift=shift)
        self.mlp = _PointMLP(dim, int(dim * mlp_ratio))
        self.mlp_mfif = _PointMLP(dim, int(dim * mlp_ratio))

    def forward(self, x_ivif: torch.Tensor | None, x_mfif: torch.Tensor):
        """Both branches' outputs (the official ``trainingTag=2`` path), or with ``x_ivif=None``
        only the photography branch's (the other returned as None). Unshifted windows: the ivif
        attention takes the photography branch's queries; shifted: its own."""
        mixer = self.attn
        branches = {"_mfif": x_mfif} if x_ivif is None else {"_mfif": x_mfif, "": x_ivif}
        norms = {"_mfif": self.norm1_mfif, "": self.norm1}
        mlps = {"_mfif": self.mlp_mfif, "": self.mlp}
        stats = {s: norms[s].statistics(x) for s, x in branches.items()}
        gains = {s: (norms[s].meta1(std), norms[s].meta2(mean)) for s, (mean, std) in stats.items()}
        bias = mixer.attn()
        batch, _, height, width = x_mfif.shape
        top, bottom, left, right = mixer.frame(height, width)
        rows = top + height + bottom
        static = _static(height, width)
        outs = {s: torch.empty_like(x) for s, x in branches.items()} if static else {}
        for p0 in range(0, rows, BAND) if static else (0,):
            p1 = min(p0 + BAND, rows) if static else rows
            o0, o1 = (max(p0 - top, 0), min(p1 - top, height)) if static else (0, height)
            qkv = {}
            for s, x in branches.items():
                band = norms[s].normalise(reflected(x, p0 - top, p1 - top, -left, width + right), *stats[s])
                qkv[s] = mixer.windows(mixer.qkv(band, s)).split(self.attn.heads, dim=1)   # q, k, v
            for s, x in branches.items():
                q = qkv["_mfif"][0] if s == "" and mixer.shift == 0 else qkv[s][0]
                attended = mixer.merge(mixer.attend(q, qkv[s][1], qkv[s][2], bias), batch, p1 - p0,
                                       left + width + right)
                attended = attended[:, :, o0 - p0 + top:o1 - p0 + top, left:left + width]
                context = norms[s].normalise(reflected(x, o0 - 2, o1 + 2, -2, width + 2), *stats[s])
                local = mixer.local(getattr(mixer, "V" + s)(context), s)
                scale, shift = gains[s]
                mixed = getattr(mixer, "proj" + s)(local + attended)
                y = x[:, :, o0:o1] + (mixed * scale + shift)
                y = y + mlps[s](y)
                if static:
                    outs[s][:, :, o0:o1] = y
                else:
                    outs[s] = y
        return outs.get(""), outs["_mfif"]


class CFGMLayer(nn.Module):
    """The blocks (windows alternately unshifted and shifted by half a window); after every
    even-numbered block the photography branch gains ``weights_mfif[i]`` times the ivif branch."""

    def __init__(self, dim: int = WIDTH, depth: int = 2):
        super().__init__()
        self.blocks = nn.ModuleList(CFGMBlock(dim, shift=0 if i % 2 == 0 else WINDOW // 2) for i in range(depth))
        self.weights = nn.ParameterList(nn.Parameter(torch.full((1,), 0.5)) for _ in range(depth))  # ivif path's
        self.weights_mfif = nn.ParameterList(nn.Parameter(torch.full((1,), 0.5)) for _ in range(depth))

    def forward(self, x_ivif: torch.Tensor, x_mfif: torch.Tensor) -> torch.Tensor:
        """The photography branch's output (:class:`CFGM` runs the same loop itself)."""
        last_mix = (len(self.blocks) - 1) // 2 * 2  # the ivif branch matters up to the last mixing
        for i, block in enumerate(self.blocks):
            x_ivif, x_mfif = block(x_ivif if i <= last_mix else None, x_mfif)
            if i % 2 == 0:
                x_mfif = x_mfif + self.weights_mfif[i] * x_ivif
        return x_mfif


class _Conv3Reflect(nn.Module):
    """A 3x3 convolution with reflect padding 1 (state-dict key ``proj``, or ``proj.0`` wrapped)."""

    def __init__(self, dim: int, wrapped: bool = False):
        super().__init__()
        conv = nn.Conv2d(dim, dim, 3, padding=1, padding_mode="reflect")
        self.proj = nn.Sequential(conv) if wrapped else conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class CFGM(nn.Module):
    """The cross-fusion gating mechanism on the encoding: padded to a multiple of 4, embedded per
    branch, the blocks, mapped out, cropped back."""

    def __init__(self, dim: int = WIDTH, depth: int = 2, multiple: int = 4):
        super().__init__()
        self.multiple = multiple
        self.patch_embed_ivif = _Conv3Reflect(dim)
        self.patch_embed_mfif = _Conv3Reflect(dim)
        self.layer1 = CFGMLayer(dim, depth)
        self.patch_unembed = _Conv3Reflect(dim, wrapped=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        m = self.multiple
        x = reflected(x, 0, height + (-height) % m, 0, width + (-width) % m)
        x_ivif, x_mfif = self.patch_embed_ivif(x), self.patch_embed_mfif(x)
        del x
        # the layer's loop, run here so that each block's inputs are released as it returns
        layer = self.layer1
        last_mix = (len(layer.blocks) - 1) // 2 * 2
        for i, block in enumerate(layer.blocks):
            x_ivif, x_mfif = block(x_ivif if i <= last_mix else None, x_mfif)
            if i % 2 == 0:
                x_mfif = x_mfif + layer.weights_mfif[i] * x_ivif
        del x_ivif
        return self.patch_unembed(x_mfif)[:, :, :height, :width]


class _CFGMHolder(nn.Module):
    """Holds the CFGM under its state-dict name."""

    def __init__(self, dim: int = WIDTH):
        super().__init__()
        self.SwinTransformerSpecific = CFGM(dim)


class GlobalDecoder(nn.Module):
    """G-Dec: the encoding and the CFGM features, 1x1 (bias-free) to ``dim`` and to ``2 * width``,
    then four reflect-padded 3x3 layers to one channel, tanh mapped onto [0, 1]."""

    def __init__(self, dim: int = WIDTH, width: int = 64):
        super().__init__()
        self.fuseComplementFeatures = nn.Module()
        self.fuseComplementFeatures.mlp = nn.Sequential(
            nn.Conv2d(2 * dim, dim, 1, bias=False), nn.ReLU(), nn.Conv2d(dim, 2 * width, 1, bias=False))
        self.decoder = _decoder(2 * width, (width, width // 2, width // 4, 1))

    def gate(self, encoding: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """The two 1x1 layers on the stacked inputs (point-wise: in bands of rows in eager runs, so
        that the 196-channel stack is never whole)."""
        gate = self.fuseComplementFeatures.mlp
        height = encoding.shape[-2]
        if not _static(height):
            return gate(torch.cat([encoding, features], 1))
        x = encoding.new_empty(encoding.shape[0], gate[-1].out_channels, *encoding.shape[-2:])
        for r0 in range(0, height, BAND):
            x[:, :, r0:r0 + BAND] = gate(torch.cat([encoding[:, :, r0:r0 + BAND], features[:, :, r0:r0 + BAND]], 1))
        return x

    def decode(self, gated: torch.Tensor) -> torch.Tensor:
        return self.decoder(gated) / 2 + 0.5

    def forward(self, encoding: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return self.decode(self.gate(encoding, features))


@NETWORKS.register("gifnet")
class GIFNet(nn.Module):
    """``forward(ir, vis)`` on grey tensors (N, 1, H, W) in [0, 1] (H, W >= 2); returns the fused
    image (N, 1, H, W) on [0, 1] (tanh / 2 + 1/2), as the script's ``forward_encoder``,
    ``forward_MultiTask_branch`` and ``forward_mixed_decoder`` compute it."""

    def __init__(self, channels: int = 1, growth: int = 32, width: int = 64):
        super().__init__()
        self.getSharedFeatures = SharedEncoder(2 * channels, growth)
        dim = 2 * channels + 3 * growth
        self.decoder_rec = ReconstructionDecoder(dim, width)
        self.extractor_multask = _CFGMHolder(dim)
        self.cnnDecoder = GlobalDecoder(dim, width)

    def border_radius(self) -> int:
        """Not local: every revised LayerNorm normalises with the whole feature map's mean and
        standard deviation, and the attention windows are laid from the image's top-left corner.
        The convolutions and windows alone reach 3 + 1 + 2 * (2 + 7) + 1 + 4 = 27 pixels; 64 is
        returned, so tiles come close to, but do not equal, the whole image."""
        return 64

    def forward(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        encoding = self.getSharedFeatures(torch.cat([ir, vis], 1))
        features = self.extractor_multask.SwinTransformerSpecific(encoding)
        gated = self.cnnDecoder.gate(encoding, features)
        del encoding, features  # (the decoder's 3x3 layers need only the gated map)
        return self.cnnDecoder.decode(gated)
