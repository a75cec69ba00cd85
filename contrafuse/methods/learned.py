"""The learned methods (CoCoNet, CLF-Net) behind the common :class:`FusionMethod` interface.

Weights ship inside the package as safetensors (``contrafuse/weights/``, each with a model card);
``weights=`` points at another file, e.g. one exported from your own training run.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ContrafuseError
from ..nn import to_unit
from ..weights import PACKAGE_WEIGHTS, load_trained_weights
from .base import FusionMethod, MethodOption, register_method


class TorchFusionMethod(FusionMethod):
    """Run a PyTorch fusion network on [-1, 1] grey tensors and return [0, 1] NumPy."""

    uses_torch = True
    weights_file = ""
    #: the network's input range: grey [0, 1] images are mapped linearly onto it
    input_range = (-1.0, 1.0)
    #: pixels of reflected image added around the inputs and cropped from the result, so that no
    #: convolution's zero padding reaches the output (0: run on the bare image)
    border = 0
    #: the network needs sides that are a multiple of this (inputs are reflect-padded to it)
    multiple = 1
    #: tiled inference: how far (pixels) the network's convolutions reach, and its working memory
    #: per pixel of a tile (measured: benchmarks/results/large_image.json)
    halo = 0
    bytes_per_pixel = 1000.0
    #: whether some layer looks at the whole image (tiled inference then needs the torch backend)
    needs_whole_image_statistics = False
    #: the network's name in :data:`contrafuse.nn.NETWORKS`
    network = ""
    #: inference backends
    backends = ("torch", "onnxruntime")

    #: inference protocols ``{name: description}`` and the default one (none: a single protocol)
    inference_protocols: dict[str, str] = {}  # noqa: RUF012 - replaced, never mutated, by subclasses
    default_inference: str | None = None

    def __init__(self, weights: str | os.PathLike | None = None, device: str = "cpu", inference: str | None = None,
                 tile: int | None = None, precision: str = "auto", backend: str = "torch", compile: bool = False):
        """``tile``: side of the tiles' cores in pixels for tiled inference (rounded up to the
        network's multiple); ``0`` never tiles; ``None`` tiles only images whose whole-image run
        would exceed the memory budget (``CONTRAFUSE_TILE_MEMORY``, default 1.2 GB). ``precision``:
        ``auto`` (default: bf16 autocast where the CPU/GPU runs bfloat16 natively, else fp32),
        ``bf16`` or ``fp32``; bf16 changed no metric on the TNO test split by more than 0.5 %
        (benchmarks/results/inference_speed.json).
        ``backend``: ``torch``, or ``onnxruntime`` (CPU, float32; the network exported once into
        the cache, see :mod:`contrafuse.methods.onnx`; no PyTorch import once it is there).
        ``compile``: run whole images through ``torch.compile`` (tens of seconds to compile per image
        size, then faster: benchmarks/results/compile_speed.json); tiles run eagerly."""
        if backend not in self.backends:
            raise ContrafuseError(self.name, f"unknown backend {backend!r} (choose from {', '.join(self.backends)})")
        self.backend = backend
        if tile is not None and (isinstance(tile, bool) or not isinstance(tile, int) or tile < 0):
            raise ContrafuseError(self.name, f"tile must be a whole number of pixels >= 0, not {tile!r}")
        self.tile = tile

        inference = inference or self.default_inference
        if inference not in (self.inference_protocols or {None: ""}):
            raise ContrafuseError(self.name, f"unknown inference protocol {inference!r}" + (
                f" (choose from {', '.join(self.inference_protocols)})" if self.inference_protocols else ""))
        self.inference = inference
        path = Path(weights) if weights else PACKAGE_WEIGHTS / self.weights_file
        if weights and not path.is_file():
            raise ContrafuseError(path, "weights file not found")
        if not path.is_file():
            raise ContrafuseError(path, f"no trained weights for {self.name!r} (train one with "
                                  f"'contrafuse train' and pass weights=...)")
        self.onnx = None
        if backend == "onnxruntime":
            if precision not in ("fp32", "auto") or device != "cpu" or compile:
                raise ContrafuseError(self.name, "the onnxruntime backend runs float32 on the CPU "
                                      "(leave --precision, --device and --compile at their defaults)")
            from ..nn import source_files
            from .onnx import OnnxNetwork, cache_path
            cached = cache_path(self.name, inference, path, [*source_files(), Path(__file__).resolve()])
            if not cached.is_file():
                self._load_torch(path, device, "fp32")
                from .onnx import export_onnx
                export_onnx(self, cached)
            self.onnx = OnnxNetwork(cached)
            recipe = self.onnx.recipe
            self.input_range, self.border = tuple(recipe["input_range"]), recipe["border"]
            self.halo, self.multiple = recipe["halo"], recipe["multiple"]
            self.model, self.precision, self.compiled = None, "fp32", None
            return
        self._load_torch(path, device, precision)
        self.compiled = None
        if compile:
            import torch
            self.compiled = torch.compile(self.model, dynamic=False)

    @classmethod
    def cli_options(cls) -> list[MethodOption]:
        options = [
            MethodOption("weights", "a safetensors file to use instead of the shipped weights", metavar="FILE"),
            MethodOption("device", "torch device (cpu, cuda, cuda:1, ...; default cpu)"),
            MethodOption("tile", "run in tiles with cores of this side (exact: same result, bounded memory); "
                         "0 = never; default: tile only images too large for CONTRAFUSE_TILE_MEMORY (1.2 GB)",
                         type=int, metavar="PIXELS"),
            MethodOption("precision", "arithmetic: auto (default: bf16 autocast where the CPU/GPU has native "
                         "bfloat16, else fp32), bf16, or fp32 (reproduces docs/REPRODUCTION.md exactly)",
                         choices=("auto", "bf16", "fp32")),
            MethodOption("backend", "torch (default) or onnxruntime (CPU, float32, exported once into the cache; "
                         "needs pip install onnxruntime onnx onnxscript)", choices=cls.backends),
            MethodOption("compile", "run whole images through torch.compile: tens of seconds to compile per "
                         "image size, then faster (for many images of one size)", switch=True)]
        if cls.inference_protocols:
            options.append(MethodOption(
                "inference", f"{cls.network}: " + "; ".join(f"{k}: {v}" for k, v in cls.inference_protocols.items()),
                choices=tuple(cls.inference_protocols), default=cls.default_inference))
        return options

    def _load_torch(self, path: Path, device: str, precision: str) -> None:
        from ..precision import resolve_precision, torch_device

        self.device = torch_device(device)
        self.precision = resolve_precision(precision, self.device)
        try:
            model = self.build()
        except (RuntimeError, OSError) as exc:
            raise ContrafuseError(path, f"cannot build {self.name} ({exc})") from None
        load_trained_weights(model, path, f"weights for {self.name}")
        self.model = self.prepare(model.to(self.device).eval())

    def build(self):
        """The untrained network, as training builds it (:func:`contrafuse.nn.build_network`)."""
        from ..nn import build_network
        return build_network(self.network)

    def prepare(self, model):
        """Inference-only speed-ups after the weights are loaded (default: none)."""
        return model

    def fuse_grey(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        height, width = first.shape
        canvases = [self._canvas(a) for a in (first, second)]
        core = self._core_size(*canvases[0].shape)
        if self.onnx is not None:
            out = self._run_onnx(canvases, core)
        else:
            out = self._run_torch(canvases, core)
        r = self.border
        return to_unit(out[r:r + height, r:r + width]).clip(0, 1).astype(np.float32)

    def _run_onnx(self, canvases: list[np.ndarray], core: int) -> np.ndarray:
        if not core:
            return self.onnx(*map(self._network_input, canvases))[0, 0]
        if self.needs_whole_image_statistics:
            raise ContrafuseError(self.name, "this image needs tiled inference, which for this network "
                                  "needs the torch backend (whole-image statistics); use --backend torch")
        from .tiling import run_tiled
        return run_tiled(self.onnx, canvases, self._network_input, core=core, halo=self.halo, multiple=self.multiple)

    def _run_torch(self, canvases: list[np.ndarray], core: int) -> np.ndarray:
        import torch

        from ..precision import autocast
        with autocast(self.device, self.precision):
            if core:
                from .tiling import run_tiled
                out = run_tiled(self.model, canvases, self._to_tensor, core=core, halo=self.halo,
                                multiple=self.multiple)
            else:
                with torch.inference_mode():
                    network = self.model if self.compiled is None else self.compiled
                    out = network(*map(self._to_tensor, canvases))[0, 0].float().cpu().numpy()
        return out

    def _canvas(self, image: np.ndarray) -> np.ndarray:
        """The image with its reflected ``border``, then reflect-padded (bottom, right) to the
        network's multiple: what the network runs on, whole or in tiles."""
        r = self.border
        if r:
            image = np.pad(image, r, mode="reflect" if min(image.shape) > r else "edge")
        pad_h, pad_w = (-image.shape[0]) % self.multiple, (-image.shape[1]) % self.multiple
        if pad_h or pad_w:
            mode = "reflect" if min(image.shape) > max(pad_h, pad_w) else "edge"
            image = np.pad(image, ((0, pad_h), (0, pad_w)), mode=mode)
        return image

    def _core_size(self, height: int, width: int) -> int:
        """Core side for tiled inference, or 0 to run the whole image at once."""
        from .tiling import auto_core_size, tile_memory_budget

        if self.tile == 0:
            return 0
        if self.tile is None:
            if height * width * self.bytes_per_pixel <= tile_memory_budget():
                return 0
            core = auto_core_size(self.bytes_per_pixel, self.halo, self.multiple)
        else:
            core = -(-self.tile // self.multiple) * self.multiple
        return core if core < max(height, width) else 0

    def _network_input(self, array: np.ndarray) -> np.ndarray:
        """A [0, 1] image mapped linearly onto the network's input range, as ``(1, 1, H, W)``."""
        low, high = self.input_range
        return (np.ascontiguousarray(array, dtype=np.float32) * (high - low) + low)[None, None]

    def _to_tensor(self, array: np.ndarray):
        import torch

        tensor = torch.from_numpy(self._network_input(array))
        return tensor.to(self.device).contiguous(memory_format=torch.channels_last)


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

    inference_protocols = COCONET_INFERENCE
    default_inference = "authors"

    description = "CoCoNet (Liu et al., IJCV 2023): coupled contrastive learning, multi-level attention; IR/visible"
    weights_file = "coconet_tno.safetensors"
    multiple = 8
    needs_whole_image_statistics = True  # the channel attention's Gram matrices (and BatchNorm in 'authors')
    network = "coconet"
    halo = 96  # 64 px already lands within 0.12 grey levels of the whole-image result; 96 matches it
    bytes_per_pixel = 1300.0

    def prepare(self, model):
        import torch
        if self.inference == "authors":
            self.input_range = (0.0, 255.0)
            # On 0-255 input every zero-padded convolution sees a black frame as strong as the
            # image's mean brightness, which no training patch showed it, and the network answers
            # with a bright rim along the border; a reflected border keeps the frame off the image.
            self.border = 2 * model.MULTIPLE
            for module in model.modules():
                if isinstance(module, torch.nn.BatchNorm2d):  # batch statistics, also in eval mode
                    module.track_running_stats = False
                    module.running_mean = module.running_var = None
        if self.precision == "bf16":  # channels-last memory pays off in bfloat16 (not in float32)
            model = model.to(memory_format=torch.channels_last)
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

    def check_inputs(self, first, second, labels):
        """The functional image (pseudo-colour PET/SPECT) goes first, the grey MRI second; swapped,
        the network returns an image of the PET alone, so a colour second input beside a grey
        first one is refused."""
        from ..io import rgb_to_ycbcr

        def coloured(image):
            return image.ndim == 3 and float(np.abs(rgb_to_ycbcr(image)[..., 1:] - 0.5).mean()) > 0.01

        if coloured(second) and not coloured(first):
            raise ContrafuseError(labels[1], f"is a colour (PET/SPECT-like) image and {labels[0]} is grey: "
                                  "coconet-medical takes the functional image as --ir and the MRI as --vis; swap them")


#: CLF-Net inference protocols (docs/REPRODUCTION.md, "How CLF-Net is evaluated").
CLFNET_INFERENCE = {
    "authors": "as the authors' test script behind the paper's tables: the result stretched to the full "
               "0-255 range (their scipy.misc.imsave rescales each image's minimum to 0 and maximum to 255)",
    "standard": "the network's [-1, 1] output mapped linearly to 0-255, no stretch",
}


@register_method("clfnet")
class CLFNetMethod(TorchFusionMethod):
    """CLF-Net with a choice of inference protocol (:data:`CLFNET_INFERENCE`). The authors' test
    script saves the network's output with ``scipy.misc.imsave``, which min-max stretches a float
    image to 0..255; the paper's Tables II-V were measured on those files, so ``authors`` is the
    default."""

    description = "CLF-Net (Zhu et al., IEEE TIM 2022): residual encoders, adaptive PatchNCE + windowed SSIM; IR/visible"
    weights_file = "clfnet_tno.safetensors"
    bytes_per_pixel = 2200.0
    network = "clfnet"
    inference_protocols = CLFNET_INFERENCE
    default_inference = "authors"

    def prepare(self, model):
        import torch
        # Run on the bare image the network draws a bright or dark band along the top rows (zero
        # padding, model card); with a reflected border as wide as the reach of its padded
        # convolutions every pixel sees image content, and pixels farther in are unchanged.
        self.border = self.halo = model.border_radius()
        # BatchNorm folding and channels-last memory roughly halve CPU time at 640x480
        return model.fold_batchnorm().to(memory_format=torch.channels_last)

    def fuse_grey(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        fused = super().fuse_grey(first, second)
        if self.inference == "authors":
            low, high = float(fused.min()), float(fused.max())
            fused = (fused - low) / (high - low) if high > low else np.zeros_like(fused)
        return fused
