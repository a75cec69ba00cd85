"""Image reading and writing, colour handling and folder pairing.

Images are handed around as ``float32`` NumPy arrays in [0, 1]: ``(H, W)`` for grey,
``(H, W, 3)`` for RGB. They come in through one function, :func:`read_image`, whatever they are (a
path, a file's bytes, an array), so every entry point (command line, Python API, web app, metrics,
benchmark, training data) reads an image the same way; it never modifies its input and turns files
upright by their EXIF orientation. Writers are atomic (temporary file in the destination folder,
then ``os.replace``), and a write that fails (disk full, file-size limit, read-only place) is a
one-line error naming the output that leaves nothing behind.
"""

from __future__ import annotations

import csv
import errno
import functools
import io
import os
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import ContrafuseError, positive_setting

#: Output file types (8-bit grey or RGB; 16-bit grey in PNG and TIFF only).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
SIXTEEN_BIT_SUFFIXES = (".png", ".tif", ".tiff")

#: Pillow formats that open without external programs yet hold no raster image we could fuse:
#: stubs for scientific containers, vector and video formats. Folder mode lists every other
#: format Pillow reads, which is what single-pair mode reads.
_NOT_IMAGES = {"BUFR", "GRIB", "HDF5", "FITS", "WMF", "EPS", "MPEG", "IPTC"}

#: EXIF tag holding the orientation a viewer applies (1 = stored upright).
EXIF_ORIENTATION = 0x0112

#: Largest image (in pixels) accepted before we call it a decompression bomb.
#: Override with the environment variable ``CONTRAFUSE_MAX_PIXELS``.
DEFAULT_MAX_PIXELS = 200_000_000

#: Rules for mapping images deeper than 8 bits (e.g. 16-bit radiometric thermal) to [0, 1].
HIGH_BIT_RULES = {
    "minmax": "stretch the image's own minimum..maximum to 0..1 (default)",
    "percentile": "clip to the 0.5th..99.5th percentile, then stretch to 0..1 (robust to hot pixels)",
    "full": "divide by the type's full range (65535 for 16-bit): keeps absolute radiometry",
}


@functools.cache
def readable_suffixes() -> tuple[str, ...]:
    """File name endings of every image format this Pillow reads (``.png``, ``.jpg``, ``.gif``,
    ``.webp``, ...): the files folder mode pairs."""
    Image.init()
    return tuple(sorted(suffix for suffix, fmt in Image.registered_extensions().items()
                        if fmt in Image.OPEN and fmt not in _NOT_IMAGES))


def max_pixels() -> int:
    return positive_setting("CONTRAFUSE_MAX_PIXELS", DEFAULT_MAX_PIXELS, "whole number of pixels", int)


