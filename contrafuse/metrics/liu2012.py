"""The twelve fusion metrics of Z. Liu, E. Blasch, Z. Xue, J. Zhao, R. Laganiere & W. Wu,
"Objective assessment of multiresolution image fusion algorithms for context enhancement in night
vision: a comparative study", IEEE TPAMI 34(1), 2012, as Z. Liu's MATLAB code computes them
(``zhengliu6699/imageFusionMetrics``, ``fusionAssess.m``), quirks included (docs/metrics.md).

Inputs: grey float arrays on 0..255 (``fusionAssess`` is given ``double`` images of 0..255).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from scipy import fft as sfft

from .common import entropy_of, gaussian_1d, normalize1, separable_filter2, sobel_filter2
from .similarity import gaussian_moments

# ------------------------------------------------------------------------------------------------
# shared pieces


def joint_histogram(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """256 x 256 joint probability table, rows indexed by ``a``, columns by ``b`` (0..255 ints)."""
    ia, ib = a.astype(np.int64).ravel(), b.astype(np.int64).ravel()
    return np.bincount(ia * 256 + ib, minlength=65536).reshape(256, 256) / ia.size


def _entropies(h: np.ndarray) -> tuple[float, float, float]:
    """(H(columns' marginal), H(rows' marginal), H(joint)) in bits, as ``mutual_info.m`` labels
    them (its ``H_x`` is the entropy of ``sum(h)``, the column marginal)."""
    return entropy_of(h.sum(0)), entropy_of(h.sum(1)), entropy_of(h.ravel())


def _normalised_triple(ir, vis, fused):
    values = [normalize1(np.asarray(x, dtype=np.float64)) for x in (ir, vis, fused)]
    if any(np.isnan(v).any() for v in values):
        return None  # a constant (non-zero) image: MATLAB indexes a table with NaN and fails
    return values


# ------------------------------------------------------------------------------------------------
# information theory: Q_MI, Q_TE, Q_NCIE


def q_mi(ir, vis, fused) -> float:
    """Q_MI, normalised mutual information (Hossny et al., Electron. Lett. 2008; ``metricMI``
    sw=1): 2 [MI(A,F)/(H(A)+H(F)) + MI(B,F)/(H(B)+H(F))] on ``normalize1`` images."""
    images = _normalised_triple(ir, vis, fused)
    if images is None:
        return math.nan
    a, b, f = images
    total = 0.0
    for s in (a, b):
        hx, hy, hxy = _entropies(joint_histogram(s, f))
        total += (hx + hy - hxy) / (hx + hy)
    return 2 * total


def _tsallis(a: np.ndarray, b: np.ndarray, q: float) -> float:
    """``tsallis.m``: (1 - sum h(i,j)^q (m1(i) m2(j))^(1-q)) / (1 - q), where, as in the code,
    m1 = sum(h) is the *column* marginal indexed by the row i and m2 = sum(h') the row marginal
    indexed by the column j (the two marginals swapped against the joint table's axes)."""
    h = joint_histogram(a, b)
    m1, m2 = h.sum(0), h.sum(1)
    buff = m1[:, None] * m2[None, :]
    keep = buff != 0
    result = (h[keep] ** q * buff[keep] ** (1 - q)).sum()
    return float((1 - result) / (1 - q))


def q_te(ir, vis, fused, q: float = 0.43137) -> float:
    """Q_TE, Tsallis-entropy mutual information (Cvejic et al., Electron. Lett. 2006, with Nava's
    normalisation, ``metricMI`` sw=3): (I_q(A,F) + I_q(B,F)) / (H(A)^q + H(B)^q - ... + I_q(A,B))
    exactly as coded: denominator H_x^q + H_y^q + I_q(A,B), H Shannon entropies in bits."""
    images = _normalised_triple(ir, vis, fused)
    if images is None:
        return math.nan
    a, b, f = images
    hx, hy, _ = _entropies(joint_histogram(a, b))
    return (_tsallis(a, f, q) + _tsallis(b, f, q)) / (hx**q + hy**q + _tsallis(a, b, q))


def _ncc(a, b) -> float:
    """``NCC.m``: (H_x + H_y - H_xy) / log2(256), the nonlinear correlation coefficient."""
    hx, hy, hxy = _entropies(joint_histogram(a, b))
    return (hx + hy - hxy) / 8.0


def q_ncie(ir, vis, fused) -> float:
    """Q_NCIE, nonlinear correlation information entropy (Q. Wang et al., 2008; ``metricWang``):
    1 + sum_i (r_i / 3) log_256(r_i / 3) over the eigenvalues r_i of the 3 x 3 NCC matrix."""
    images = _normalised_triple(ir, vis, fused)
    if images is None:
        return math.nan
    a, b, f = images
    xy, xf, yf = _ncc(a, b), _ncc(a, f), _ncc(b, f)
    r = np.linalg.eigvalsh(np.array([[1, xy, xf], [xy, 1, yf], [xf, yf, 1]]))
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(r == 0, 0.0, r * np.log2(np.abs(r) / 3) / 3)  # real part, as reported
    return float(1 + terms.sum() / 8.0)


# ------------------------------------------------------------------------------------------------
# image features: Q_G, Q_M, Q_SF, Q_P

def _bump_zeros(x: np.ndarray) -> np.ndarray:
    return x + (x == 0) * 0.00001


def q_g(ir, vis, fused) -> float:
    """Q_G, gradient-based fusion metric (Xydeas & Petrovic, Electron. Lett. 2000) in Liu's
    ``metricXydeas``: Gamma 1, kappa -10 and -20, delta 0.5 and 0.75, per-pixel normalised weights
    (``mean2((Q_af W_a + Q_bf W_b) ./ (W_a + W_b))``), zeros bumped by 1e-5 as coded."""
    def strength_angle(image):
        gx, gy = sobel_filter2(image)
        g = np.sqrt(gx * gx + gy * gy)
        return g, np.arctan(gy / _bump_zeros(gx))

    f_g, f_a = strength_angle(fused)
    qs, ws = [], []
    for source in (ir, vis):
        s_g, s_a = strength_angle(source)
        bimap = s_g > f_g
        s_g = _bump_zeros(s_g)
        buffer1 = f_g / s_g
        f_g = _bump_zeros(f_g)
        buffer2 = s_g / f_g
        gain = np.where(bimap, buffer1, buffer2)
        angle = np.abs(np.abs(s_a - f_a) - np.pi / 2) * 2 / np.pi
        qs.append(1 / (1 + np.exp(-10 * (gain - 0.5))) * (1 / (1 + np.exp(-20 * (angle - 0.75)))))
        ws.append(s_g)
    return float(np.mean((qs[0] * ws[0] + qs[1] * ws[1]) / (ws[0] + ws[1])))


def _haar_level(image: np.ndarray):
    """One level of matlabPyrTools' ``buildWpyr(..., 'haar')`` (``corrDn`` with the filters
    [1 1]/sqrt2 and [-1 1]/sqrt2, start 2, step 2): rows first, then columns; odd sizes drop the
    last row/column. Returns (low-low, [three detail bands])."""
    h, w = (image.shape[0] // 2) * 2, (image.shape[1] // 2) * 2
    x = image[:h, :w]
    s = math.sqrt(0.5)
    lo, hi = (x[0::2] + x[1::2]) * s, (x[1::2] - x[0::2]) * s
    lolo, lohi = (lo[:, 0::2] + lo[:, 1::2]) * s, (hi[:, 0::2] + hi[:, 1::2]) * s
    hilo, hihi = (lo[:, 1::2] - lo[:, 0::2]) * s, (hi[:, 1::2] - hi[:, 0::2]) * s
    return lolo, (lohi, hilo, hihi)


def q_m(ir, vis, fused) -> float:
    """Q_M, multiscale edge preservation (P.-W. Wang & B. Liu, ICSP 2008; ``metricPWW``): two-level
    Haar wavelet pyramid; per level Q = sum(EP_A W_A + EP_B W_B) / sum(W_A + W_B) with
    EP = sum over the three bands of exp(-|S - F|), W = sum of the squared bands;
    Q_M = Q_1^(2/3) Q_2^(1/3)."""
    images = [np.asarray(x, dtype=np.float64) for x in (ir, vis, fused)]
    levels = []
    for _ in range(2):
        out = [_haar_level(x) for x in images]
        images = [lolo for lolo, _ in out]
        (_, b1), (_, b2), (_, bf) = out
        num = den = 0.0
        for bands in (b1, b2):
            weight = sum(x * x for x in bands)
            ep = sum(np.exp(-np.abs(x - y)) for x, y in zip(bands, bf))
            num += (ep * weight).sum()
            den += weight.sum()
        levels.append(num / den)
    return float(levels[0] ** (2 / 3) * levels[1] ** (1 / 3))


def q_sf(ir, vis, fused) -> float:
    """Q_SF, the ratio of spatial-frequency error (Y. Zheng et al., Inf. Fusion 2007; ``metricZheng``):
    (SF_F - SF_R) / SF_R with four directional frequencies (diagonals weighted sqrt(2)/2), SF_R
    from the larger absolute source gradient in each direction, all over M N. 0 is ideal;
    negative values mean lost detail."""
    a, b, f = (np.asarray(x, dtype=np.float64) for x in (ir, vis, fused))
    size = f.size
    wd = math.sqrt(2) / 2

    def diffs(x):
        return (x[:, :-1] - x[:, 1:], x[:-1, :] - x[1:, :], x[1:, 1:] - x[:-1, :-1], x[1:, :-1] - x[:-1, 1:])

    weights = (1.0, 1.0, wd, wd)
    sf_f = math.sqrt(sum(w * (d * d).sum() / size for w, d in zip(weights, diffs(f))))
    sf_r = math.sqrt(sum(w * (np.maximum(np.abs(da), np.abs(db)) ** 2).sum() / size
                         for w, da, db in zip(weights, diffs(a), diffs(b))))
    with np.errstate(divide="ignore", invalid="ignore"):
        return float((sf_f - sf_r) / sf_r)


# phase congruency (P. Kovesi's phasecong3 as revised in Liu's myphasecong3.m)

_PC_FILTERS: dict = {}


def _pc_filters(rows: int, cols: int, nscale=4, norient=6, min_wavelength=3, mult=2.1, sigma_onf=0.55,
                d_theta_on_sigma=1.2):
    """The log-Gabor x angular filters (frequency domain, DC at [0, 0]) and, per orientation, the
    noise-energy sums of the filters' spatial forms, cached per image size."""
    global _PC_FILTERS
    key = (rows, cols)
    hit = _PC_FILTERS.get(key)
    if hit is not None:
        return hit
    theta_sigma = np.pi / norient / d_theta_on_sigma
    xr = (np.arange(cols) - (cols - 1) / 2) / (cols - 1) if cols % 2 else (np.arange(cols) - cols / 2) / cols
    yr = (np.arange(rows) - (rows - 1) / 2) / (rows - 1) if rows % 2 else (np.arange(rows) - rows / 2) / rows
    x, y = np.meshgrid(xr, yr)
    radius = np.sqrt(x**2 + y**2)
    radius[rows // 2, cols // 2] = 1
    theta = np.arctan2(-y, x)
    radius, theta = np.fft.ifftshift(radius), np.fft.ifftshift(theta)
    sintheta, costheta = np.sin(theta), np.cos(theta)
    # Kovesi's lowpassfilter([rows cols], .45, 15), fftshift-ed (not ifftshift-ed) as coded
    lx = (np.arange(1, cols + 1)[None, :] - (cols // 2 + 1)) / cols
    ly = (np.arange(1, rows + 1)[:, None] - (rows // 2 + 1)) / rows
    lp = np.fft.fftshift(1.0 / (1.0 + (np.sqrt(lx**2 + ly**2) / 0.45) ** 30))
    log_gabor = []
    for s in range(nscale):
        fo = 1.0 / (min_wavelength * mult**s)
        lg = np.exp(-(np.log(radius / fo)) ** 2 / (2 * math.log(sigma_onf) ** 2)) * lp
        lg[0, 0] = 0
        log_gabor.append(lg)
    filters, noise = [], []
    for o in range(norient):
        angl = o * np.pi / norient
        ds = sintheta * math.cos(angl) - costheta * math.sin(angl)
        dc = costheta * math.cos(angl) + sintheta * math.sin(angl)
        spread = np.exp(-np.arctan2(ds, dc) ** 2 / (2 * theta_sigma**2))
        per_scale = [lg * spread for lg in log_gabor]
        filters.append(np.stack(per_scale))
        # sum over pixels of real(ifft2(F_s)) * sqrt(N) products: by Parseval, sums over frequencies
        # of the filters' even parts (F(k) + F(-k)) / 2
        even = [(f + np.roll(np.flip(f), 1, axis=(0, 1))) / 2 for f in per_scale]
        sum_an2 = sum((e * e).sum() for e in even)
        sum_aiaj = sum((even[i] * even[j]).sum() for i in range(nscale) for j in range(i + 1, nscale))
        em_n = (per_scale[0] ** 2).sum()
        noise.append((sum_an2, sum_aiaj, em_n))
    _PC_FILTERS = {key: (filters, noise)}  # one size kept (replaced whole: safe across threads)
    return filters, noise


@numba.njit(cache=True, nogil=True)
def _abs2(z):
    out = np.empty(z.shape)
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            out[i, j] = z[i, j].real ** 2 + z[i, j].imag ** 2
    return out


@numba.njit(cache=True, nogil=True)
def _pc_orientation(eo, threshold, cos_a, sin_a, cut_off, g, total_energy, total_sum_an, covx2, covy2, covxy):
    """One orientation of ``myphasecong3`` at every pixel, from the filter responses ``eo``
    (scale, row, column): the phase-deviation energy over the scales, less the noise threshold,
    weighted by the frequency-spread sigmoid; accumulates the totals and covariance terms."""
    nscale, rows, cols = eo.shape
    epsilon = 0.0001
    for i in range(rows):
        for j in range(cols):
            sum_an = sum_e = sum_o = max_an = 0.0
            for s in range(nscale):
                e, o = eo[s, i, j].real, eo[s, i, j].imag
                an = math.sqrt(e * e + o * o)
                sum_an += an
                sum_e += e
                sum_o += o
                if s == 0 or an > max_an:
                    max_an = an
            x_energy = math.sqrt(sum_e * sum_e + sum_o * sum_o) + epsilon
            mean_e, mean_o = sum_e / x_energy, sum_o / x_energy
            energy = 0.0
            for s in range(nscale):
                e, o = eo[s, i, j].real, eo[s, i, j].imag
                energy += e * mean_e + o * mean_o - abs(e * mean_o - o * mean_e)
            energy = max(energy - threshold, 0.0)
            width = sum_an / (max_an + epsilon) / nscale
            weight = 1.0 / (1 + math.exp((cut_off - width) * g))
            total_sum_an[i, j] += sum_an
            total_energy[i, j] += weight * energy
            pc = weight * energy / sum_an if sum_an != 0 else (math.nan if weight * energy == 0 else math.inf)
            cx, cy = pc * cos_a, pc * sin_a
            covx2[i, j] += cx * cx
            covy2[i, j] += cy * cy
            covxy[i, j] += cx * cy


def phase_congruency(image: np.ndarray, k: float = 2.0, cut_off: float = 0.5, g: float = 10.0):
    """``myphasecong3``: (phase congruency, maximum moment M, minimum moment m) of Kovesi's PC_2
    with Liu's changes (total energy over all orientations / total amplitude)."""
    rows, cols = image.shape
    filters, noise = _pc_filters(rows, cols)
    norient = len(filters)
    epsilon = 0.0001
    image_fft = sfft.fft2(image)
    accumulators = [np.zeros((rows, cols)) for _ in range(5)]
    total_energy, total_sum_an, covx2, covy2, covxy = accumulators
    for o in range(norient):
        angl = o * np.pi / norient
        eo = sfft.ifft2(image_fft * filters[o], axes=(1, 2), overwrite_x=True)
        # noise: the median of the smallest scale's squared amplitude (Rayleigh), filter energies
        power = _abs2(eo[0]).ravel()
        half = power.size // 2
        if power.size % 2:
            median_e2n = np.partition(power, half)[half]
        else:
            part = np.partition(power, (half - 1, half))
            median_e2n = (part[half - 1] + part[half]) / 2
        sum_an2, sum_aiaj, em_n = noise[o]
        noise_power = -median_e2n / math.log(0.5) / em_n
        tau = math.sqrt((2 * noise_power * sum_an2 + 4 * noise_power * sum_aiaj) / 2)
        threshold = (tau * math.sqrt(math.pi / 2) + k * math.sqrt((2 - math.pi / 2) * tau**2)) / 1.7
        _pc_orientation(eo, threshold, math.cos(angl), math.sin(angl), cut_off, g, *accumulators)
    pc_total = total_energy / (total_sum_an + epsilon)
    covx2 /= norient / 2
    covy2 /= norient / 2
    covxy /= norient
    denom = np.sqrt(covxy**2 + (covx2 - covy2) ** 2) + epsilon
    return pc_total, (covy2 + covx2 + denom) / 2, (covy2 + covx2 - denom) / 2


def _zhao_correlation(m1, m2, m_max, mf, mask1, mask2, mask3) -> float:
    """``correlation_coeffcient`` of ``metricZhao``: local (Gaussian 11, sigma 1.5) correlation of
    the fused feature map with each masked source map and with their maximum, the largest of the
    three (0 outside a map's mask) summed and divided by the size of the maximum's mask."""
    g = gaussian_1d(11, 1.5)
    c = 0.0001
    maps = [mask1 * m1, mask2 * m2, mask3 * m_max]
    mu_f = separable_filter2(g, mf)
    var_f = separable_filter2(g, mf * mf) - mu_f * mu_f
    best = None
    for x, mask in zip(maps, (mask1, mask2, mask3)):
        mu = separable_filter2(g, x)
        var = separable_filter2(g, x * x) - mu * mu
        cov = separable_filter2(g, x * mf) - mu * mu_f
        res = np.where(mask, (cov + c) / (np.sqrt(np.abs(var * var_f)) + c), 0.0)
        best = res if best is None else np.maximum(best, res)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(best.sum() / mask3.sum())


def q_p(ir, vis, fused, threshold: float = 0.1) -> float:
    """Q_P, phase-congruency feature metric (J. Zhao, R. Laganiere & Z. Liu, IJICIC 2007;
    ``metricZhao``): the product of the correlations for the phase congruency, its maximum and
    its minimum moment, masks PC > 0.1."""
    (pc1, big1, small1), (pc2, big2, small2), (pcf, bigf, smallf) = (
        phase_congruency(np.asarray(x, dtype=np.float64)) for x in (ir, vis, fused))
    mask = pc1 > pc2
    mask1, mask2 = pc1 > threshold, pc2 > threshold
    result = 1.0
    for m1, m2, mf in ((pc1, pc2, pcf), (big1, big2, bigf), (small1, small2, smallf)):
        m_max = np.where(mask, m1, m2)
        if m1 is pc1:
            mask3 = m_max > threshold
        result *= _zhao_correlation(m1, m2, m_max, mf, mask1, mask2, mask3)
    return result


# ------------------------------------------------------------------------------------------------
# structural similarity: Q_S, Q_C, Q_Y


def _ssim_maps(x, y, size, sigma, c1, c2):
    """Wang's ``ssim_index`` 'valid' maps under a ``size`` Gaussian window: (ssim map, var x,
    var y, cov xy)."""
    mu_x, mu_y, var_x, var_y, cov = gaussian_moments(x, y, size, sigma)
    ssim = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2))
    return ssim, var_x, var_y, cov


def q_s(ir, vis, fused) -> float:
    """Q_S, Piella & Heijmans' fusion quality index (ICIP 2003, Eq. 5; ``metricPeilla`` sw=1):
    mean of lambda SSIM(F, A) + (1 - lambda) SSIM(F, B) over Wang's SSIM maps (Gaussian 11,
    sigma 1.5, K = 0.01, 0.03), lambda = var A / (var A + var B) (+0.5 each where both are 0)."""
    a, b, f = (np.asarray(x, dtype=np.float64) for x in (ir, vis, fused))
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    _, var_a, var_b, _ = _ssim_maps(a, b, 11, 1.5, c1, c2)
    both = (var_a + var_b) == 0
    var_a, var_b = var_a + 0.5 * both, var_b + 0.5 * both
    lam = var_a / (var_a + var_b)
    map_a = _ssim_maps(f, a, 11, 1.5, c1, c2)[0]
    map_b = _ssim_maps(f, b, 11, 1.5, c1, c2)[0]
    return float(np.mean(lam * map_a + (1 - lam) * map_b))


_YANG_C = 2e-16


def q_c(ir, vis, fused) -> float:
    """Q_C, Cvejic's metric (Int. J. Inf. Commun. Eng. 2006; ``metricCvejic`` sw=2): SSIM maps of
    each source with F (Gaussian 7, sigma 1.5, C1 = C2 = 2e-16) weighted by
    cov(A,F) / (cov(A,F) + cov(B,F)), that weight clipped to [0, 1] by setting the value to 0 or 1."""
    a, b, f = (np.asarray(x, dtype=np.float64) for x in (ir, vis, fused))
    map_a, _, _, cov_a = _ssim_maps(a, f, 7, 1.5, _YANG_C, _YANG_C)
    map_b, _, _, cov_b = _ssim_maps(b, f, 7, 1.5, _YANG_C, _YANG_C)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = cov_a / (cov_a + cov_b)
        sim = w * map_a + (1 - w) * map_b
    sim = np.where(w < 0, 0.0, np.where(w > 1, 1.0, sim))
    return float(np.mean(sim))


def q_y(ir, vis, fused) -> float:
    """Q_Y, Yang et al.'s SSIM-based metric (Inf. Fusion 9, 2008; ``metricYang``): where
    SSIM(A, B) >= 0.75, lambda SSIM(A,F) + (1 - lambda) SSIM(B,F) with lambda = var A / (var A +
    var B); elsewhere max(SSIM(A,F), SSIM(B,F)); Gaussian 7, sigma 1.5, C1 = C2 = 2e-16."""
    a, b, f = (np.asarray(x, dtype=np.float64) for x in (ir, vis, fused))
    map_ab, var_a, var_b, _ = _ssim_maps(a, b, 7, 1.5, _YANG_C, _YANG_C)
    map_a = _ssim_maps(a, f, 7, 1.5, _YANG_C, _YANG_C)[0]
    map_b = _ssim_maps(b, f, 7, 1.5, _YANG_C, _YANG_C)[0]
    similar = map_ab >= 0.75
    with np.errstate(divide="ignore", invalid="ignore"):
        lam = var_a / (var_a + var_b)
        q1 = (lam * map_a + (1 - lam) * map_b) * similar  # NaN * 0 stays NaN, as in MATLAB
    q2 = np.maximum(map_a, map_b) * ~similar
    return float(np.mean(q1 + q2))
