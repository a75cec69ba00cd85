"""Named evaluation suites (test pairs of each dataset) used by benchmarks and model cards."""

from __future__ import annotations

from pathlib import Path

from ..data.datasets import Pair, dataset_pairs, datasets_root, folder_pairs, load_split
from ..errors import ContrafuseError


def _roadscene_test() -> list[Pair]:
    """The first 20 of the 50 RoadScene names CDDFuse tests on."""
    names = (datasets_root() / "RoadScene" / "splits" / "CDDFuse_test50.txt").read_text().split()[:20]
    return dataset_pairs("RoadScene", [Path(n).stem for n in names])


def _roadscene_validation() -> list[Pair]:
    """Every 12th RoadScene pair outside CDDFuse's 50 test names (15 pairs): choices between trained
    models are made here, never on a test set, and no model trains on RoadScene."""
    test = set((datasets_root() / "RoadScene" / "splits" / "CDDFuse_test50.txt").read_text().split())
    names = sorted(p.name for p in dataset_pairs("RoadScene") if p.name not in test)
    return dataset_pairs("RoadScene", names[::12])


def _harvard_test(dataset: str) -> list[Pair]:
    return [p for p in load_split("harvard_medical")["test"] if p.dataset == dataset]


#: The named suites: name -> the pairs (each suite is one line here).
SUITES = {
    "tno": lambda: load_split("tno")["test"],                         # the 22 provably disjoint TNO test pairs
    "roadscene": _roadscene_test,
    "roadscene_val": _roadscene_validation,
    "mri_pet": lambda: _harvard_test("Harvard_MRI_PET_CDDFuse"),
    "mri_spect": lambda: _harvard_test("Harvard_MRI_SPECT_CDDFuse"),
    "mri_t1t2": lambda: dataset_pairs("IFCNN_MD"),
    "lytro": lambda: dataset_pairs("Lytro"),
    "vifb": lambda: dataset_pairs("VIFB_calib"),
}


def suite_pairs(spec) -> list[Pair]:
    """Pairs of a suite given by name (a key of :data:`SUITES`) or by a dict: ``{name, ir_dir,
    vis_dir}`` (your own folders, paired by base name), ``{dataset, names?, every?}`` or ``{split,
    part}`` (a built-in split's name or a split file). Paths in a benchmark config are made absolute
    by its loader."""
    if isinstance(spec, dict):
        if "ir_dir" in spec:
            return folder_pairs(spec.get("name", "data"), spec["ir_dir"], spec["vis_dir"])
        if "split" in spec:
            return load_split(spec["split"])[spec.get("part", "test")]
        return dataset_pairs(spec["dataset"], spec.get("names"), spec.get("every", 1))
    if spec not in SUITES:
        raise ContrafuseError(None, f"unknown suite {spec!r} (known: {', '.join(SUITES)})")
    return SUITES[spec]()
