"""The learned methods (CoCoNet, CLF-Net) behind the common :class:`FusionMethod` interface.

Weights ship inside the package as safetensors (``contrafuse/weights/``, each with a model card);
``weights=`` points at another file, e.g. one exported from your own training run.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ContrafuseError
from ..weights import PACKAGE_WEIGHTS, load_trained_weights
from .base import FusionMethod, register_method


class TorchFusionMethod(FusionMethod):
    """Run a PyTorch fusion network on [-1, 1] grey tensors and return [0, 1] NumPy."""

    uses_torch = True
    weights_file = ""
    #: the network's input range: grey [0, 1] images are mapped linearly onto it
    input_range = (-1.0, 1.0)

    def __init__(self, weights: str | os.PathLike | None = None, device: str = "cpu"):
        import torch

        path = Path(weights) if weights else PACKAGE_WEIGHTS / self.weights_file
        if not path.is_file():
            raise ContrafuseError(path, f"no trained weights for {self.name!r} (train one with "
                                  f"'contrafuse train' and pass weights=...)")
        try:
            self.device = torch.device(device)
            model = self.build()
        except (RuntimeError, OSError) as exc:
            raise ContrafuseError(path, f"cannot build {self.name} ({exc})") from None
        load_trained_weights(model, path, f"weights for {self.name}")
        self.model = self.prepare(model.to(self.device).eval())

    def build(self):
        raise NotImplementedError

    def prepare(self, model):
        """Inference-only speed-ups after the weights are loaded (default: none)."""
        return model

    def fuse_grey(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        import torch

        low, high = self.input_range

        def to_tensor(a):
            tensor = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32) * (high - low) + low)[None, None]
            return tensor.to(self.device).contiguous(memory_format=torch.channels_last)

        with torch.inference_mode():
            out = self.model(to_tensor(first), to_tensor(second))
        return ((out[0, 0].float().cpu().numpy() + 1) / 2).clip(0, 1).astype(np.float32)


#: CoCoNet inference protocols (docs/REPRODUCTION.md, "How CoCoNet is evaluated").
COCONET_INFERENCE = {
    "authors": "as the authors' test script behind the paper's tables: 0-255 input, BatchNorm "
               "normalising with each image's own statistics",
    "standard": "the training input range [-1, 1], BatchNorm with its running statistics",
}


@register_method("coconet")
class CoCoNetMethod(TorchFusionMethod):
    """CoCoNet with a choice of inference protocol (:data:`COCONET_INFERENCE`).

    The authors' test script feeds 0-255 images to a network trained on [-1, 1] patches and never
    switches it to evaluation mode, so every BatchNorm layer normalises with the statistics of the
    image being fused. That protocol produced the paper's Table 1 and, for infrared-visible
    fusion, gives markedly sharper, higher-contrast results than the textbook ``standard``
    protocol, so it is the default there (measurements in docs/REPRODUCTION.md).
    """

    default_inference = "authors"

    description = "CoCoNet (Liu et al., IJCV 2023): coupled contrastive learning, multi-level attention; IR/visible"
    weights_file = "coconet_tno.safetensors"

    def __init__(self, weights: str | os.PathLike | None = None, device: str = "cpu", inference: str | None = None):
        inference = inference or self.default_inference
        if inference not in COCONET_INFERENCE:
            raise ContrafuseError(self.name, f"unknown inference protocol {inference!r} (choose from {', '.join(COCONET_INFERENCE)})")
        self.inference = inference
        if inference == "authors":
            self.input_range = (0.0, 255.0)
        super().__init__(weights, device)

    def build(self):
        from ..nn.coconet import CoCoNet
        return CoCoNet()

    def prepare(self, model):
        import torch
        if self.inference == "authors":
            for module in model.modules():
                if isinstance(module, torch.nn.BatchNorm2d):  # batch statistics, also in eval mode
                    module.track_running_stats = False
                    module.running_mean = module.running_var = None
        return model

    def fuse_grey(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        if self.inference == "authors" and max(first.shape) <= 8:
            raise ContrafuseError("input", f"a {first.shape[1]}x{first.shape[0]} image is too small for CoCoNet's per-image "
                                  "BatchNorm statistics (one side must exceed 8 pixels); use inference='standard'")
        return super().fuse_grey(first, second)


@register_method("coconet-medical")
class CoCoNetMedicalMethod(CoCoNetMethod):
    """The medical variant. Per-image BatchNorm statistics darken the functional hot spots and grey
    the black background of brain slices, so the ``standard`` protocol is the default here."""

    description = "CoCoNet medical variant (Sec. 3.4): --ir takes the colour PET/SPECT, --vis the MRI; colour result"
    weights_file = "coconet_medical.safetensors"
    default_inference = "standard"


@register_method("clfnet")
class CLFNetMethod(TorchFusionMethod):
    description = "CLF-Net (Zhu et al., IEEE TIM 2022): residual encoders, adaptive PatchNCE + windowed SSIM; IR/visible"
    weights_file = "clfnet_tno.safetensors"

    def build(self):
        from ..nn.clfnet import CLFNet
        return CLFNet()

    def prepare(self, model):
        import torch
        self.border = model.border_radius()
        # BatchNorm folding and channels-last memory roughly halve CPU time at 640x480
        return model.fold_batchnorm().to(memory_format=torch.channels_last)

    def fuse_grey(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Reflect-pad both inputs by the network's border radius and crop the result back. The
        network, run on the bare image, draws a bright or dark band along the top rows (zero
        padding, model card); padded this way every pixel sees image content, and pixels farther
        than the radius from the border are unchanged."""
        r = self.border
        mode = "reflect" if min(first.shape) > r else "edge"
        fused = super().fuse_grey(np.pad(first, r, mode=mode), np.pad(second, r, mode=mode))
        return fused[r:r + first.shape[0], r:r + first.shape[1]]
