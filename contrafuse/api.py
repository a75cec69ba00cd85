"""Python API: ``contrafuse.fuse(ir, vis, method=...)``."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from PIL import Image

from .errors import ContrafuseError
from .io import luminance, merge_chroma, read_image, rgb_to_ycbcr, ycbcr_to_rgb
from .methods import DEFAULT_METHOD, FusionMethod, create_method


#: The Python API's name for :func:`contrafuse.io.read_image`, the one way a path, a file's bytes or an
#: array becomes a [0, 1] image.
as_unit_image = read_image


def resize_to(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bicubic resize of a [0, 1] image to ``shape`` = (H, W), per channel."""
    height, width = shape
    if image.ndim == 2:
        out = Image.fromarray(image.astype(np.float32), mode="F").resize((width, height), Image.BICUBIC)
        return np.clip(np.asarray(out), 0.0, 1.0).astype(np.float32)
    return np.stack([resize_to(image[..., c], shape) for c in range(image.shape[2])], axis=-1)


#: How a size mismatch is resolved, in each caller's words (``hint`` of :func:`match_sizes`).
RESIZE_HINT_CLI = "pass --resize ir or --resize vis to resample one"
RESIZE_HINT_PYTHON = "pass resize='ir' or resize='vis' to resample one"


def match_sizes(first: np.ndarray, second: np.ndarray, *, resize: str | None,
                labels: tuple[str, str] = ("ir", "vis"), hint: str = RESIZE_HINT_PYTHON,
                register: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Equal sizes pass; ``resize="ir"`` resamples the first to the second, ``"vis"`` the
    second to the first; otherwise a size mismatch raises, naming both inputs and ending with
    ``hint`` (the command line's, the web API's or the Python API's way to resample).
    ``register`` (``"affine"`` or ``"homography"``) instead warps the first onto the second's grid,
    whatever the sizes, by the transform :func:`contrafuse.registration.register` estimates."""
    if register is not None:
        if resize is not None:
            raise ContrafuseError(None, "register and resize exclude each other (registration resamples the "
                                  "infrared image onto the visible one's grid)")
        from .registration import register as register_onto

        return register_onto(first, second, register, labels=labels).image, second
    if first.shape[:2] == second.shape[:2]:
        return first, second
    if resize == "ir":
        return resize_to(first, second.shape[:2]), second
    if resize == "vis":
        return first, resize_to(second, first.shape[:2])
    if resize is not None:
        raise ContrafuseError(None, f"resize must be 'ir' or 'vis', not {resize!r}")
    (h1, w1), (h2, w2) = first.shape[:2], second.shape[:2]
    raise ContrafuseError(labels[0], f"size {w1}x{h1} differs from {labels[1]} ({w2}x{h2}); {hint}")


def read_sources(ir, vis, *, resize: str | None = None, high_bit_rule: str = "minmax",
                 labels: tuple[str, str] | None = None, hint: str = RESIZE_HINT_PYTHON,
                 register: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The one way sources come in: two paths, files' bytes or arrays read as [0, 1] images (see
    :func:`contrafuse.io.read_image`) and brought to one size, or registered (:func:`match_sizes`);
    ``labels`` name them in errors."""
    labels = labels or (str(ir) if isinstance(ir, (str, os.PathLike)) else "ir",
                        str(vis) if isinstance(vis, (str, os.PathLike)) else "vis")
    first = read_image(ir, label=labels[0], high_bit_rule=high_bit_rule)
    second = read_image(vis, label=labels[1], high_bit_rule=high_bit_rule)
    return match_sizes(first, second, resize=resize, labels=labels, hint=hint, register=register)


def load_pair(pair, *, resize: str | None = "ir", high_bit_rule: str = "minmax") -> tuple[np.ndarray, np.ndarray]:
    """Read a pair (anything with ``first`` and ``second`` paths) as [0, 1] images of one size;
    by default the first (infrared) is resampled to the second's size when they differ."""
    return read_sources(pair.first, pair.second, resize=resize, high_bit_rule=high_bit_rule)


def fuse_images(first: np.ndarray, second: np.ndarray, method: FusionMethod,
                labels: tuple[str, str] = ("ir", "vis")) -> np.ndarray:
    """Fuse two same-size [0, 1] images; colour sources are fused on Y and their CbCr re-attached,
    unless the method fuses RGB itself (a grey source then enters as three equal channels)."""
    method.check_inputs(first, second, labels)
    if method.fuses_rgb:
        fused = method.fuse_rgb(*(img if img.ndim == 3 else np.dstack([img] * 3) for img in (first, second)))
        return fused if first.ndim == 3 or second.ndim == 3 else luminance(fused)
    fused_y = method.fuse_luma(first, second)
    colour = [rgb_to_ycbcr(img)[..., 1:] for img in (first, second) if img.ndim == 3]
    if not colour:
        return fused_y
    return ycbcr_to_rgb(np.dstack([fused_y, merge_chroma(colour)]), rule=method.recolour)


def fuse(ir, vis, method: str | FusionMethod | None = None, *, resize: str | None = None,
         high_bit_rule: str = "minmax", register: str | None = None, **options: Any) -> np.ndarray:
    """Fuse an infrared (or functional / first) image with a visible (or structural / second) one.

    ``ir`` and ``vis`` are file paths, files' bytes or arrays, read by one rule
    (:func:`contrafuse.io.read_image`): uint8 is 8-bit, uint16 16-bit mapped by ``high_bit_rule``
    as a 16-bit file is, float arrays must lie in [0, 1]; a path and the array it holds give the same
    result. Returns a
    float32 array in [0, 1]: grey, or RGB when either input is colour. ``method`` is a registered
    name (see ``contrafuse methods``) or a :class:`FusionMethod`; extra keyword ``options`` go
    to the method's constructor. ``register="affine"`` or ``"homography"`` first registers ``ir``
    onto ``vis`` (:mod:`contrafuse.registration`; sizes may differ), refusing a pair it cannot register.
    """
    if register is not None:
        from .registration import check_motion

        check_motion(register)
    labels = (str(ir) if isinstance(ir, (str, os.PathLike)) else "ir",
              str(vis) if isinstance(vis, (str, os.PathLike)) else "vis")
    first, second = read_sources(ir, vis, resize=resize, high_bit_rule=high_bit_rule, labels=labels,
                                 register=register)
    if not isinstance(method, FusionMethod):
        method = create_method(method or DEFAULT_METHOD, **options)
    return fuse_images(first, second, method, labels)
