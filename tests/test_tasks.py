"""Task-driven evaluation: COCO AP and mIoU against hand-computed cases, the ONNX detector and
segmenter paths with tiny models exported here, and the HOG path end to end on two MSRS pairs."""

import csv
import math

import numpy as np
import pytest
from conftest import dataset, save

from contrafuse.cli import main
from contrafuse.tasks.detection import Box, average_precision
from contrafuse.tasks.segmentation import confusion, iou_per_class, mean_iou

GT = {"a": [Box(0, 10, 10, 20, 20)], "b": [Box(0, 40, 5, 10, 30)]}


def test_perfect_detections_score_one():
    found = {name: [Box(b.cls, b.x, b.y, b.w, b.h, 0.9) for b in boxes] for name, boxes in GT.items()}
    assert average_precision(GT, found, [0])[0] == pytest.approx(1.0)


def test_no_detections_score_zero_and_absent_classes_are_nan():
    ap = average_precision(GT, {}, [0, 1])
    assert ap[0] == 0.0 and math.isnan(ap[1])


def test_a_false_positive_ranked_first_halves_ap():
    # two ground truths, two true positives at 0.8, 0.7 and a false positive at 0.9 ranked first:
    # precision 0, 1/2, 2/3 at recall 0, 1/2, 1; interpolated (max to the right) 2/3 everywhere
    found = {"a": [Box(0, 10, 10, 20, 20, 0.8), Box(0, 100, 100, 20, 20, 0.9)], "b": [Box(0, 40, 5, 10, 30, 0.7)]}
    assert average_precision(GT, found, [0])[0] == pytest.approx(2 / 3)
    # ranked last it costs nothing
    found["a"][1] = Box(0, 100, 100, 20, 20, 0.1)
    assert average_precision(GT, found, [0])[0] == pytest.approx(1.0)


def test_duplicates_count_once_and_missed_objects_cut_recall():
    found = {"a": [Box(0, 10, 10, 20, 20, 0.9), Box(0, 11, 10, 20, 20, 0.8)]}  # duplicate on a; b missed
    # recall reaches 1/2 with precision 1: 51 of COCO's 101 recall points
    assert average_precision(GT, found, [0])[0] == pytest.approx(51 / 101)


def test_iou_by_hand():
    truth = np.array([[0, 0, 1, 1], [0, 0, 1, 1]])
    pred = np.array([[0, 1, 1, 1], [0, 0, 1, 255]])
    matrix = confusion(pred, truth, 2)
    # class 0: TP 3, FN 1 (predicted 1), FP 0 -> 3/4; class 1: TP 4, FP 1 -> 4/5
    np.testing.assert_allclose(iou_per_class(matrix), [3 / 4, 4 / 5])
    assert mean_iou(matrix) == pytest.approx((3 / 4 + 4 / 5) / 2)
    assert mean_iou(confusion(truth, truth, 2)) == 1.0


def export(model, example, path):
    import torch
    torch.onnx.export(model, (example,), str(path), input_names=["images"], output_names=["out"], dynamo=False)


def synthetic_pairs(tmp_path, rng, count=3, shape=(32, 48)):
    for i in range(count):
        ir = np.zeros(shape, np.uint8)
        ir[8:24, 12 + 4 * i:30 + 4 * i] = 200
        save(tmp_path / "ir" / f"s{i}.png", ir)
        save(tmp_path / "vis" / f"s{i}.png", (rng.random(shape) * 60).astype(np.uint8))
    return tmp_path / "ir", tmp_path / "vis"


def test_onnx_detector_path(tmp_path, rng):
    pytest.importorskip("onnxruntime")
    import torch

    ir_dir, vis_dir = synthetic_pairs(tmp_path, rng, count=1)
    # a "detector" that always outputs one person box at the labelled place (YOLOv8 layout, 64x64 input)
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "s0.txt").write_text("0 0.4375 0.5 0.375 0.5\n")  # x 12..30 of 48, y 8..24 of 32

    candidates = torch.zeros(7, 20)  # (4 + 3 classes, 20 candidates): one confident box, the rest empty
    candidates[:, 0] = torch.tensor([0.4375 * 64, 0.5 * 64, 0.375 * 64, 0.5 * 64, 0.9, 0.05, 0.01])

    class Constant(torch.nn.Module):
        def forward(self, x):
            return candidates[None] + 0 * x.mean()

    export(Constant(), torch.zeros(1, 3, 64, 64), tmp_path / "det.onnx")
    out = tmp_path / "det.csv"
    assert main(["task-eval", "detection", "--ir-dir", str(ir_dir), "--vis-dir", str(vis_dir), "--labels", str(labels),
                 "--methods", "ir,average", "--detector", str(tmp_path / "det.onnx"), "-o", str(out)]) == 0
    rows = {r["method"]: r for r in csv.DictReader(open(out))}
    assert float(rows["ir"]["mAP50"]) == pytest.approx(1.0) and float(rows["average"]["AP50_0"]) == pytest.approx(1.0)


def test_onnx_segmenter_path(tmp_path, rng):
    pytest.importorskip("onnxruntime")
    import torch

    ir_dir, vis_dir = synthetic_pairs(tmp_path, rng)
    masks = tmp_path / "masks"
    for path in sorted(ir_dir.iterdir()):
        save(masks / path.name, (np.asarray(__import__("PIL").Image.open(path)) > 127).astype(np.uint8))

    class Threshold(torch.nn.Module):  # class 1 where the red channel is above one half
        def forward(self, x):
            return torch.cat([torch.zeros_like(x[:, :1]), x[:, :1] - 0.5], 1)

    export(Threshold(), torch.zeros(1, 3, 32, 48), tmp_path / "seg.onnx")
    out = tmp_path / "seg.csv"
    assert main(["task-eval", "segmentation", "--ir-dir", str(ir_dir), "--vis-dir", str(vis_dir), "--labels", str(masks),
                 "--methods", "ir,vis", "--segmenter", str(tmp_path / "seg.onnx"), "--classes", "2", "-o", str(out)]) == 0
    rows = {r["method"]: r for r in csv.DictReader(open(out))}
    assert float(rows["ir"]["mIoU"]) == 1.0
    assert float(rows["vis"]["IoU_1"]) == 0.0  # the visible frames hold no bright target


def test_hog_detection_end_to_end_on_two_msrs_pairs(tmp_path):
    sample = dataset("MSRS_detection_sample")
    for kind in ("ir", "vis"):
        (tmp_path / kind).mkdir()
        for name in ("00004N", "00095D"):
            (tmp_path / kind / f"{name}.png").symlink_to(sample / kind / f"{name}.png")
    out = tmp_path / "det.csv"
    assert main(["task-eval", "detection", "--ir-dir", str(tmp_path / "ir"), "--vis-dir", str(tmp_path / "vis"),
                 "--labels", str(sample / "labels" / "fusion"), "--methods", "ir,vis,gff", "-o", str(out)]) == 0
    rows = list(csv.DictReader(open(out)))
    assert [r["method"] for r in rows] == ["ir", "vis", "gff"]
    assert all(0.0 <= float(r["mAP50"]) <= 1.0 and r["detector"].startswith("OpenCV HOG") for r in rows)
    assert all(int(r["objects"]) > 0 and "AP50_person" in r for r in rows)
