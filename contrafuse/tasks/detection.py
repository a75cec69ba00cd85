"""Task-driven evaluation by object detection (CoCoNet, Sec. 4.7): run a detector on the sources and
on each method's fused images, and score it against labelled boxes with the COCO protocol
(pycocotools: AP at IoU 0.5 per class, and mAP50 over the classes with ground truth).

Detectors:

* :class:`OnnxDetector` — the user's own model (YOLO-style output, run by ONNX Runtime);
* :class:`HogPeopleDetector` — the built-in default, needing no download: OpenCV's HOG + linear SVM
  pedestrian detector (Dalal & Triggs, CVPR 2005) as shipped in ``opencv-python-headless`` 4.x. It
  was trained on visible-light pedestrians and finds only people, so only the person class is
  scored with it.
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ContrafuseError


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixels: class index, top-left corner, size, and a score (1 for labels)."""
    cls: int
    x: float
    y: float
    w: float
    h: float
    score: float = 1.0


def read_yolo_labels(path: str | os.PathLike, width: int, height: int) -> list[Box]:
    """YOLO-format labels (``class cx cy w h``, normalised to the image) as pixel boxes; a missing
    file means no objects."""
    path = Path(path)
    if not path.exists():
        return []
    boxes = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            cls, cx, cy, w, h = int(fields[0]), *map(float, fields[1:5])
        except (ValueError, IndexError):
            raise ContrafuseError(path, f"line {number}: expected 'class cx cy w h', got {line.strip()!r}") from None
        boxes.append(Box(cls, (cx - w / 2) * width, (cy - h / 2) * height, w * width, h * height))
    return boxes


