"""Intensity- and gradient-based metrics: SD, SF, AG, EI, Qabf, Nabf. Grey float images, 0..255."""

from __future__ import annotations

import math

import numpy as np

from .common import check_images, matlab_round, sobel_filter2, sobel_xy


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


#: the Qabf codes' Sobel kernels: Sx = conv2(x, SOBEL_SX, 'same'), Sy = conv2(x, SOBEL_SY, 'same')
SOBEL_SX = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
SOBEL_SY = np.array([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]])


def qabf_from_sobel(a_xy, b_xy, fused_xy) -> float:
    """Q^{AB/F} (Xydeas & Petrovic 2000) as the MATLAB codes (Hong's, VIFB's, the legacy toolbox's)
    compute it from the Sobel responses ``(Sx, Sy)`` (:data:`SOBEL_SX`, :data:`SOBEL_SY`) of the two
    sources and the fused image: strength ``sqrt(Sx^2 + Sy^2)``, orientation ``atan(Sy/Sx)`` (pi/2
    where Sx == 0), relative strength ``gF`` itself where the strengths are equal (the codes'
    quirk), Tg=0.9994, kg=-15, Dg=0.5, Ta=0.9879, ka=-22, Da=0.8, weights the source strengths; NaN
    when both sources are flat. Each caller brings the Sobel responses its code computes (the
    summation order decides exact zeros and ties on non-integer images)."""
    tg, kg, dg, ta, ka, da = 0.9994, -15.0, 0.5, 0.9879, -22.0, 0.8

    def strength_angle(sx, sy):
        with np.errstate(divide="ignore", invalid="ignore"):
            angle = np.where(sx == 0, np.pi / 2, np.arctan(sy / np.where(sx == 0, 1.0, sx)))
        return np.sqrt(sx * sx + sy * sy), angle

    g_f, a_f = strength_angle(*fused_xy)
    num = den = 0.0
    for source_xy in (a_xy, b_xy):
        g_s, a_s = strength_angle(*source_xy)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(g_s > g_f, g_f / np.where(g_s == 0, 1.0, g_s),
                           np.where(g_s == g_f, g_f, g_s / np.where(g_f == 0, 1.0, g_f)))
        orient = 1 - np.abs(a_s - a_f) / (np.pi / 2)
        q = tg / (1 + np.exp(kg * (rel - dg))) * ta / (1 + np.exp(ka * (orient - da)))
        num += (q * g_s).sum()
        den += g_s.sum()
    return float(num / den) if den > 0 else math.nan


def conv2_sobel(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``conv2`` (zero padding) with :data:`SOBEL_SX` and :data:`SOBEL_SY`: (-gx, gy) of
    :func:`~contrafuse.metrics.common.sobel_filter2` (shared within an evaluation; on integer-valued
    images exact, whatever the summation order)."""
    gx, gy = sobel_filter2(image)
    return -gx, gy


def qabf(ir, vis, fused) -> float:
    """Q^{AB/F} on 0..255 intensities as Hong's / VIFB's MATLAB code computes it
    (:func:`qabf_from_sobel` of :func:`conv2_sobel`)."""
    ir, vis, fused = check_images(ir, vis, fused, name="Qabf")
    return qabf_from_sobel(conv2_sobel(ir), conv2_sobel(vis), conv2_sobel(fused))


# ------------------------------------------------------------------------------------------------
# Nabf: B. K. Shreyamsha Kumar's modified fusion-artefact measure (SIViP 2013), his
# objective_fusion_perform_fn as the legacy toolbox ships it (analysis_nabf.m, sobel_fn.m)

def kumar_sobel(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kumar's ``sobel_fn``: vertical and horizontal Sobel responses (kernels / 8) on the image
    extended by one mirrored pixel (``per_extn_im_fn``, edge not repeated), each 3 x 3 window
    summed as MATLAB's ``sum(sum(window .* kernel))`` does (column sums first), so that exact
    zeros come out where MATLAB's do."""
    x = np.pad(image, 1, mode="reflect")
    n = image.shape[1]
    up, mid, down = x[:-2], x[1:-1], x[2:]
    left = ((-0.125 * up[:, :n]) + (-0.25 * mid[:, :n])) + (-0.125 * down[:, :n])
    right = ((0.125 * up[:, 2:]) + (0.25 * mid[:, 2:])) + (0.125 * down[:, 2:])
    gv = left + right  # the middle column sums to exactly 0
    gh = (((-0.125 * up[:, :n]) + (0.125 * down[:, :n])) + ((-0.25 * up[:, 1:n + 1]) + (0.25 * down[:, 1:n + 1]))) \
        + ((-0.125 * up[:, 2:]) + (0.125 * down[:, 2:]))
    return gv, gh


def nabf_kumar(ir, vis, fused, divisor: float = 1.0) -> float:
    """N^{AB/F} in Kumar's modified form: where the fused gradient exceeds both sources',
    ``sum(na ((1 - Q^{AF}) w_A + (1 - Q^{BF}) w_B)) / sum(w_A + w_B)`` with Q = sqrt(Q_g Q_a)
    (Nrg=0.9999, kg=19, sg=0.5, Nra=0.9995, ka=22, sa=0.5), w = |grad|^1.5 where |grad| >= Td = 2,
    else 0.001. The images are divided by ``divisor`` first: the toolbox passes ``im2double`` images
    (divisor 255, the division as ``im2double`` rounds it), on which no gradient reaches Td and
    every weight is 0.001."""
    td, wt_min, lg = 2.0, 0.001, 1.5
    nrg, kg, sg, nra, ka, sa = 0.9999, 19.0, 0.5, 0.9995, 22.0, 0.5
    grads = [kumar_sobel(x / divisor if divisor != 1 else x) for x in (ir, vis, fused)]
    strengths = [np.sqrt(gh * gh + gv * gv) for gv, gh in grads]
    with np.errstate(divide="ignore", invalid="ignore"):
        angles = [np.where((gv == 0) & (gh == 0), 0.0, np.arctan(gv / gh)) for gv, gh in grads]
    g_f, a_f = strengths[2], angles[2]
    terms, weights = [], []
    for g_s, a_s in zip(strengths[:2], angles[:2]):
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where((g_s == 0) | (g_f == 0), 0.0,
                           np.where(g_s > g_f, g_f / g_s, g_s / g_f))
        orient = np.abs(np.abs(a_s - a_f) - np.pi / 2) * 2 / np.pi
        q = np.sqrt(nrg / (1 + np.exp(-kg * (rel - sg))) * (nra / (1 + np.exp(-ka * (orient - sa)))))
        w = np.where(g_s >= td, g_s**lg, wt_min)
        terms.append((1 - q) * w)
        weights.append(w)
    artefact = (g_f > strengths[0]) & (g_f > strengths[1])
    return float((artefact * (terms[0] + terms[1])).sum() / (weights[0] + weights[1]).sum())


def nabf(ir, vis, fused) -> float:
    """N^{AB/F}, fusion artefacts in Kumar's modified form (SIViP 2013), his reference code on
    0..255 intensities (see :func:`nabf_kumar`)."""
    ir, vis, fused = check_images(ir, vis, fused, name="Nabf")
    return nabf_kumar(ir, vis, fused)
