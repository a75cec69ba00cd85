"""Video and frame sequences, fused frame by frame in bounded memory.

A *sequence* is a video file (any container and codec FFmpeg decodes, through PyAV) or a folder of
frames taken in natural order of their names (``f2.png`` before ``f10.png``). Two sequences are
paired by frame index (the default; it stops at the end of the shorter) or by timestamp (each
infrared frame with the visible frame nearest in time). Frames are decoded, fused as still images
are (:func:`contrafuse.api.fuse_images`: colour on Y with the chroma re-attached) and encoded one at
a time, so memory does not grow with the length. The output is a video (``.mp4``, ``.mkv``,
``.avi``, ``.mov``), written to a temporary file beside it and renamed when complete, or a folder of
numbered frames.

Methods that normalise with each frame's own statistics (BatchNorm on the image's statistics:
CoCoNet's ``authors`` protocol, TarDAL's ``official``) flicker as content enters and leaves the
frame; :func:`stabilised` runs them with those statistics smoothed over time. Flicker is measured
by :class:`TemporalStability`.
"""

from __future__ import annotations

import io
import math
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from . import progress
from .api import RESIZE_HINT_PYTHON, as_unit_image, fuse_images, match_sizes
from .errors import ContrafuseError
from .io import (atomic_file, check_folder_writable, check_output_free, check_output_image, check_writable,
                 grey_if_neutral, list_images, luminance, read_image, to_uint, write_image)

#: frame rate of a frame folder (which has no timestamps) and of outputs, unless given
DEFAULT_FPS = 25.0
#: output file endings and their FFmpeg container formats
CONTAINERS = {".mp4": "mp4", ".mkv": "matroska", ".avi": "avi", ".mov": "mov"}
ALIGNMENTS = ("index", "timestamp")


@dataclass(frozen=True)
class Codec:
    """An output codec: its constant-quality setting (``quality``: ``crf`` or ``qscale``, lower is
    better, from ``low`` to ``high``; ``None``: lossless) and its pixel format (``odd``: the one used
    when a side is odd, ``None`` where the codec needs even sides)."""
    name: str
    about: str
    quality: str | None = None
    low: int = 0
    high: int = 0
    default: int = 0
    pixel_format: str = "yuv420p"
    odd: str | None = "yuv444p"

    def options(self, quality: int | None) -> dict[str, str]:
        value = str(self.default if quality is None else quality)
        if self.quality == "crf":
            return {"crf": value, **({"b": "0"} if self.name == "libvpx-vp9" else {})}  # VP9: constant quality
        if self.quality == "qscale":
            return {"qmin": value, "qmax": value}
        return {}


CODECS = {codec.name: codec for codec in (
    Codec("libx264", "H.264, CRF 0-51 (default 18)", "crf", 0, 51, 18),
    Codec("libvpx-vp9", "VP9, CRF 0-63 (default 31)", "crf", 0, 63, 31),
    Codec("mpeg4", "MPEG-4 part 2, q scale 1-31 (default 3)", "qscale", 1, 31, 3, odd=None),
    Codec("ffv1", "FFV1, lossless RGB (no --quality)", pixel_format="bgr0", odd="bgr0"),
)}
DEFAULT_CODEC = "libx264"
#: strength of ``--stabilise`` without a value (see :class:`SmoothedBatchNorm`)
DEFAULT_STABILISE = 0.5


def _av():
    try:
        import av
    except ImportError:
        raise ContrafuseError(None, "video needs PyAV: pip install av") from None
    return av


