"""The 13 metrics of the VIFB benchmark, reproducing its MATLAB code (xingchenzhang/VIFB,
``metrics/metrics*.m``) including its quirks, so that numbers compare with VIFB's tables.

Inputs are the images *as read* (uint8 arrays, ``(H, W)`` or ``(H, W, 3)``) in the order every
metric of contrafuse takes them: infrared, visible, fused (VIFB's own functions take the visible
image first; the per-channel loop below keeps its order inside). Colour handling is VIFB's: when the fused image has three channels, each metric is
computed per channel (visible channel k, infrared channel k or the grey infrared, fused channel
k) and averaged; Spatial_frequency instead runs on the three channels laid side by side (MATLAB's
``size`` collapses them), Edge_intensity averages the Sobel magnitude over all channels.
Quirks kept on purpose (see docs/metrics.md): PSNR and RMSE use ``sqrt(sum((a-b)^2))/(M N)`` in
place of the mean squared error; MI is in nats after min-max normalisation; SSIM is the *sum* over
the two sources; Qcb and Qcv rescale images to 0..255 integers first.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import fft as sfft
from scipy.signal import convolve2d

from .common import (entropy_of, float_image, freqspace_meshgrid, histogram256, matlab_round, normalize1, shared,
                     sobel_filter2)
from .gradient import SOBEL_SX, SOBEL_SY, conv2_sobel, qabf_from_sobel
from .similarity import ssim_pair


def _channels(vis: np.ndarray, ir: np.ndarray, fused: np.ndarray):
    """VIFB's per-channel loop: yields (vis_k, ir_k, fused_k) as float64 2-D arrays."""
    vis, ir, fused = (float_image(a) for a in (vis, ir, fused))
    if fused.ndim == 2:
        yield _grey(vis), _grey(ir), fused
        return
    for k in range(fused.shape[2]):
        yield (vis[..., k] if vis.ndim == 3 else vis,
               ir[..., k] if ir.ndim == 3 else ir, fused[..., k])


def _grey(image: np.ndarray) -> np.ndarray:
    """MATLAB rgb2gray on double data (no rounding)."""
    if image.ndim == 2:
        return image
    return image[..., :3] @ np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])


def _per_channel(func, vis, ir, fused) -> float:
    return float(np.mean([func(v, i, f) for v, i, f in _channels(vis, ir, fused)]))


# --- single-channel definitions -----------------------------------------------------------------

def _entropy(v, i, f):
    return entropy_of(histogram256(f))


def _cross_entropy(v, i, f):
    def ce(a, b):
        pa, pb = histogram256(a), histogram256(b)
        both = (pa > 0) & (pb > 0)
        return float((pa[both] * np.log2(pa[both] / pb[both])).sum())
    return (ce(v, f) + ce(i, f)) / 2


def _mutinf_nats(a, b):
    def scale(x):
        lo, hi = x.min(), x.max()
        x = (x - lo) / (hi - lo) if hi != lo else np.zeros_like(x)
        return matlab_round(x * 255).astype(np.int64)
    ia, ib = scale(a).ravel(), scale(b).ravel()
    joint = np.bincount(ia * 256 + ib, minlength=65536).astype(np.float64) / ia.size
    pa, pb = joint.reshape(256, 256).sum(1), joint.reshape(256, 256).sum(0)
    return entropy_of(pa, np.e) + entropy_of(pb, np.e) - entropy_of(joint, np.e)


def _mutinf(v, i, f):
    return _mutinf_nats(v, f) + _mutinf_nats(i, f)


def _root_sum_sq(a, b):
    return np.sqrt(((a - b) ** 2).sum()) / a.size


def _psnr(v, i, f):
    mes = (_root_sum_sq(v, f) + _root_sum_sq(i, f)) / 2
    return 20 * np.log10(255 / np.sqrt(mes))


def _rmse(v, i, f):
    return (_root_sum_sq(v, f) + _root_sum_sq(i, f)) / 2


def _ssim(v, i, f):
    return ssim_pair(v, f) + ssim_pair(i, f)


def _variance(v, i, f):
    return float(np.sqrt(((f - f.mean()) ** 2).sum() / f.size))


