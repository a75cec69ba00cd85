"""Every pretrained model behind the common :class:`FusionMethod` interface, run from its spec.

One generic runner, :class:`LearnedMethod`, executes a :class:`contrafuse.models.ModelSpec` with
PyTorch (whole image, tiled, bf16, compiled) or ONNX Runtime; each spec in
``contrafuse/models/`` is registered as a method of its name. The inference protocol is data
(:class:`contrafuse.models.Protocol`): the steps inside the network call live in
:class:`contrafuse.nn.protocol.ProtocolNetwork` (and so in an ONNX export), the framing and the
post-processing here, shared by both backends.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ContrafuseError
from ..models import MODEL_SPECS, ModelSpec
from ..precision import PRECISIONS
from .base import FusionMethod, MethodOption, register_method

BACKENDS = ("torch", "onnxruntime")


class LearnedMethod(FusionMethod):
    """A pretrained network run by its spec's inference protocol."""

    uses_torch = True
    spec: ModelSpec
    backends = BACKENDS

    def __init__(self, weights: str | os.PathLike | None = None, device: str = "cpu", inference: str | None = None,
                 tile: int | None = None, precision: str = "auto", backend: str = "torch", compile: bool = False):
        """``weights``: a weights file to use instead of the spec's (safetensors, or a PyTorch state
        dict, loaded with ``weights_only=True``). ``tile``: side of the tiles' cores in pixels for
        tiled inference (rounded up to the network's multiple); ``0`` never tiles; ``None`` tiles
        only images whose whole-image run would exceed the memory budget
        (``CONTRAFUSE_TILE_MEMORY``, default 1.2 GB). ``precision``: ``auto`` (bf16 autocast where
        the CPU/GPU runs bfloat16 natively, else fp32), ``bf16`` or ``fp32``. ``backend``:
        ``torch``, or ``onnxruntime`` (CPU, float32; exported once into the cache, see
        :mod:`contrafuse.methods.onnx`; no PyTorch import once it is there). ``compile``: run whole
        images through ``torch.compile``; tiles run eagerly."""
        spec = self.spec
        if backend not in BACKENDS:
            raise ContrafuseError(self.name, f"unknown backend {backend!r} (choose from {', '.join(BACKENDS)})")
        if tile is not None and (isinstance(tile, bool) or not isinstance(tile, int) or tile < 0):
            raise ContrafuseError(self.name, f"tile must be a whole number of pixels >= 0, not {tile!r}")
        if tile and not spec.tile_exact:
            raise ContrafuseError(self.name, "tiled inference would not reproduce this network's whole-image "
                                  "result (see its spec's tiling); leave --tile unset")
        inference = inference or spec.default_protocol
        if inference not in spec.protocols:
            raise ContrafuseError(self.name, f"unknown inference protocol {inference!r} "
                                  f"(choose from {', '.join(spec.protocols)})")
        if backend == "onnxruntime" and (precision not in ("fp32", "auto") or device != "cpu" or compile):
            raise ContrafuseError(self.name, "the onnxruntime backend runs float32 on the CPU "
                                  "(leave --precision, --device and --compile at their defaults)")
        self.backend, self.tile, self.inference = backend, tile, inference
        self.protocol = spec.protocols[inference]
        self.recolour = self.protocol.recolour
        self.multiple = self.protocol.multiple
        self.needs_whole_image_statistics = spec.whole_image_statistics or self.protocol.batchnorm == "image"
        from ..weights import model_weights
        if weights:
            path = Path(weights)
            if not path.is_file():
                raise ContrafuseError(path, "weights file not found")
        else:
            path = model_weights(spec)
        #: further files the network loads, with where their tensors go (``extra_weights``)
        self.extra_weights = tuple((model_weights(spec, source), source.key) for source in spec.extra_weights)
        self.onnx = self.model = self.compiled = None
        if backend == "onnxruntime":
            self._load_onnx(path)
            self._check_tile()
            return
        self._load_torch(path, device, precision)
        self._check_tile()
        if compile:
            import torch
            self.compiled = torch.compile(self.model, dynamic=False)

    def _check_tile(self) -> None:
        """A core narrower than the halo (the context each tile carries on every side) spends more than
        nine times the image's work on context: refused at once."""
        if self.tile:
            smallest = max(-(-self.halo // self.multiple) * self.multiple, self.multiple)
            if self.tile < smallest:
                raise ContrafuseError(self.name, f"tile {self.tile} is smaller than the network's {self.halo}-pixel "
                                      f"halo (the context around each tile's core): use --tile {smallest} or "
                                      "more, or --tile 0 for none")

    @property
    def fuses_rgb(self) -> bool:
        return self.protocol.channels == 3

    @classmethod
    def cli_options(cls) -> list[MethodOption]:
        spec = cls.spec
        options = [
            MethodOption("weights", "a weights file to use instead of the model's own (safetensors or a PyTorch "
                         "state dict)", metavar="FILE"),
            MethodOption("device", "torch device (cpu, cuda, cuda:1, ...; default cpu)"),
            MethodOption("tile", "run in tiles with cores of this side (exact: same result, bounded memory); "
                         "0 = never; default: tile only images too large for CONTRAFUSE_TILE_MEMORY (1.2 GB)",
                         type=int, metavar="PIXELS"),
            MethodOption("precision", "arithmetic: auto (default: bf16 autocast where the CPU/GPU has native "
                         "bfloat16, else fp32), bf16, or fp32 (reproduces docs/REPRODUCTION.md exactly)",
                         choices=PRECISIONS),
            MethodOption("backend", "torch (default) or onnxruntime (CPU, float32, exported once into the cache; "
                         "needs pip install onnxruntime onnx onnxscript)", choices=BACKENDS),
            MethodOption("compile", "run whole images through torch.compile: tens of seconds to compile per "
                         "image size, then faster (for many images of one size)", switch=True)]
        if len(spec.protocols) > 1:
            options.append(MethodOption(
                "inference", f"{spec.name}: " + "; ".join(f"{k}: {p.description}" for k, p in spec.protocols.items()),
                choices=tuple(spec.protocols), default=spec.default_protocol))
        return options

    # -- building --------------------------------------------------------------------------------
    def build(self):
        """The untrained network, as training builds it (:func:`contrafuse.nn.build_network`)."""
        from ..nn import build_network
        return build_network(self.spec.network, **self.spec.network_args)

    def _reach(self, value, model) -> int:
        return model.border_radius() if value == "receptive" else value

    def _load_torch(self, path: Path, device: str, precision: str) -> None:
        import torch

        from ..nn.protocol import ProtocolNetwork
        from ..precision import resolve_precision, torch_device
        from ..weights import load_trained_weights

        self.device = torch_device(device)
        self.precision = resolve_precision(precision, self.device)
        if precision == "auto" and self.spec.auto_precision == "fp32":
            self.precision = "fp32"
        try:
            model = self.build()
        except (RuntimeError, OSError) as exc:
            raise ContrafuseError(path, f"cannot build {self.name} ({exc})") from None
        load_trained_weights(model, path, f"weights for {self.name}", extra=self.extra_weights)
        model = model.to(self.device).eval()
        self.border, self.halo = self._reach(self.protocol.border, model), self._reach(self.spec.halo, model)
        if self.protocol.batchnorm == "image":  # batch statistics, also in eval mode
            for module in model.modules():
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.track_running_stats = False
                    module.running_mean = module.running_var = None
        elif hasattr(model, "fold_batchnorm"):  # an inference-only speed-up, same result
            model = model.fold_batchnorm()
        if self.spec.channels_last == "always" or self.spec.channels_last == "bf16" and self.precision == "bf16":
            model = model.to(memory_format=torch.channels_last)
        self.model = ProtocolNetwork(model, self.protocol).to(self.device)

    def _load_onnx(self, path: Path) -> None:
        from ..nn import source_files
        from .onnx import OnnxNetwork, cache_path, export_onnx

        sources = [*source_files(self.spec.network), Path(__file__).resolve(), *(p for p, _ in self.extra_weights)]
        cached = cache_path(self.name, self.inference, path, sources)
        if not cached.is_file():
            from ..io import check_writable
            try:  # before the export's tens of seconds
                check_writable(cached)
            except ContrafuseError as exc:
                raise ContrafuseError(cached.parent, f"cannot write the ONNX cache ({getattr(exc, 'reason', exc.problem)}); "
                                      "set CONTRAFUSE_HOME to a writable folder") from None
            self._load_torch(path, "cpu", "fp32")
            export_onnx(self, cached)
        self.onnx = OnnxNetwork(cached)
        self.border, self.halo = self.onnx.recipe["border"], self.onnx.recipe["halo"]
        self.model, self.precision = None, "fp32"

    # -- running ---------------------------------------------------------------------------------
    def fuse_grey(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        if self.fuses_rgb:
            from ..io import luminance
            return luminance(self.fuse_rgb(*(np.repeat(x[..., None], 3, axis=2) for x in (first, second))))
        return self._fuse(first, second, self.protocol)[..., 0]

    def fuse_luma(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Grey inputs as the official script makes them from colour files (``grey_8bit``: the 8-bit
        RGB weighted in float64 and rounded or truncated to a level, as PIL, OpenCV and NumPy
        scripts do; ``grey_read``: a JPEG's own luma plane), under the protocol's colour variant
        where a source is colour."""
        if self.fuses_rgb:
            return super().fuse_luma(first, second)
        protocol = self.protocol
        if (first.ndim == 3 or second.ndim == 3) and protocol.colour is not None:
            protocol = protocol.colour
        return self._fuse(*(grey_input(x, protocol) for x in (first, second)), protocol)[..., 0]

    def fuse_rgb(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Fuse two RGB images with a network that fuses colour (a protocol with ``channels: 3``)."""
        return self._fuse(first, second, self.protocol)

    def _fuse(self, first: np.ndarray, second: np.ndarray, protocol) -> np.ndarray:
        """``protocol`` end to end on [0, 1] images: ``(H, W, channels)`` in [0, 1]."""
        height, width = first.shape[:2]
        if protocol.batchnorm == "image" and max(height, width) <= protocol.multiple:
            raise ContrafuseError("input", f"a {width}x{height} image is too small for {self.name}'s per-image "
                                  "BatchNorm statistics" + (f" (one side must exceed {protocol.multiple} pixels)"
                                                            if protocol.multiple > 1 else ""))
        if protocol.grey_8bit != "none":
            first, second = (grey_input(x, protocol) for x in (first, second))
        if protocol.input_stretch:
            first, second = (stretch(x) for x in (first, second))
        canvases = [self._canvas(x.astype(np.float32)) for x in (first, second)]
        core = self._core_size(*canvases[0].shape[:2])
        out = self._run_onnx(canvases, core) if self.onnx is not None else self._run_torch(canvases, core)
        r = self.border
        return finish(out.transpose(1, 2, 0)[r:r + height, r:r + width], protocol)

    def _run_onnx(self, canvases: list[np.ndarray], core: int) -> np.ndarray:
        if not core:
            return self.onnx(*map(as_batch, canvases))[0]
        if self.needs_whole_image_statistics:
            raise ContrafuseError(self.name, "this image needs tiled inference, which for this network "
                                  "needs the torch backend (whole-image statistics); use --backend torch")
        from .tiling import run_tiled
        return run_tiled(self.onnx, canvases, as_batch, core=core, halo=self.halo, multiple=self.multiple)

    def _run_torch(self, canvases: list[np.ndarray], core: int) -> np.ndarray:
        import torch

        from ..precision import autocast
        with autocast(self.device, self.precision):
            if core:
                from .tiling import run_tiled
                return run_tiled(self.model, canvases, self._to_tensor, core=core, halo=self.halo,
                                 multiple=self.multiple, fixed_core=self.tile is not None)
            with torch.inference_mode():
                network = self.model if self.compiled is None else self.compiled
                return network(*map(self._to_tensor, canvases))[0].float().cpu().numpy()

    def _canvas(self, image: np.ndarray) -> np.ndarray:
        """The image with its reflected ``border``, then reflect-padded (bottom, right) to the
        network's multiple: what the network runs on, whole or in tiles."""
        extra = ((0, 0),) * (image.ndim - 2)
        r = self.border
        if r:
            image = np.pad(image, ((r, r), (r, r), *extra), mode="reflect" if min(image.shape[:2]) > r else "edge")
        pad_h, pad_w = (-image.shape[0]) % self.multiple, (-image.shape[1]) % self.multiple
        # an image smaller than the network runs on (``min_side``) is padded to it and cropped back
        side = self.spec.min_side
        pad_h, pad_w = max(pad_h, side - image.shape[0]), max(pad_w, side - image.shape[1])
        if pad_h or pad_w:
            mode = "reflect" if min(image.shape[:2]) > max(pad_h, pad_w) else "edge"
            image = np.pad(image, ((0, pad_h), (0, pad_w), *extra), mode=mode)
        return image

    def _core_size(self, height: int, width: int) -> int:
        """Core side for tiled inference, or 0 to run the whole image at once."""
        from .tiles import auto_core_size, tile_memory_budget

        if self.tile == 0 or not self.spec.tile_exact:
            return 0
        if self.tile is None:
            if height * width * self.spec.bytes_per_pixel <= tile_memory_budget():
                return 0
            core = auto_core_size(self.spec.bytes_per_pixel, self.halo, self.multiple)
        else:
            core = -(-self.tile // self.multiple) * self.multiple
        return core if core < max(height, width) else 0

    def _to_tensor(self, array: np.ndarray):
        import torch

        tensor = torch.from_numpy(as_batch(array))
        return tensor.to(self.device).contiguous(memory_format=torch.channels_last)

    def check_inputs(self, first, second, labels):
        """A spec with ``functional_first`` takes the functional image (pseudo-colour PET/SPECT)
        first and the grey MRI second; a colour second input beside a grey first one is refused."""
        if not self.spec.functional_first:
            return
        from ..io import rgb_to_ycbcr

        def coloured(image):
            return image.ndim == 3 and float(np.abs(rgb_to_ycbcr(image)[..., 1:] - 0.5).mean()) > 0.01

        if coloured(second) and not coloured(first):
            raise ContrafuseError(labels[1], f"is a colour (PET/SPECT-like) image and {labels[0]} is grey: "
                                  f"{self.name} takes the functional image as --ir and the MRI as --vis; swap them")


#: BT.601 luma weights, as PIL's ``L``, OpenCV's ``BGR2GRAY`` and the scripts' own formulas use them
LUMA = np.array([0.299, 0.587, 0.114])


def grey_input(image: np.ndarray, protocol) -> np.ndarray:
    """A source as the network's input: on the protocol's 8-bit levels if it has them (a colour
    source for a grey network weighted as 8-bit values in float64, then rounded or truncated, or, under
    ``grey_read: jpeg_luma``, a colour JPEG's decoder luma; for a network that fuses RGB, each channel
    on its levels), else its luma as it is."""
    from ..io import jpeg_luma, luminance
    if protocol.grey_read == "jpeg_luma" and protocol.channels == 1 and (luma := jpeg_luma(image)) is not None:
        return (luma / 255.0).astype(np.float32)
    if protocol.grey_8bit == "none":
        return luminance(image) if protocol.channels == 1 else image
    to_level = np.round if protocol.grey_8bit == "round" else np.floor
    levels = np.round(image.astype(np.float64) * 255.0)
    if image.ndim == 3 and protocol.channels == 1:
        levels = np.dot(levels, LUMA)  # np.dot, not matmul: the scripts' summation order, to the last bit
    return (to_level(levels) / 255.0).astype(np.float32)


def as_batch(array: np.ndarray) -> np.ndarray:
    """An ``(H, W)`` or ``(H, W, C)`` image as a contiguous float32 ``(1, C, H, W)`` batch."""
    array = np.asarray(array, dtype=np.float32)
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return np.ascontiguousarray(array[None])


def stretch(image: np.ndarray) -> np.ndarray:
    """``image``'s minimum to 0 and maximum to 1 (a constant image becomes 0)."""
    low, high = float(image.min()), float(image.max())
    return (image - low) / (high - low) if high > low else np.zeros_like(image)


def finish(image: np.ndarray, protocol) -> np.ndarray:
    """The protocol's post-processing of the network's [0, 1] result (cropped to the image):
    clipping (unless the script's cast wraps), the per-image stretch and the 8-bit rounding."""
    if protocol.output_8bit != "wrap":
        image = image.clip(0.0, 1.0)
    if protocol.stretch:
        image = stretch(image)
    if protocol.output_8bit != "none":
        levels = image.astype(np.float64) * 255.0
        if protocol.output_8bit == "wrap":
            levels = np.mod(np.trunc(levels), 256.0)  # C's float -> uint8 conversion, as NumPy's cast on x86-64
        image = (np.round(levels) if protocol.output_8bit == "round" else np.floor(levels)) / 255.0
    return image.astype(np.float32)


def _register(spec: ModelSpec) -> None:
    register_method(spec.name)(type(f"Learned[{spec.name}]", (LearnedMethod,),
                                    {"spec": spec, "description": spec.description}))


for _spec in MODEL_SPECS.values():
    _register(_spec)