def _high_bit_to_unit(values: np.ndarray, rule: str, full_range: float) -> np.ndarray:
    values = values.astype(np.float64)
    if rule == "full":
        out = values / full_range
    elif rule in ("minmax", "percentile"):
        lo, hi = (
            (values.min(), values.max())
            if rule == "minmax"
            else np.percentile(values, [0.5, 99.5])
        )
        out = (np.clip(values, lo, hi) - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
    else:
        raise ContrafuseError(None, f"unknown high-bit rule {rule!r}; choose from {', '.join(HIGH_BIT_RULES)}")
    return np.clip(out, 0.0, 1.0).astype(np.float32)


class UnitImage(np.ndarray):
    """What :func:`read_image` returns: a float32 ``(H, W)`` or ``(H, W, 3)`` array in [0, 1] that
    remembers where it came from. ``encoded``: the bytes of the file it was decoded from (``None`` for
    an array), so that a protocol may decode that file its own way (:func:`jpeg_luma`);
    ``stored_rgb``: grey stored as three equal channels (read as grey; MATLAB's ``imread`` keeps the
    three). Arithmetic on it gives plain arrays; its views and copies keep the type but forget both."""

    encoded: bytes | None = None
    stored_rgb: bool = False

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        def plain(values):
            return tuple(v.view(np.ndarray) if isinstance(v, UnitImage) else v for v in values)
        if "out" in kwargs:
            kwargs["out"] = plain(kwargs["out"])
        return getattr(ufunc, method)(*plain(inputs), **kwargs)


def read_image(image, *, high_bit_rule: str = "minmax", label: str | None = None) -> UnitImage:
    """The one way an image enters contrafuse: a file path, the bytes of an image file, or an array,
    as a float32 :class:`UnitImage` in [0, 1], ``(H, W)`` if grey, ``(H, W, 3)`` if colour.

    Files (paths and bytes alike) are decoded by Pillow and turned upright by their EXIF
    orientation, as viewers show them; palette images are expanded and CMYK/YCbCr/LAB/HSV converted
    to RGB. Then one rule, for decoded files and arrays alike, by pixel type: bool is 0/1; uint8 is
    8-bit (/255); uint16 (and int16/int32/uint32, as Pillow gives deeper files) is mapped with
    ``high_bit_rule`` (:data:`HIGH_BIT_RULES`), so a uint16 array reads as the 16-bit file holding it.
    Float *files* hold raw values (radiometry) and are stretched by ``high_bit_rule`` (``full``
    acts as ``minmax``); a float *array* is taken as a unit image already: it must lie in [0, 1].
    An alpha channel is dropped (``(H, W, 2)``, ``(H, W, 4)``); three equal channels read as grey.
    ``label`` names bytes or an array in errors (a path names itself); every problem is a one-line
    :class:`ContrafuseError`.
    """
    if high_bit_rule not in HIGH_BIT_RULES:
        raise ContrafuseError(None, f"unknown high-bit rule {high_bit_rule!r}; choose from {', '.join(HIGH_BIT_RULES)}")
    encoded = None
    if isinstance(image, (str, os.PathLike)):
        where = Path(image)
        encoded = _file_bytes(where)
    elif isinstance(image, (bytes, bytearray, memoryview)):
        where, encoded = label or "image", bytes(image)
    else:
        where = label or "image"
    if encoded is not None:
        if not encoded:
            raise ContrafuseError(where, "the file is empty")
        pixels, from_file = _decode(encoded, where), True
    else:
        pixels, from_file = np.asarray(image), False
    unit = _unit_pixels(pixels, where, high_bit_rule, from_file)
    grey = np.ascontiguousarray(grey_if_neutral(unit), dtype=np.float32).view(UnitImage)
    grey.encoded = encoded
    grey.stored_rgb = grey.ndim < unit.ndim
    if isinstance(image, UnitImage):  # read again: it stays what it was read from
        grey.encoded, grey.stored_rgb = image.encoded, grey.stored_rgb or image.stored_rgb
    return grey


def _file_bytes(path: Path) -> bytes:
    if not path.exists():
        raise ContrafuseError(path, "file not found")
    if path.is_dir():
        raise ContrafuseError(path, "is a folder, expected an image file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ContrafuseError(path, f"cannot read ({exc.strerror or exc})") from None


def _decode(data: bytes, where) -> np.ndarray:
    """The pixels of an encoded image as stored, upright, palette expanded, alpha still attached."""
    limit = max_pixels()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Corrupt EXIF data": the pixels still decode or fail below
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = None  # we apply our own limit below, before decoding
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                if width * height > limit:
                    raise ContrafuseError(
                        where, f"image is {width}x{height} pixels, over the {limit}-pixel limit "
                        "(set CONTRAFUSE_MAX_PIXELS to allow it)")
                if width == 0 or height == 0:
                    raise ContrafuseError(where, "image has zero size")
                turn = orientation(img)
                img.load()
                if orientation(img) == turn:  # Pillow turns a TIFF itself as it loads it, and drops the tag
                    img = upright(img, turn)
                if img.mode in ("P", "PA"):
                    img = img.convert("RGBA" if "transparency" in img.info or img.mode == "PA" else "RGB")
                if img.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
                    img = img.convert("RGB")
                return np.asarray(img)
    except ContrafuseError:
        raise
    except UnidentifiedImageError:
        raise ContrafuseError(where, "not a readable image (unknown or corrupt format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ContrafuseError(where, f"cannot decode image ({exc})") from None


def _unit_pixels(array: np.ndarray, where, high_bit_rule: str, from_file: bool) -> np.ndarray:
    """Pixels (decoded or given) to [0, 1] by their type, alpha dropped; see :func:`read_image`."""
    if array.ndim == 3 and array.shape[2] in (1, 2):  # grey, grey + alpha
        array = array[..., 0]
    elif array.ndim == 3 and array.shape[2] == 4:  # RGB + alpha
        array = array[..., :3]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise ContrafuseError(where, f"expected an (H, W) grey or (H, W, 3) colour image, got shape {array.shape}")
    if array.size == 0:
        raise ContrafuseError(where, "image has zero size")
    if array.dtype == bool:
        return array.astype(np.float32)
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype in (np.uint16, np.int32, np.int16, np.uint32):
        full = 65535.0 if array.max(initial=0) <= 65535 else float(np.iinfo(np.uint32).max)
        return _high_bit_to_unit(array, high_bit_rule, full)
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise ContrafuseError(where, "image holds NaN or infinite values")
        if from_file:
            return _high_bit_to_unit(array, "minmax" if high_bit_rule == "full" else high_bit_rule, 1.0)
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            raise ContrafuseError(where, f"a float array must lie in [0, 1], this one spans {low:.6g}..{high:.6g} "
                                  "(give raw levels as uint8 or uint16)")
        return array.astype(np.float32)
    raise ContrafuseError(where, f"unsupported pixel type {array.dtype}"
                          + ("" if from_file else " (give uint8, uint16, or float in [0, 1])"))


def jpeg_luma(image: np.ndarray) -> np.ndarray | None:
    """The luma plane of the colour JPEG file ``image`` was read from, as the JPEG decoder gives it when
    asked for grey (libjpeg's Y component, without the round trip through RGB: what OpenCV's
    ``imread(path, IMREAD_GRAYSCALE)`` returns), upright, as uint8; ``None`` when ``image`` is not a
    colour image that :func:`read_image` decoded from a JPEG."""
    encoded = getattr(image, "encoded", None)
    if encoded is None or image.ndim != 3:
        return None
    with Image.open(io.BytesIO(encoded)) as img:
        if img.format != "JPEG":
            return None
        turn = orientation(img)
        img.draft("L", img.size)
        if img.mode != "L":  # CMYK, or a layout Pillow decodes only in colour
            return None
        return np.asarray(upright(img, turn))


def grey_if_neutral(image: np.ndarray) -> np.ndarray:
    """An image with channels as ``(H, W)`` grey when its first three are identical, else its first
    three (RGB): how a grey picture stored as colour (a file, a video frame) enters the package."""
    if image.ndim == 3:
        image = image[..., :3]
        if np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 0], image[..., 2]):
            return image[..., 0]
    return image


def orientation(img: Image.Image) -> int:
    """The EXIF orientation of an opened image (1 when absent, unreadable or not one of 1-8)."""
    try:
        value = img.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001  (damaged EXIF: the pixels are shown as stored)
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


#: EXIF orientations that swap width and height
_QUARTER_TURNS = (5, 6, 7, 8)

#: the transposition that shows an image stored with each EXIF orientation upright (as in
#: Pillow's ``ImageOps.exif_transpose``, which misses a TIFF's orientation once the image is loaded)
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}


