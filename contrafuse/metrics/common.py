"""Shared helpers for metrics: input validation, MATLAB-compatible rounding and filters."""

from __future__ import annotations

import contextlib
import contextvars
import threading

import numba
import numpy as np
from scipy import ndimage

from ..errors import ContrafuseError


def check_size(name: str, height: int, width: int, min_size: int) -> None:
    """A one-line error when an image side is below what metric ``name`` needs."""
    if min(height, width) < min_size:
        raise ContrafuseError(None, f"{name}: images of {width}x{height} are too small "
                              f"(needs at least {min_size}x{min_size})")


def check_images(*images: np.ndarray, min_size: int = 1, name: str = "metric") -> list[np.ndarray]:
    """Validate same-size 2-D images (float64 copies). Raises a clear error when too small."""
    out = []
    shape = None
    for image in images:
        array = np.asarray(image, dtype=np.float64)
        if array.ndim != 2:
            raise ContrafuseError(None, f"{name}: expected 2-D grey images, got shape {array.shape}")
        if shape is not None and array.shape != shape:
            raise ContrafuseError(None, f"{name}: image sizes differ ({shape} vs {array.shape})")
        check_size(name, *array.shape, min_size)
        if not np.isfinite(array).all():
            raise ContrafuseError(None, f"{name}: images contain NaN or infinite values")
        shape = array.shape
        out.append(array)
    return out


def float_image(image: np.ndarray) -> np.ndarray:
    """``image`` as float64, one array per input array within an evaluation (so that metrics given
    the same pixels share their intermediates, which :func:`shared` keys by array identity)."""
    if isinstance(image, np.ndarray) and image.dtype == np.float64:
        return image
    return shared("float64", image, compute=lambda: np.asarray(image, dtype=np.float64))


def matlab_round(x: np.ndarray) -> np.ndarray:
    """MATLAB's round: halves away from zero (NumPy rounds halves to even)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def separable_filter2(kernel_1d: np.ndarray, image: np.ndarray, mode: str = "same") -> np.ndarray:
    """``filter2(outer(k, k), image, mode)`` for a symmetric separable kernel in two 1-D passes:
    ``mode`` "same" (zero padding), "valid", or "replicate" (``imfilter``'s replicated borders,
    full size). Complex images are filtered part by part. Each output is summed as
    ``scipy.ndimage.correlate1d`` sums it (centre first, then the outermost pair of taps inwards),
    so the results equal its bit for bit, at about twice its speed."""
    if np.iscomplexobj(image):
        return separable_filter2(kernel_1d, image.real, mode) + 1j * separable_filter2(kernel_1d, image.imag, mode)
    kernel_1d = np.asarray(kernel_1d, dtype=np.float64)
    half = len(kernel_1d) // 2
    if len(kernel_1d) % 2 == 0 or not np.array_equal(kernel_1d, kernel_1d[::-1]):
        raise ValueError("separable_filter2 needs a symmetric kernel of odd length")
    image = np.asarray(image, dtype=np.float64)
    if mode == "same":
        image = np.pad(image, half)
    elif mode == "replicate":
        image = np.pad(image, half, mode="edge")
    elif mode != "valid":
        raise ValueError(f"mode must be 'same', 'valid' or 'replicate', not {mode!r}")
    if min(image.shape) <= 2 * half:
        return np.zeros((max(image.shape[0] - 2 * half, 0), max(image.shape[1] - 2 * half, 0)))
    return _symmetric_filter_valid(image, kernel_1d)


@numba.njit(cache=True, nogil=True)
def _symmetric_filter_valid(x, w):
    """The 'valid' part of the separable correlation with the symmetric ``w``: down the columns,
    then along the rows, one output row at a time."""
    h = len(w) // 2
    rows, cols = x.shape[0] - 2 * h, x.shape[1] - 2 * h
    line = np.empty(x.shape[1])
    out = np.empty((rows, cols))
    centre = w[h]
    for i in range(rows):
        c = i + h
        for j in range(x.shape[1]):
            line[j] = x[c, j] * centre
        for k in range(h, 0, -1):
            wk = w[h - k]
            for j in range(x.shape[1]):
                line[j] += (x[c - k, j] + x[c + k, j]) * wk
        for j in range(cols):
            out[i, j] = line[j + h] * centre
        for k in range(h, 0, -1):
            wk = w[h - k]
            for j in range(cols):
                out[i, j] += (line[j + h - k] + line[j + h + k]) * wk
    return out


def box_sums(u: np.ndarray, size: int) -> np.ndarray:
    """Sums over every ``size`` x ``size`` window inside an integer-valued image (exact while the
    sums stay below 2^53): running sums down the columns, then along the rows."""
    return _box_sums(np.ascontiguousarray(u, dtype=np.float64), size)


@numba.njit(cache=True, nogil=True)
def _box_sums(u, size):
    rows, cols = u.shape[0] - size + 1, u.shape[1] - size + 1
    column = np.zeros(u.shape[1])
    out = np.empty((max(rows, 0), max(cols, 0)))
    for i in range(size - 1):
        for j in range(u.shape[1]):
            column[j] += u[i, j]
    for i in range(rows):
        for j in range(u.shape[1]):
            column[j] += u[i + size - 1, j]
        total = 0.0
        for j in range(size - 1):
            total += column[j]
        for j in range(cols):
            total += column[j + size - 1]
            out[i, j] = total
            total -= column[j]
        for j in range(u.shape[1]):
            column[j] -= u[i, j]
    return out


def gaussian_1d(size: int, sigma: float) -> np.ndarray:
    """1-D factor of MATLAB ``fspecial('gaussian', size, sigma)`` (its outer product with itself)."""
    half = (size - 1) / 2
    g = np.exp(-(np.arange(-half, half + 1) ** 2) / (2 * sigma * sigma))
    return g / g.sum()


def freqspace_meshgrid(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB ``freqspace([rows, cols], 'meshgrid')``: normalised frequencies, DC at floor(n/2)."""
    f1 = (np.arange(cols) - np.floor(cols / 2)) * (2.0 / cols)
    f2 = (np.arange(rows) - np.floor(rows / 2)) * (2.0 / rows)
    return np.meshgrid(f1, f2)


