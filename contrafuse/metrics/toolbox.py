"""The ``legacy`` convention: the MATLAB evaluation toolbox behind the CoCoNet / CLF-Net tables
(L. Tang, ``Evaluation-for-Image-Fusion``, first release 5d6c43a, 2022), metric by metric.

Its ``analysis_Reference.m`` reads 8-bit images (colour through ``rgb2gray``, rounded to uint8) and
passes some metrics the uint8 arrays and others ``im2double`` images (0..1). Inputs here are grey
float arrays holding those uint8 values (0..255 integers); each function applies the toolbox's own
scaling. Quirks reproduced on purpose are listed in docs/metrics.md.
"""

from __future__ import annotations

import math

import numpy as np

from .common import box_sums, entropy_of, gaussian_1d, separable_filter2, shared
from .gradient import SOBEL_SX, SOBEL_SY, qabf_from_sobel
from .similarity import gaussian_moments, halve
from .visual import vif_guarded, vif_moments

# ------------------------------------------------------------------------------------------------
# intensity statistics

def spatial_frequency(fused: np.ndarray) -> float:
    """``SF_evaluation`` on ``im2double``: RF and CF are each the root mean square of the row and
    column differences over their own (M-1) x N and M x (N-1) grids (Eskicioglu & Fisher 1995)."""
    f = fused / 255.0
    rf = np.mean(np.diff(f, axis=0) ** 2) if f.shape[0] > 1 else 0.0
    cf = np.mean(np.diff(f, axis=1) ** 2) if f.shape[1] > 1 else 0.0
    return float(math.sqrt(rf + cf))


def _mse01(ir: np.ndarray, vis: np.ndarray, fused: np.ndarray) -> float:
    """``MSE_evaluation`` on ``im2double`` images: the mean of the two source-to-fused MSEs (0..1)."""
    f = fused / 255.0
    return float(0.5 * np.mean((f - ir / 255.0) ** 2) + 0.5 * np.mean((f - vis / 255.0) ** 2))


def mse(ir, vis, fused) -> float:
    """MSE as the toolbox reports it: on 0..1 intensities."""
    return _mse01(ir, vis, fused)


def psnr(ir, vis, fused) -> float:
    """``PSNR_evaluation``: ``20 log10(255 / sqrt(MSE))`` with the MSE of 0..1 images (so the
    peak does not match the data range: 48.13 dB above the textbook value)."""
    value = _mse01(ir, vis, fused)
    return math.inf if value == 0 else float(20 * math.log10(255 / math.sqrt(value)))


def _entropy_levels(levels: np.ndarray) -> float:
    return entropy_of(np.bincount(levels.ravel(), minlength=256) / levels.size)


def mutual_information(ir, vis, fused) -> float:
    """``MI_evaluation``: MI(IR, F) + MI(VIS, F) in bits; marginal entropies as MATLAB ``entropy``
    of the uint8 images, the joint one by ``Hab.m``, which indexes its 256 x 256 table by the uint8
    value + 1, saturating at 255: levels 254 and 255 share a bin there (Qu et al. 2002)."""
    f = fused.astype(np.int64)
    h_f = _entropy_levels(f)
    shifted_f = np.minimum(f + 1, 255) - 1
    total = 0.0
    for source in (ir, vis):
        s = source.astype(np.int64)
        joint = np.bincount(((np.minimum(s + 1, 255) - 1) * 256 + shifted_f).ravel(), minlength=65536)
        total += _entropy_levels(s) + h_f - entropy_of(joint / s.size)
    return total


# ------------------------------------------------------------------------------------------------
# VIF: vifp_mscale(ir, F) + vifp_mscale(vis, F) on the uint8 arrays

