"""Task-driven evaluation by semantic segmentation (CoCoNet, Sec. 4.7, on MFNet): a user's ONNX
segmenter on the sources and on each method's fused images, scored by per-class IoU and mIoU
against label masks (PNG, one class index per pixel)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ContrafuseError


def confusion(pred: np.ndarray, truth: np.ndarray, classes: int, ignore: int = 255) -> np.ndarray:
    """``classes x classes`` counts of (true class, predicted class); ``ignore`` pixels are skipped."""
    if pred.shape != truth.shape:
        raise ContrafuseError(None, f"prediction {pred.shape} and label {truth.shape} differ in size")
    keep = (truth != ignore) & (truth < classes)
    index = truth[keep].astype(np.int64) * classes + np.clip(pred[keep].astype(np.int64), 0, classes - 1)
    return np.bincount(index, minlength=classes * classes).reshape(classes, classes)


def iou_per_class(matrix: np.ndarray) -> np.ndarray:
    """IoU = TP / (TP + FP + FN) per class; ``nan`` for a class absent from labels and predictions."""
    tp = np.diag(matrix).astype(np.float64)
    union = matrix.sum(0) + matrix.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def mean_iou(matrix: np.ndarray) -> float:
    """mIoU over the classes that occur in the labels or the predictions."""
    values = iou_per_class(matrix)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


class OnnxSegmenter:
    """An ONNX segmenter: input ``(1, 3, H, W)`` RGB (or ``(1, 1, H, W)`` grey) in [0, 1] at the
    image's own size (or the model's fixed size, the result resized back by nearest neighbour);
    output ``(1, C, h, w)`` class scores."""

    def __init__(self, path: str | os.PathLike):
        from ..methods.onnx import ort_session

        self.session = ort_session(path)
        self.name = f"ONNX segmenter {Path(path).name}"
        self.input = self.session.get_inputs()[0]

    def __call__(self, image: np.ndarray) -> np.ndarray:
        from PIL import Image

        channels = self.input.shape[1] if isinstance(self.input.shape[1], int) else 3
        height, width = image.shape[:2]
        if channels == 1:
            array = image if image.ndim == 2 else np.asarray(Image.fromarray(image).convert("L"))
            array = array[..., None]
        else:
            array = np.stack([image] * 3, -1) if image.ndim == 2 else image
        fixed = [v for v in self.input.shape[2:4] if isinstance(v, int)]
        if len(fixed) == 2:
            array = np.stack([np.asarray(Image.fromarray(array[..., c]).resize(fixed[::-1], Image.BILINEAR))
                              for c in range(array.shape[2])], -1)
        scores = self.session.run(None, {self.input.name: (array.astype(np.float32) / 255).transpose(2, 0, 1)[None]})[0]
        labels = scores[0].argmax(0).astype(np.uint8)
        if labels.shape != (height, width):
            labels = np.asarray(Image.fromarray(labels).resize((width, height), Image.NEAREST))
        return labels
