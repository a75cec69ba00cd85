"""How close each peer comes to its authors' code, and to images its authors published.

    python benchmarks/zoo_reference.py

1. The official code's outputs (../shared/peers/reference/<method>/<pair>.png: the authors' code run
   with the official weights on 15 public pairs): each peer fused from the original files with
   float32 and its default (official) protocol; a colour result reduced to its BT.601 luma, as the
   acceptance check (../shared/checks/run zoo) does. Per pair: mean |difference| in grey levels and
   the share of pixels within one level.
2. Published images: Tang's evaluation toolbox ships DenseFuse's and IFCNN's fused images of its
   42 TNO pairs (../shared/datasets/Toolbox_TNO_calib/fused); ../shared/peers/README.md explains why
   neither is the official protocol's output (DenseFuse: other weights; IFCNN: VIF-Benchmark's
   ImageNet normalisation), so these figures describe the published images, not our fidelity.

Writes benchmarks/results/zoo_reference.json.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

import contrafuse
from contrafuse.bench.timing import write_result
from contrafuse.methods import create_method
from contrafuse.models import MODEL_SPECS

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"
PAIR_FOLDERS = [SHARED / "datasets" / "VIFB_calib", SHARED / "datasets" / "TNO_CoCoNet"]
PUBLISHED = {"densefuse": "DenseFuse", "ifcnn": "IFCNN"}


def source(kind: str, pair: str, folders: list[Path]) -> Path:
    for folder in folders:
        hits = sorted((folder / kind).glob(f"{pair}.*"))
        if hits:
            return hits[0]
    raise FileNotFoundError(f"{kind}/{pair}")


def agreement(method, ir: Path, vis: Path, reference: Path) -> dict:
    out = np.asarray(contrafuse.fuse(ir, vis, method=method), np.float64)
    if out.ndim == 3:
        out = out @ np.array([0.299, 0.587, 0.114])
    diff = np.abs(out * 255 - np.asarray(Image.open(reference).convert("L"), np.float64))
    return {"mean_abs_grey_levels": round(float(diff.mean()), 4), "within_1_level_percent": round(float((diff <= 1).mean() * 100), 3)}


def main() -> None:
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--methods", nargs="*", help="measure only these, keeping the others' rows from the "
                        "existing results file")
    args = parser.parse_args()
    result_path = HERE / "results" / "zoo_reference.json"
    official, published = {}, {}
    if args.methods and result_path.is_file():
        kept = json.loads(result_path.read_text())
        official, published = kept["official_code"], kept["published_images"]
    for name, spec in MODEL_SPECS.items():
        folder = SHARED / "peers" / "reference" / name
        if spec.weights.packaged or not folder.is_dir() or (args.methods and name not in args.methods):
            continue
        method = create_method(name, precision="fp32")
        pairs = {}
        for ref in sorted(folder.glob("*.png")):
            ir, vis = source("ir", ref.stem, PAIR_FOLDERS), source("vis", ref.stem, PAIR_FOLDERS)
            if Image.open(ref).size == Image.open(ir).size:  # not a pair the official script resized
                pairs[ref.stem] = agreement(method, ir, vis, ref)
        official[name] = {"worst_mean_abs_grey_levels": max(p["mean_abs_grey_levels"] for p in pairs.values()),
                          "worst_within_1_level_percent": min(p["within_1_level_percent"] for p in pairs.values()),
                          "pairs": pairs}
        print(name, official[name]["worst_mean_abs_grey_levels"], official[name]["worst_within_1_level_percent"])
        if name in PUBLISHED:
            toolbox = SHARED / "datasets" / "Toolbox_TNO_calib"
            rows = [agreement(method, toolbox / "ir" / ref.name, toolbox / "vis" / ref.name, ref)
                    for ref in sorted((toolbox / "fused" / PUBLISHED[name]).glob("*.png"))]
            published[name] = {"images": f"Toolbox_TNO_calib/fused/{PUBLISHED[name]}", "pairs": len(rows),
                               "mean_abs_grey_levels": round(float(np.mean([r["mean_abs_grey_levels"] for r in rows])), 3)}
            print(name, published[name])
    official = dict(sorted(official.items()))
    write_result(result_path,
                 {"what": "each peer (float32, default protocol, original files) against the official code's "
                          "output (../shared/peers/reference) and against images its authors published",
                  "official_code": official, "published_images": published})


if __name__ == "__main__":
    main()
