"""Draw docs/img/readme_fused.png: the shipped default method (CoCoNet, default options) on a TNO pair
and a RoadScene pair, side by side at a common height. Fused results only: no dataset image is
drawn. Run from the repository root after shipping new weights: ``python benchmarks/readme_figure.py``.
"""

from pathlib import Path

import numpy as np
from PIL import Image

import contrafuse

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
PAIRS = [("TNO_CoCoNet", "TNO_001.png"), ("RoadScene", "FLIR_00006.jpg")]
HEIGHT, GAP = 288, 8


def main(out: Path = Path("docs/img/readme_fused.png")) -> None:
    panels = []
    for dataset, name in PAIRS:
        fused = contrafuse.fuse(DATASETS / dataset / "ir" / name, DATASETS / dataset / "vis" / name)
        image = Image.fromarray(np.round(fused * 255).astype(np.uint8)).convert("RGB")
        panels.append(image.resize((round(image.width * HEIGHT / image.height), HEIGHT), Image.LANCZOS))
    canvas = Image.new("RGB", (sum(p.width for p in panels) + GAP * (len(panels) - 1), HEIGHT), "white")
    x = 0
    for panel in panels:
        canvas.paste(panel, (x, 0))
        x += panel.width + GAP
    tmp = out.with_suffix(".tmp.png")
    canvas.save(tmp)
    tmp.replace(out)


if __name__ == "__main__":
    main()