def sobel_xy(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal and vertical Sobel responses by correlation, replicated borders."""
    kx = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    return ndimage.correlate(image, kx, mode="nearest"), ndimage.correlate(image, kx.T, mode="nearest")


def sobel_filter2(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB ``filter2([-1 0 1; -2 0 2; -1 0 1], x, 'same')`` and its transpose: Sobel by
    correlation with zero padding (exact on integer images); shared within one evaluation."""
    def compute():
        x = np.pad(image, 1)
        n = image.shape[1]
        col = x[:-2] + 2 * x[1:-1] + x[2:]
        row = x[:, :n] + 2 * x[:, 1:n + 1] + x[:, 2:]
        return col[:, 2:] - col[:, :n], row[2:] - row[:-2]
    return shared("sobel_filter2", image, compute=compute)


def normalize1(data: np.ndarray) -> np.ndarray:
    """Z. Liu's ``normalize1`` (also in VIFB's Qcb/Qcv): min-max to 0..255, rounded (halves away
    from zero); an all-zero image is kept; any other constant image becomes NaN (0/0), as in MATLAB."""
    lo, hi = data.min(), data.max()
    if lo == 0 and hi == 0:
        return data
    with np.errstate(invalid="ignore", divide="ignore"):
        return matlab_round((data - lo) / (hi - lo) * 255)


def histogram256(values: np.ndarray) -> np.ndarray:
    """Probability of each integer level 0..255 (values are floored and clipped)."""
    levels = np.clip(np.floor(values), 0, 255).astype(np.int64).ravel()
    return np.bincount(levels, minlength=256) / levels.size


def entropy_of(p: np.ndarray, base: float = 2.0) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum() / np.log(base))


# ------------------------------------------------------------------------------------------------
# intermediate results shared within one evaluate() call (Sobel maps, histograms, filtered moments,
# pyramids, FMI features ...): keyed by the identity of the input arrays, which evaluate() keeps
# alive for the duration of the call

_SHARED: contextvars.ContextVar[dict | None] = contextvars.ContextVar("contrafuse_metric_cache", default=None)


class _Store(dict):
    """Results by key, and a lock under which a key is claimed (one thread computes, others wait)."""

    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()


@contextlib.contextmanager
def sharing():
    """Within this block (and in tasks wrapped by :func:`in_this_context`), :func:`shared` computes
    each intermediate once. Nested blocks reuse the outer store."""
    if _SHARED.get() is not None:
        yield
        return
    token = _SHARED.set(_Store())
    try:
        yield
    finally:
        _SHARED.reset(token)


def in_this_context(func):
    """``func`` bound to a copy of the caller's context: hand the result to another thread and
    :func:`shared` there uses the caller's store (one copy per task: a context runs in one thread)."""
    context = contextvars.copy_context()
    return lambda *args: context.run(func, *args)


def shared(name: str, *arrays, compute, params=()):
    """``compute()`` once per (name, input arrays, params) inside :func:`sharing`, else every call.
    ``arrays`` are the inputs the result depends on (compared by identity, and kept alive with the
    result). Thread-safe: a second thread asking for a result being computed waits for it."""
    store = _SHARED.get()
    if store is None:
        return compute()
    key = (name, tuple(id(a) for a in arrays), params)
    with store.lock:
        entry = store.get(key)
        if entry is None:
            entry = store[key] = [threading.Event(), None, arrays]
            owner = True
        else:
            owner = False
    if owner:
        try:
            entry[1] = compute()
        except BaseException as error:
            entry[1] = error
            raise
        finally:
            entry[0].set()
    else:
        entry[0].wait()
    if isinstance(entry[1], BaseException):
        raise entry[1]
    return entry[1]