def upright(img: Image.Image, turn: int | None = None) -> Image.Image:
    """``img`` as a viewer shows it: turned by its EXIF orientation (``turn``, read by
    :func:`orientation` before the image was loaded); unchanged when it is stored upright."""
    turn = orientation(img) if turn is None else turn
    return img.transpose(_UPRIGHT[turn]) if turn in _UPRIGHT else img


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(width, height)`` of an image file as it is shown (EXIF orientation applied), read from
    its header; a one-line error for a file that is not an image."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            width, height = img.size  # a TIFF's is already the turned size
            turned = orientation(img) in _QUARTER_TURNS and img.format != "TIFF"
            return (height, width) if turned else (width, height)
    except FileNotFoundError:
        raise ContrafuseError(path, "file not found") from None
    except UnidentifiedImageError:
        raise ContrafuseError(path, "not a readable image (unknown or corrupt format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ContrafuseError(path, f"cannot read ({getattr(exc, 'strerror', None) or exc})") from None


def to_uint(image: np.ndarray, bits: int = 8) -> np.ndarray:
    """Quantise a [0, 1] image to 8 or 16 bits, halves rounded up (MATLAB's ``im2uint8``): the one
    rounding rule of the package, for written images and for metrics alike."""
    if bits not in (8, 16):
        raise ContrafuseError(None, f"output depth must be 8 or 16 bits, not {bits}")
    top = 255 if bits == 8 else 65535
    dtype = np.uint8 if bits == 8 else np.uint16
    return np.floor(np.clip(np.asarray(image, dtype=np.float64), 0.0, 1.0) * top + 0.5).astype(dtype)


def _default_mode() -> int:
    """File permissions a plain ``open()`` would give (mkstemp creates files as 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def read_yaml_mapping(path: str | os.PathLike) -> dict:
    """A YAML file holding a mapping (configs, splits), or a one-line error naming the file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ContrafuseError(path, "file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ContrafuseError(path, f"not valid YAML{where} ({getattr(exc, 'problem', None) or exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ContrafuseError(path, f"cannot read ({exc})") from None
    if not isinstance(data, dict):
        raise ContrafuseError(path, "must be a YAML mapping of keys to values")
    return data


def atomic_replace(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Give ``tmp`` normal permissions and move it over ``path`` in one step."""
    os.chmod(tmp, _default_mode())
    os.replace(tmp, path)


class OutputError(ContrafuseError):
    """An output that could not be written. ``stops_run``: nothing more can be written there
    (the disk or quota is full, the file system is read-only), so a folder run stops."""

    STOPPING = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}

    def __init__(self, path, exc: OSError):
        self.reason = exc.strerror or str(exc)
        super().__init__(path, f"cannot write here ({self.reason})")
        self.stops_run = exc.errno in self.STOPPING


@contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb"):
    """Write through a temporary file beside ``path``: on success it is flushed to disk and replaces
    ``path`` in one step, so a reader never sees half a file; on failure it is removed, and a
    failure of the file system (disk full, file-size limit, ...) is an :class:`OutputError`."""
    fd, tmp = _temporary_beside(Path(path))
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"newline": ""})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        atomic_replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno is not None:
            raise OutputError(path, exc) from None
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write a text file (CSV, JSON, Markdown) atomically."""
    with atomic_file(path, "w") as handle:
        handle.write(text)
    return Path(path)


def write_csv_atomic(path: str | os.PathLike, rows: list[dict], fieldnames: list[str] | None = None) -> Path:
    """Write dict rows as CSV atomically (columns: ``fieldnames``, or every key in order of appearance)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fieldnames or list(dict.fromkeys(k for row in rows for k in row)))
    writer.writeheader()
    writer.writerows(rows)
    return write_text_atomic(path, buffer.getvalue())


def _temporary_beside(path: Path) -> tuple[int, str]:
    """Create the output's folder and a temporary file in it, or a one-line error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=path.parent)
    except OSError as exc:
        raise OutputError(path, exc) from None


def check_writable(path: str | os.PathLike) -> None:
    """Fail before any work if ``path`` (a file to be written) cannot be created; creates nothing
    (its folders are made when it is written)."""
    path = Path(path)
    if path.is_dir():
        raise ContrafuseError(path, "is a folder; give an output file name such as fused.png")
    _probe_folder(path.parent, path)


def check_output_free(path: str | os.PathLike, inputs=(), *, overwrite: bool = False) -> None:
    """An output never replaces one of its ``inputs`` (whatever ``overwrite`` says), nor, without
    ``overwrite``, any existing file: one-line errors naming it."""
    path = Path(path)
    if not path.exists():
        return
    if any(path.resolve() == Path(source).resolve() for source in inputs):
        raise ContrafuseError(path, "output path is one of the inputs; refusing to overwrite an input")
    if not overwrite:
        raise ContrafuseError(path, "output exists (use --overwrite to replace it)")


def check_folder_writable(folder: str | os.PathLike) -> None:
    """Fail before any work if files cannot be created in ``folder``; creates nothing."""
    _probe_folder(Path(folder), Path(folder))


def _probe_folder(folder: Path, named: Path) -> None:
    """Make, and remove, a test file in ``folder`` or, where it does not exist yet, in its nearest
    existing parent; a failure is a one-line error naming ``named``."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ContrafuseError(named, f"cannot write here ({existing} is a file, not a folder)")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=existing)
    except OSError as exc:
        raise OutputError(named, exc) from None
    os.close(fd)
    os.unlink(tmp)


def check_output_image(path: str | os.PathLike, bits: int = 8, *, colour: bool = False) -> None:
    """Refuse, before any work, an output image that :func:`write_image` could not write: an
    unknown file type, 16 bits outside PNG/TIFF, 16 bits for a colour result."""
    path = Path(path)
    if path.is_dir():
        raise ContrafuseError(path, "is a folder; give an output file name such as fused.png")
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ContrafuseError(path, f"unsupported output type {suffix or '(none)'}; use one of {', '.join(IMAGE_SUFFIXES)}")
    if bits not in (8, 16):
        raise ContrafuseError(path, f"output depth must be 8 or 16 bits, not {bits}")
    if bits == 16 and suffix not in SIXTEEN_BIT_SUFFIXES:
        raise ContrafuseError(path, "16-bit output needs a .png or .tif file name")
    if bits == 16 and colour:
        raise ContrafuseError(path, "16-bit output is supported for grey images only; this result is colour "
                              "(use 8 bits)")


def write_image(path: str | os.PathLike, image: np.ndarray, *, bits: int = 8,
                overwrite: bool = False) -> Path:
    """Write a [0, 1] grey or RGB image atomically. 16-bit output is grey PNG/TIFF only."""
    path = Path(path)
    if path.is_dir():
        raise ContrafuseError(path, "is a folder; give an output file name such as fused.png")
    check_output_free(path, overwrite=overwrite)
    suffix = path.suffix.lower()
    check_output_image(path, bits, colour=np.ndim(image) == 3)
    pil = Image.fromarray(to_uint(image, bits))  # 16 bits: mode I;16
    # zlib level 1 for PNG (as OpenCV's default): a quarter of the encoding time of Pillow's
    # default level 6 for files about 5 % larger (RoadScene fusions, measured)
    options = {"compress_level": 1} if suffix == ".png" else {}
    with atomic_file(path) as handle:
        pil.save(handle, format=Image.registered_extensions()[suffix], **options)
    return path


# ---------------------------------------------------------------------------------------------
# Colour: full-range BT.601 YCbCr (JPEG / ITU-T T.871, as OpenCV's COLOR_RGB2YCrCb), on [0, 1].

_RGB_TO_YCBCR = np.array([[0.299, 0.587, 0.114],
                          [-0.168736, -0.331264, 0.5],
                          [0.5, -0.418688, -0.081312]], dtype=np.float64)
_YCBCR_TO_RGB = np.linalg.inv(_RGB_TO_YCBCR)


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] to Y, Cb, Cr in [0, 1] (chroma offset by 0.5)."""
    ycc = rgb.astype(np.float64) @ _RGB_TO_YCBCR.T
    ycc[..., 1:] += 0.5
    return ycc.astype(np.float32)


#: how :func:`ycbcr_to_rgb` treats a (fused Y, source chroma) pair outside the RGB cube
RECOLOUR_RULES = {
    "keep_luma": "scale the chroma toward grey just enough to fit, so the fused luma is kept exactly",
    "clip": "keep luma and chroma, clip each RGB channel (the papers' 'other two channels remain unchanged')",
}


def ycbcr_to_rgb(ycc: np.ndarray, rule: str = "keep_luma") -> np.ndarray:
    """Inverse of :func:`rgb_to_ycbcr` into [0, 1]. Where Y and the chroma together leave the RGB
    cube (a fused Y brighter or darker than the source the chroma came from): ``keep_luma`` scales
    the chroma toward grey just enough to fit, so the result keeps its luma Y exactly; ``clip``
    keeps Y, Cb and Cr as they are and clips each RGB channel, as an inverse conversion to 8-bit RGB
    does (the papers' "other two channels remain unchanged")."""
    if rule not in RECOLOUR_RULES:
        raise ValueError(f"unknown recolour rule {rule!r}; known: {', '.join(RECOLOUR_RULES)}")
    ycc = ycc.astype(np.float64)
    luma = np.clip(ycc[..., :1], 0.0, 1.0)
    offset = (ycc[..., 1:] - 0.5) @ _YCBCR_TO_RGB[:, 1:].T  # RGB minus luma, per channel
    if rule == "clip":
        return np.clip(ycc[..., :1] + offset, 0.0, 1.0).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.where(offset > 0, (1.0 - luma) / offset, np.where(offset < 0, luma / -offset, np.inf))
    scale = np.minimum(room.min(axis=-1, keepdims=True), 1.0)
    return np.clip(luma + scale * offset, 0.0, 1.0).astype(np.float32)


def luminance(image: np.ndarray) -> np.ndarray:
    """The Y channel of a colour image, or the image itself if grey."""
    return image if image.ndim == 2 else rgb_to_ycbcr(image)[..., 0]


def merge_chroma(cb_cr: list[np.ndarray]) -> np.ndarray:
    """Combine the chroma of several colour sources, each ``(H, W, 2)`` offset by 0.5.

    One source: its chroma. Several: the per-pixel average weighted by each source's
    distance from neutral grey, the usual rule for fusing two colour images (e.g. multi-focus).
    """
    if len(cb_cr) == 1:
        return cb_cr[0]
    stack = np.stack(cb_cr)
    weight = np.abs(stack - 0.5)
    total = weight.sum(axis=0)
    merged = np.where(total > 0, (stack * weight).sum(axis=0) / np.maximum(total, 1e-12), 0.5)
    return merged.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Folder pairing.

@dataclass(frozen=True)
class ImagePair:
    name: str
    first: Path
    second: Path


def list_images(folder: str | os.PathLike) -> dict[str, Path]:
    """Map base name to path for every image file directly inside ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ContrafuseError(folder, "folder not found" if not folder.exists() else "not a folder")
    found: dict[str, Path] = {}
    suffixes = set(readable_suffixes())
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        raise ContrafuseError(folder, f"cannot list the folder ({exc.strerror or exc})") from None
    for entry in entries:
        if entry.suffix.lower() in suffixes and not entry.name.startswith(".") and entry.is_file():
            if entry.stem in found:
                raise ContrafuseError(entry, f"two images share the base name {entry.stem!r} ({found[entry.stem].name})")
            found[entry.stem] = entry
    return found


def pair_folders(first: str | os.PathLike, second: str | os.PathLike) -> list[ImagePair]:
    """Pair the images of two folders by base name (``ir/foo.png`` with ``vis/foo.jpg``).

    Raises when a folder is missing or holds no images, or when no name has a partner. Names with
    no partner are left out; :func:`unmatched_names` lists them for the caller to report.
    """
    a, b = _listed(first), _listed(second)
    pairs = [ImagePair(name, a[name], b[name]) for name in sorted(set(a) & set(b))]
    if not pairs:
        raise ContrafuseError(None, f"no image name appears in both {first} and {second}")
    return pairs


def unmatched_names(first: str | os.PathLike, second: str | os.PathLike) -> list[str]:
    """One line per image of either folder that has no partner of the same base name."""
    a, b = _listed(first), _listed(second)
    return ([f"{a[n]}: no image named {n}.* in {second}" for n in sorted(set(a) - set(b))]
            + [f"{b[n]}: no image named {n}.* in {first}" for n in sorted(set(b) - set(a))])


def _listed(folder: str | os.PathLike) -> dict[str, Path]:
    found = list_images(folder)
    if not found:
        raise ContrafuseError(folder, "folder holds no images (.png, .jpg, .tif, .bmp, .gif, .webp, ... files)")
    return found
