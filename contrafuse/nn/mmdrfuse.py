"""MMDRFuse student network (Deng, Xu, Cheng, Wu, Kittler, "MMDRFuse: Distilled Mini-Model with
Dynamic Refresh for Multi-Modality Image Fusion", ACM MM 2024, Sec. 3: the mini-model that the
digestible distillation and the dynamic refresh train; 113 parameters).

The two grey sources are stacked as two channels (infrared first); a 3x3 convolution maps them to
four feature maps, ReLU, and a second 3x3 convolution maps those to one, ending in tanh. Both
convolutions have a bias and see their input through 1-pixel *reflection* padding, so no zero
border ever touches the result. No normalisation, no down-sampling.

Layer names follow the official code (yanglinDeng/MMDRFuse @ c9e50144, ``student_net.py``): each
convolution is the second entry of a ``(padding, convolution)`` sequence, so the released
``pretrained_models/student.model`` loads unchanged (``conv1.1.*``, ``conv2.1.*``).

Protocol notes (official ``test_student.py``): PIL-style 8-bit grey inputs divided by 255, fed
as ``cat([ir, vis])``; the tanh output (in [-1, 1]) is saved with ``scipy.misc.imsave``, which
stretches each image's own minimum to 0 and maximum to 255 and rounds.
"""

from __future__ import annotations

import torch
from torch import nn

from . import NETWORKS


def _reflect_conv(c_in: int, c_out: int) -> nn.Sequential:
    """1-pixel reflection padding then an unpadded 3x3 convolution (the convolution is entry 1)."""
    return nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(c_in, c_out, 3))


@NETWORKS.register("mmdrfuse")
class MMDRFuseStudent(nn.Module):
    """``forward(ir, vis)`` on grey tensors (N, 1, H, W) in [0, 1] of any size (each side at least
    2 pixels, for the reflection padding); returns the tanh output in [-1, 1], same size."""

    def __init__(self, features: int = 4):
        super().__init__()
        self.conv1 = _reflect_conv(2, features)
        self.conv2 = _reflect_conv(features, 1)

    def border_radius(self) -> int:
        """The network's reach: one pixel per 3x3 layer, 2. The padding is reflection, so this is
        only the context a tile needs, not a zero border to keep away."""
        return sum(m.kernel_size[0] // 2 for m in self.modules() if isinstance(m, nn.Conv2d))

    def forward(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        features = torch.relu(self.conv1(torch.cat([ir, vis], 1)))
        return torch.tanh(self.conv2(features))
