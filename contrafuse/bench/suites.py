"""Named evaluation suites (test pairs of each dataset) used by benchmarks and model cards."""

from __future__ import annotations

from pathlib import Path

from ..data.datasets import Pair, dataset_pairs, datasets_root, folder_pairs, load_split
from ..errors import ContrafuseError

#: The named suites (each described in :func:`suite_pairs`).
SUITES = ("tno", "roadscene", "roadscene_val", "mri_pet", "mri_spect", "mri_t1t2", "lytro", "vifb")


def suite_pairs(spec) -> list[Pair]:
    """Pairs of a suite given by name (``tno``, ``roadscene``, ``roadscene_val``, ``mri_pet``, ``mri_spect``,
    ``mri_t1t2``, ``lytro``, ``vifb``) or by a dict: ``{name, ir_dir, vis_dir}`` (your own folders,
    paired by base name), ``{dataset, names?, every?}`` or ``{split, part}`` (a built-in split's name
    or a split file). Paths in a benchmark config are made absolute by its loader."""
    if isinstance(spec, dict):
        if "ir_dir" in spec:
            return folder_pairs(spec.get("name", "data"), spec["ir_dir"], spec["vis_dir"])
        if "split" in spec:
            return load_split(spec["split"])[spec.get("part", "test")]
        return dataset_pairs(spec["dataset"], spec.get("names"), spec.get("every", 1))
    if spec == "tno":
        return load_split("tno")["test"]
    if spec == "roadscene":
        names = (datasets_root() / "RoadScene" / "splits" / "CDDFuse_test50.txt").read_text().split()[:20]
        return dataset_pairs("RoadScene", [Path(n).stem for n in names])
    if spec in ("mri_pet", "mri_spect"):
        test = load_split("harvard_medical")["test"]
        wanted = "Harvard_MRI_PET_CDDFuse" if spec == "mri_pet" else "Harvard_MRI_SPECT_CDDFuse"
        return [p for p in test if p.dataset == wanted]
    if spec == "roadscene_val":
        # validation: every 12th RoadScene pair outside CDDFuse's 50 test names (15 pairs); choices
        # between trained models are made here, never on a test set, and no model trains on RoadScene
        test = set((datasets_root() / "RoadScene" / "splits" / "CDDFuse_test50.txt").read_text().split())
        names = sorted(p.name for p in dataset_pairs("RoadScene") if p.name not in test)
        return dataset_pairs("RoadScene", names[::12])
    if spec == "mri_t1t2":
        return dataset_pairs("IFCNN_MD")
    if spec == "lytro":
        return dataset_pairs("Lytro")
    if spec == "vifb":
        return dataset_pairs("VIFB_calib")
    raise ContrafuseError(None, f"unknown suite {spec!r}")
