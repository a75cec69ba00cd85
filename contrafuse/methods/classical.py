"""Classical fusion baselines: average, maximum, Laplacian pyramid, DWT and guided filtering (GFF)."""

from __future__ import annotations

import numpy as np

from .base import FusionMethod, register_method


def _choose_max_abs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per coefficient, keep the one of larger magnitude (ties: their mean)."""
    return np.where(np.abs(a) > np.abs(b), a, np.where(np.abs(a) < np.abs(b), b, 0.5 * (a + b)))


@register_method("average")
class Average(FusionMethod):
    description = "pixel-wise mean of the two sources"

    def fuse_grey(self, first, second):
        return (0.5 * (first + second)).astype(np.float32)


@register_method("maximum")
class Maximum(FusionMethod):
    description = "pixel-wise maximum of the two sources"

    def fuse_grey(self, first, second):
        return np.maximum(first, second).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Laplacian pyramid (Burt & Adelson 1983): average the coarsest level, max-abs for the details.

_BURT_KERNEL = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def _blur(image: np.ndarray) -> np.ndarray:
    from scipy import ndimage
    out = ndimage.correlate1d(image, _BURT_KERNEL, axis=0, mode="reflect")
    return ndimage.correlate1d(out, _BURT_KERNEL, axis=1, mode="reflect")


def _pyr_down(image: np.ndarray) -> np.ndarray:
    return _blur(image)[::2, ::2]


def _pyr_up(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    up = np.zeros(shape, dtype=np.float64)
    up[::2, ::2] = image
    return 4.0 * _blur(up)


def laplacian_pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    """Band-pass levels, finest first, then the low-pass residual; exact reconstruction."""
    pyramid, current = [], image.astype(np.float64)
    for _ in range(levels):
        smaller = _pyr_down(current)
        pyramid.append(current - _pyr_up(smaller, current.shape))
        current = smaller
    pyramid.append(current)
    return pyramid


def collapse_pyramid(pyramid: list[np.ndarray]) -> np.ndarray:
    current = pyramid[-1]
    for band in reversed(pyramid[:-1]):
        current = band + _pyr_up(current, band.shape)
    return current


@register_method("laplacian")
class LaplacianPyramid(FusionMethod):
    description = "Laplacian pyramid: mean of the low-pass level, larger-magnitude band-pass coefficients"

    def __init__(self, levels: int = 4):
        self.levels = levels

    def fuse_grey(self, first, second):
        levels = max(1, min(self.levels, int(np.log2(min(first.shape))) - 2))
        pa, pb = laplacian_pyramid(first, levels), laplacian_pyramid(second, levels)
        fused = [_choose_max_abs(a, b) for a, b in zip(pa[:-1], pb[:-1])]
        fused.append(0.5 * (pa[-1] + pb[-1]))
        return np.clip(collapse_pyramid(fused), 0.0, 1.0).astype(np.float32)


@register_method("dwt")
class DiscreteWavelet(FusionMethod):
    description = "discrete wavelet transform (PyWavelets): mean approximation, larger-magnitude details"

    def __init__(self, wavelet: str = "db2", levels: int = 3):
        self.wavelet, self.levels = wavelet, levels

    def fuse_grey(self, first, second):
        import pywt
        levels = max(1, min(self.levels, pywt.dwt_max_level(min(first.shape), self.wavelet)))
        ca = pywt.wavedec2(first.astype(np.float64), self.wavelet, level=levels, mode="symmetric")
        cb = pywt.wavedec2(second.astype(np.float64), self.wavelet, level=levels, mode="symmetric")
        fused = [0.5 * (ca[0] + cb[0])]
        for da, db in zip(ca[1:], cb[1:]):
            fused.append(tuple(_choose_max_abs(x, y) for x, y in zip(da, db)))
        out = pywt.waverec2(fused, self.wavelet, mode="symmetric")[: first.shape[0], : first.shape[1]]
        return np.clip(out, 0.0, 1.0).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Guided filtering fusion: S. Li, X. Kang, J. Hu, "Image Fusion With Guided Filtering",
# IEEE TIP 22(7):2864-2875, 2013.


def box_mean(image: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1)x(2r+1) window, reflected at the border."""
    from scipy import ndimage
    return ndimage.uniform_filter(image, size=2 * radius + 1, mode="reflect")


def guided_filter(guide: np.ndarray, source: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He, Sun & Tang's guided filter with a grey guide (ECCV 2010, Eqs. 1-8)."""
    mean_i, mean_p = box_mean(guide, radius), box_mean(source, radius)
    cov_ip = box_mean(guide * source, radius) - mean_i * mean_p
    var_i = box_mean(guide * guide, radius) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box_mean(a, radius) * guide + box_mean(b, radius)


@register_method("gff")
class GuidedFilteringFusion(FusionMethod):
    description = "guided filtering fusion (Li, Kang & Hu, IEEE TIP 2013): two-scale, saliency weights refined by guided filters"

    _LAPLACIAN = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])

    def __init__(self, base_size: int = 31, r1: int = 45, eps1: float = 0.3, r2: int = 7,
                 eps2: float = 1e-6, saliency_radius: int = 5, saliency_sigma: float = 5.0):
        self.base_size, self.r1, self.eps1, self.r2, self.eps2 = base_size, r1, eps1, r2, eps2
        self.saliency_radius, self.saliency_sigma = saliency_radius, saliency_sigma

    def fuse_grey(self, first, second):
        from scipy import ndimage
        sources = [first.astype(np.float64), second.astype(np.float64)]
        # Eq. (1)-(2): base layer by a 31x31 mean filter, detail layer the remainder.
        bases = [ndimage.uniform_filter(s, size=self.base_size, mode="reflect") for s in sources]
        details = [s - b for s, b in zip(sources, bases)]
        # Eq. (3): saliency = Gaussian low-pass of the absolute Laplacian.
        truncate = self.saliency_radius / self.saliency_sigma
        saliency = [ndimage.gaussian_filter(np.abs(ndimage.correlate(s, self._LAPLACIAN, mode="reflect")),
                                            self.saliency_sigma, truncate=truncate, mode="reflect")
                    for s in sources]
        # Eq. (4): binary weight maps; ties give both sources weight.
        top = np.maximum(saliency[0], saliency[1])
        masks = [(s == top).astype(np.float64) for s in saliency]
        # Eq. (5)-(6): refine by guided filtering, normalise to sum one.
        w_base = [guided_filter(s, m, self.r1, self.eps1) for s, m in zip(sources, masks)]
        w_detail = [guided_filter(s, m, self.r2, self.eps2) for s, m in zip(sources, masks)]
        fused = 0.0
        for weights, layers in ((w_base, bases), (w_detail, details)):
            w0, w1 = (np.clip(w, 0.0, None) for w in weights)  # guided filtering can undershoot 0
            total = w0 + w1
            share = np.where(total > 1e-12, w0 / np.where(total > 1e-12, total, 1.0), 0.5)
            fused = fused + share * layers[0] + (1.0 - share) * layers[1]
        return np.clip(fused, 0.0, 1.0).astype(np.float32)
