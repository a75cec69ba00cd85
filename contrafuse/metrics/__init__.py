"""Fusion metrics with named conventions.

    >>> from contrafuse.metrics import evaluate
    >>> evaluate("ir.png", "vis.png", "fused.png", metrics=["EN", "SD", "VIFF"], convention="legacy")

:data:`METRICS` declares every metric (short name, direction, range, reference).
:data:`CONVENTIONS` names the definitions:

* ``standard`` (default): textbook floating-point definitions on 0..255 luminance (MI in bits,
  true PSNR/MSE, SSIM averaged over the two sources), each the reference implementation named in
  docs/metrics.md; the twelve Liu et al. (TPAMI 2012) metrics as Z. Liu's code computes them.
* ``legacy``: the MATLAB toolbox behind the CoCoNet and CLF-Net tables (L. Tang's
  Evaluation-for-Image-Fusion, first release 5d6c43a), metric by metric: SD on uint8 with
  saturating arithmetic, SF/PSNR/MSE/Qabf/Nabf on 0..1, MI with Hab.m's merged top bin, VIF (our
  ``VIFP``) on uint8, SSIM/MS_SSIM as MEF-SSIM, FMI on edge maps.
* ``vifb``: the VIFB benchmark's MATLAB code for its 13 metrics (per-channel colour handling and
  all); other metrics fall back to ``standard`` and the result says so.

:func:`evaluate_conventions` computes several conventions at once, sharing intermediates and the
definitions they have in common. See docs/metrics.md for formulas and for why papers disagree.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..errors import ContrafuseError
from ..io import luminance, read_image, to_uint
from . import gradient, information, liu2012, similarity, toolbox, vifb, visual
from .common import check_size, float_image, in_this_context, sharing

Fn = Callable[[np.ndarray, np.ndarray, np.ndarray], float]


def _fused_only(func) -> Fn:
    return lambda ir, vis, fused: func(fused)


@dataclass(frozen=True)
class Metric:
    """One row of the metric table: everything contrafuse knows about a metric.

    ``standard`` takes (ir, vis, fused) as float 0..255 luminance; ``legacy`` is the MATLAB
    toolbox's definition where it differs (else the standard one applies); ``vifb`` is
    ``(VIFB column name, VIFB's code)``, the code taking (vis, ir, fused) as read, colour and all
    (metrics VIFB lacks fall back to ``standard``). ``min_size``: the smallest image side the
    definition accepts (its windows or scales).
    """
    name: str
    higher_is_better: bool
    value_range: str
    reference: str
    standard: Fn
    legacy: Fn | None = None
    vifb: tuple[str, Callable] | None = None
    min_size: int = 1

    def definition(self, convention: str) -> tuple[Callable, str]:
        """The function computing this metric under ``convention`` and the convention it actually uses."""
        if convention not in CONVENTIONS:
            raise ContrafuseError(None, f"unknown convention {convention!r}; choose from {', '.join(CONVENTIONS)}")
        if convention == "legacy":  # the toolbox's own definition, or the standard one on its rgb2gray
            return self.legacy or self.standard, "legacy"
        if convention == "vifb" and self.vifb is not None:
            return self.vifb[1], "vifb"
        return self.standard, "standard"


CONVENTIONS: dict[str, str] = {
    "standard": "textbook floating-point definitions on 0..255 luminance (default); the twelve Liu et al. "
                "(TPAMI 2012) metrics as Z. Liu's code computes them",
    "legacy": "the MATLAB toolbox behind the CoCoNet / CLF-Net tables (Tang's Evaluation-for-Image-Fusion, "
              "5d6c43a), metric by metric; metrics it lacks as standard",
    "vifb": "VIFB benchmark MATLAB code for its 13 metrics; others fall back to standard",
}


def _legacy_nabf(ir, vis, fused):
    return gradient.nabf_kumar(ir, vis, fused, divisor=255.0)


def _fmi(feature: str) -> Fn:
    return lambda ir, vis, fused: information.feature_mutual_information(ir, vis, fused, feature)


_LIU = "Z. Liu's imageFusionMetrics code (Liu et al., TPAMI 2012)"

#: The metric table. Adding a metric: its function in a module of this package, one row here, tests.
METRICS: dict[str, Metric] = {m.name: m for m in [
    Metric("EN", True, "[0, 8] bits", "Roberts et al., J. Appl. Remote Sens. 2008",
           _fused_only(information.entropy), vifb=("Entropy", vifb.entropy)),
    Metric("SD", True, "[0, 127.5] (legacy: [0, 15.97])", "Aslantas & Bendes, AEU 2015",
           _fused_only(gradient.standard_deviation), legacy=_fused_only(gradient.standard_deviation_uint8),
           vifb=("Variance", vifb.variance)),
    Metric("SF", True, "[0, inf) (legacy: on 0..1)", "Eskicioglu & Fisher, IEEE TCOM 1995",
           _fused_only(gradient.spatial_frequency), legacy=_fused_only(toolbox.spatial_frequency),
           vifb=("Spatial_frequency", vifb.spatial_frequency), min_size=2),
    Metric("AG", True, "[0, inf)", "Cui et al., Opt. Commun. 2015",
           _fused_only(gradient.average_gradient), legacy=_fused_only(lambda f: gradient.average_gradient(f, central=True)),
           vifb=("Avg_gradient", vifb.avg_gradient), min_size=2),
    Metric("MI", True, "[0, 16] bits (vifb: nats)", "Qu, Zhang & Yan, Electron. Lett. 2002",
           information.mutual_information, legacy=toolbox.mutual_information,
           vifb=("Mutinf", vifb.mutual_information)),
    Metric("FMI_pixel", True, "[0, 1]", "Haghighat, Aghagolzadeh & Seyedarabi, CEE 2011; fast form AICT 2014 "
           "(legacy: the code's default edge features)", _fmi("pixel"), legacy=_fmi("edge"), min_size=3),
    Metric("FMI_dct", True, "[0, 1]", "Haghighat et al. 2011 / 2014, DCT features", _fmi("dct"), min_size=3),
    Metric("FMI_w", True, "[0, 1]", "Haghighat et al. 2011 / 2014, discrete Meyer wavelet features (102 taps)",
           _fmi("wavelet"), min_size=3),
    Metric("VIFF", True, "[0, ~1]", "Han, Cai, Cao & Xu, Information Fusion 2013", visual.viff,
           min_size=visual.VIF_MIN_SIDE),
    Metric("VIFP", True, "[0, ~2]", "Sheikh & Bovik, IEEE TIP 2006 (summed over both sources; legacy: the "
           "toolbox's VIF column, on uint8)", visual.vifp, legacy=toolbox.vif, min_size=visual.VIF_MIN_SIDE),
    Metric("SCD", True, "[-2, 2]", "Aslantas & Bendes, AEU 2015", similarity.scd),
    Metric("Qabf", True, "[0, 1]", "Xydeas & Petrovic, Electron. Lett. 2000", gradient.qabf, legacy=toolbox.qabf,
           vifb=("Qabf", vifb.qabf_per_channel), min_size=3),
    Metric("Nabf", False, "[0, 1]", "Kumar, SIViP 2013 (modified N^{AB/F}, his code)", gradient.nabf,
           legacy=_legacy_nabf, min_size=3),
    Metric("SSIM", True, "[-1, 1] (vifb: summed, [-2, 2])", "Wang et al., IEEE TIP 2004 (legacy: MEF-SSIM, "
           "Ma, Zeng & Wang, IEEE TIP 2015)", similarity.ssim, legacy=toolbox.mef_ssim,
           vifb=("Ssim", vifb.ssim_sum), min_size=11),
    Metric("MS_SSIM", True, "[0, 1]", "Wang, Simoncelli & Bovik, Asilomar 2003 (legacy: 3-scale MEF-SSIM)",
           similarity.ms_ssim, legacy=toolbox.mef_ms_ssim, min_size=176),
    Metric("PSNR", True, "[0, inf] dB (legacy: +48.13 dB)", "Jagalingam & Hegde, Aquatic Procedia 2015",
           similarity.psnr, legacy=toolbox.psnr, vifb=("Psnr", vifb.psnr)),
    Metric("MSE", False, "[0, 65025] (legacy: [0, 1])", "mean of the two source-to-fused mean squared errors",
           similarity.mse, legacy=toolbox.mse),
    Metric("RMSE", False, "[0, 255]", "Jagalingam & Hegde, Aquatic Procedia 2015", similarity.rmse,
           vifb=("Rmse", vifb.rmse)),
    Metric("CC", True, "[-1, 1]", "Pearson correlation, mean over sources", similarity.correlation),
    Metric("Qw", True, "[-1, 1]", "Piella & Heijmans, ICIP 2003 (weighted fusion quality index)", similarity.piella_qw,
           min_size=8),
    Metric("CE", False, "[0, inf) bits", "Bulanon, Burks & Alchanatis, Biosyst. Eng. 2009", information.cross_entropy,
           vifb=("Cross_entropy", vifb.cross_entropy)),
    Metric("EI", True, "[0, inf)", "Rajalingam & Priya, IJESI 2018", _fused_only(gradient.edge_intensity),
           vifb=("Edge_intensity", vifb.edge_intensity), min_size=3),
    Metric("Qcb", True, "[0, 1]", "Chen & Blum, Image Vis. Comput. 2009", visual.qcb,
           vifb=("Qcb", vifb.qcb_per_channel), min_size=32),
    Metric("Qcv", False, "[0, inf)", "Chen & Varshney, Information Fusion 2007", visual.qcv,
           vifb=("Qcv", vifb.qcv_per_channel), min_size=16),
    # the twelve metrics of Liu et al., TPAMI 34(1) 2012, in the order of its fusionAssess.m
    Metric("Q_MI", True, "[0, 2]", f"normalised MI, Hossny et al., Electron. Lett. 2008; {_LIU}", liu2012.q_mi),
    Metric("Q_TE", True, "(-inf, inf)", f"Tsallis-entropy MI (q = 0.43137), Cvejic et al. 2006 / Nava et al.; {_LIU}",
           liu2012.q_te),
    Metric("Q_NCIE", True, "[0, 1]", f"nonlinear correlation information entropy, Q. Wang et al. 2008; {_LIU}",
           liu2012.q_ncie),
    Metric("Q_G", True, "[0, 1]", f"gradient-based, Xydeas & Petrovic 2000; {_LIU}", liu2012.q_g, min_size=3),
    Metric("Q_M", True, "[0, 3]", f"multiscale (Haar) edge preservation, P.-W. Wang & B. Liu, ICSP 2008; {_LIU}",
           liu2012.q_m, min_size=4),
    Metric("Q_SF", True, "(-1, inf), 0 ideal", f"ratio of spatial-frequency error, Y. Zheng et al., Inf. Fusion 2007; "
           f"{_LIU}", liu2012.q_sf, min_size=2),
    Metric("Q_P", True, "[0, 1]", f"phase congruency, J. Zhao, R. Laganiere & Z. Liu, IJICIC 2007; {_LIU}",
           liu2012.q_p, min_size=8),
    Metric("Q_S", True, "[-1, 1]", f"Piella & Heijmans' fusion quality index, ICIP 2003; {_LIU}", liu2012.q_s,
           min_size=11),
    Metric("Q_C", True, "[0, 1]", f"Cvejic et al.'s SSIM-based metric, IJICE 2006; {_LIU}", liu2012.q_c, min_size=11),
    Metric("Q_Y", True, "[-1, 1]", f"C. Yang et al.'s SSIM-based metric, Inf. Fusion 2008; {_LIU}", liu2012.q_y,
           min_size=11),
    Metric("Q_CV", False, "[0, inf)", f"Chen & Varshney, Inf. Fusion 2007; {_LIU}", visual.qcv, min_size=16),
    Metric("Q_CB", True, "[0, 1]", f"Chen & Blum, Image Vis. Comput. 2009; {_LIU}", visual.qcb, min_size=32),
]}

#: The metrics computed when none are named: the web app's ticked boxes, a benchmark config without ``metrics``.
DEFAULT_METRICS = ("EN", "SD", "SF", "AG", "MI", "SCD", "VIFF")

#: VIFB's column name -> (our name, VIFB's code), for calibration against its published values
VIFB_COLUMNS: dict[str, tuple[str, Callable]] = {m.vifb[0]: (m.name, m.vifb[1]) for m in METRICS.values() if m.vifb}


def metric(name: str) -> Metric:
    """The table row of ``name``; a one-line error naming the known metrics otherwise."""
    if name not in METRICS:
        raise ContrafuseError(None, f"unknown metric {name!r}; choose from {', '.join(METRICS)}")
    return METRICS[name]


def definition(name: str, convention: str) -> tuple[Callable, str]:
    """The function computing ``name`` under ``convention`` and the convention it actually uses."""
    return metric(name).definition(convention)


@dataclass(frozen=True)
class BoundMetric:
    """A metric under one convention, called as ``m(ir, vis, fused) -> float`` on paths or arrays
    (see :func:`evaluate`); ``info`` is its table row, ``convention_used`` the definition applied."""
    info: Metric
    convention: str
    convention_used: str

    def __call__(self, ir, vis, fused) -> float:
        return evaluate(ir, vis, fused, metrics=[self.info.name], convention=self.convention)[self.info.name]


def create_metric(name: str, convention: str = "standard") -> BoundMetric:
    """``create_metric("Qabf", "legacy")(ir, vis, fused)``: one metric, validated up front."""
    return BoundMetric(metric(name), convention, definition(name, convention)[1])


#: How each convention's reference code sees an image, made from the unit image the one reader gives
#: (:func:`contrafuse.io.read_image`): the levels it computes on. All three read 8-bit images (MATLAB's
#: ``imread``, the textbook implementations on uint8), so each quantises as ``im2uint8`` does
#: (:func:`contrafuse.io.to_uint`); an 8-bit file's levels come back exactly.
QUANTISERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"standard": to_uint, "legacy": to_uint, "vifb": to_uint}


def _as_read(unit: np.ndarray, quantise) -> np.ndarray:
    """A unit image as the reference code reads it: on its convention's levels, with the three channels
    of grey stored as RGB restored (MATLAB's ``imread`` keeps them; VIFB's per-channel code sees them)."""
    levels = quantise(unit)
    return np.repeat(levels[..., None], 3, axis=2) if getattr(unit, "stored_rgb", False) else levels


def _grey_255(raw: np.ndarray, convention: str) -> np.ndarray:
    """Luminance on 0..255: float Y (standard) or MATLAB rgb2gray rounded to uint8 (legacy); grey
    stored as RGB (three equal channels) is that grey in both."""
    if raw.ndim == 2:
        return float_image(raw)  # the array VIFB's per-channel code gets too
    rgb = raw[..., :3]
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
        return rgb[..., 0].astype(np.float64)
    if convention == "legacy":
        weights = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])
        return np.clip(np.floor(rgb.astype(np.float64) @ weights + 0.5), 0, 255)
    return luminance(rgb.astype(np.float32) / 255.0).astype(np.float64) * 255.0


def evaluate(ir, vis, fused, metrics=None, convention: str = "standard", *,
             high_bit_rule: str = "minmax") -> dict[str, float]:
    """Compute ``metrics`` (default: all of :data:`METRICS`) for one triple under ``convention``.

    Inputs, infrared first, are file paths, files' bytes or arrays, read as fusion reads them
    (:func:`contrafuse.io.read_image`: uint8 is 8-bit, uint16 16-bit mapped by ``high_bit_rule``,
    float arrays in [0, 1]), so a path and the array it holds score the same; each convention then
    quantises them to the levels its reference code computes on (:data:`QUANTISERS`). Colour images
    are reduced to luminance except under ``vifb``, which applies VIFB's own per-channel rule.
    :func:`conventions_used` tells which definition produced each value.
    """
    return evaluate_conventions(ir, vis, fused, metrics, (convention,), high_bit_rule=high_bit_rule)[convention]


def evaluate_conventions(ir, vis, fused, metrics=None, conventions=tuple(CONVENTIONS), *,
                         high_bit_rule: str = "minmax") -> dict[str, dict[str, float]]:
    """:func:`evaluate` under several conventions at once: convention -> metric -> value.

    Intermediate results (gradients, SSIM moments, histograms, pyramids, FMI features, phase
    congruency) are computed once per triple and shared across metrics, and a definition that two
    conventions share (most of them, on grey images) is computed once.
    """
    names = list(metrics) if metrics is not None else list(METRICS)
    for convention in conventions:
        for name in names:
            definition(name, convention)  # one-line errors for unknown names before any work
    units = [read_image(x, label=label, high_bit_rule=high_bit_rule)
             for x, label in ((ir, "ir"), (vis, "vis"), (fused, "fused"))]
    shapes = {u.shape[:2] for u in units}
    if len(shapes) != 1:
        raise ContrafuseError(None, f"images differ in size: {[u.shape[:2] for u in units]}")
    (height, width), = shapes
    as_read: dict = {}  # the triple as read, once per quantiser

    def read_for(convention: str) -> list[np.ndarray]:
        quantise = QUANTISERS[convention]
        if quantise not in as_read:
            as_read[quantise] = [_as_read(u, quantise) for u in units]
        return as_read[quantise]

    for name in names:
        check_size(name, height, width, METRICS[name].min_size)
    with sharing():  # intermediates, the float images included, computed once for all conventions
        greys: dict[str, tuple] = {}
        jobs: dict[tuple, tuple] = {}  # one computation per (definition, input arrays)
        wanted: list[tuple[str, str, tuple]] = []
        for convention in conventions:
            for name in names:
                func, used = definition(name, convention)
                if used == "vifb":
                    args = read_for(used)
                    key = (func, id(args[0]))
                else:
                    if used not in greys:
                        new = [_grey_255(r, used) for r in read_for(used)]
                        for other in greys.values():  # same pixels under another convention: same arrays
                            if all(np.array_equal(a, b) for a, b in zip(new, other)):
                                new = list(other)
                                break
                        greys[used] = tuple(new)
                    args = greys[used]
                    key = (func, id(args[0]))
                jobs.setdefault(key, (func, args, name))
                wanted.append((convention, name, key))
        values = _run_jobs(jobs)
    results: dict[str, dict[str, float]] = {c: {} for c in conventions}
    for convention, name, key in wanted:
        results[convention][name] = values[key]
    return results


#: metrics whose computation dominates a full evaluation: started first when run in parallel
_HEAVY = ("FMI_w", "FMI_dct", "FMI_pixel", "Q_P", "Qcb", "Q_CB", "VIFF", "VIFP", "MS_SSIM", "SSIM")


def _threads() -> int:
    """Worker threads for one evaluation: ``CONTRAFUSE_METRIC_THREADS``, default 2."""
    try:
        return max(1, int(os.environ.get("CONTRAFUSE_METRIC_THREADS", "2")))
    except ValueError:
        return 2


def _run_jobs(jobs: dict) -> dict:
    """Compute every job (func, args, metric name), in ``_threads()`` threads sharing intermediates."""
    rank = {name: i for i, name in enumerate(_HEAVY)}
    order = sorted(jobs, key=lambda k: rank.get(jobs[k][2], len(_HEAVY)))
    if _threads() == 1 or len(order) < 2:
        return {key: float(jobs[key][0](*jobs[key][1])) for key in order}
    with ThreadPoolExecutor(max_workers=_threads()) as pool:
        futures = {key: pool.submit(in_this_context(jobs[key][0]), *jobs[key][1]) for key in order}
        return {key: float(future.result()) for key, future in futures.items()}


def conventions_used(metrics, convention: str) -> dict[str, str]:
    """Metric -> the convention whose definition :func:`evaluate` applies."""
    return {name: definition(name, convention)[1] for name in metrics}


class Summary(tuple):
    """``(mean, std)`` per metric, as a pair; ``dropped`` counts the NaN or infinite values each
    metric's mean and std leave out (a constant source, for instance, makes Qcb NaN)."""

    def __new__(cls, mean, std, dropped):
        self = super().__new__(cls, (mean, std))
        self.dropped = dropped
        return self

    @property
    def mean(self) -> dict[str, float]:
        return self[0]

    @property
    def std(self) -> dict[str, float]:
        return self[1]


def summarise(rows: list[dict[str, float]], metrics) -> Summary:
    """Mean and (population) standard deviation per metric over the finite values; how many values
    were left out is in ``.dropped`` and reported as a warning."""
    mean, std, dropped = {}, {}, {}
    for name in metrics:
        values = np.array([r[name] for r in rows], dtype=np.float64)
        finite = values[np.isfinite(values)]
        dropped[name] = int(values.size - finite.size)
        mean[name] = float(finite.mean()) if finite.size else math.nan
        std[name] = float(finite.std()) if finite.size else math.nan
    left_out = {name: n for name, n in dropped.items() if n}
    if left_out:
        warnings.warn("non-finite values left out of the mean: " + ", ".join(
            f"{name} {n} of {len(rows)}" for name, n in left_out.items()), RuntimeWarning, stacklevel=2)
    return Summary(mean, std, dropped)
