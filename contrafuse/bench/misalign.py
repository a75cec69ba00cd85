"""Misalignment robustness (CoCoNet Sec. 4.5, Fig. 19): the infrared image is perturbed by a random
affine transform plus an elastic deformation at three strengths, seeded, and each method's metric
change against the aligned fusion is reported.

Strengths (documented defaults, configurable):

* tiny:     rotation <= 0.5 deg, shift <= 1 px, scale 1 +- 0.005, elastic alpha 1 px, sigma 8
* moderate: rotation <= 2 deg,   shift <= 4 px, scale 1 +- 0.02,  elastic alpha 4 px, sigma 8
* extreme:  rotation <= 5 deg,   shift <= 10 px, scale 1 +- 0.05, elastic alpha 10 px, sigma 8

The elastic field is Gaussian-smoothed white noise scaled so that its largest displacement is alpha.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from ..api import fuse_images, load_pair, resize_to
from ..io import to_uint, write_image
from ..methods import create_method
from ..metrics import evaluate, summarise
from .suites import suite_pairs

STRENGTHS = {
    "tiny": {"rotate": 0.5, "shift": 1.0, "scale": 0.005, "alpha": 1.0, "sigma": 8.0},
    "moderate": {"rotate": 2.0, "shift": 4.0, "scale": 0.02, "alpha": 4.0, "sigma": 8.0},
    "extreme": {"rotate": 5.0, "shift": 10.0, "scale": 0.05, "alpha": 10.0, "sigma": 8.0},
}


def perturb(image: np.ndarray, strength: dict, rng: np.random.Generator) -> np.ndarray:
    """Random affine (about the centre) plus elastic deformation, bilinear, reflected borders."""
    h, w = image.shape
    angle = np.deg2rad(rng.uniform(-strength["rotate"], strength["rotate"]))
    scale = 1 + rng.uniform(-strength["scale"], strength["scale"])
    shift = rng.uniform(-strength["shift"], strength["shift"], size=2)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    src_y = cos * (yy - cy) - sin * (xx - cx) + cy + shift[0]
    src_x = sin * (yy - cy) + cos * (xx - cx) + cx + shift[1]
    for grid in (src_y, src_x):
        field = ndimage.gaussian_filter(rng.uniform(-1, 1, (h, w)), strength["sigma"])
        top = np.abs(field).max()
        grid += strength["alpha"] * field / top if top > 0 else 0
    return ndimage.map_coordinates(image, [src_y, src_x], order=1, mode="reflect").astype(np.float32)


def misalignment_study(specs, cfg: dict, metrics, out: Path) -> str:

    out.mkdir(parents=True, exist_ok=True)
    seed = int(cfg.get("seed", 0))
    strengths = {k: {**STRENGTHS[k], **cfg.get("strengths", {}).get(k, {})} for k in STRENGTHS}
    lines = ["### Misalignment robustness", "",
             ("Mean metric change (perturbed minus aligned, `standard` convention) when the infrared image is "
              "warped; strengths in `contrafuse/bench/misalign.py`."), ""]
    for dataset in cfg.get("datasets", ["tno"]):
        pairs = suite_pairs(dataset)[: cfg.get("pairs", 10)]
        lines += [f"#### {dataset} ({len(pairs)} pairs)", "",
                  "| method | strength | " + " | ".join(f"Δ{m}" for m in metrics) + " |",
                  "|---" * (len(metrics) + 2) + "|"]
        for spec_index, spec in enumerate(s for s in specs if s.external is None):
            method = create_method(spec.name, **spec.options)
            baseline, shifted = [], {k: [] for k in strengths}
            for index, pair in enumerate(pairs):
                first, second = load_pair(pair)
                aligned = fuse_images(first, second, method)
                src = [to_uint(x) for x in (first, second)]
                baseline.append(evaluate(*src, aligned, metrics=metrics))
                ir = first if first.ndim == 2 else first.mean(axis=2)
                for k, strength in strengths.items():
                    rng = np.random.default_rng([seed, index, list(strengths).index(k)])
                    warped = perturb(ir, strength, rng)
                    fused = fuse_images(warped, second, method)
                    shifted[k].append(evaluate(to_uint(warped), src[1], fused, metrics=metrics))
                    if index == 0 and spec_index < 2:  # small examples for the first two methods
                        scale = min(1.0, 320 / fused.shape[1])
                        size = (round(fused.shape[0] * scale), round(fused.shape[1] * scale))
                        write_image(out / f"{dataset}_{pair.name}_{spec.label}_{k}.png", resize_to(fused, size),
                                    overwrite=True)
            base_mean, _ = summarise(baseline, metrics)
            for k in strengths:
                mean, _ = summarise(shifted[k], metrics)
                lines.append(f"| {spec.label} | {k} | " + " | ".join(f"{mean[m] - base_mean[m]:+.4g}" for m in metrics) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"
