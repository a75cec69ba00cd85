"""CLF-Net fusion network (Zhu et al., IEEE TIM 2022, Sec. III-A, Fig. 1).

Two encoders (infrared, visible) of four residual blocks each, no down-sampling anywhere; their
feature stacks are concatenated and a decoder of four residual blocks reconstructs the image, the
last block ending in tanh instead of LeakyReLU. A residual block's path is a 1x1 then a 3x3
convolution (each followed by BatchNorm, LeakyReLU between them); a 1x1 convolution maps the
identity where the channel count changes.

Choices where the paper's text and the authors' code (zzj-dyj/CLF-Net) differ, with ours:

* Padding: the text pads the 1x1 convolution by 1 and the 3x3 by 0; the code pads the 3x3 by 1
  and the 1x1 by 0. Both keep the size; ``padding="code"`` (default) follows the code, which does
  not feed a ring of zeros through the 1x1 convolution; ``padding="paper"`` follows the text.
* BatchNorm after both convolutions of the path, none on the identity; no conv biases (code).
* Channels (code): encoder 1 -> 16 -> 16 -> 32 -> 64; decoder 128 -> 64 -> 32 -> 16 -> 1.
  This gives 190,120 parameters; Table VII's 0.1906 M also counts 512 that the authors' code
  allocates and its forward pass never uses (docs/REPRODUCTION.md).
* The projection head of the PatchNCE loss (Sec. III-C) lives here as ``head`` so that it trains
  with the network; it is not used for fusion and not counted above.
"""

from __future__ import annotations

import torch
from torch import nn

from . import NETWORKS


class ResidualBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, *, project_identity: bool, last: bool = False,
                 padding: str = "code"):
        super().__init__()
        pad_1x1, pad_3x3 = (0, 1) if padding == "code" else (1, 0)
        self.conv1 = nn.Conv2d(c_in, c_in, 1, padding=pad_1x1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv2 = nn.Conv2d(c_in, c_out, 3, padding=pad_3x3, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.identity = nn.Conv2d(c_in, c_out, 1, bias=False) if project_identity else None
        self.act = nn.Tanh() if last else nn.LeakyReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(nn.functional.leaky_relu(self.bn1(self.conv1(x)))))
        return self.act(out + (self.identity(x) if self.identity is not None else x))


def encoder(width: int = 16, padding: str = "code") -> nn.Sequential:
    return nn.Sequential(
        ResidualBlock(1, width, project_identity=True, padding=padding),
        ResidualBlock(width, width, project_identity=False, padding=padding),
        ResidualBlock(width, 2 * width, project_identity=True, padding=padding),
        ResidualBlock(2 * width, 4 * width, project_identity=True, padding=padding),
    )


def decoder(width: int = 16, padding: str = "code") -> nn.Sequential:
    return nn.Sequential(
        ResidualBlock(8 * width, 4 * width, project_identity=True, padding=padding),
        ResidualBlock(4 * width, 2 * width, project_identity=True, padding=padding),
        ResidualBlock(2 * width, width, project_identity=True, padding=padding),
        ResidualBlock(width, 1, project_identity=True, last=True, padding=padding),
    )


class ProjectionHead(nn.Module):
    """Two-layer MLP: Linear -> 2048, BatchNorm, LeakyReLU, Linear -> 256 (Sec. IV-A3, as BYOL).
    Weights initialised N(0, 0.02) as in the authors' code."""

    def __init__(self, c_in: int = 64, hidden: int = 2048, c_out: int = 256):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(c_in, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU(),
                                 nn.Linear(hidden, c_out))
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                nn.init.normal_(layer.weight, 0.0, 0.02)
                nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


@NETWORKS.register("clfnet")
class CLFNet(nn.Module):
    """``forward(ir, vis)`` on grey tensors in [-1, 1] of any size; returns [-1, 1], same size."""

    training_only = ("head.",)  # the PatchNCE projection head

    def __init__(self, width: int = 16, padding: str = "code"):
        super().__init__()
        self.ir_encoder = encoder(width, padding)
        self.vis_encoder = encoder(width, padding)
        self.decoder = decoder(width, padding)
        self.head = ProjectionHead(4 * width)

    def fold_batchnorm(self) -> CLFNet:
        """Fold every BatchNorm into the convolution before it (inference only; same outputs to
        float rounding, about 20 % faster on CPU)."""
        from torch.nn.utils.fusion import fuse_conv_bn_eval

        self.eval()
        for block in [*self.ir_encoder, *self.vis_encoder, *self.decoder]:
            block.conv1, block.bn1 = fuse_conv_bn_eval(block.conv1, block.bn1), nn.Identity()
            block.conv2, block.bn2 = fuse_conv_bn_eval(block.conv2, block.bn2), nn.Identity()
        return self

    def border_radius(self) -> int:
        """How many pixels from the image border the convolutions' zero padding reaches into the
        output: the sum of the paddings along one encoder and the decoder (8 for both paddings)."""
        return sum(m.padding[0] for part in (self.ir_encoder, self.decoder) for m in part.modules()
                   if isinstance(m, nn.Conv2d))

    def encode(self, ir: torch.Tensor, vis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.ir_encoder(ir), self.vis_encoder(vis)

    def decode(self, f_ir: torch.Tensor, f_vis: torch.Tensor) -> torch.Tensor:
        return self.decoder(torch.cat([f_vis, f_ir], 1))

    def forward(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        return self.decode(*self.encode(ir, vis))
