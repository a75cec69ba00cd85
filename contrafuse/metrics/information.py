"""Information-theoretic fusion metrics: EN, MI, CE and the feature mutual information FMI.

Grey images as float arrays on 0..255.
"""

from __future__ import annotations

import functools
import math
import threading

import numba
import numpy as np
import pywt
from scipy.fft import dctn

from .common import check_images, entropy_of, histogram256, shared


def entropy(fused: np.ndarray) -> float:
    """EN (Roberts et al. 2008): Shannon entropy in bits of the 256-level histogram (values
    rounded to integers)."""
    (fused,) = check_images(fused, name="EN")
    return entropy_of(histogram256(np.floor(fused + 0.5)))


def mutual_information_bits(a: np.ndarray, b: np.ndarray) -> float:
    """MI of two 8-bit images from their 256x256 joint histogram, in bits."""
    ia = np.clip(np.floor(a + 0.5), 0, 255).astype(np.int64).ravel()
    ib = np.clip(np.floor(b + 0.5), 0, 255).astype(np.int64).ravel()
    joint = np.bincount(ia * 256 + ib, minlength=65536).reshape(256, 256) / ia.size
    return entropy_of(joint.sum(1)) + entropy_of(joint.sum(0)) - entropy_of(joint.ravel())


def mutual_information(ir, vis, fused) -> float:
    """MI (Qu, Zhang & Yan 2002): MI(IR, F) + MI(VIS, F) in bits."""
    ir, vis, fused = check_images(ir, vis, fused, name="MI")
    return mutual_information_bits(ir, fused) + mutual_information_bits(vis, fused)


def cross_entropy(ir, vis, fused) -> float:
    """CE (Bulanon et al. 2009): mean over the sources of the relative entropy (bits) of the
    source's grey-level histogram to the fused one's. Levels empty in either image are left out
    and both histograms renormalised over the levels they share, so that CE >= 0 (Gibbs'
    inequality); VIFB's code skips such levels without renormalising, which can go negative."""
    ir, vis, fused = check_images(ir, vis, fused, name="CE")
    pf = histogram256(np.floor(fused + 0.5))

    def kl(source):
        ps = histogram256(np.floor(source + 0.5))
        both = (ps > 0) & (pf > 0)
        p, q = ps[both] / ps[both].sum(), pf[both] / pf[both].sum()
        return max(float((p * np.log2(p / q)).sum()), 0.0)

    return (kl(ir) + kl(vis)) / 2


# --------------------------------------------------------------------------------------------
# FMI: M. Haghighat, A. Aghagolzadeh, H. Seyedarabi, Comput. Electr. Eng. 37(5), 2011, in the
# fast form of Haghighat & Razian (AICT 2014), 3x3 sliding windows, as in the reference code.

def _rerange(x: np.ndarray) -> np.ndarray:
    lo, hi = x.min(), x.max()
    return np.ones_like(x) if hi == lo else (x - lo) / (hi - lo)


#: One half (51 taps, the centre last) of the 102-tap discrete Meyer reconstruction low-pass filter
#: (sum sqrt 2; the last tap is 0), the length MATLAB's ``dmey`` has; values as tabulated in
#: wavelib (rafat/wavelib, 2017). PyWavelets' ``dmey`` is a 62-tap truncation differing in the
#: third digit at the centre (0.74459 vs 0.74375).
_DMEY102_HALF = (
    -1.509740857e-06, 1.278766757e-06, 4.4958556e-07, -2.09656887e-06, 1.723223554e-06, 6.98082276e-07,
    -2.879408033e-06, 2.383148395e-06, 9.82515602e-07, -4.217789186e-06, 3.353501538e-06, 1.674721859e-06,
    -6.034501342e-06, 4.837555802e-06, 2.402288023e-06, -9.556309846e-06, 7.216527695e-06, 4.8490783e-06,
    -1.4206928581e-05, 1.0503914271e-05, 6.187580298e-06, -2.4438005846e-05, 2.0106387691e-05, 1.49935236e-05,
    -4.6428764284e-05, 3.2341311914e-05, 3.740966576e-05, -0.000102779005085, 2.4461956845e-05,
    0.000149713515389, -7.5592870255e-05, -0.000139913148217, -9.351289388e-05, 0.000161189819725,
    0.000859500213762, -0.000578185795273, -0.002702168733939, 0.002194775336459, 0.006045510596456,
    -0.006386728618548, -0.011044641900539, 0.015250913158586, 0.017403888210177, -0.032094063354505,
    -0.024321783959519, 0.063667300884468, 0.030621243943425, -0.132696615358862, -0.035048287390595,
    0.444095030766529, 0.743751004903787,
)


