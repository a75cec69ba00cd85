"""VGG-19 (Simonyan & Zisserman 2014) with the ImageNet weights, for grey [-1, 1] inputs.

The Keras/Caffe weights expect BGR in 0..255 with the per-channel mean subtracted. A grey image
``g`` in [-1, 1] stands for ``v = 127.5 (g + 1)`` in every channel, so the first convolution
``sum_c W_c * (v - mean_c) + b`` equals a one-channel convolution of ``g`` with kernel
``127.5 sum_c W_c`` and bias ``b + sum_c (127.5 - mean_c) sum(W_c)``. :func:`fold_grey_caffe`
does that fold; away from the border (where zero padding differs) the grey network computes
exactly what the original does on the replicated, preprocessed image.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


#: Caffe/Keras channel means, BGR order.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
#: The authors' grey conversion 0.299 R + 0.587 G + 0.114 B, BGR order.
LUMA_BGR = (0.114, 0.587, 0.299)

#: Layer plans. "M" is a 2x2 max-pool; a name in TAPS marks an output after its ReLU.
#: Loss plan: relu1_1 .. relu5_1 (CoCoNet Sec. 3.2.1).
LOSS_PLAN = ["conv1_1", "conv1_2", "M", "conv2_1", "conv2_2", "M", "conv3_1", "conv3_2", "conv3_3",
             "conv3_4", "M", "conv4_1", "conv4_2", "conv4_3", "conv4_4", "M", "conv5_1"]
LOSS_TAPS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
#: Backbone plan for the multi-level attention module: the authors' code puts a max-pool between
#: conv1_1 and conv1_2 so that the three outputs (64, 128, 256 channels) sit at 1/2, 1/4, 1/8.
BACKBONE_PLAN = ["conv1_1", "M", "conv1_2", "M", "conv2_1", "conv2_2", "M", "conv3_1", "conv3_2",
                 "conv3_3", "conv3_4"]
BACKBONE_TAPS = ("conv1_2", "conv2_2", "conv3_4")


def fold_grey_caffe(weight_bgr: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold grey replication and Caffe preprocessing into conv1_1 (see module docstring)."""
    mean = torch.tensor(CAFFE_MEAN_BGR, dtype=weight_bgr.dtype).view(1, 3, 1, 1)
    weight = 127.5 * weight_bgr.sum(dim=1, keepdim=True)
    folded_bias = bias + ((127.5 - mean) * weight_bgr).sum(dim=(1, 2, 3))
    return weight, folded_bias


