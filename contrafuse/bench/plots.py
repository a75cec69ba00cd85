"""Benchmark figures: CDF curves (CoCoNet Fig. 10), bar charts, visual grids with a zoomed inset
(CoCoNet Fig. 8, CLF-Net Figs. 3-11)."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from ..io import atomic_file, read_image


def save_figure(fig, path: Path, dpi: int = 90, tight: bool = True) -> None:
    """Write ``fig`` atomically as an opaque RGB PNG compressed with Pillow's ``optimize`` (about 12 %
    smaller than Matplotlib's RGBA file, same pixels: the figures have no transparency), and close it."""
    if Path(path).suffix.lower() != ".png":
        plt.close(fig)
        raise ValueError(f"{path}: figures are written as PNG, so the name must end in .png")
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, dpi=dpi, bbox_inches="tight" if tight else None, format="png", facecolor="white")
    finally:
        plt.close(fig)
    buffer.seek(0)
    with Image.open(buffer) as rendered, atomic_file(path) as handle:
        rendered.convert("RGB").save(handle, format="PNG", optimize=True)


def cdf_curves(rows: list[dict], metrics, path: Path, title: str) -> None:
    """For each metric and method: the point (x, y) says that 100x % of the pairs score <= y."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cols = min(3, len(metrics))
    fig, axes = plt.subplots((len(metrics) + cols - 1) // cols, cols, figsize=(4 * cols, 3 * ((len(metrics) + cols - 1) // cols)),
                             squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        for method in methods:
            values = np.sort([r[metric] for r in rows if r["method"] == method and np.isfinite(r[metric])])
            if len(values):
                ax.plot(np.arange(1, len(values) + 1) / len(values), values, marker=".", label=method)
        ax.set_title(metric)
        ax.set_xlabel("fraction of pairs")
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def bar_chart(means, stds, metrics, path: Path, title: str) -> None:
    methods = list(means)
    cols = min(3, len(metrics))
    rows = (len(metrics) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        ax.bar(range(len(methods)), [means[m][metric] for m in methods], yerr=[stds[m][metric] for m in methods],
               color="tab:blue", alpha=0.8)
        ax.set_xticks(range(len(methods)), methods, rotation=45, ha="right", fontsize=7)
        ax.set_title(metric)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def _with_inset(image: np.ndarray, box) -> np.ndarray:
    """Draw the box in red and paste a 2x zoom of it into the bottom-right corner."""
    rgb = np.dstack([image] * 3) if image.ndim == 2 else image.copy()
    h, w = rgb.shape[:2]
    x0, y0 = int(box[0] * w), int(box[1] * h)
    bw, bh = max(2, int(box[2] * w)), max(2, int(box[3] * h))
    crop = rgb[y0:y0 + bh, x0:x0 + bw]
    zoom = np.repeat(np.repeat(crop, 2, axis=0), 2, axis=1)[: int(0.4 * h), : int(0.4 * w)]
    zh, zw = zoom.shape[:2]
    rgb[h - zh:, w - zw:] = zoom
    red = np.array([1.0, 0.0, 0.0])
    for y, x, hh, ww in ((y0, x0, bh, bw), (h - zh, w - zw, zh, zw)):
        rgb[y, x:x + ww] = red
        rgb[min(y + hh - 1, h - 1), x:x + ww] = red
        rgb[y:y + hh, x] = red
        rgb[y:y + hh, min(x + ww - 1, w - 1)] = red
    return rgb


def comparison_grid(pair, fused_paths: dict, path: Path, box, include_sources: bool = False,
                    columns: int = 4) -> None:
    """One panel per method (and the two sources if ``include_sources``), each with a zoomed inset."""
    panels = []
    if include_sources:
        panels += [("infrared", read_image(pair.first)), ("visible", read_image(pair.second))]
    panels += [(name, read_image(p)) for name, p in fused_paths.items()]
    columns = min(columns, len(panels))
    rows = (len(panels) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.6 * rows), squeeze=False)
    for ax, (name, image) in zip(axes.flat, panels):
        ax.imshow(_with_inset(image, box), vmin=0, vmax=1)
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    save_figure(fig, path)