def natural_key(name: str) -> list:
    """Sort key putting ``f2`` before ``f10``: digit runs compare as numbers, the rest case-blind."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


# ---------------------------------------------------------------------------------------------
# Reading.

@dataclass(frozen=True)
class Frame:
    """One frame: its position, its time in seconds since the sequence's first frame, the image
    ([0, 1], grey ``(H, W)`` or RGB ``(H, W, 3)``) and a label naming it in errors."""
    index: int
    time: float
    image: np.ndarray
    label: str


class Sequence(ABC):
    """Frames read one at a time from a video file or a frame folder (:func:`open_sequence`).
    ``count``: the number of frames where the source declares it, else ``None``; ``size``:
    ``(width, height)``; ``first``: the first frame, read when the sequence is opened."""
    path: Path
    fps: float
    count: int | None
    first: Frame

    @property
    def size(self) -> tuple[int, int]:
        return self.first.image.shape[1], self.first.image.shape[0]

    @abstractmethod
    def frames(self) -> Iterator[Frame]:
        """The frames in order, each read when it is asked for."""

    def _checked(self, frame: Frame) -> Frame:
        if frame.image.shape[:2] != self.first.image.shape[:2]:
            (h, w), (h0, w0) = frame.image.shape[:2], self.first.image.shape[:2]
            raise ContrafuseError(frame.label, f"frame size {w}x{h} differs from the sequence's first frame "
                                  f"({w0}x{h0})")
        return frame


class FrameFolder(Sequence):
    """The images of a folder, in natural order of their names; frame ``i`` is at ``i / fps`` seconds."""

    def __init__(self, path: Path, fps: float, high_bit_rule: str = "minmax"):
        self.path, self.fps, self.high_bit_rule = path, fps, high_bit_rule
        self.files = sorted(list_images(path).values(), key=lambda p: natural_key(p.name))
        if not self.files:
            raise ContrafuseError(path, "folder holds no frames (image files)")
        self.count = len(self.files)
        self.first = self._read(0)

    def _read(self, index: int) -> Frame:
        file = self.files[index]
        return Frame(index, index / self.fps, read_image(file, high_bit_rule=self.high_bit_rule), str(file))

    def frames(self) -> Iterator[Frame]:
        for index in range(self.count):
            yield self._checked(self.first if index == 0 else self._read(index))


class VideoFile(Sequence):
    """The first video stream of a file, decoded with PyAV; 8-bit RGB frames whose three channels
    are equal (a grey video) come as grey, as grey images stored in colour do."""

    def __init__(self, path: Path):
        self.path = path
        with self._open() as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            self.fps = float(rate) if rate else DEFAULT_FPS
            self.count = stream.frames or None
            decoded = self._decode(container)
            self.first = next(decoded, None)
            decoded.close()
        if self.first is None:
            raise ContrafuseError(path, "video holds no frames")

    def _open(self):
        av = _av()
        try:
            container = av.open(str(self.path))
        except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise ContrafuseError(self.path, f"not a readable video ({reason})") from None
        if not container.streams.video:
            container.close()
            raise ContrafuseError(self.path, "holds no video stream")
        return container

    def _decode(self, container) -> Iterator[Frame]:
        av = _av()
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        decoded = container.decode(stream)
        start, index = None, 0
        while True:
            try:
                frame = next(decoded, None)
            except (av.FFmpegError, OSError) as exc:
                raise ContrafuseError(self.path, f"cannot decode frame {index} ({exc})") from None
            if frame is None:
                return
            start = frame.time if start is None else start
            time = frame.time - start if frame.time is not None and start is not None else index / self.fps
            image = as_unit_image(grey_if_neutral(frame.to_ndarray(format="rgb24")), label=str(self.path))
            yield Frame(index, time, image, f"{self.path} frame {index}")
            index += 1

    def frames(self) -> Iterator[Frame]:
        with self._open() as container:
            for frame in self._decode(container):
                yield self._checked(frame)


def open_sequence(path: str | Path, *, fps: float | None = None, high_bit_rule: str = "minmax") -> Sequence:
    """A video file, or a folder of frames (at ``fps`` frames per second, default 25), checked by
    reading its first frame; a one-line error for anything else."""
    path = Path(path)
    if not path.exists():
        raise ContrafuseError(path, "file or folder not found")
    if path.is_dir():
        return FrameFolder(path, fps or DEFAULT_FPS, high_bit_rule)
    return VideoFile(path)


def check_align(align: str) -> str:
    if align not in ALIGNMENTS:
        raise ContrafuseError(None, f"alignment must be one of {', '.join(ALIGNMENTS)}, not {align!r}")
    return align


class Pairing:
    """The frames of two sequences in pairs, one pair at a time. ``align="index"``: the i-th frame of
    each, until either ends; ``"timestamp"``: each frame of ``first`` with the frame of ``second``
    nearest in time (the earlier on a tie), until ``first`` ends or passes the end of ``second``
    (its last frame's time plus half a frame). Once iterated, ``note`` says what was left out."""

    def __init__(self, first: Sequence, second: Sequence, align: str = "index"):
        self.first, self.second, self.align = first, second, check_align(align)
        self.note: str | None = None
        known = [s.count for s in (first, second) if s.count is not None]
        self.count = first.count if align == "timestamp" else (min(known) if len(known) == 2 else None)

    def __iter__(self) -> Iterator[tuple[Frame, Frame]]:
        return self._by_index() if self.align == "index" else self._by_time()

    @staticmethod
    def _rest(sequence: Sequence, used: int) -> str:
        left = None if sequence.count is None else sequence.count - used
        return "" if left is None else f" ({left} frame{'' if left == 1 else 's'})"

    def _by_index(self):
        with closing(self.first.frames()) as firsts, closing(self.second.frames()) as seconds:
            paired = 0
            for a in firsts:
                b = next(seconds, None)
                if b is None:
                    self.note = (f"{self.second.path} ended after {paired} frames: the rest of {self.first.path}"
                                 f"{self._rest(self.first, paired)} is left out")
                    return
                paired += 1
                yield a, b
            if next(seconds, None) is not None:
                self.note = (f"{self.first.path} ended after {paired} frames: the rest of {self.second.path}"
                             f"{self._rest(self.second, paired)} is left out")

    def _by_time(self):
        with closing(self.first.frames()) as firsts, closing(self.second.frames()) as seconds:
            current, following = next(seconds), next(seconds, None)
            half = 0.5 / self.second.fps
            paired = 0
            for a in firsts:
                while following is not None and following.time - a.time < a.time - current.time:
                    current, following = following, next(seconds, None)
                if following is None and a.time > current.time + half:
                    self.note = (f"{self.second.path} ended at {current.time:.3f} s: the frames of {self.first.path} "
                                 f"after it{self._rest(self.first, paired)} are left out")
                    return
                paired += 1
                yield a, current


# ---------------------------------------------------------------------------------------------
# Writing.

def output_kind(path: Path) -> str:
    """``video`` for a video file name, ``frames`` for a folder (no suffix, or an existing folder)."""
    if path.suffix.lower() in CONTAINERS:
        return "video"
    if path.is_dir() or not path.suffix:
        return "frames"
    raise ContrafuseError(path, f"unsupported output type {path.suffix}; use a video file "
                          f"({', '.join(CONTAINERS)}) or a folder for the frames")


def _pixel_format(codec: Codec, size: tuple[int, int], where) -> str:
    if all(side % 2 == 0 for side in size):
        return codec.pixel_format
    if codec.odd is None:
        raise ContrafuseError(where, f"{codec.name} needs even frame sides, these frames are {size[0]}x{size[1]}; "
                              f"use another codec ({', '.join(n for n, c in CODECS.items() if c.odd)})")
    return codec.odd


def _encoder(target, fmt: str, codec: Codec, quality: int | None, fps: float, size: tuple[int, int], where):
    """Open ``target`` (a path or file object) as a ``fmt`` container with one video stream; returns
    ``write(image)``, ``finish()`` (flush and close) and the container."""
    av = _av()
    container = av.open(target, "w", format=fmt)
    try:
        stream = container.add_stream(codec.name, rate=Fraction(fps).limit_denominator(1001),
                                      options=codec.options(quality))
        stream.width, stream.height = size
        stream.pix_fmt = _pixel_format(codec, size, where)
    except BaseException:
        container.close()
        raise

    def write(image: np.ndarray) -> None:
        pixels = to_uint(image)
        if pixels.ndim == 2:
            pixels = np.repeat(pixels[..., None], 3, axis=2)
        for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")):
            container.mux(packet)

    def finish() -> None:
        for packet in stream.encode():
            container.mux(packet)
        container.close()

    return write, finish, container


def check_codec(codec: str | None, quality: int | None) -> Codec:
    """The named codec (default H.264) with a quality in its range, or a one-line error."""
    name = codec or DEFAULT_CODEC
    if name not in CODECS:
        raise ContrafuseError(None, f"unknown codec {name!r}; choose from {', '.join(CODECS)}")
    found = CODECS[name]
    if name not in _av().codecs_available:
        raise ContrafuseError(None, f"codec {name} is not in this PyAV build")
    if quality is not None:
        if found.quality is None:
            raise ContrafuseError(None, f"{name} is lossless and takes no quality setting")
        if isinstance(quality, bool) or not isinstance(quality, int) or not found.low <= quality <= found.high:
            raise ContrafuseError(None, f"quality for {name} must be a whole number from {found.low} to "
                                  f"{found.high} (lower is better), not {quality!r}")
    return found


@contextmanager
def video_writer(path: Path, *, fps: float, codec: Codec, quality: int | None, size: tuple[int, int]):
    """Yield ``write(image)``, encoding [0, 1] frames into the video ``path``; the file appears,
    complete, only when the block ends without error (a temporary file beside it, then renamed)."""
    av = _av()
    with atomic_file(path) as handle:
        try:
            write, finish, container = _encoder(handle, CONTAINERS[path.suffix.lower()], codec, quality, fps, size,
                                                path)
            try:
                yield write
                finish()
            except BaseException:
                with suppress(Exception):  # the file is discarded; the error that stopped it is the one to report
                    container.close()
                raise
        except (av.FFmpegError, ValueError) as exc:
            raise ContrafuseError(path, f"cannot encode the video ({exc})") from None


def check_video_output(path: Path, *, fps: float, codec: Codec, quality: int | None, size: tuple[int, int]) -> None:
    """Encode one black frame in memory as ``path`` would be written, so that a codec the container
    cannot hold, or a size the codec refuses, is a one-line error before any work."""
    av = _av()
    try:
        write, finish, _ = _encoder(io.BytesIO(), CONTAINERS[path.suffix.lower()], codec, quality, fps, size, path)
        write(np.zeros(size[::-1], np.float32))
        finish()
    except (av.FFmpegError, ValueError) as exc:  # PyAV refuses a codec the container cannot hold with ValueError
        raise ContrafuseError(path, f"cannot write {codec.name} video of {size[0]}x{size[1]} at {fps:g} fps "
                              f"in {path.suffix} ({exc})") from None


# ---------------------------------------------------------------------------------------------
# Temporal stability.

class TemporalChange:
    """How much a sequence changes from frame to frame, accumulated one frame at a time, for frames
    ``Y_0 .. Y_{T-1}`` on [0, 1] (a colour frame counts by its BT.601 luma):

    * ``value``: the mean absolute change, ``1/(T-1) * sum_{t=1}^{T-1} mean_x |Y_t(x) - Y_{t-1}(x)|``;
    * ``level``: the mean absolute change of the frame's mean, ``1/(T-1) * sum_t |mean Y_t - mean Y_{t-1}|``
      (whole-frame brightness pumping, what per-frame normalisation causes).

    Both are 0 with fewer than two frames."""

    def __init__(self):
        self.previous: np.ndarray | None = None
        self.total = self.level_total = 0.0
        self.steps = 0

    def add(self, frame: np.ndarray) -> None:
        luma = luminance(np.asarray(frame, dtype=np.float32)).astype(np.float64)
        if self.previous is not None:
            self.total += float(np.abs(luma - self.previous).mean())
            self.level_total += abs(float(luma.mean()) - float(self.previous.mean()))
            self.steps += 1
        self.previous = luma

    @property
    def value(self) -> float:
        return self.total / self.steps if self.steps else 0.0

    @property
    def level(self) -> float:
        return self.level_total / self.steps if self.steps else 0.0


@dataclass
class TemporalStability:
    """Flicker of a fused sequence against its sources: ``ratio = C(fused) / ((C(ir) + C(vis)) / 2)``
    with ``C`` the mean absolute frame-to-frame change (:attr:`TemporalChange.value`), and
    ``level_ratio`` the same for the change of the frames' mean brightness
    (:attr:`TemporalChange.level`). 1 means the fused frames change as much from one frame to the
    next as the sources do on average; above 1 the method adds change of its own (flicker, or
    amplified detail and noise for ``ratio``); NaN when neither source changes."""
    ir: TemporalChange = field(default_factory=TemporalChange)
    vis: TemporalChange = field(default_factory=TemporalChange)
    fused: TemporalChange = field(default_factory=TemporalChange)

    def add(self, ir: np.ndarray, vis: np.ndarray, fused: np.ndarray) -> None:
        self.ir.add(ir)
        self.vis.add(vis)
        self.fused.add(fused)

    def result(self) -> dict[str, float]:
        def ratio(fused, ir, vis):
            return fused / ((ir + vis) / 2) if ir + vis > 0 else math.nan
        return {"fused": self.fused.value, "ir": self.ir.value, "vis": self.vis.value,
                "ratio": ratio(self.fused.value, self.ir.value, self.vis.value),
                "fused_level": self.fused.level, "ir_level": self.ir.level, "vis_level": self.vis.level,
                "level_ratio": ratio(self.fused.level, self.ir.level, self.vis.level)}


# ---------------------------------------------------------------------------------------------
# Stabilised mode: per-frame BatchNorm statistics smoothed over time.

class SmoothedBatchNorm:
    """Hooks on ``model``'s BatchNorm layers that normalise with the batch's own statistics: each
    layer (and each of its calls within one forward) normalises with an exponential moving average
    of the per-frame statistics, ``m_t = s * m_{t-1} + (1 - s) * mu_t`` and likewise the variance,
    ``s`` the ``strength`` (0: each frame's own, as without the hooks); the first frame uses its own."""

    def __init__(self, model, strength: float):
        from .methods.tiles import is_batch_statistics_norm

        self.strength = strength
        self.norms = [m for m in model.modules() if is_batch_statistics_norm(m)]
        self.state: dict[tuple[int, int], tuple] = {}
        self.calls: Counter = Counter()
        self._handles = [model.register_forward_pre_hook(lambda module, inputs: self.calls.clear())]
        self._handles += [m.register_forward_hook(self._normalise) for m in self.norms]

    def _normalise(self, module, inputs, output):
        import torch

        key = (id(module), self.calls[id(module)])
        self.calls[id(module)] += 1
        x = inputs[0].float()  # normalised in float32, as autocast runs BatchNorm
        mean, var = x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=False)
        if key in self.state:
            s = self.strength
            mean, var = s * self.state[key][0] + (1 - s) * mean, s * self.state[key][1] + (1 - s) * var
        self.state[key] = (mean, var)
        return torch.nn.functional.batch_norm(x, mean, var, module.weight, module.bias, training=False,
                                              eps=module.eps).to(output.dtype)

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


