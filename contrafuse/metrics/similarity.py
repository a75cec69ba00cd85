"""Source-to-fused similarity metrics: SSIM, MS-SSIM, PSNR, RMSE, CC, SCD, Piella's Q_W. Grey float, 0..255."""

from __future__ import annotations

import numpy as np

from .common import box_sums, check_images, gaussian_1d, separable_filter2, shared

_SSIM_C1, _SSIM_C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def gaussian_moments(a: np.ndarray, b: np.ndarray, size: int = 11, sigma: float = 1.5, border: str = "valid"):
    """(mu_a, mu_b, var_a, var_b, cov) under a ``size`` x ``size`` Gaussian window (``fspecial``)
    at every window position: ``border="valid"`` only inside the image (``filter2(..., 'valid')``),
    ``"replicate"`` a full-size map with replicated borders. Shared within one evaluation (SSIM,
    MS-SSIM's first scale, Q_S, Q_C, Q_Y use the same moments)."""
    g = gaussian_1d(size, sigma)
    if border not in ("valid", "replicate"):
        raise ValueError(f"border must be 'valid' or 'replicate', not {border!r}")

    def blur(x):
        return separable_filter2(g, x, border)

    def first(x):
        return shared("gauss_mean", x, compute=lambda: blur(x), params=(size, sigma, border))

    def second(x, y):
        if id(y) < id(x):
            x, y = y, x
        return shared("gauss_product", x, y, compute=lambda: blur(x * y), params=(size, sigma, border))

    mu_a, mu_b = first(a), first(b)
    return (mu_a, mu_b, second(a, a) - mu_a**2, second(b, b) - mu_b**2, second(a, b) - mu_a * mu_b)


def ssim_components(a: np.ndarray, b: np.ndarray, border: str = "valid") -> tuple[np.ndarray, np.ndarray]:
    """Luminance and contrast-structure maps of Wang et al. (2004), Gaussian 11x11, sigma 1.5.

    ``border="valid"``: only windows inside the image (Wang's ``ssim_index.m``, used by VIFB);
    ``"replicate"``: a full-size map with replicated borders (MATLAB's built-in ``ssim``)."""
    mu_a, mu_b, var_a, var_b, cov = gaussian_moments(a, b, 11, 1.5, border)
    luminance = (2 * mu_a * mu_b + _SSIM_C1) / (mu_a**2 + mu_b**2 + _SSIM_C1)
    contrast_structure = (2 * cov + _SSIM_C2) / (var_a + var_b + _SSIM_C2)
    return luminance, contrast_structure


def ssim_pair(a, b, border: str = "valid") -> float:
    lum, cs = ssim_components(a, b, border)
    return float((lum * cs).mean())


def ssim(ir, vis, fused, reduce: str = "mean", border: str = "valid") -> float:
    """SSIM (Wang et al. 2004) of the fused image with each source, averaged (``reduce="mean"``,
    range [-1, 1]) or summed (``"sum"``, as VIFB reports it). ``border`` as in
    :func:`ssim_components` (``"replicate"``: MATLAB's ``ssim``, as the legacy toolbox calls it)."""
    ir, vis, fused = check_images(ir, vis, fused, name="SSIM")
    total = ssim_pair(ir, fused, border) + ssim_pair(vis, fused, border)
    return total / 2 if reduce == "mean" else total


MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def halve(x: np.ndarray) -> np.ndarray:
    """``imfilter(x, ones(2)/4, 'symmetric', 'same')`` sampled at odd rows and columns: 2 x 2 block
    means, the last row/column repeated when the size is odd (Wang's ``msssim.m``, Ma's MEF-SSIM);
    shared within an evaluation, so the multi-scale metrics share their pyramids and moments."""
    def compute():
        padded = np.pad(x, ((0, x.shape[0] % 2), (0, x.shape[1] % 2)), mode="edge")
        h, w = padded.shape
        return padded.reshape(h // 2, 2, w // 2, 2).sum(axis=(1, 3)) * 0.25
    return shared("halve", x, compute=compute)


def ms_ssim_pair(a, b) -> float:
    """Multi-scale SSIM (Wang, Simoncelli & Bovik 2003; Wang's ``msssim.m``): five scales,
    contrast-structure at the first four and SSIM at the fifth, ``prod(term_j ^ w_j)``. A negative
    term has no real power: NaN (the MATLAB code returns a complex number)."""
    terms = []
    for level in range(len(MS_SSIM_WEIGHTS)):
        lum, cs = ssim_components(a, b)
        terms.append((lum * cs).mean() if level == len(MS_SSIM_WEIGHTS) - 1 else cs.mean())
        a, b = halve(a), halve(b)
    terms = np.array(terms)
    if (terms < 0).any():
        return float("nan")
    return float(np.prod(terms ** np.array(MS_SSIM_WEIGHTS)))


def ms_ssim(ir, vis, fused) -> float:
    """MS-SSIM of the fused image with each source, averaged. Needs at least 176 x 176 pixels
    (an 11 x 11 window at the fifth scale)."""
    ir, vis, fused = check_images(ir, vis, fused, name="MS_SSIM")
    return (ms_ssim_pair(ir, fused) + ms_ssim_pair(vis, fused)) / 2


def _mse(a, b) -> float:
    return float(((a - b) ** 2).mean())


def mse(ir, vis, fused) -> float:
    """MSE: the mean of the two source-to-fused mean squared errors (0..255 intensities)."""
    ir, vis, fused = check_images(ir, vis, fused, name="MSE")
    return (_mse(ir, fused) + _mse(vis, fused)) / 2


def rmse(ir, vis, fused) -> float:
    """RMSE: square root of the mean of the two source-to-fused mean squared errors."""
    ir, vis, fused = check_images(ir, vis, fused, name="RMSE")
    return float(np.sqrt((_mse(ir, fused) + _mse(vis, fused)) / 2))


def psnr(ir, vis, fused) -> float:
    """PSNR (Jagalingam & Hegde 2015): 10 log10(255^2 / MSE), MSE the mean of the two source
    MSEs; identical inputs give +inf."""
    ir, vis, fused = check_images(ir, vis, fused, name="PSNR")
    mse = (_mse(ir, fused) + _mse(vis, fused)) / 2
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def _corr(a, b) -> float:
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else 0.0


def correlation(ir, vis, fused) -> float:
    """CC: mean of the Pearson correlations of the fused image with each source (0 for a flat image)."""
    ir, vis, fused = check_images(ir, vis, fused, name="CC")
    return (_corr(ir, fused) + _corr(vis, fused)) / 2


def scd(ir, vis, fused) -> float:
    """SCD (Aslantas & Bendes 2015): corr(F - VIS, IR) + corr(F - IR, VIS)."""
    ir, vis, fused = check_images(ir, vis, fused, name="SCD")
    return _corr(fused - vis, ir) + _corr(fused - ir, vis)


def _window_statistics(x: np.ndarray, y: np.ndarray, window: int, rows: int = 64):
    """Means, variances and covariance of every ``window`` x ``window`` sliding window of x and y
    (population moments; the valid windows only). Integer images: from exact window sums
    (:func:`~contrafuse.metrics.common.box_sums`), the moments' numerators exact integers
    (``n^2 var = n sum x^2 - (sum x)^2``), so a constant window has a variance of exactly 0; other
    images: two-pass, in blocks of rows."""
    if np.array_equal(x, np.round(x)) and np.array_equal(y, np.round(y)):
        n = float(window * window)
        sx, sy = box_sums(x, window), box_sums(y, window)
        sxx, syy, sxy = box_sums(x * x, window), box_sums(y * y, window), box_sums(x * y, window)
        return [sx / n, sy / n, (n * sxx - sx * sx) / (n * n), (n * syy - sy * sy) / (n * n),
                (n * sxy - sx * sy) / (n * n)]
    out_h = x.shape[0] - window + 1
    stats = [np.empty((out_h, x.shape[1] - window + 1)) for _ in range(5)]
    for top in range(0, out_h, rows):
        block = slice(top, min(top + rows, out_h) + window - 1)
        wx = np.lib.stride_tricks.sliding_window_view(x[block], (window, window))
        wy = np.lib.stride_tricks.sliding_window_view(y[block], (window, window))
        mx, my = wx.mean(axis=(-2, -1)), wy.mean(axis=(-2, -1))
        dx, dy = wx - mx[..., None, None], wy - my[..., None, None]
        part = (mx, my, (dx * dx).mean(axis=(-2, -1)), (dy * dy).mean(axis=(-2, -1)), (dx * dy).mean(axis=(-2, -1)))
        for target, value in zip(stats, part):
            target[top: top + value.shape[0]] = value
    return stats


def _uiqi_map(x: np.ndarray, y: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Wang & Bovik's universal image quality index Q0 per window (IEEE SPL 2002),
    ``4 cov mx my / ((vx + vy)(mx^2 + my^2))``, with their code's rules for flat or black windows;
    and the variance of x per window (Piella's salience)."""
    mx, my, vx, vy, cov = _window_statistics(x, y, window)
    spread, level = vx + vy, mx * mx + my * my
    q = np.ones_like(mx)  # both flat and black: identical
    both = (spread > 0) & (level > 0)
    q[both] = 4 * cov[both] * mx[both] * my[both] / (spread[both] * level[both])
    flat = (spread == 0) & (level > 0)
    q[flat] = 2 * mx[flat] * my[flat] / level[flat]
    black = (spread > 0) & (level == 0)
    q[black] = 2 * cov[black] / spread[black]
    return q, vx


def piella_qw(ir, vis, fused, window: int = 8) -> float:
    """Q_W, Piella & Heijmans' weighted fusion quality index (ICIP 2003, Eq. 6): over sliding
    ``window`` x ``window`` windows w, ``sum_w c(w) [lambda(w) Q0(IR, F | w) + (1 - lambda(w)) Q0(VIS, F | w)]``
    with Q0 the universal image quality index, salience s = local variance,
    ``lambda = s(IR) / (s(IR) + s(VIS))`` (1/2 where both are flat) and
    ``c(w) = max(s(IR), s(VIS)) / sum over all windows`` (uniform where every window is flat).
    8 x 8 windows as in Wang & Bovik's Q0 code."""
    ir, vis, fused = check_images(ir, vis, fused, name="Qw")
    q_ir, s_ir = _uiqi_map(ir, fused, window)
    q_vis, s_vis = _uiqi_map(vis, fused, window)
    total = s_ir + s_vis
    lam = np.divide(s_ir, total, out=np.full_like(total, 0.5), where=total > 0)
    salience = np.maximum(s_ir, s_vis)
    weights = salience / salience.sum() if salience.sum() > 0 else np.full_like(salience, 1 / salience.size)
    return float((weights * (lam * q_ir + (1 - lam) * q_vis)).sum())