def _qabf_sobel(image):
    """The Qabf code's ``conv2`` Sobel responses of ``image`` scaled by 255 (its ``im2double`` of
    doubles): exact integer sums for integer images, else summed in scipy's ``convolve2d`` order."""
    image = image * 255
    if np.array_equal(image, np.round(image)):
        return conv2_sobel(image)
    return convolve2d(image, SOBEL_SX, mode="same"), convolve2d(image, SOBEL_SY, mode="same")


def _qabf(v, i, f):
    return qabf_from_sobel(_qabf_sobel(v), _qabf_sobel(i), _qabf_sobel(f))


@functools.lru_cache(maxsize=2)
def _qcb_filters(rows: int, cols: int):
    """Qcb's contrast sensitivity filter (DC at [0, 0]), the padded FFT size and the spectra of its
    two 31 x 31 Gaussians there, per image size (read-only)."""
    f0, f1, a = 15.3870, 1.3456, 0.7622
    u, v = freqspace_meshgrid(rows, cols)
    u, v = (cols / 30) * u, (rows / 30) * v
    r = np.sqrt(u**2 + v**2)
    sd = np.exp(-(r / f0) ** 2) - a * np.exp(-(r / f1) ** 2)
    # 31x31 unnormalised Gaussians exp(-(x^2+y^2)/(2 s^2))/(2 pi s^2), applied separably
    taps = np.arange(-15, 16)
    g1, g2 = (np.exp(-taps**2 / (2 * s * s)) / np.sqrt(2 * np.pi * s * s) for s in (2.0, 4.0))
    # filter2(G, x, 'same') with zero padding, for both Gaussians at once, by FFT (31 x 31 kernels)
    shape = (sfft.next_fast_len(rows + 30), sfft.next_fast_len(cols + 30))
    kernels = [sfft.fft2(np.outer(g, g), shape) for g in (g1, g2)]  # symmetric: correlation = convolution
    return np.fft.ifftshift(sd), shape, kernels


def _qcb_contrast(image: np.ndarray) -> np.ndarray:
    """Qcb's masked contrast map of one image: ``normalize1``, the contrast sensitivity filter,
    then ``C^p / (C^q + Z)`` of the local contrast C (two Gaussians' ratio); shared within an
    evaluation (the standard and VIFB definitions see the same images)."""
    def compute():
        p, q, z = 3.0, 2.0, 0.0001
        rows, cols = image.shape
        sd, shape, kernels = _qcb_filters(rows, cols)
        # the code's ifftshift(fftshift(F) .* sd), with sd shifted once instead
        filtered = np.fft.ifft2(np.fft.fft2(normalize1(image)) * sd)
        spectrum = sfft.fft2(filtered, shape)
        f1, f2 = (sfft.ifft2(spectrum * k)[15:15 + rows, 15:15 + cols] for k in kernels)
        with np.errstate(invalid="ignore", divide="ignore"):
            c = np.abs(f1 / f2 - 1)
        return c**p / (c**q + z)
    return shared("qcb_contrast", image, compute=compute)


def qcb(im1, im2, fused) -> float:
    """Chen-Blum metric (Image Vis. Comput. 27, 2009) as in Z. Liu's / VIFB's code."""
    c1p, c2p, cfp = (_qcb_contrast(x) for x in (im1, im2, fused))
    with np.errstate(divide="ignore", invalid="ignore"):
        q1f = np.where(c1p < cfp, c1p / cfp, cfp / c1p)
        q2f = np.where(c2p < cfp, c2p / cfp, cfp / c2p)
        denom = c1p * c1p + c2p * c2p
        quality = (c1p * c1p / denom) * q1f + (c2p * c2p / denom) * q2f
    return float(np.mean(quality))