def vifp_uint8(ref: np.ndarray, dist: np.ndarray, noise_var: float = 2.0) -> float:
    """Sheikh & Bovik's multi-scale pixel VIF (``vifp_mscale``, IEEE TIP 2006) called, as the
    toolbox calls it, on uint8 arrays: at the first scale MATLAB's integer products ``ref.*ref``,
    ``dist.*dist`` and ``ref.*dist`` saturate at 255; coarser scales are double. NaN where the
    reference image has no variance at any scale (0/0, as the MATLAB code gives)."""
    num = den = 0.0
    g = gaussian_1d(17, 17 / 5)
    moments = vif_moments(ref, dist)
    mu1, mu2 = moments[0][:2]  # the local means are those of the unsaturated VIF-P
    first = (np.maximum(separable_filter2(g, np.minimum(ref * ref, 255), "valid") - mu1 * mu1, 0),
             np.maximum(separable_filter2(g, np.minimum(dist * dist, 255), "valid") - mu2 * mu2, 0),
             separable_filter2(g, np.minimum(ref * dist, 255), "valid") - mu1 * mu2)
    # coarser scales are double after filter2: the same moments as the unsaturated VIF-P's
    coarse = [(s1, s2, s12) for _, _, s1, s2, s12 in moments[1:]]
    for s1, s2, s12 in [first, *coarse]:
        s1, gain, sv = vif_guarded(s1, s2, s12)
        num += np.log10(1 + gain**2 * s1 / (sv + noise_var)).sum()
        den += np.log10(1 + s1 / noise_var).sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.float64(num) / np.float64(den))


def vif(ir, vis, fused) -> float:
    """The toolbox's VIF column: ``vifp_mscale(IR, F) + vifp_mscale(VIS, F)`` on uint8 arrays."""
    return vifp_uint8(ir, fused) + vifp_uint8(vis, fused)


# ------------------------------------------------------------------------------------------------
# Qabf (analysis_Qabf.m, Xydeas & Petrovic 2000) on im2double images



