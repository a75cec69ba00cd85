"""Locating the public datasets, reading split files, and cutting training patches."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ContrafuseError
from ..io import luminance, pair_folders, read_image

#: modality folder names per dataset: (first = infrared/functional, second = visible/MRI)
MODALITIES = {
    "TNO_CoCoNet": ("ir", "vis"), "TNO_raw": ("ir", "vis"), "TNO_raw_sequences": ("ir", "vis"),
    "CDDFuse_TNO": ("ir", "vis"), "CLFNet_TNO_test": ("ir", "vis"), "CLFNet_TNO_train": ("ir", "vis"),
    "RoadScene": ("ir", "vis"), "IFCNN_IV": ("ir", "vis"), "VIFB_calib": ("ir", "vis"),
    "Harvard_MRI_PET_CDDFuse": ("pet", "mri"), "Harvard_MRI_SPECT_CDDFuse": ("spect", "mri"),
    "Harvard_MRI_CT_CDDFuse": ("ct", "mri"), "IFCNN_MD": ("a", "b"), "Lytro": ("a", "b"),
}


def datasets_root() -> Path:
    """``$CONTRAFUSE_DATASETS``, else ``../shared/datasets`` beside the working directory or repo."""
    if "CONTRAFUSE_DATASETS" in os.environ:
        return Path(os.environ["CONTRAFUSE_DATASETS"])
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        candidate = base.parent / "shared" / "datasets"
        if candidate.is_dir():
            return candidate
    raise ContrafuseError(None, "datasets not found; set CONTRAFUSE_DATASETS to the datasets folder")


@dataclass(frozen=True)
class Pair:
    dataset: str
    name: str
    first: Path
    second: Path


def dataset_pairs(dataset: str, names: list[str] | None = None, every: int = 1) -> list[Pair]:
    """Pairs of ``dataset`` (all, the listed ``names``, or every ``every``-th), by base name."""
    if dataset not in MODALITIES:
        raise ContrafuseError(None, f"unknown dataset {dataset!r} (known: {', '.join(MODALITIES)})")
    first_mod, second_mod = MODALITIES[dataset]
    root = datasets_root() / dataset
    pairs = [Pair(dataset, p.name, p.first, p.second)
             for p in pair_folders(root / first_mod, root / second_mod)]
    if names is not None:
        by_name = {p.name: p for p in pairs}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ContrafuseError(root, f"split names not found: {', '.join(missing)}")
        pairs = [by_name[n] for n in names]
    return pairs[::every]


#: The built-in splits (package data): name -> YAML file.
SPLITS = {path.stem: path for path in sorted((Path(__file__).parent / "splits").glob("*.yaml"))}


def split_path(name_or_path: str | os.PathLike) -> Path:
    """A built-in split's file (``tno``, ``harvard_medical``), or the given path unchanged."""
    text = os.fspath(name_or_path)
    return SPLITS[text] if text in SPLITS else Path(text)


def load_split(path: str | os.PathLike) -> dict[str, list[Pair]]:
    """Read a split YAML (``train``/``test`` entries of ``dataset`` plus optional ``names``/``every``);
    ``path`` may name a built-in split (:data:`SPLITS`)."""
    from ..io import read_yaml_mapping

    path = split_path(path)
    spec = read_yaml_mapping(path)
    split = {}
    for part in ("train", "test"):
        entries = spec.get(part, [])
        entries = [entries] if isinstance(entries, dict) else entries
        split[part] = [p for e in entries for p in dataset_pairs(e["dataset"], e.get("names"), e.get("every", 1))]
    overlap = {(p.dataset, p.name) for p in split["train"]} & {(p.dataset, p.name) for p in split["test"]}
    if overlap:
        raise ContrafuseError(path, f"pairs in both train and test: {sorted(overlap)}")
    return split


def folder_pairs(name: str, first_dir: str | os.PathLike, second_dir: str | os.PathLike) -> list[Pair]:
    """The user's own data: the images of two folders paired by base name, as dataset ``name``."""
    return [Pair(name, p.name, p.first, p.second) for p in pair_folders(first_dir, second_dir)]


def load_grey_pair(pair: Pair) -> tuple[np.ndarray, np.ndarray]:
    """Both images as grey [0, 1] (luminance of colour), cropped to their common size
    (``TNO_raw/Triclobs_Marne_15`` has IR 620x460 and VIS 620x450)."""
    first, second = luminance(read_image(pair.first)), luminance(read_image(pair.second))
    h, w = min(first.shape[0], second.shape[0]), min(first.shape[1], second.shape[1])
    return first[:h, :w], second[:h, :w]


def random_patches(images: list[list[np.ndarray]], count: int, size: int, seed: int) -> np.ndarray:
    """``count`` aligned random crops of ``size`` from image groups (each group: arrays of one
    size, e.g. IR, VIS, mask), spread evenly over the groups. Returns (count, channels, size, size)."""
    rng = np.random.default_rng(seed)
    per_group = np.full(len(images), count // len(images))
    per_group[: count % len(images)] += 1
    out = []
    for group, n in zip(images, per_group):
        h, w = group[0].shape
        if h < size or w < size:
            raise ContrafuseError(None, f"image {w}x{h} is smaller than the {size}x{size} patch")
        for _ in range(n):
            y, x = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
            out.append(np.stack([g[y:y + size, x:x + size] for g in group]))
    return np.stack(out).astype(np.float32)


def sliding_patches(images: list[list[np.ndarray]], size: int, stride: int) -> np.ndarray:
    """Every ``size`` crop at ``stride`` steps (CLF-Net Sec. IV-A3). Returns (N, channels, size, size)."""
    out = []
    for group in images:
        h, w = group[0].shape
        for y in range(0, h - size + 1, stride):
            for x in range(0, w - size + 1, stride):
                out.append(np.stack([g[y:y + size, x:x + size] for g in group]))
    return np.stack(out).astype(np.float32)