def dmey102() -> pywt.Wavelet:
    """The 102-tap discrete Meyer wavelet (filters as MATLAB's ``wfilters('dmey')`` builds them
    from the scaling filter: ``orthfilt``)."""
    half = np.array(_DMEY102_HALF)
    scaling = np.concatenate([half, half[-2::-1], [0.0]])
    return pywt.Wavelet("dmey102", filter_bank=pywt.orthogonal_filter_bank(scaling))


_DMEY = dmey102()


@functools.lru_cache(maxsize=8)
def _symmetric_taps(n: int, f: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PyWavelets' downsampling convolution (step 2, ``symmetric`` extension) of a length-``n``
    signal with a length-``f`` filter as a list of terms: for output o, the filter and input
    indices of terms ``starts[o]:starts[o + 1]``, in the order pywt sums them (past the right
    end first, mirrored runs alternating, then the taps inside, then those past the left end)."""
    taps, inputs, starts = [], [], [0]
    for i in range(1, n + f - 1, 2):  # output o is the full convolution at i = 2 o + 1
        j = 0
        while i - j >= n:  # filter taps over the extension past the right end
            for mirrored in (True, False):
                k = 0
                while k < n and i - j >= n:
                    taps.append(i - n - j)
                    inputs.append(n - 1 - k if mirrored else k)
                    j, k = j + 1, k + 1
        while j < f and j <= i:
            taps.append(j)
            inputs.append(i - j)
            j += 1
        while j < f:  # taps over the extension past the left end
            for mirrored in (False, True):
                k = 0
                while k < n and j < f:
                    taps.append(j)
                    inputs.append(n - 1 - k if mirrored else k)
                    j, k = j + 1, k + 1
        starts.append(len(taps))
    return np.array(taps), np.array(inputs), np.array(starts)


@numba.njit(cache=True, nogil=True)
def _downsample_columns(x, lo, hi, taps, inputs, starts):
    """Every column of ``x`` filtered with ``lo`` and ``hi`` by the terms of :func:`_symmetric_taps`."""
    out_lo = np.zeros((len(starts) - 1, x.shape[1]))
    out_hi = np.zeros((len(starts) - 1, x.shape[1]))
    for o in range(len(starts) - 1):
        for t in range(starts[o], starts[o + 1]):
            w_lo, w_hi, row = lo[taps[t]], hi[taps[t]], inputs[t]
            for c in range(x.shape[1]):
                out_lo[o, c] += w_lo * x[row, c]
                out_hi[o, c] += w_hi * x[row, c]
    return out_lo, out_hi


def dwt2_symmetric(image: np.ndarray, wavelet: pywt.Wavelet):
    """``pywt.dwt2(image, wavelet, mode="symmetric")`` (down the columns, then along the rows), equal
    to it bit for bit — each output summed in pywt's order — with whole rows of outputs at a time."""
    lo, hi = np.asarray(wavelet.dec_lo), np.asarray(wavelet.dec_hi)
    a, d = _downsample_columns(np.ascontiguousarray(image, dtype=np.float64), lo, hi,
                               *_symmetric_taps(image.shape[0], len(lo)))
    along_rows = _symmetric_taps(image.shape[1], len(lo))
    aa, ad = _downsample_columns(np.ascontiguousarray(a.T), lo, hi, *along_rows)
    da, dd = _downsample_columns(np.ascontiguousarray(d.T), lo, hi, *along_rows)
    return aa.T, (da.T, ad.T, dd.T)


def matlab_sobel_edges(image: np.ndarray) -> np.ndarray:
    """MATLAB ``edge(I)`` with its defaults (Sobel, automatic threshold, thinning): gradients by
    ``imfilter`` with fspecial('sobel')/8 and its transpose (replicated borders), b = gx^2 + gy^2,
    cutoff 4 mean(b); a pixel is an edge where b > cutoff and b is a local maximum across the
    dominant gradient direction (>= on one side, > on the other, outside the image counts as
    passed), as the toolbox's FMI computes its default features."""
    x = np.pad(image, 1, mode="edge")
    m, n = image.shape
    col = x[:-2] + 2 * x[1:-1] + x[2:]
    bx = (col[:, :n] - col[:, 2:]) / 8  # x_mask = [1 0 -1; 2 0 -2; 1 0 -1] / 8 (correlation)
    row = x[:, :n] + 2 * x[:, 1:n + 1] + x[:, 2:]
    by = (row[:-2] - row[2:]) / 8       # y_mask = [1 2 1; 0 0 0; -1 -2 -1] / 8
    b = bx * bx + by * by
    cutoff = 4 * b.mean()
    bx, by = np.abs(bx), np.abs(by)
    tol = 100 * np.finfo(float).eps
    true = np.ones((m, 1), bool)
    left = np.concatenate([true, b[:, :-1] <= b[:, 1:]], axis=1)
    right = np.concatenate([b[:, :-1] > b[:, 1:], true], axis=1)
    truer = np.ones((1, n), bool)
    up = np.concatenate([truer, b[:-1] <= b[1:]], axis=0)
    down = np.concatenate([b[:-1] > b[1:], truer], axis=0)
    return ((b > cutoff) & (((bx >= by - tol) & left & right) | ((by >= bx - tol) & up & down))).astype(np.float64)


def fmi_features(image: np.ndarray, feature: str) -> np.ndarray:
    """FMI feature images of Haghighat's ``fmi.m``: ``pixel`` (none: raw values), ``edge``
    (MATLAB ``edge``, the code's default, on ``im2double`` intensities), ``dct`` (``dct2``,
    orthonormal) or ``wavelet`` (one-level 2-D DWT with the 102-tap discrete Meyer wavelet,
    symmetric extension, the four bands [cA cH; cV cD] rescaled to [0, 1])."""
    if feature == "pixel":
        return image
    if feature == "edge":
        return matlab_sobel_edges(image / 255.0)
    if feature == "dct":
        return dctn(image, type=2, norm="ortho")
    if feature == "wavelet":
        ca, (ch, cv, cd) = dwt2_symmetric(image, _DMEY)
        return _rerange(np.block([[ca, ch], [cv, cd]]))
    raise ValueError(f"unknown FMI feature {feature!r}")


def _windows(x: np.ndarray, w: int) -> np.ndarray:
    """All w x w windows, column-major flattened like MATLAB's ``sub(:)``: (n, w*w) (the windows of
    the transposed image flattened row by row; window order does not matter to the mean)."""
    view = np.lib.stride_tricks.sliding_window_view(np.ascontiguousarray(x.T, dtype=np.float64), (w, w))
    return np.ascontiguousarray(view.reshape(-1, w * w))


@numba.njit(cache=True, nogil=True)
def _minmax(x, out):
    """``out`` = x min-max normalised to [0, 1] (all ones for a flat window)."""
    lo, hi = x.min(), x.max()
    for k in range(x.size):
        out[k] = (x[k] - lo) / (hi - lo) if hi > lo else 1.0


@numba.njit(cache=True, nogil=True, inline="always")
def _window_stats(x, pdf, cdf, logs, log_table):
    """Fill ``pdf`` (the min-max normalised window over its sum), its ``cdf`` and ``logs`` (log2 of
    the pdf, 0 where it is 0); return the population std of the bin index, the entropy in bits, the
    sum of the cdf and the pdf's squared deviation from uniform, sum (pdf_k - 1/l)^2. With a
    ``log_table`` (log2 of 0, 1, 2, ...; integer-valued windows) the logarithms are looked up:
    pdf_k = (x_k - min) / sum(x - min)."""
    l = x.size
    lo, hi = x[0], x[0]
    for k in range(1, l):
        lo = min(lo, x[k])
        hi = max(hi, x[k])
    if hi == lo:
        for k in range(l):
            pdf[k] = 1.0 / l
            logs[k] = math.log2(1.0 / l)
    elif log_table.size:
        total_int = 0
        for k in range(l):
            total_int += int(x[k] - lo)
        inv = 1.0 / total_int
        log_total = log_table[total_int]
        for k in range(l):
            y = int(x[k] - lo)
            pdf[k] = y * inv
            logs[k] = log_table[y] - log_total if y > 0 else 0.0
    else:
        inv_range = 1.0 / (hi - lo)
        total = 0.0
        for k in range(l):
            pdf[k] = (x[k] - lo) * inv_range
            total += pdf[k]
        inv = 1.0 / total
        for k in range(l):
            pdf[k] *= inv
            logs[k] = math.log2(pdf[k]) if pdf[k] > 0 else 0.0
    total = m1 = m2 = h = cdf_sum = spread = 0.0
    for k in range(l):
        total += pdf[k]
        cdf[k] = total
        cdf_sum += total
        m1 += (k + 1) * pdf[k]
        m2 += (k + 1) ** 2 * pdf[k]
        h -= pdf[k] * logs[k]
        spread += (pdf[k] - 1.0 / l) ** 2  # both pdfs have mean 1/l; exactly 1/l keeps flat windows' c 0
    return math.sqrt(max(m2 - m1 * m1, 0.0)), h, cdf_sum, spread


@numba.njit(cache=True, nogil=True, inline="always")
def _plog2(p):
    """p log2 |p| (0 at p = 0); MATLAB takes ``real(log)`` of negative joint-pmf cells."""
    return p * math.log2(abs(p)) if p != 0 else 0.0


@numba.njit(cache=True, nogil=True, inline="always")
def _pair_fmi(src, f_cmp, f_pdf, f_cdf, f_log, f_stats, a_pdf, a_cdf, a_log, b_edge, lengths, rows, cols,
              log_table):
    """Normalised feature MI of one source window with the fused window (Haghighat et al. 2011).

    The joint pmf is ``w P + (1 - w) f a^T``: P the pmf of the Frechet upper bound
    ``min(F_i, A_j)`` when the pdfs correlate (c >= 0), of the lower bound
    ``max(F_i + A_j - 1, 0)`` otherwise, and w the correlation c over the bound's own. A Frechet
    bound ties both variables to one uniform U (X in bin i for U in (F_{i-1}, F_i]; Y in bin j
    for U in (A_{j-1}, A_j], or in [1 - A_j, 1 - A_{j-1}) for the lower bound), so P is non-zero
    only on the <= 2l pieces into which both sets of bin edges cut [0, 1]. Walking those pieces
    gives P, the bound's sum over all cells, and the joint entropy as the product part's closed
    form (its logarithms are the marginals') plus a correction on the pieces' cells: the l*l
    cell-by-cell sums up to rounding. ``f_cmp`` is what the reference code compares the source
    window with (equal: FMI = 1); ``f_stats`` the fused window's :func:`_window_stats`."""
    l = src.size
    equal = True
    for k in range(l):
        if src[k] != f_cmp[k]:
            equal = False
            break
    if equal:
        return 1.0
    f_sd, h_f, f_cdf_sum, var_f = f_stats
    a_sd, h_a, a_cdf_sum, var_a = _window_stats(src, a_pdf, a_cdf, a_log, log_table)
    cov = 0.0
    for k in range(l):
        cov += (a_pdf[k] - 1.0 / l) * (f_pdf[k] - 1.0 / l)
    denom = math.sqrt(var_a * var_f)
    c = 0.0 if cov == 0 else cov / (denom if denom > 0 else 1.0)
    # the second variable's bin edges on U, in increasing order (reversed for the lower bound)
    upper = c >= 0
    for m in range(l):
        if upper:
            b_edge[m] = a_cdf[m]
        else:
            b_edge[m] = 1.0 - a_cdf[l - 2 - m] if m < l - 1 else 1.0
    i = m = pieces = 0
    left = bound_sum = 0.0
    while i < l and m < l:
        f_edge, edge = f_cdf[i], b_edge[m]
        right = min(f_edge, edge)
        j = m if upper else l - 1 - m
        lengths[pieces], rows[pieces], cols[pieces] = right - left, i, j
        bound_sum += (right - left) * (l - i) * (l - j)  # a piece counts in every cell (>= i, >= j)
        pieces += 1
        left = right
        i += f_edge <= right
        m += edge <= right
    f_sum, a_sum = f_cdf[l - 1], a_cdf[l - 1]  # the pdfs' sums, in index order
    sd_prod = f_sd * a_sd
    corr = (bound_sum - f_cdf_sum * a_cdf_sum) / (sd_prod if sd_prod > 0 else 1.0)
    w = c / (corr if corr != 0 else 1.0) if (sd_prod > 0 and c != 0) else 0.0
    one_w = 1 - w
    log_one_w = math.log2(abs(one_w)) if one_w != 0 else 0.0
    h_joint = one_w * (h_f * a_sum + f_sum * h_a) - _plog2(one_w) * f_sum * a_sum
    for k in range(pieces):
        if lengths[k] == 0:  # the cell is the product part alone: nothing to correct
            continue
        product = one_w * (f_pdf[rows[k]] * a_pdf[cols[k]])
        cell = w * lengths[k] + product
        if product != 0:
            h_joint += product * (log_one_w + f_log[rows[k]] + a_log[cols[k]])
        h_joint -= _plog2(cell)
    mi = h_a + h_f - h_joint
    return 0.0 if mi == 0 else 2 * mi / (h_a + h_f if h_a + h_f != 0 else 1.0)


@numba.njit(cache=True, parallel=True)
def _fmi_rows(fa, fb, ff, w, log_table):
    """Per row of window positions, the sum over its windows of (FMI(a, f) + FMI(b, f)) / 2; the
    windows read in MATLAB's column-major ``sub(:)`` order."""
    out_rows, out_cols = ff.shape[0] - w + 1, ff.shape[1] - w + 1
    l = w * w
    sums = np.zeros(out_rows)
    for r in numba.prange(out_rows):
        wa, wb, wf, f_norm = np.empty(l), np.empty(l), np.empty(l), np.empty(l)
        f_pdf, f_cdf, f_log = np.empty(l), np.empty(l), np.empty(l)
        a_pdf, a_cdf, a_log, b_edge = np.empty(l), np.empty(l), np.empty(l), np.empty(l)
        lengths, rows, cols = np.empty(2 * l), np.empty(2 * l, np.int64), np.empty(2 * l, np.int64)
        total = 0.0
        for c in range(out_cols):
            k = 0
            for dc in range(w):
                for dr in range(w):
                    wa[k] = fa[r + dr, c + dc]
                    wb[k] = fb[r + dr, c + dc]
                    wf[k] = ff[r + dr, c + dc]
                    k += 1
            f_stats = _window_stats(wf, f_pdf, f_cdf, f_log, log_table)
            fmi_a = _pair_fmi(wa, wf, f_pdf, f_cdf, f_log, f_stats, a_pdf, a_cdf, a_log, b_edge, lengths,
                              rows, cols, log_table)
            # the reference code normalises fSub in place inside the first branch, so unless the
            # first source matched exactly, its second equality test sees the normalised window
            if fmi_a == 1.0 and _same(wa, wf):
                f_cmp = wf
            else:
                _minmax(wf, f_norm)
                f_cmp = f_norm
            fmi_b = _pair_fmi(wb, f_cmp, f_pdf, f_cdf, f_log, f_stats, a_pdf, a_cdf, a_log, b_edge, lengths,
                              rows, cols, log_table)
            total += (fmi_a + fmi_b) / 2
        sums[r] = total
    return sums


@numba.njit(cache=True, nogil=True)
def _same(x, y):
    for k in range(x.size):
        if x[k] != y[k]:
            return False
    return True


_KERNEL_LOCK = threading.Lock()


def _log2_table(top: int) -> np.ndarray:
    """log2 of 0 .. top (log2 0 := 0, never used)."""
    table = np.zeros(top + 1)
    table[1:] = np.log2(np.arange(1, top + 1))
    return table


def feature_mutual_information(ir, vis, fused, feature: str = "pixel", window: int = 3) -> float:
    """FMI_pixel / FMI_dct / FMI_w (Haghighat et al. 2011, fast form 2014): mean over w x w
    windows of the average normalised feature MI between each source and the fused image."""
    ir, vis, fused = check_images(ir, vis, fused, min_size=window, name=f"FMI_{feature}")
    fa, fb, ff = (np.ascontiguousarray(shared("fmi_features", x, compute=lambda x=x: fmi_features(x, feature),
                                              params=(feature,)), dtype=np.float64) for x in (ir, vis, fused))
    integral = all(np.array_equal(x, np.round(x)) and x.min() >= 0 and x.max() <= 65535 for x in (fa, fb, ff))
    log_table = _log2_table(int(window * window * max(fa.max(), fb.max(), ff.max(), 1))) if integral else np.empty(0)
    with _KERNEL_LOCK:  # one parallel kernel at a time: Numba's workqueue layer forbids concurrent launches
        sums = _fmi_rows(fa, fb, ff, window, log_table)
    return float(sums.sum() / ((ff.shape[0] - window + 1) * (ff.shape[1] - window + 1)))