def check_stabilise(method, strength: float) -> None:
    """Refuse a strength outside [0, 1) or a method with no per-frame statistics to smooth."""
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 <= strength < 1:
        raise ContrafuseError(None, f"stabilise strength must be a number from 0 to below 1, not {strength!r}")
    from .methods.tiles import is_batch_statistics_norm

    model = getattr(method, "model", None)
    if model is None or not any(is_batch_statistics_norm(m) for m in model.modules()):
        backend = getattr(method, "backend", "torch")
        raise ContrafuseError(None, f"stabilising smooths per-frame BatchNorm statistics; {method.name} "
                              + ("runs on onnxruntime (use --backend torch)" if backend != "torch"
                                 else "has none in this protocol"))
    if getattr(method, "compiled", None) is not None:
        raise ContrafuseError(None, "stabilising runs the network eagerly; leave --compile off")
    if getattr(method, "tile", None):
        raise ContrafuseError(None, "stabilised frames run whole (untiled); leave --tile unset")


@contextmanager
def stabilised(method, strength: float | None):
    """Run ``method`` on the frames of one sequence with its per-frame BatchNorm statistics smoothed
    (:class:`SmoothedBatchNorm`, frames untiled); ``strength=None``: unchanged."""
    if strength is None:
        yield
        return
    check_stabilise(method, strength)
    saved, method.tile = method.tile, 0
    smoother = SmoothedBatchNorm(method.model, strength)
    try:
        yield
    finally:
        smoother.close()
        method.tile = saved


