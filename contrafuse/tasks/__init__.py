"""Task-driven evaluation (CoCoNet, Sec. 4.7): does fusion help a downstream model?

:func:`detection_table` and :func:`segmentation_table` run a detector / segmenter on the two
sources (the pseudo-methods ``ir`` and ``vis``) and on each fusion method's results for every pair
of two folders, and score it against labels: ``contrafuse task-eval detection|segmentation``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from ..progress import bar as tqdm  # drawn on a terminal only, not with --quiet

from ..errors import ContrafuseError

SOURCES = ("ir", "vis")


def images_by_method(ir_dir, vis_dir, methods: list[str]):
    """Yields ``(method, {pair name: uint8 image})`` one method at a time (the sources as read, or
    the method's fusion), so that only the sources and one method's images are held in memory."""
    from ..api import fuse_images, load_pair
    from ..io import pair_folders, to_uint
    from ..methods import METHODS, create_method

    pairs = pair_folders(ir_dir, vis_dir)
    unknown = [m for m in methods if m not in SOURCES and m not in METHODS]
    if unknown:
        raise ContrafuseError(None, f"unknown method {unknown[0]!r} (the sources are 'ir' and 'vis')")
    sources = {p.name: load_pair(p, resize="ir") for p in pairs}
    for method in methods:
        if method in SOURCES:
            k = SOURCES.index(method)
            yield method, {name: to_uint(images[k]) for name, images in sources.items()}
            continue
        fusion = create_method(method)
        yield method, {name: to_uint(fuse_images(*images, fusion))
                       for name, images in tqdm(sources.items(), desc=f"fusing ({method})", unit="pair")}


def class_names(labels_dir: Path) -> dict[int, str]:
    """``classes.txt`` beside or inside the labels folder (``index name`` or one name per line)."""
    for candidate in (labels_dir / "classes.txt", labels_dir.parent / "classes.txt"):
        if candidate.is_file():
            names = {}
            for i, line in enumerate(candidate.read_text().splitlines()):
                parts = line.split(maxsplit=1)
                if len(parts) == 2 and parts[0].isdigit():
                    names[int(parts[0])] = parts[1].strip()
                elif parts:
                    names[i] = line.strip()
            return names
    return {}


def detection_table(ir_dir, vis_dir, labels_dir, methods: list[str], detector) -> list[dict]:
    """One row per method: mAP50 and AP50 per class (COCO protocol) of ``detector``."""
    from .detection import average_precision, read_yolo_labels

    labels_dir = Path(labels_dir)
    if not labels_dir.is_dir():
        raise ContrafuseError(labels_dir, "labels folder not found")
    names = class_names(labels_dir)
    truth, classes, rows = None, None, []
    for method, by_name in images_by_method(ir_dir, vis_dir, methods):
        if truth is None:  # the labels, sized by the first method's images
            truth = {name: read_yolo_labels(labels_dir / f"{name}.txt", image.shape[1], image.shape[0])
                     for name, image in by_name.items()}
            if not any(truth.values()):
                raise ContrafuseError(labels_dir, "no labelled boxes for these image names (expected NAME.txt, YOLO format)")
            classes = list(detector.classes) if detector.classes else sorted({b.cls for boxes in truth.values() for b in boxes})
        found = {name: detector(image) for name, image in tqdm(by_name.items(), desc=f"detecting ({method})", unit="image")}
        ap = average_precision(truth, found, classes)
        present = [v for v in ap.values() if not math.isnan(v)]
        rows.append({"method": method, "detector": detector.name,
                     "mAP50": round(float(np.mean(present)), 4) if present else float("nan"),
                     **{f"AP50_{names.get(c, c)}": round(v, 4) for c, v in ap.items()},
                     "images": len(by_name), "objects": sum(1 for boxes in truth.values() for b in boxes if b.cls in classes)})
    return rows


def segmentation_table(ir_dir, vis_dir, labels_dir, methods: list[str], segmenter, classes: int) -> list[dict]:
    """One row per method: mIoU and IoU per class of ``segmenter`` against label masks (NAME.png)."""
    from PIL import Image

    from ..io import list_images
    from .segmentation import confusion, iou_per_class, mean_iou

    labels = list_images(labels_dir)
    rows = []
    for method, by_name in images_by_method(ir_dir, vis_dir, methods):
        matrix = np.zeros((classes, classes), np.int64)
        missing = [n for n in by_name if n not in labels]
        if missing:
            raise ContrafuseError(labels_dir, f"no label mask for {', '.join(missing[:3])}")
        for name, image in by_name.items():
            truth = np.asarray(Image.open(labels[name]))
            matrix += confusion(segmenter(image), truth, classes)
        iou = iou_per_class(matrix)
        rows.append({"method": method, "segmenter": segmenter.name, "mIoU": round(mean_iou(matrix), 4),
                     **{f"IoU_{c}": round(float(v), 4) for c, v in enumerate(iou)}, "images": len(by_name)})
    return rows


def write_table(rows: list[dict], path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write rows as CSV atomically."""
    from ..io import check_output_free, write_csv_atomic

    path = Path(path)
    check_output_free(path, overwrite=overwrite)
    write_csv_atomic(path, rows)
    return path
