"""Intensity- and gradient-based metrics: SD, SF, AG, EI, Qabf, Nabf. Grey float images, 0..255."""

from __future__ import annotations

import math

import numpy as np

from .common import check_images, matlab_round, sobel_filter2, sobel_xy
from .toolbox import nabf_kumar


def standard_deviation(fused) -> float:
    """SD (Aslantas & Bendes 2015): population standard deviation."""
    (fused,) = check_images(fused, name="SD")
    return float(fused.std())


def standard_deviation_uint8(fused) -> float:
    """SD as the legacy MATLAB toolbox computes it on a uint8 image: ``img - mean`` saturates
    negative deviations to 0 and rounds, and the square saturates at 255 (so SD <= 15.97)."""
    (fused,) = check_images(fused, name="SD")
    image = np.clip(matlab_round(fused), 0, 255)
    deviation = np.clip(matlab_round(image - image.mean()), 0, 255)
    return float(np.sqrt(np.minimum(deviation**2, 255).sum() / image.size))


def spatial_frequency(fused, scale: float = 1.0) -> float:
    """SF (Eskicioglu & Fisher 1995; CoCoNet Eqs. 15-17): sqrt(RF^2 + CF^2), both normalised by
    M N. ``scale`` multiplies intensities first (1/255 gives the legacy 0..1 convention)."""
    (fused,) = check_images(fused, name="SF")
    fused = fused * scale
    rf = ((fused[:, 1:] - fused[:, :-1]) ** 2).sum() / fused.size
    cf = ((fused[1:, :] - fused[:-1, :]) ** 2).sum() / fused.size
    return float(np.sqrt(rf + cf))


def average_gradient(fused, central: bool = False) -> float:
    """AG (Cui et al. 2015): mean of sqrt((dx^2 + dy^2) / 2) over (M-1)(N-1).

    ``central=False``: forward differences on the (M-1) x (N-1) grid (textbook).
    ``central=True``: MATLAB ``gradient`` (central differences inside, one-sided at the border)
    summed over the whole image and divided by (M-1)(N-1), as the MATLAB toolboxes do.
    """
    (fused,) = check_images(fused, name="AG")
    rows, cols = fused.shape
    if central:
        dy, dx = np.gradient(fused)
        return float(np.sqrt((dx**2 + dy**2) / 2).sum() / ((rows - 1) * (cols - 1)))
    dx = fused[:-1, 1:] - fused[:-1, :-1]
    dy = fused[1:, :-1] - fused[:-1, :-1]
    return float(np.sqrt((dx**2 + dy**2) / 2).mean())


def edge_intensity(fused) -> float:
    """EI (Rajalingam & Priya 2018): mean Sobel gradient magnitude, replicated borders."""
    (fused,) = check_images(fused, name="EI")
    gx, gy = sobel_xy(fused)
    return float(np.sqrt(gx**2 + gy**2).mean())


def qabf(ir, vis, fused) -> float:
    """Q^{AB/F} (Xydeas & Petrovic 2000) as Hong's / VIFB's MATLAB code computes it: Sobel by
    ``conv2`` (zero padding), orientation ``atan(Sy/Sx)`` (pi/2 where Sx == 0), relative strength
    ``gF`` itself where the strengths are equal, Tg=0.9994, kg=-15, Dg=0.5, Ta=0.9879, ka=-22,
    Da=0.8, weights the source strengths."""
    ir, vis, fused = check_images(ir, vis, fused, name="Qabf")
    tg, kg, dg, ta, ka, da = 0.9994, -15.0, 0.5, 0.9879, -22.0, 0.8

    def strength_angle(image):
        gx, gy = sobel_filter2(image)  # conv2 with the code's kernels gives (-gx, gy)
        with np.errstate(divide="ignore", invalid="ignore"):
            angle = np.where(gx == 0, np.pi / 2, np.arctan(gy / np.where(gx == 0, 1.0, -gx)))
        return np.sqrt(gx * gx + gy * gy), angle

    g_f, a_f = strength_angle(fused)
    num = den = 0.0
    for source in (ir, vis):
        g_s, a_s = strength_angle(source)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(g_s > g_f, g_f / np.where(g_s == 0, 1.0, g_s),
                           np.where(g_s == g_f, g_f, g_s / np.where(g_f == 0, 1.0, g_f)))
        orient = 1 - np.abs(a_s - a_f) / (np.pi / 2)
        q = tg / (1 + np.exp(kg * (rel - dg))) * ta / (1 + np.exp(ka * (orient - da)))
        num += (q * g_s).sum()
        den += g_s.sum()
    return float(num / den) if den > 0 else math.nan


def nabf(ir, vis, fused) -> float:
    """N^{AB/F}, fusion artefacts in Kumar's modified form (SIViP 2013), his reference code on
    0..255 intensities (see :func:`contrafuse.metrics.toolbox.nabf_kumar`)."""
    ir, vis, fused = check_images(ir, vis, fused, name="Nabf")
    return nabf_kumar(ir, vis, fused)