def conv2_same_matlab_order(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """MATLAB ``conv2(image, kernel, 'same')`` (zero padding) with the per-pixel sum accumulated
    over the kernel in column-major order, the order that reproduces MATLAB's rounding; the
    toolbox tests these outputs for exact zeros, so the order decides near-tied orientations."""
    p, q = kernel.shape
    m, n = image.shape
    padded = np.zeros((m + 2 * (p - 1), n + 2 * (q - 1)))
    padded[p - 1:p - 1 + m, q - 1:q - 1 + n] = image
    r0, c0 = (p - 1 + 1) // 2, (q - 1 + 1) // 2  # 'same' crop of the full result
    out = np.zeros((m, n))
    for col in range(q):
        for row in range(p):
            weight = kernel[row, col]
            if weight == 0:
                continue
            top, left = p - 1 - row + r0, q - 1 - col + c0
            out += weight * padded[top:top + m, left:left + n]
    return out


def qabf(ir, vis, fused) -> float:
    """``analysis_Qabf`` on ``im2double`` images: Sobel by ``conv2`` (zero padding) summed in MATLAB's
    order (:func:`conv2_same_matlab_order`), then :func:`~contrafuse.metrics.gradient.qabf_from_sobel`
    (orientation ``atan(Sy/Sx)``, pi/2 where Sx == 0; relative strength ``gF`` itself where
    ``gA == gF``, the code's quirk)."""
    def sobel(image):
        unit = image / 255.0
        return conv2_same_matlab_order(unit, SOBEL_SX), conv2_same_matlab_order(unit, SOBEL_SY)

    return qabf_from_sobel(sobel(ir), sobel(vis), sobel(fused))


# ------------------------------------------------------------------------------------------------
# SSIM and MS_SSIM: Ma, Zeng & Wang's MEF-SSIM (IEEE TIP 24(11), 2015), mef_ssim.m and its
# three-scale analysis_ms_ssim.m, with the two sources as the "exposure sequence"

def mef_ssim_map_mean(sources: list[np.ndarray], fused: np.ndarray, unit: float, k: float = 0.03) -> float:
    """Mean of the MEF-SSIM quality map (``mef_ssim.m``): per 11 x 11 window, the sources'
    patches are combined into a desired patch (structure weighted by ``((ed/11)^p)``, p from the
    patch consistency R, strength the largest source contrast ``ed``), compared with the fused
    patch by the SSIM structure term under a Gaussian window (sigma 1.5), C = (k 255)^2.
    ``unit``: the images are multiples of 1/unit, so that window moments are exact integers."""
    size, n_src = 11, len(sources)
    area = float(size * size)
    us = [np.rint(s * unit) for s in sources]
    sums = [box_sums(u, size) for u in us]
    # 121 * sum((x - mean)^2) * unit^2 as an exact integer, per source and for the pair sum
    cross = {}
    for a in range(n_src):
        for b in range(a, n_src):
            cross[a, b] = area * box_sums(us[a] * us[b], size) - sums[a] * sums[b]
    def centred_norm(value):  # ||x - mean|| over the window
        return np.sqrt(np.maximum(value, 0) / area) / unit
    norms = [centred_norm(cross[a, a]) for a in range(n_src)]
    total_var = sum(cross[a, b] * (1 if a == b else 2) for (a, b) in cross)
    numerator = centred_norm(total_var)
    denominator = sum(norms)
    eps = np.finfo(float).eps
    r = (numerator + eps) / (denominator + eps)
    r[r > 1] = 1 - eps
    r[r < 0] = eps
    p = np.minimum(np.tan(np.pi / 2 * r), 10.0)
    ed = [nrm + 0.001 for nrm in norms]  # sqrt(max(121 sigma^2, 0)) + 0.001
    w = [(e / size) ** p + eps for e in ed]
    wsum = sum(w)
    w = [x / wsum for x in w]
    max_ed = np.maximum.reduce(ed)
    a_k = [wk / ek for wk, ek in zip(w, ed)]
    # ||sum_k a_k (x_k - mu_k)||^2 from the exact centred cross moments
    norm_sq = sum(a_k[a] * a_k[b] * cross[a, b] * (1 if a == b else 2) for (a, b) in cross) / (area * unit * unit)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(norm_sq > 0, max_ed / np.sqrt(np.maximum(norm_sq, 0)), 1.0)
    c_k = [a * scale for a in a_k]
    # Gaussian-window moments of the given arrays (shared with SSIM-type metrics at the first scale)
    moments = {}
    for a in range(n_src):
        mu_a, mu_f, var_a, var_f, cov_af = gaussian_moments(sources[a], fused)
        moments[a, a], moments[a, "f"], moments["f", "f"] = var_a, cov_af, var_f
        for b in range(a + 1, n_src):
            moments[a, b] = gaussian_moments(sources[a], sources[b])[4]
    s2 = moments["f", "f"]
    s12 = sum(c_k[a] * moments[a, "f"] for a in range(n_src))
    s1 = 0.0
    for a in range(n_src):
        for b in range(a, n_src):
            s1 = s1 + c_k[a] * c_k[b] * moments[a, b] * (1 if a == b else 2)
    c = (k * 255) ** 2
    return float(np.mean((2 * s12 + c) / (s1 + s2 + c)))


MEF_MS_WEIGHTS = np.array([0.0448, 0.2856, 0.3001]) / (0.0448 + 0.2856 + 0.3001)


def mef_ssim_scales(ir, vis, fused, levels: int = 3) -> list[float]:
    """MEF-SSIM of (IR, VIS) -> F at ``levels`` dyadic scales (``analysis_ms_ssim.m``)."""
    sources, unit, out = [ir, vis], 1.0, []
    for level in range(levels):
        if level == 0:  # SSIM and MS_SSIM share the first scale
            out.append(shared("mef_ssim", ir, vis, fused, compute=lambda: mef_ssim_map_mean([ir, vis], fused, 1.0)))
        else:
            out.append(mef_ssim_map_mean(sources, fused, unit))
        if level < levels - 1:
            sources = [halve(s) for s in sources]
            fused = halve(fused)
            unit *= 4
    return out


def mef_ssim(ir, vis, fused) -> float:
    """The toolbox's SSIM column: ``mef_ssim(cat(3, IR, VIS), F)``."""
    return mef_ssim_scales(ir, vis, fused, 1)[0]


def mef_ms_ssim(ir, vis, fused) -> float:
    """The toolbox's MS_SSIM column: three-scale MEF-SSIM, ``prod(Q .^ w)``, w = [0.0448, 0.2856,
    0.3001] normalised."""
    q = np.array(mef_ssim_scales(ir, vis, fused, 3))
    return float(np.prod(q ** MEF_MS_WEIGHTS))
