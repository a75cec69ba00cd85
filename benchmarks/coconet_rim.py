"""CoCoNet's border rim with and without the reflected border, on VIFB's 10 public pairs.

    python benchmarks/coconet_rim.py

Rim of an image: the mean absolute difference between each outermost row/column and the one 3
pixels inside (grey levels, averaged over the four sides). For every pair: the larger of the two
sources' own rims, and the fused image's rim from the shipped `coconet` (default `authors`
protocol) run on the bare image and with its reflected border, and (worst ratio only) with wider
borders of 32 and 48 pixels. Beside it the same 3-pixel difference taken over the whole image
(every row against the one 3 below, every column against the one 3 across): where the fused image's
ratio to the sources is as large inside as at the border, the border is not where it differs.
For reference, the same two ratios for the published methods' fused images that VIFB ships with
its 10 pairs (``VIFB_calib/fused``), scored against the same sources.
Writes benchmarks/results/coconet_rim.json.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
#: wider reflected borders, to tell a border effect (which they would change) from the image's own
WIDER = (("border 32", 32), ("border 48", 48))


def rim(image: np.ndarray) -> float:
    a = image.astype(np.float64)
    return float(np.mean([np.abs(a[0] - a[3]).mean(), np.abs(a[-1] - a[-4]).mean(),
                          np.abs(a[:, 0] - a[:, 3]).mean(), np.abs(a[:, -1] - a[:, -4]).mean()]))


def interior(image: np.ndarray) -> float:
    """The rim's 3-pixel difference averaged over all rows and columns, not only the outermost."""
    a = image.astype(np.float64)
    return float(np.mean([np.abs(a[3:] - a[:-3]).mean(), np.abs(a[:, 3:] - a[:, :-3]).mean()]))


def main() -> None:
    from contrafuse.bench.suites import suite_pairs
    from contrafuse.bench.timing import write_result
    from contrafuse.io import luminance, read_image
    from contrafuse.methods import create_method

    method = create_method("coconet")
    border = method.border
    rows, published = {}, {}
    for pair in suite_pairs("vifb"):
        ir, vis = luminance(read_image(pair.first)), luminance(read_image(pair.second))
        sources = max(rim(np.round(ir * 255)), rim(np.round(vis * 255)))
        sources_inside = max(interior(np.round(ir * 255)), interior(np.round(vis * 255)))
        measured = {}
        for label, width in (("bare", 0), ("reflected border", border), *WIDER):
            method.border = width
            fused = np.round(method.fuse_grey(ir, vis) * 255)
            measured[label] = rim(fused)
            if width == border:
                fused_inside = interior(fused)
        rows[pair.name] = {"sources": sources, **measured,
                           "sources inside": sources_inside, "fused inside": fused_inside,
                           "ratio inside": fused_inside / max(sources_inside, 1.0),
                           "ratio bare": measured["bare"] / max(sources, 1.0),
                           "ratio reflected border": measured["reflected border"] / max(sources, 1.0)}
        print(pair.name, rows[pair.name])
        for path in sorted((pair.first.parent.parent / "fused").glob(f"{pair.name}_*")):
            image = np.round(luminance(read_image(path)) * 255)
            published.setdefault(path.stem[len(pair.name) + 1:], []).append(
                (rim(image) / max(sources, 1.0), interior(image) / max(sources_inside, 1.0)))
    write_result(HERE / "results" / "coconet_rim.json", {
        "what": "grey-level rim (outermost row/column vs 3 px inside) of coconet's output, VIFB's 10 pairs",
        "border_pixels": border, "pairs": rows,
        "worst ratio bare": max(r["ratio bare"] for r in rows.values()),
        "worst ratio reflected border": max(r["ratio reflected border"] for r in rows.values()),
        "worst ratio inside": max(r["ratio inside"] for r in rows.values()),
        **{f"worst ratio {label}": max(r[label] / max(r["sources"], 1.0) for r in rows.values()) for label, _ in WIDER},
        "coconet mean ratio reflected border": float(np.mean([r["ratio reflected border"] for r in rows.values()])),
        "published methods": {name: {"pairs": len(ratios), "worst ratio": max(r for r, _ in ratios),
                                     "mean ratio": float(np.mean([r for r, _ in ratios])),
                                     "worst ratio inside": max(i for _, i in ratios)}
                              for name, ratios in sorted(published.items())}})


if __name__ == "__main__":
    main()