def fold_grey_luminance(weight_bgr: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The authors' grey input (runjia0124/CoCoNet, models/model.py): conv1_1's colour kernels mixed
    with the luminance weights 0.299 R + 0.587 G + 0.114 B, bias unchanged, and the network's own
    values fed without any ImageNet preprocessing. With these weights VGG sees a [-1, 1] patch as a
    nearly flat image, so its features stay small beside the U-Net's."""
    luma_bgr = torch.tensor(LUMA_BGR, dtype=weight_bgr.dtype).view(1, 3, 1, 1)
    return (luma_bgr * weight_bgr).sum(dim=1, keepdim=True), bias.clone()


#: torchvision's ImageNet normalisation (RGB): its weights take ``(x / 255 - mean) / std``.
TORCHVISION_STD_RGB = (0.229, 0.224, 0.225)
#: Caffe input per unit of torchvision input, averaged over the channels: the factor by which the
#: Caffe network's features exceed those of an equivalent network trained on torchvision's scale.
TORCHVISION_TO_CAFFE = 255 * sum(TORCHVISION_STD_RGB) / 3


def fold_grey_torchvision(weight_bgr: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The authors' grey input on the scale their torchvision weights have (runjia0124/CoCoNet,
    models/model.py): torchvision's conv1_1 mixed with the luminance weights takes the network's own
    values as if they were normalised input. Torchvision's normalised channel ``t_c`` is Caffe's
    ``255 std_c t_c``, so the luminance-mixed input ``t_c = lum_c g`` is the Caffe kernel
    ``sum_c 255 std_c lum_c W_c``, bias unchanged: a [-1, 1] patch reaches VGG with about 0.16 of the
    contrast the ImageNet preprocessing (``caffe``) gives it, where ``luminance`` (these kernels
    applied to Caffe's weights) gives it 0.003 and leaves the features to the biases.
    :data:`FOLD_OUTPUT_SCALE` brings the features to torchvision's magnitude."""
    scale_bgr = torch.tensor([255 * s * l for s, l in zip(TORCHVISION_STD_RGB[::-1], LUMA_BGR)],
                             dtype=weight_bgr.dtype).view(1, 3, 1, 1)
    return (scale_bgr * weight_bgr).sum(dim=1, keepdim=True), bias.clone()


GREY_FOLDS = {"caffe": fold_grey_caffe, "luminance": fold_grey_luminance, "torchvision": fold_grey_torchvision}
#: Factor applied to every VGG output under a fold (1 unless listed).
FOLD_OUTPUT_SCALE = {"torchvision": 1 / TORCHVISION_TO_CAFFE}


def _channels(name: str) -> tuple[int, int]:
    block, index = int(name[4]), int(name[6])
    out = (64, 128, 256, 512, 512)[block - 1]
    if index > 1:
        return out, out
    return ((3, 64, 128, 256, 512)[block - 1], out)


class VGG19(nn.Module):
    """Frozen VGG-19 convolutions run along ``plan``, returning the ReLU outputs at ``taps``.

    ``grey=True`` (default): one-channel input in [-1, 1] folded into conv1_1 by ``fold``:
    ``"caffe"`` (the ImageNet preprocessing, :func:`fold_grey_caffe`) or ``"luminance"`` (the
    authors' code, :func:`fold_grey_luminance`). ``grey=False``: three-channel Caffe input (BGR,
    0..255, mean subtracted), as the weights were trained. Parameters never require gradients;
    gradients still flow to the input.
    """

    def __init__(self, plan=LOSS_PLAN, taps=LOSS_TAPS, *, grey: bool = True, state: dict | None = None,
                 fold: str = "caffe"):
        """``state``: the ImageNet tensors (:func:`contrafuse.weights.vgg19_state`) copied in by
        :meth:`load_imagenet`; without it the convolutions wait for a weights file to fill them
        (:func:`contrafuse.weights.load_trained_weights`), so building never downloads."""
        super().__init__()
        self.plan, self.taps, self.grey, self.fold = list(plan), tuple(taps), grey, fold
        self.convs = nn.ModuleDict()
        for name in self.plan:
            if name != "M":
                c_in, c_out = _channels(name)
                self.convs[name] = nn.Conv2d(1 if name == "conv1_1" and grey else c_in, c_out, 3, padding=1)
        # a buffer, so that exported weights record it; weights from before it load with 1
        self.register_buffer("output_scale", torch.tensor(FOLD_OUTPUT_SCALE.get(fold, 1.0) if grey else 1.0))
        if state is not None:
            self.load_imagenet(state)
        self.requires_grad_(False)
        self.eval()

    def imagenet_state(self, state: dict) -> dict:
        """This module's state dict made from the ImageNet tensors ``state`` (conv1_1 folded to one
        channel by ``fold`` when ``grey``)."""
        own = {"output_scale": self.output_scale}
        for name in self.convs:
            weight, bias = state[f"{name}.weight"], state[f"{name}.bias"]
            if name == "conv1_1" and self.grey:
                weight, bias = GREY_FOLDS[self.fold](weight, bias)
            own[f"convs.{name}.weight"], own[f"convs.{name}.bias"] = weight, bias
        return own

    def load_imagenet(self, state: dict, names=None) -> None:
        """Copy in the ImageNet weights (all, or only the state-dict entries ``names``)."""
        own = self.imagenet_state(state)
        self.load_state_dict({k: v for k, v in own.items() if names is None or k in names}, strict=names is None)

    def train(self, mode: bool = True):
        return super().train(False)  # no dropout/BN here, but stay in eval regardless

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.convs[self.plan[-1]].weight.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)  # follow the layout the weights were given
        outputs = []
        for name in self.plan:
            if name == "M":
                x = F.max_pool2d(x, 2)
                continue
            x = F.relu(self.convs[name](x))
            if name in self.taps:
                outputs.append(x)
        return [o * self.output_scale.to(o.dtype) for o in outputs]
