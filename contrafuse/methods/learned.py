"""The learned methods (CoCoNet, CLF-Net) behind the common :class:`FusionMethod` interface.

Weights ship inside the package as safetensors (``contrafuse/weights/``, each with a model card);
``weights=`` points at another file, e.g. one exported from your own training run.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ContrafuseError
from ..weights import PACKAGE_WEIGHTS
from .base import FusionMethod, register_method


class TorchFusionMethod(FusionMethod):
    """Run a PyTorch fusion network on [-1, 1] grey tensors and return [0, 1] NumPy."""

    uses_torch = True
    weights_file = ""

    def __init__(self, weights: str | os.PathLike | None = None, device: str = "cpu"):
        import torch
        from safetensors.torch import load_file

        path = Path(weights) if weights else PACKAGE_WEIGHTS / self.weights_file
        if not path.is_file():
            raise ContrafuseError(path, f"no trained weights for {self.name!r} (train one with "
                                  f"'contrafuse train' and pass weights=...)")
        try:
            self.device = torch.device(device)
            model = self.build()
            state = load_file(str(path))
        except (RuntimeError, OSError) as exc:
            raise ContrafuseError(path, f"cannot load weights ({exc})") from None
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("vgg.")]
        if missing or unexpected:
            raise ContrafuseError(path, f"weights do not fit {self.name}: missing {missing[:3]}, unexpected {unexpected[:3]}")
        self.model = self.prepare(model.to(self.device).eval())

    def build(self):
        raise NotImplementedError

    def prepare(self, model):
        """Inference-only speed-ups after the weights are loaded (default: none)."""
        return model

    def fuse_grey(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        import torch

        def to_tensor(a):
            tensor = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32) * 2 - 1)[None, None]
            return tensor.to(self.device).contiguous(memory_format=torch.channels_last)

        with torch.inference_mode():
            out = self.model(to_tensor(first), to_tensor(second))
        return ((out[0, 0].float().cpu().numpy() + 1) / 2).clip(0, 1).astype(np.float32)


@register_method("coconet")
class CoCoNetMethod(TorchFusionMethod):
    description = "CoCoNet (Liu et al., IJCV 2023): coupled contrastive learning, multi-level attention; IR/visible"
    weights_file = "coconet_tno.safetensors"

    def build(self):
        from ..nn.coconet import CoCoNet
        return CoCoNet()


@register_method("coconet-medical")
class CoCoNetMedicalMethod(CoCoNetMethod):
    description = "CoCoNet medical variant (Sec. 3.4): --ir takes the colour PET/SPECT, --vis the MRI; colour result"
    weights_file = "coconet_medical.safetensors"


@register_method("clfnet")
class CLFNetMethod(TorchFusionMethod):
    description = "CLF-Net (Zhu et al., IEEE TIM 2022): residual encoders, adaptive PatchNCE + windowed SSIM; IR/visible"
    weights_file = "clfnet_tno.safetensors"

    def build(self):
        from ..nn.clfnet import CLFNet
        return CLFNet()

    def prepare(self, model):
        import torch
        # BatchNorm folding and channels-last memory roughly halve CPU time at 640x480
        return model.fold_batchnorm().to(memory_format=torch.channels_last)