def average_precision(truth: dict[str, list[Box]], found: dict[str, list[Box]], classes: list[int],
                      iou: float = 0.5) -> dict[int, float]:
    """COCO-protocol AP at IoU ``iou`` per class (pycocotools' COCOeval: 101-point interpolated
    precision, up to 100 detections per image); ``nan`` for a class without ground truth."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    names = sorted(truth)
    image_ids = {name: i + 1 for i, name in enumerate(names)}
    categories = [{"id": c + 1, "name": str(c)} for c in classes]
    annotations = [{"id": k + 1, "image_id": image_ids[name], "category_id": b.cls + 1, "bbox": [b.x, b.y, b.w, b.h],
                    "area": b.w * b.h, "iscrowd": 0}
                   for k, (name, b) in enumerate((n, b) for n in names for b in truth[n] if b.cls in classes)]
    detections = [{"image_id": image_ids[name], "category_id": b.cls + 1, "bbox": [b.x, b.y, b.w, b.h],
                   "score": b.score} for name in names for b in found.get(name, []) if b.cls in classes]
    result = {c: float("nan") for c in classes}
    if not annotations:
        return result
    if not detections:
        return {c: (0.0 if any(a["category_id"] == c + 1 for a in annotations) else float("nan")) for c in classes}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        gt = COCO()
        gt.dataset = {"images": [{"id": i} for i in image_ids.values()], "annotations": annotations,
                      "categories": categories}
        gt.createIndex()
        dt = gt.loadRes(detections)
        evaluation = COCOeval(gt, dt, iouType="bbox")
        evaluation.params.iouThrs = np.array([iou])
        evaluation.params.catIds = [c + 1 for c in classes]
        evaluation.evaluate()
        evaluation.accumulate()
    precision = evaluation.eval["precision"]  # [IoU, recall, class, area, max detections]
    for k, c in enumerate(classes):
        values = precision[0, :, k, 0, -1]
        if (values > -1).any():
            result[c] = float(values[values > -1].mean())
    return result


def _nms(boxes: list[Box], iou: float) -> list[Box]:
    import cv2

    kept = []
    for cls in sorted({b.cls for b in boxes}):
        group = [b for b in boxes if b.cls == cls]
        indices = cv2.dnn.NMSBoxes([[b.x, b.y, b.w, b.h] for b in group], [b.score for b in group], 0.0, iou)
        kept += [group[i] for i in np.array(indices).reshape(-1)]
    return kept


class HogPeopleDetector:
    """OpenCV's default HOG people detector; the image is enlarged ``upscale`` times first, because
    its 64x128 window misses the small, distant people of surveillance and driving frames."""

    name = "OpenCV HOG people detector (Dalal & Triggs 2005; person class only)"
    classes = (0,)

    def __init__(self, upscale: float = 2.0):
        try:
            import cv2
        except ImportError:
            raise ContrafuseError(None, "the HOG detector needs OpenCV 4.x: pip install 'opencv-python-headless<5'") from None
        if not hasattr(cv2, "HOGDescriptor_getDefaultPeopleDetector"):
            raise ContrafuseError(None, f"this OpenCV ({cv2.__version__}) has no HOG people detector; "
                                  "install opencv-python-headless<5")
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.upscale = upscale

    def __call__(self, image: np.ndarray) -> list[Box]:
        import cv2

        grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        big = cv2.resize(grey, None, fx=self.upscale, fy=self.upscale, interpolation=cv2.INTER_LINEAR)
        rects, weights = self.hog.detectMultiScale(big, winStride=(8, 8), padding=(8, 8), scale=1.05)
        s = self.upscale
        boxes = [Box(0, x / s, y / s, w / s, h / s, float(score))
                 for (x, y, w, h), score in zip(np.reshape(rects, (-1, 4)), np.reshape(weights, -1))]
        return _nms(boxes, 0.45)


class OnnxDetector:
    """A YOLO-style ONNX detector: input ``(1, 3, H, W)`` RGB in [0, 1] (the image is resized to the
    model's input size, 640x640 when it is dynamic); output ``(1, 4 + C, N)`` or ``(1, N, 4 + C)``
    with boxes as centre x, centre y, width, height in input pixels followed by C class scores
    (YOLOv8 and later), or with ``yolov5`` layout an objectness score before the class scores.
    ``class_ids`` maps the model's class indices to the labels' (default: the same indices)."""

    def __init__(self, path: str | os.PathLike, layout: str = "yolov8", class_ids: dict[int, int] | None = None,
                 min_score: float = 0.001, nms_iou: float = 0.6):
        from ..methods.onnx import ort_session

        if layout not in ("yolov8", "yolov5"):
            raise ContrafuseError(path, f"unknown detector layout {layout!r} (yolov8 or yolov5)")
        self.session = ort_session(path)
        self.name = f"ONNX detector {Path(path).name} ({layout} output)"
        shape = self.session.get_inputs()[0].shape
        self.size = tuple(int(v) if isinstance(v, int) else 640 for v in shape[2:4])
        self.layout, self.class_ids, self.min_score, self.nms_iou = layout, class_ids, min_score, nms_iou
        self.classes = None  # decided by the labels

    def __call__(self, image: np.ndarray) -> list[Box]:
        from PIL import Image

        rgb = np.stack([image] * 3, -1) if image.ndim == 2 else image
        height, width = rgb.shape[:2]
        resized = np.asarray(Image.fromarray(rgb).resize(self.size[::-1], Image.BILINEAR), np.float32) / 255
        output = self.session.run(None, {self.session.get_inputs()[0].name: resized.transpose(2, 0, 1)[None]})[0][0]
        extra = 5 if self.layout == "yolov5" else 4
        if output.ndim != 2:
            raise ContrafuseError(self.name, f"expected a (1, 4 + C, N) or (1, N, 4 + C) output, got {output.shape}")
        if output.shape[0] < output.shape[1]:  # (4 + C, N): one column per candidate (N is the larger)
            output = output.T
        if output.shape[1] <= extra:
            raise ContrafuseError(self.name, f"output {output.shape} has no class scores for the {self.layout} layout")
        scores = output[:, extra:] * (output[:, 4:5] if self.layout == "yolov5" else 1)
        cls, best = scores.argmax(1), scores.max(1)
        sx, sy = width / self.size[1], height / self.size[0]
        boxes = []
        for (cx, cy, w, h), c, score in zip(output[:, :4], cls, best):
            if score < self.min_score:
                continue
            label = self.class_ids.get(int(c)) if self.class_ids is not None else int(c)
            if label is not None:
                boxes.append(Box(label, (cx - w / 2) * sx, (cy - h / 2) * sy, w * sx, h * sy, float(score)))
        return _nms(boxes, self.nms_iou)