def fused_frames(pairs: Iterable[tuple[Frame, Frame]], method, *, resize: str | None = None,
                 stabilise: float | None = None, hint: str = RESIZE_HINT_PYTHON) -> Iterator[tuple]:
    """Fuse paired frames one at a time; yields ``(ir, vis, fused)`` [0, 1] images (the sources as
    fused, after ``resize``). ``stabilise``: the strength of :func:`stabilised`."""
    with stabilised(method, stabilise):
        for a, b in pairs:
            first, second = match_sizes(a.image, b.image, resize=resize, labels=(a.label, b.label), hint=hint)
            yield first, second, fuse_images(first, second, method, (a.label, b.label))


# ---------------------------------------------------------------------------------------------
# A whole run.

@dataclass
class VideoResult:
    output: Path
    frames: int
    size: tuple[int, int]
    fps: float
    note: str | None
    stability: dict[str, float]


class VideoJob:
    """Two sequences to fuse into ``output``, every input and option checked when it is made (before
    any fusing): sequences readable, sizes matching (or ``resize``), output new (or ``overwrite``),
    writable and encodable. ``run(method)`` fuses them."""

    def __init__(self, ir, vis, output, *, align: str = "index", fps: float | None = None, codec: str | None = None,
                 quality: int | None = None, fmt: str = "png", bits: int = 8, resize: str | None = None,
                 high_bit_rule: str = "minmax", overwrite: bool = False, hint: str = RESIZE_HINT_PYTHON):
        check_align(align)
        if fps is not None and not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
            raise ContrafuseError(None, f"frame rate must be a positive number, not {fps!r}")
        self.output, self.kind = Path(output), output_kind(Path(output))
        self.codec = check_codec(codec, quality) if self.kind == "video" else None
        if self.kind == "frames" and (codec is not None or quality is not None):
            raise ContrafuseError(self.output, "codec and quality apply to video outputs, not a folder of frames")
        if self.kind == "video" and bits != 8:
            raise ContrafuseError(self.output, "videos are written with 8 bits; 16 bits go to a folder of frames")
        self.first = open_sequence(ir, fps=fps, high_bit_rule=high_bit_rule)
        self.second = open_sequence(vis, fps=fps, high_bit_rule=high_bit_rule)
        check_output_free(self.output, (self.first.path, self.second.path), overwrite=True)
        first, second = match_sizes(self.first.first.image, self.second.first.image, resize=resize,
                                    labels=(self.first.first.label, self.second.first.label), hint=hint)
        self.size = first.shape[1], first.shape[0]
        self.align, self.resize, self.hint, self.quality, self.bits, self.fmt = align, resize, hint, quality, bits, fmt
        self.fps = fps or self.first.fps
        if self.kind == "video":
            check_output_free(self.output, overwrite=overwrite)
            check_writable(self.output)
            check_video_output(self.output, fps=self.fps, codec=self.codec, quality=quality, size=self.size)
        else:
            check_output_image(self.output / f"000000.{fmt}", bits, colour=first.ndim == 3 or second.ndim == 3)
            if self.output.is_dir() and not overwrite and any(self.output.iterdir()):
                raise ContrafuseError(self.output, "output folder is not empty (use --overwrite to write into it)")
            check_folder_writable(self.output)

    @contextmanager
    def _writer(self):
        if self.kind == "video":
            with video_writer(self.output, fps=self.fps, codec=self.codec, quality=self.quality,
                              size=self.size) as write:
                yield write
            return
        counter = iter(range(10**9))
        yield lambda image: write_image(self.output / f"{next(counter):06d}.{self.fmt}", image, bits=self.bits,
                                        overwrite=True)

    def run(self, method, *, stabilise: float | None = None) -> VideoResult:
        """Fuse every pair with ``method`` (``stabilise``: see :func:`stabilised`) and write the output."""
        if stabilise is not None:
            check_stabilise(method, stabilise)
        pairs = Pairing(self.first, self.second, self.align)
        stability = TemporalStability()
        made = 0
        frames = fused_frames(pairs, method, resize=self.resize, stabilise=stabilise, hint=self.hint)
        with self._writer() as write, closing(frames):
            for ir, vis, fused in progress.bar(frames, total=pairs.count, desc=f"fusing video ({method.name})",
                                               unit="frame"):
                write(fused)
                stability.add(ir, vis, fused)
                made += 1
        return VideoResult(self.output, made, self.size, self.fps, pairs.note, stability.result())


def fuse_video(ir, vis, output, method=None, *, stabilise: float | None = None, **options) -> VideoResult:
    """Fuse two sequences (video files or frame folders) into a video or a folder of frames.

    ``method``: a registered name or a :class:`~contrafuse.methods.FusionMethod`; the keywords of
    :class:`VideoJob` (``align``, ``fps``, ``codec``, ``quality``, ``resize``, ``overwrite``, ...)
    go to the job, any others to the method's constructor. ``stabilise``: a strength in [0, 1) for
    methods with per-frame BatchNorm statistics (:func:`stabilised`)."""
    import inspect

    from .methods import DEFAULT_METHOD, FusionMethod, create_method

    job_keys = set(inspect.signature(VideoJob).parameters) - {"ir", "vis", "output"}
    job = VideoJob(ir, vis, output, **{k: v for k, v in options.items() if k in job_keys})
    if not isinstance(method, FusionMethod):
        method = create_method(method or DEFAULT_METHOD, **{k: v for k, v in options.items() if k not in job_keys})
    return job.run(method, stabilise=stabilise)
