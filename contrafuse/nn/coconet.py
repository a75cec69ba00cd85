"""CoCoNet fusion network (Liu et al., IJCV 2023, Sec. 3.3, Figs. 3-4).

A U-Net on the stacked (infrared, visible) input, encoder levels of 32, 64, 128 and 256 channels;
a frozen VGG-19 applied separately to each source gives 64/128/256-channel features at 1/2, 1/4
and 1/8 resolution; at those three levels the multi-level attention module (MAM) applies channel
attention to the U-Net, infrared and visible features (Eq. 11), concatenates them and merges them
with a 3x3 convolution (Eq. 12). The decoder upsamples bilinearly, joins the merged features, and
ends in a 1x1 convolution and tanh; the 32-channel full-resolution level joins by a plain skip.

Details the paper leaves open follow the authors' code (runjia0124/CoCoNet) and are noted inline.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from . import NETWORKS, crop_to, pad_to_multiple
from .vgg import BACKBONE_PLAN, BACKBONE_TAPS, VGG19

# shape-dependent steps stay single calls in a torch.fx trace (tiled inference traces this network)
torch.fx.wrap("pad_to_multiple")
torch.fx.wrap("crop_to")


def conv_lrelu_bn(c_in: int, c_out: int, bn: bool = True) -> nn.Sequential:
    """3x3 convolution -> LeakyReLU(0.2) -> BatchNorm (the order of the authors' code)."""
    layers = [nn.Conv2d(c_in, c_out, 3, padding=1), nn.LeakyReLU(0.2)]
    if bn:
        layers.append(nn.BatchNorm2d(c_out))
    return nn.Sequential(*layers)


class SpatialGram(nn.Module):
    """``P Q^T`` of two ``(B, C, H, W)`` maps summed over all pixels: a ``(B, C, C)`` affinity.

    A module of its own because it is a statistic of the whole image: tiled inference
    (:mod:`contrafuse.methods.tiles`) accumulates it over the tiles and hands the total back here.
    """

    sums_over_pixels = True

    def forward(self, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        # float32 even under bfloat16 autocast: on 0-255 input the affinities reach ~1e6 and the
        # softmax of their differences would see bfloat16's rounding (~1e4) as signal
        with torch.autocast(p.device.type, enabled=False):
            return torch.bmm(p.float().flatten(2), q.float().flatten(2).transpose(1, 2))


class ChannelAttention(nn.Module):
    """Channel attention of Fig. 4.

    P, Q, H are 3x3 convolutions; the C x C affinity ``P Q^T`` goes through a softmax and weights
    the channels of H; a learnable scale, initialised to 0, multiplies the attended term, which is
    added back to H(f). As in the authors' code (after DANet), the softmax is taken of
    ``rowmax(affinity) - affinity``, which keeps it numerically tame for large feature maps.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.p = nn.Conv2d(channels, channels, 3, padding=1)
        self.q = nn.Conv2d(channels, channels, 3, padding=1)
        self.h = nn.Conv2d(channels, channels, 3, padding=1)
        self.scale = nn.Parameter(torch.zeros(1))
        self.gram = SpatialGram()

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        hf = self.h(f)
        affinity = self.gram(self.p(f), self.q(f))
        affinity = affinity.amax(dim=-1, keepdim=True) - affinity
        attention = torch.softmax(affinity, dim=-1)
        # the attention mixes each pixel's channels (a batched matrix product, written per pixel)
        return self.scale * torch.einsum("bij,bjhw->bihw", attention, hf) + hf


class MultiLevelAttention(nn.Module):
    """One MAM level: shared channel attention on U-Net, IR and visible features, concat, 3x3 conv.

    The authors' code applies one channel-attention module per level to all three inputs.

    Ablations (CoCoNet Sec. 4.3, Fig. 11, Tables 2-3): ``attention=False`` drops the channel
    attention (the features pass unchanged); ``backbone=False`` drops the VGG-19 features, leaving
    the U-Net features alone, so there is nothing to concatenate and no merging convolution: the
    level is the skip connection, with channel attention (Fig. 11b) or without it (Fig. 11a).
    """

    def __init__(self, channels: int, attention: bool = True, backbone: bool = True):
        super().__init__()
        self.attention = ChannelAttention(channels) if attention else nn.Identity()
        self.merge = nn.Conv2d(3 * channels, channels, 3, padding=1) if backbone else None

    def forward(self, unet: torch.Tensor, ir: torch.Tensor | None = None,
                vis: torch.Tensor | None = None) -> torch.Tensor:
        if self.merge is None:
            return self.attention(unet)
        return self.merge(torch.cat([self.attention(unet), self.attention(ir), self.attention(vis)], 1))


#: The three MAM levels by the names of CoCoNet Table 3 (VGG-19 features of 64/128/256 channels).
VGG_LEVELS = ("low", "middle", "high")
_LEVEL_CHANNELS = {"low": 64, "middle": 128, "high": 256}


@NETWORKS.register("coconet")
class CoCoNet(nn.Module):
    """CoCoNet generator: ``forward(ir, vis)`` with grey tensors in [-1, 1], any size, returns [-1, 1]."""

    MULTIPLE = 8  # three 2x down-samplings

    def __init__(self, vgg_state: dict | None = None, vgg_fold: str = "caffe", channel_attention: bool = True,
                 vgg_levels=VGG_LEVELS):
        """``vgg_state``: the ImageNet VGG-19 tensors, for training; without them the frozen VGG-19
        is filled when a weights file is loaded. ``channel_attention`` and ``vgg_levels`` (a subset of :data:`VGG_LEVELS`) are the MAM
        ablations of Sec. 4.3 (Tables 2-3); the defaults are the full network. A network built with
        other values carries them in the buffer ``mam_switches`` (absent from the full network's
        weights), and :meth:`load_state_dict` rebuilds a default-built network to match such weights,
        so an ablation's weights file runs wherever the shipped one does."""
        super().__init__()
        self.vgg = VGG19(BACKBONE_PLAN, BACKBONE_TAPS, state=vgg_state, fold=vgg_fold)
        self.enc1 = nn.Sequential(conv_lrelu_bn(2, 32), conv_lrelu_bn(32, 32))
        self.enc2 = nn.Sequential(conv_lrelu_bn(32, 64), conv_lrelu_bn(64, 64))
        self.enc3 = nn.Sequential(conv_lrelu_bn(64, 128), conv_lrelu_bn(128, 128))
        self.enc4 = conv_lrelu_bn(128, 256)
        self._configure_mam(channel_attention, vgg_levels)
        self.bottom = conv_lrelu_bn(256, 256)
        self.reduce3 = nn.Conv2d(256, 128, 3, padding=1)
        self.dec3 = nn.Sequential(conv_lrelu_bn(256, 128), conv_lrelu_bn(128, 128))
        self.reduce2 = nn.Conv2d(128, 64, 3, padding=1)
        self.dec2 = nn.Sequential(conv_lrelu_bn(128, 64), conv_lrelu_bn(64, 64))
        self.reduce1 = nn.Conv2d(64, 32, 3, padding=1)
        self.dec1 = nn.Sequential(conv_lrelu_bn(64, 32), conv_lrelu_bn(32, 32, bn=False))
        self.out = nn.Conv2d(32, 1, 1)

    def _configure_mam(self, channel_attention: bool, vgg_levels) -> None:
        levels = tuple(vgg_levels)
        unknown = sorted(set(levels) - set(VGG_LEVELS))
        if unknown:
            raise ValueError(f"vgg_levels must name levels of {VGG_LEVELS}, not {unknown[0]!r}")
        self.channel_attention, self.vgg_levels = bool(channel_attention), tuple(v for v in VGG_LEVELS if v in levels)
        self.mam = nn.ModuleDict({str(_LEVEL_CHANNELS[name]): MultiLevelAttention(
            _LEVEL_CHANNELS[name], attention=self.channel_attention, backbone=name in self.vgg_levels)
            for name in VGG_LEVELS})
        switches = [self.channel_attention] + [name in self.vgg_levels for name in VGG_LEVELS]
        if all(switches):
            if "mam_switches" in self._buffers:
                del self._buffers["mam_switches"]
        else:
            self.register_buffer("mam_switches", torch.tensor(switches, dtype=torch.uint8))

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """As :meth:`torch.nn.Module.load_state_dict`, after rebuilding the MAM to the weights' own
        ablation switches (``mam_switches``; the full network when absent): the rebuilt levels are
        freshly initialised and then loaded."""
        marker = state_dict.get("mam_switches")
        wanted = [bool(v) for v in marker.tolist()] if marker is not None else [True] * 4
        if wanted != [self.channel_attention] + [name in self.vgg_levels for name in VGG_LEVELS]:
            device = self.out.weight.device
            self._configure_mam(wanted[0], [name for name, on in zip(VGG_LEVELS, wanted[1:]) if on])
            self.mam.to(device)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Everything but the frozen VGG-19, which loads from the cache, except its grey-folded
        conv1_1 and output scale: they record how grey input was folded (``vgg_fold``), so weights
        trained any way load into a default-built network."""
        return {k: v for k, v in self.state_dict().items()
                if not k.startswith("vgg.") or k.startswith("vgg.convs.conv1_1.") or k == "vgg.output_scale"}

    def forward(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        source = ir
        ir, vis = pad_to_multiple(ir, self.MULTIPLE), pad_to_multiple(vis, self.MULTIPLE)  # cropped back at the end
        e1 = self.enc1(torch.cat([ir, vis], 1))              # 32, 1/1
        e2 = self.enc2(F.max_pool2d(e1, 2))                  # 64, 1/2
        e3 = self.enc3(F.max_pool2d(e2, 2))                  # 128, 1/4
        e4 = self.enc4(F.max_pool2d(e3, 2))                  # 256, 1/8
        # after the encoder, so that a tiled pass collecting encoder statistics stops before it
        if self.vgg_levels:
            ir_feats, vis_feats = self.vgg(ir), self.vgg(vis)
        else:  # no level takes backbone features (ablation): VGG-19 is not run
            ir_feats = vis_feats = (None, None, None)

        x = self.bottom(self.mam["256"](e4, ir_feats[2], vis_feats[2]))
        x = self.reduce3(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
        x = self.dec3(torch.cat([x, self.mam["128"](e3, ir_feats[1], vis_feats[1])], 1))
        x = self.reduce2(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
        x = self.dec2(torch.cat([x, self.mam["64"](e2, ir_feats[0], vis_feats[0])], 1))
        x = self.reduce1(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
        x = self.dec1(torch.cat([x, e1], 1))
        return crop_to(torch.tanh(self.out(x)), source)
