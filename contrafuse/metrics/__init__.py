"""Fusion metrics with named conventions.

    >>> from contrafuse.metrics import evaluate
    >>> evaluate("ir.png", "vis.png", "fused.png", metrics=["EN", "SD", "VIFF"], convention="legacy")

:data:`METRICS` declares every metric (short name, direction, range, reference).
:data:`CONVENTIONS` names the definitions:

* ``standard`` (default): textbook floating-point definitions on 0..255 luminance (MI in bits,
  true PSNR/RMSE, SSIM averaged over the two sources).
* ``legacy``: the MATLAB evaluation toolbox behind the CoCoNet and CLF-Net tables: SD on uint8 with
  saturating arithmetic, SF on 0..1 intensities, AG with MATLAB ``gradient`` on 0..255, SSIM as
  MATLAB's built-in ``ssim`` (replicated borders) averaged over the sources; its VIF column is our
  ``VIFP`` (``vifp_mscale`` summed over both sources).
* ``vifb``: the VIFB benchmark's MATLAB code for its 13 metrics (per-channel colour handling and
  all); other metrics fall back to ``standard`` and the result says so.

See docs/metrics.md for formulas and for why papers disagree.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import ContrafuseError
from ..io import luminance, read_image
from . import gradient, information, similarity, vifb, visual


@dataclass(frozen=True)
class MetricInfo:
    name: str
    higher_is_better: bool
    value_range: str
    reference: str


METRICS: dict[str, MetricInfo] = {m.name: m for m in [
    MetricInfo("EN", True, "[0, 8] bits", "Roberts et al., J. Appl. Remote Sens. 2008"),
    MetricInfo("SD", True, "[0, 127.5] (legacy: [0, 15.97])", "Aslantas & Bendes, AEU 2015"),
    MetricInfo("SF", True, "[0, inf) (legacy: on 0..1)", "Eskicioglu & Fisher, IEEE TCOM 1995"),
    MetricInfo("AG", True, "[0, inf)", "Cui et al., Opt. Commun. 2015"),
    MetricInfo("MI", True, "[0, 16] bits (vifb: nats)", "Qu, Zhang & Yan, Electron. Lett. 2002"),
    MetricInfo("FMI_pixel", True, "[0, 1]", "Haghighat, Aghagolzadeh & Seyedarabi, CEE 2011; fast form AICT 2014"),
    MetricInfo("FMI_dct", True, "[0, 1]", "Haghighat et al. 2011 / 2014, DCT features"),
    MetricInfo("FMI_w", True, "[0, 1]", "Haghighat et al. 2011 / 2014, discrete Meyer wavelet features"),
    MetricInfo("VIFF", True, "[0, ~1]", "Han, Cai, Cao & Xu, Information Fusion 2013"),
    MetricInfo("VIFP", True, "[0, ~2]", "Sheikh & Bovik, IEEE TIP 2006 (summed over both sources)"),
    MetricInfo("SCD", True, "[-2, 2]", "Aslantas & Bendes, AEU 2015"),
    MetricInfo("Qabf", True, "[0, 1]", "Xydeas & Petrovic, Electron. Lett. 2000"),
    MetricInfo("Nabf", False, "[0, 1]", "Kumar, SIViP 2013 (modified N^{AB/F})"),
    MetricInfo("SSIM", True, "[-1, 1] (vifb: summed, [-2, 2])", "Wang et al., IEEE TIP 2004"),
    MetricInfo("MS_SSIM", True, "[0, 1]", "Wang, Simoncelli & Bovik, Asilomar 2003"),
    MetricInfo("PSNR", True, "[0, inf] dB", "Jagalingam & Hegde, Aquatic Procedia 2015"),
    MetricInfo("RMSE", False, "[0, 255]", "Jagalingam & Hegde, Aquatic Procedia 2015"),
    MetricInfo("CC", True, "[-1, 1]", "Pearson correlation, mean over sources"),
    MetricInfo("CE", False, "[0, inf) bits", "Bulanon, Burks & Alchanatis, Biosyst. Eng. 2009"),
    MetricInfo("EI", True, "[0, inf)", "Rajalingam & Priya, IJESI 2018"),
    MetricInfo("Qcb", True, "[0, 1]", "Chen & Blum, Image Vis. Comput. 2009"),
    MetricInfo("Qcv", False, "[0, inf)", "Chen & Varshney, Information Fusion 2007"),
]}

Fn = Callable[[np.ndarray, np.ndarray, np.ndarray], float]


def _fused_only(func) -> Fn:
    return lambda ir, vis, fused: func(fused)


STANDARD: dict[str, Fn] = {
    "EN": _fused_only(information.entropy),
    "SD": _fused_only(gradient.standard_deviation),
    "SF": _fused_only(gradient.spatial_frequency),
    "AG": _fused_only(gradient.average_gradient),
    "MI": information.mutual_information,
    "FMI_pixel": lambda i, v, f: information.feature_mutual_information(i, v, f, "pixel"),
    "FMI_dct": lambda i, v, f: information.feature_mutual_information(i, v, f, "dct"),
    "FMI_w": lambda i, v, f: information.feature_mutual_information(i, v, f, "wavelet"),
    "VIFF": visual.viff,
    "VIFP": visual.vifp,
    "SCD": similarity.scd,
    "Qabf": gradient.qabf,
    "Nabf": gradient.nabf,
    "SSIM": similarity.ssim,
    "MS_SSIM": similarity.ms_ssim,
    "PSNR": similarity.psnr,
    "RMSE": similarity.rmse,
    "CC": similarity.correlation,
    "CE": information.cross_entropy,
    "EI": _fused_only(gradient.edge_intensity),
    "Qcb": visual.qcb,
    "Qcv": visual.qcv,
}

LEGACY: dict[str, Fn] = {
    **STANDARD,
    "SD": _fused_only(gradient.standard_deviation_uint8),
    "SF": _fused_only(lambda f: gradient.spatial_frequency(f, scale=1 / 255)),
    "AG": _fused_only(lambda f: gradient.average_gradient(f, central=True)),
    "SSIM": lambda i, v, f: similarity.ssim(i, v, f, border="replicate"),
}

#: the VIFB functions take (visible, infrared, fused) as read; adapt to our (ir, vis, fused) order
def _vifb_order(func) -> Fn:
    return lambda ir, vis, fused: func(vis, ir, fused)


VIFB: dict[str, Fn] = {name: _vifb_order(func) for name, func in vifb.BY_SHORT_NAME.items()}

CONVENTIONS: dict[str, str] = {
    "standard": "textbook floating-point definitions on 0..255 luminance (default)",
    "legacy": "the MATLAB toolbox behind the CoCoNet / CLF-Net tables (uint8 SD, 0..1 SF, MATLAB gradient AG and ssim)",
    "vifb": "VIFB benchmark MATLAB code for its 13 metrics; others fall back to standard",
}

DEFAULT_METRICS = list(METRICS)


def definition(metric: str, convention: str) -> tuple[Fn, str]:
    """The function computing ``metric`` under ``convention`` and the convention it actually uses."""
    if metric not in METRICS:
        raise ContrafuseError(None, f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    if convention == "standard":
        return STANDARD[metric], "standard"
    if convention == "legacy":
        return LEGACY[metric], "legacy"
    if convention == "vifb":
        return (VIFB[metric], "vifb") if metric in VIFB else (STANDARD[metric], "standard")
    raise ContrafuseError(None, f"unknown convention {convention!r}; choose from {', '.join(CONVENTIONS)}")


def create_metric(name: str, convention: str = "standard") -> Callable:
    """A callable ``metric(ir, vis, fused) -> float`` taking paths or arrays (see :func:`evaluate`)."""
    definition(name, convention)  # validate early
    return lambda ir, vis, fused: evaluate(ir, vis, fused, metrics=[name], convention=convention)[name]


def _as_read(image, label: str) -> np.ndarray:
    """The image as an 8-bit array with its channels as stored (what MATLAB ``imread`` gives)."""
    if isinstance(image, (str, os.PathLike)):
        unit = read_image(image)  # validates the file; grey-as-RGB is collapsed here ...
        try:
            with Image.open(image) as img:
                if img.mode in ("L", "RGB"):
                    return np.asarray(img)  # ... but for 8-bit files keep the channels as stored
        except OSError:
            pass
        return np.clip(np.floor(unit * 255 + 0.5), 0, 255).astype(np.uint8)
    array = np.asarray(image)
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind == "f":
        if array.size and (array.min() < 0 or array.max() > 1):
            raise ContrafuseError(label, "float images must lie in [0, 1]")
        return np.clip(np.floor(array * 255 + 0.5), 0, 255).astype(np.uint8)
    if array.dtype == np.uint16:
        return np.clip(np.floor(array / 257.0 + 0.5), 0, 255).astype(np.uint8)
    raise ContrafuseError(label, f"unsupported image type {array.dtype}")


def _grey_255(raw: np.ndarray, convention: str) -> np.ndarray:
    """Luminance on 0..255: float Y (standard) or MATLAB rgb2gray rounded to uint8 (legacy)."""
    if raw.ndim == 2:
        return raw.astype(np.float64)
    if convention == "legacy":
        weights = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])
        return np.clip(np.floor(raw[..., :3].astype(np.float64) @ weights + 0.5), 0, 255)
    return luminance(raw[..., :3].astype(np.float32) / 255.0).astype(np.float64) * 255.0


def evaluate(ir, vis, fused, metrics=None, convention: str = "standard") -> dict[str, float]:
    """Compute ``metrics`` (default: all of :data:`METRICS`) for one triple under ``convention``.

    Inputs are file paths or arrays (uint8; uint16; or float in [0, 1]), infrared first. Colour
    images are reduced to luminance except under ``vifb``, which applies VIFB's own per-channel
    rule. :func:`conventions_used` tells which definition produced each value.
    """
    names = list(metrics) if metrics is not None else DEFAULT_METRICS
    raw = [_as_read(x, label) for x, label in ((ir, "ir"), (vis, "vis"), (fused, "fused"))]
    shapes = {r.shape[:2] for r in raw}
    if len(shapes) != 1:
        raise ContrafuseError(None, f"images differ in size: {[r.shape[:2] for r in raw]}")
    grey = {}
    results = {}
    for name in names:
        func, used = definition(name, convention)
        if used == "vifb":
            results[name] = float(func(*raw))
        else:
            if used not in grey:
                grey[used] = [_grey_255(r, used) for r in raw]
            results[name] = float(func(*grey[used]))
    return results


def conventions_used(metrics, convention: str) -> dict[str, str]:
    """Metric -> the convention whose definition :func:`evaluate` applies."""
    return {name: definition(name, convention)[1] for name in metrics}


def summarise(rows: list[dict[str, float]], metrics) -> tuple[dict[str, float], dict[str, float]]:
    """Mean and (population) standard deviation per metric, ignoring NaN and infinite values."""
    mean, std = {}, {}
    for name in metrics:
        values = np.array([r[name] for r in rows], dtype=np.float64)
        values = values[np.isfinite(values)]
        mean[name] = float(values.mean()) if values.size else math.nan
        std[name] = float(values.std()) if values.size else math.nan
    return mean, std
