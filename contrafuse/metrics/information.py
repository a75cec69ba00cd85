"""Information-theoretic fusion metrics: EN, MI, CE and the feature mutual information FMI.

Grey images as float arrays on 0..255.
"""

from __future__ import annotations

import math

import numpy as np
import pywt
import torch
from scipy.fft import dctn

from .common import check_images, entropy_of, histogram256


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
    source's grey-level histogram to the fused one's (levels empty in either are skipped)."""
    ir, vis, fused = check_images(ir, vis, fused, name="CE")
    pf = histogram256(np.floor(fused + 0.5))

    def kl(source):
        ps = histogram256(np.floor(source + 0.5))
        both = (ps > 0) & (pf > 0)
        return float((ps[both] * np.log2(ps[both] / pf[both])).sum())

    return (kl(ir) + kl(vis)) / 2


# --------------------------------------------------------------------------------------------
# FMI: M. Haghighat, A. Aghagolzadeh, H. Seyedarabi, Comput. Electr. Eng. 37(5), 2011, in the
# fast form of Haghighat & Razian (AICT 2014), 3x3 sliding windows, as in the reference code.

def _rerange(x: np.ndarray) -> np.ndarray:
    lo, hi = x.min(), x.max()
    return np.ones_like(x) if hi == lo else (x - lo) / (hi - lo)


def fmi_features(image: np.ndarray, feature: str) -> np.ndarray:
    if feature == "pixel":
        return image
    if feature == "dct":
        return dctn(image, type=2, norm="ortho")
    if feature == "wavelet":
        ca, (ch, cv, cd) = pywt.dwt2(image, "dmey", mode="symmetric")
        return _rerange(np.block([[ca, ch], [cv, cd]]))
    raise ValueError(f"unknown FMI feature {feature!r}")


def _windows(x: np.ndarray, w: int) -> np.ndarray:
    """All w x w windows, column-major flattened like MATLAB's ``sub(:)``: (n, w*w) (the windows of
    the transposed image flattened row by row; window order does not matter to the mean)."""
    view = np.lib.stride_tricks.sliding_window_view(np.ascontiguousarray(x.T), (w, w))
    return view.reshape(-1, w * w)


def _minmax_rows(x):
    lo, hi = x.amin(1, keepdim=True), x.amax(1, keepdim=True)
    return torch.where(hi > lo, (x - lo) / torch.where(hi > lo, hi - lo, torch.ones_like(hi)), torch.ones_like(x))


def _neg_plogp_sum(p, dims):
    """sum of -p log2 |p| over ``dims`` (0 where p == 0). MATLAB takes ``real()`` of the complex log
    of a negative joint-pdf estimate, which equals using |p| inside the log."""
    return -torch.special.xlogy(p, p.abs()).sum(dims) / math.log(2.0)


def _window_stats(windows):
    """Normalised pdf, cdf, population std of the index, and entropy of each window (rows)."""
    x = _minmax_rows(windows)
    pdf = x / x.sum(1, keepdim=True)
    idx = torch.arange(1, windows.shape[1] + 1, dtype=windows.dtype)
    sd = torch.sqrt(((idx**2 * pdf).sum(1) - (idx * pdf).sum(1) ** 2).clamp_min(0))
    return pdf, pdf.cumsum(1), sd, _neg_plogp_sum(pdf, 1)


def _pair_fmi(src, fus_raw, f_stats):
    """Normalised FMI of each window pair (rows of length l = w*w), vectorised over windows.
    ``f_stats`` are the fused windows' :func:`_window_stats`; ``fus_raw`` is what the reference
    code compares the source window with for its equality shortcut (FMI = 1)."""
    f_pdf, f_cdf, f_sd, h_f = f_stats
    a_pdf, a_cdf, a_sd, h_a = _window_stats(src)
    at, ft = a_pdf - a_pdf.mean(1, keepdim=True), f_pdf - f_pdf.mean(1, keepdim=True)
    cov = (at * ft).sum(1)
    denom = torch.sqrt((at * at).sum(1) * (ft * ft).sum(1))
    zero, one = torch.zeros_like(cov), torch.ones_like(cov)
    c = torch.where(cov == 0, zero, cov / torch.where(denom > 0, denom, one))
    # Frechet upper bound min(F, A) for windows with c >= 0, lower bound max(F + A - 1, 0) for
    # c < 0 (i runs over f, j over a). Windows are grouped by sign so each bound is computed only
    # where used; the cdfs get a leading 0 so the bound carries its own zero first row and column.
    order = torch.argsort((c < 0).to(torch.uint8), stable=True)
    unsorted = torch.empty_like(order)
    unsorted[order] = torch.arange(len(order))
    k = int((c >= 0).sum())
    fz = torch.nn.functional.pad(f_cdf[order], (1, 0))[:, :, None]
    az = torch.nn.functional.pad(a_cdf[order], (1, 0))[:, None, :]
    bound = torch.empty(len(order), fz.shape[1], az.shape[2], dtype=f_cdf.dtype)
    torch.minimum(fz[:k], az[:k], out=bound[:k])
    torch.add(fz[k:], az[k:], out=bound[k:])
    bound[k:].sub_(1).clamp_(min=0)
    sd_prod = f_sd * a_sd
    sd_ok = sd_prod > 0
    # sum over (i, j) of bound - F_i A_j, the product part in closed form
    corr = (bound.sum((1, 2))[unsorted] - f_cdf.sum(1) * a_cdf.sum(1)) / torch.where(sd_ok, sd_prod, one)
    weight = torch.where(sd_ok & (c != 0), c / torch.where(corr != 0, corr, one), zero)
    # joint pmf of the bound: second differences of the bivariate CDF
    rows = bound[:, 1:, :] - bound[:, :-1, :]
    bound_pmf = rows[:, :, 1:] - rows[:, :, :-1]
    # joint pdf w * pmf + (1 - w) * outer(f_pdf, a_pdf), the product added in one broadcast pass
    w = weight[order]
    jpdf = torch.addcmul(bound_pmf.mul_(w[:, None, None]), (f_pdf[order] * (1 - w)[:, None])[:, :, None],
                         a_pdf[order][:, None, :])
    mi = h_a + h_f - _neg_plogp_sum(jpdf, (1, 2))[unsorted]
    value = torch.where(mi == 0, zero, 2 * mi / torch.where(h_a + h_f != 0, h_a + h_f, one))
    return torch.where((src == fus_raw).all(1), one, value)


def feature_mutual_information(ir, vis, fused, feature: str = "pixel", window: int = 3,
                               chunk: int = 8192) -> float:
    """FMI_pixel / FMI_dct / FMI_w: mean over w x w windows of the average normalised feature MI
    between each source and the fused image."""
    ir, vis, fused = check_images(ir, vis, fused, min_size=window, name=f"FMI_{feature}")
    fa, fb, ff = (fmi_features(x, feature) for x in (ir, vis, fused))
    wa, wb, wf = (torch.from_numpy(np.ascontiguousarray(_windows(x, window))) for x in (fa, fb, ff))
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(wf), chunk):
            sl = slice(start, start + chunk)
            f_raw = wf[sl]
            f_stats = _window_stats(f_raw)
            eq_a = (wa[sl] == f_raw).all(1)
            fmi_a = _pair_fmi(wa[sl], f_raw, f_stats)
            # the reference code normalises fSub in place inside the first branch, so its second
            # equality test compares the second source with the normalised window
            f_for_b = torch.where(eq_a[:, None], f_raw, _minmax_rows(f_raw))
            fmi_b = _pair_fmi(wb[sl], f_for_b, f_stats)
            total += float(((fmi_a + fmi_b) / 2).sum())
    return total / len(wf)