def _blocks(image: np.ndarray, size: int = 16) -> np.ndarray:
    """blkproc's zero-padded non-overlapping blocks, shape (nblocks, size*size)."""
    rows, cols = image.shape
    pr, pc = -rows % size, -cols % size
    padded = np.pad(image, ((0, pr), (0, pc)))
    r, c = padded.shape
    return padded.reshape(r // size, size, c // size, size).transpose(0, 2, 1, 3).reshape(-1, size * size)


@functools.lru_cache(maxsize=2)
def _qcv_filter(rows: int, cols: int) -> np.ndarray:
    """Qcv's contrast sensitivity filter (DC at [0, 0]) per image size (read-only)."""
    u, v = freqspace_meshgrid(rows, cols)
    u, v = (cols / 8) * u, (rows / 8) * v
    r = np.sqrt(u**2 + v**2)
    return np.fft.ifftshift(2.6 * (0.0192 + 0.144 * r) * np.exp(-((0.144 * r) ** 1.1)))


def qcv(im1, im2, fused) -> float:
    """Chen-Varshney metric (Inf. Fusion 8, 2007) as in Z. Liu's / VIFB's code (lower is better);
    each source's saliency and its CSF-filtered difference to the fused image shared within an
    evaluation."""
    alpha, window = 5, 16

    def saliency(source):  # filter2 with the Sobel kernels: exact on normalize1's integers
        def compute():
            gx, gy = sobel_filter2(normalize1(source))
            return (_blocks(np.sqrt(gx * gx + gy * gy), window) ** alpha).sum(1)
        return shared("qcv_saliency", source, compute=compute)

    def distortion(source):  # the code's ifftshift(fftshift(F) .* theta_m), the filter shifted once instead
        def compute():
            diff = normalize1(source) - normalize1(fused)
            error = np.fft.ifft2(np.fft.fft2(diff) * _qcv_filter(*diff.shape))
            return (_blocks(error, window) ** 2).mean(1)
        return shared("qcv_distortion", source, fused, compute=compute)

    ramda1, ramda2 = saliency(im1), saliency(im2)
    d1, d2 = distortion(im1), distortion(im2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.real((ramda1 * d1 + ramda2 * d2).sum() / (ramda1 + ramda2).sum()))


# --- whole-image definitions --------------------------------------------------------------------

def avg_gradient(ir, vis, fused) -> float:
    fused = np.asarray(fused, dtype=np.float64)
    bands = fused[..., None] if fused.ndim == 2 else fused
    rows, cols = bands.shape[:2]
    values = []
    for k in range(bands.shape[2]):
        dy, dx = np.gradient(bands[..., k])
        values.append(np.sqrt((dx**2 + dy**2) / 2).sum() / ((rows - 1) * (cols - 1)))
    return float(np.mean(values))


def edge_intensity(ir, vis, fused) -> float:
    from scipy import ndimage
    fused = np.asarray(fused, dtype=np.float64)
    bands = fused[..., None] if fused.ndim == 2 else fused
    w = np.array([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]])
    mags = [np.sqrt(ndimage.correlate(bands[..., k], w, mode="nearest") ** 2
                    + ndimage.correlate(bands[..., k], w.T, mode="nearest") ** 2) for k in range(bands.shape[2])]
    return float(np.mean(mags))


def spatial_frequency(ir, vis, fused) -> float:
    fused = np.asarray(fused, dtype=np.float64)
    if fused.ndim == 3:  # MATLAB [m, n] = size(A) on an m x n x 3 array gives n = 3 * columns
        fused = np.concatenate([fused[..., k] for k in range(fused.shape[2])], axis=1)
    m, n = fused.shape
    rf = ((fused[:, 1:] - fused[:, :-1]) ** 2).sum() / (m * n)
    cf = ((fused[1:, :] - fused[:-1, :]) ** 2).sum() / (m * n)
    return float(np.sqrt(rf + cf))


# --- VIFB's metrics as functions of (ir, vis, fused) as read, colour handled VIFB's way ---------
# (contrafuse.metrics.METRICS names each by its VIFB column)

def _each_channel(func):
    return lambda ir, vis, fused: _per_channel(func, vis, ir, fused)


cross_entropy = _each_channel(_cross_entropy)
entropy = _each_channel(_entropy)
mutual_information = _each_channel(_mutinf)
psnr = _each_channel(_psnr)
qabf_per_channel = _each_channel(_qabf)
qcb_per_channel = _each_channel(qcb)
qcv_per_channel = _each_channel(qcv)
rmse = _each_channel(_rmse)
ssim_sum = _each_channel(_ssim)
variance = _each_channel(_variance)
