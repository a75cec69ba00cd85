"""Human-visual-system metrics: VIFF, VIFP, Qcb, Qcv. Grey float images, 0..255."""

from __future__ import annotations

import numpy as np

from .common import check_images, gaussian_1d, separable_filter2, shared
from .vifb import qcb as _qcb_reference
from .vifb import qcv as _qcv_reference


def vif_moments(ref: np.ndarray, dist: np.ndarray):
    """Per scale (mu1, mu2, sigma1^2, sigma2^2, sigma12) of ``vifp_mscale``: Gaussian windows of
    17, 9, 5, 3 taps (sigma N/5), 'valid' filtering, halving between scales; the variances clipped
    at 0. Shared by VIFF and VIF-P within one evaluation."""
    def compute(ref=ref, dist=dist):
        out = []
        for scale in range(1, 5):
            n = 2 ** (4 - scale + 1) + 1
            g = gaussian_1d(n, n / 5)
            if scale > 1:
                ref = separable_filter2(g, ref, "valid")[::2, ::2]
                dist = separable_filter2(g, dist, "valid")[::2, ::2]
            mu1, mu2 = separable_filter2(g, ref, "valid"), separable_filter2(g, dist, "valid")
            s1 = np.maximum(separable_filter2(g, ref * ref, "valid") - mu1 * mu1, 0)
            s2 = np.maximum(separable_filter2(g, dist * dist, "valid") - mu2 * mu2, 0)
            s12 = separable_filter2(g, ref * dist, "valid") - mu1 * mu2
            out.append((mu1, mu2, s1, s2, s12))
        return out
    return shared("vif_moments", ref, dist, compute=compute)


def vif_guarded(s1: np.ndarray, s2: np.ndarray, s12: np.ndarray):
    """The reference ``vifp_mscale``/``ComVidVindG`` guards on one scale's local moments: the
    source variance (zeroed where flat), the gain and the distortion variance."""
    s1 = s1.copy()
    gain = s12 / (s1 + 1e-10)
    sv = s2 - gain * s12
    flat1 = s1 < 1e-10
    gain[flat1] = 0
    sv[flat1] = s2[flat1]
    s1[flat1] = 0
    flat2 = s2 < 1e-10
    gain[flat2] = 0
    sv[flat2] = 0
    negative = gain < 0
    sv[negative] = s2[negative]
    gain[negative] = 0
    sv[sv <= 1e-10] = 1e-10
    return s1, gain, sv


def vif_maps(ref: np.ndarray, dist: np.ndarray, noise_var: float):
    """Per-scale VID, VIND and gain maps of the pixel-domain VIF (Sheikh & Bovik, IEEE TIP 15(2),
    2006), four scales with Gaussian windows of 17, 9, 5, 3 taps (sigma N/5), 'valid' filtering,
    the numerical guards of the reference ``vifp_mscale``/``ComVidVindG`` code."""
    out = []
    for _, _, s1, s2, s12 in vif_moments(ref, dist):
        s1, gain, sv = vif_guarded(s1, s2, s12)
        vid = np.log10(1 + gain**2 * s1 / (sv + noise_var))
        vind = np.log10(1 + s1 / noise_var)
        out.append((vid, vind, gain))
    return out


#: four scales of 17/9/5/3-tap 'valid' filters with three halvings need at least this many pixels
VIF_MIN_SIDE = 41


def viff(ir, vis, fused) -> float:
    """VIFF (Han, Cai, Cao & Xu, Information Fusion 14(2), 2013): per scale, at every pixel the
    source whose gain g is smaller supplies VID/VIND; VIFF = sum_k p_k sum(VID + C) / sum(VIND + C)
    with p = [1, 0, 0.15, 1] / 2.15, visual noise 0.005 * 255^2, C = 1e-7 (reference VIFF_Public)."""
    ir, vis, fused = check_images(ir, vis, fused, name="VIFF")
    noise, c = 0.005 * 255 * 255, 1e-7
    weights = np.array([1.0, 0.0, 0.15, 1.0]) / 2.15
    maps1, maps2 = vif_maps(ir, fused, noise), vif_maps(vis, fused, noise)
    ratios = []
    for (vid1, vind1, g1), (vid2, vind2, g2) in zip(maps1, maps2):
        take1 = g1 < g2
        vid, vind = np.where(take1, vid1, vid2), np.where(take1, vind1, vind2)
        ratios.append((vid + c).sum() / (vind + c).sum())
    return float((np.array(ratios) * weights).sum())


def vifp_pair(ref, dist) -> float:
    maps = vif_maps(ref, dist, 2.0)
    num = sum(vid.sum() for vid, _, _ in maps)
    den = sum(vind.sum() for _, vind, _ in maps)
    return float(num / den) if den > 0 else float("nan")  # 0/0 where the reference has no variance


def vifp(ir, vis, fused) -> float:
    """VIF-P (Sheikh & Bovik 2006, multi-scale pixel domain, noise variance 2) of the fused image
    against each source, summed, as many fusion papers report it; NaN when a source is flat at
    every scale (the reference ``vifp_mscale`` divides 0 by 0)."""
    ir, vis, fused = check_images(ir, vis, fused, name="VIFP")
    return vifp_pair(ir, fused) + vifp_pair(vis, fused)


def qcb(ir, vis, fused) -> float:
    """Q_CB (Chen & Blum, Image Vis. Comput. 27, 2009)."""
    ir, vis, fused = check_images(ir, vis, fused, name="Qcb")
    return _qcb_reference(ir, vis, fused)


def qcv(ir, vis, fused) -> float:
    """Q_CV (Chen & Varshney, Information Fusion 8, 2007); lower is better."""
    ir, vis, fused = check_images(ir, vis, fused, name="Qcv")
    return _qcv_reference(ir, vis, fused)
