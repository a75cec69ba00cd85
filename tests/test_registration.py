"""Registration (contrafuse.registration, ``fuse --register``): known warps of synthetic cross-modal
scenes are registered back; unrelated pairs are refused in one line; CLI, API and web wiring.

The scenes are drawn analytically (rotated rectangles and ellipses on a background), so a warped
infrared view is rendered at exactly known coordinates, with no resampling: the ground truth is the
warp itself. As between thermal and visible images, the two modalities share the objects' outlines
but not their contrast: each object's contrast is kept or flipped at random and perturbed in the
infrared view, which is also blurrier; both have a little noise.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from contrafuse import api
from contrafuse.cli import main
from contrafuse.errors import ContrafuseError
from contrafuse.registration import data_mask, register

SHAPE = (120, 160)


def scene_labels(seed: int, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Which of 24 random shapes covers each scene point (0: background)."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(xs.shape, np.int32)
    for k in range(1, 25):
        cx, cy = rng.uniform(0, SHAPE[1]), rng.uniform(0, SHAPE[0])
        a, b = rng.uniform(6, 28, 2)
        theta = rng.uniform(0, math.pi)
        u = (xs - cx) * math.cos(theta) + (ys - cy) * math.sin(theta)
        v = -(xs - cx) * math.sin(theta) + (ys - cy) * math.cos(theta)
        inside = (np.abs(u) < a) & (np.abs(v) < b) if k % 2 else (u / a) ** 2 + (v / b) ** 2 < 1
        labels[inside & (labels == 0)] = k   # earlier shapes in front
    return labels


def render(seed: int, modality: int, to_scene: np.ndarray | None = None, shape=SHAPE) -> np.ndarray:
    """A [0, 1] view of scene ``seed``: pixel (x, y) shows scene point ``to_scene @ (x, y, 1)``;
    modality 0 is 'visible' (sharp), 1 'infrared' (contrasts flipped or kept, perturbed; blurred)."""
    from scipy.ndimage import gaussian_filter

    ys, xs = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    if to_scene is not None:
        w = to_scene[2, 0] * xs + to_scene[2, 1] * ys + to_scene[2, 2]
        xs, ys = ((to_scene[0, 0] * xs + to_scene[0, 1] * ys + to_scene[0, 2]) / w,
                  (to_scene[1, 0] * xs + to_scene[1, 1] * ys + to_scene[1, 2]) / w)
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.1, 0.9, 25)
    if modality:
        values = np.clip(np.where(rng.random(25) < 0.5, 1 - values, values) + rng.normal(0, 0.1, 25), 0, 1)
    image = gaussian_filter(values[scene_labels(seed, xs, ys)], 1.5 if modality else 0.7)
    noise = np.random.default_rng(1000 * seed + modality).normal(0, 0.01, image.shape)
    return np.clip(image + noise, 0, 1).astype(np.float32)


def similarity(shift, degrees, scale, shape=SHAPE) -> np.ndarray:
    """Rotation and scale about the image centre, then a shift (pixels)."""
    h, w = shape
    c, s = scale * math.cos(math.radians(degrees)), scale * math.sin(math.radians(degrees))
    cx, cy = (w - 1) / 2, (h - 1) / 2
    return np.array([[c, -s, cx - c * cx + s * cy + shift[0]], [s, c, cy - s * cx - c * cy + shift[1]], [0, 0, 1.0]])


def corner_error(found_ir_to_vis: np.ndarray, true_vis_to_ir: np.ndarray, shape=SHAPE) -> float:
    """Mean distance (pixels) between where the visible image's corners land in the infrared one
    by the estimate and by the truth."""
    h, w = shape
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], float).T
    a, b = np.linalg.inv(found_ir_to_vis) @ corners, true_vis_to_ir @ corners
    return float(np.linalg.norm(a[:2] / a[2] - b[:2] / b[2], axis=0).mean())


def warped_pair(seed=3, warp=None):
    """Visible view, infrared view through ``warp`` (visible -> infrared pixels), and the warp."""
    warp = similarity((0.03 * SHAPE[1], -0.02 * SHAPE[0]), 3.0, 1.02) if warp is None else warp
    vis = render(seed, 0)
    ir = render(seed, 1, np.linalg.inv(warp))  # infrared pixel p shows the scene point at visible pixel warp^-1 p
    return ir, vis, warp


@pytest.mark.parametrize("motion", ["affine", "homography"])
def test_a_known_similarity_is_registered_back(motion):
    ir, vis, warp = warped_pair()
    result = register(ir, vis, motion)
    assert corner_error(result.matrix, warp) < 0.75
    assert result.image.shape == vis.shape and result.confidence > 0.2


def test_a_known_homography_is_registered_back():
    h, w = SHAPE
    src = np.float32([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]])
    moved = src + np.float32([[4, -3], [-5, 2], [3, 4], [-2, -4]])   # every corner moved 4-5 pixels
    import cv2

    warp = cv2.getPerspectiveTransform(src, moved).astype(np.float64)
    ir, vis, warp = warped_pair(seed=5, warp=warp)
    assert corner_error(register(ir, vis, "homography").matrix, warp) < 0.75


def test_a_smaller_infrared_camera_is_registered_onto_the_visible_grid():
    """A 90x120 infrared image of the same view (another camera, another size) is registered onto
    the 120x160 visible grid."""
    small = (90, 120)
    ratio = SHAPE[1] / small[1]
    to_scene = np.array([[ratio, 0, 0.5 * ratio - 0.5], [0, ratio, 0.5 * ratio - 0.5], [0, 0, 1]])  # pixel centres
    ir, vis = render(4, 1, to_scene, shape=small), render(4, 0)
    result = register(ir, vis, "affine")
    assert result.image.shape == vis.shape
    assert corner_error(result.matrix, np.linalg.inv(to_scene)) < 0.75


def test_pixels_outside_the_infrared_frame_are_invalid_and_show_the_visible_image():
    ir, vis, _ = warped_pair(seed=6, warp=similarity((9, 0), 0, 1))   # infrared frame 9 pixels to the right
    result = register(ir, vis, "affine")
    # visible column x is infrared column x + 9: the last 9 visible columns have no infrared pixel
    assert result.valid[:, : SHAPE[1] - 11].all() and not result.valid[:, SHAPE[1] - 8:].any()
    assert np.array_equal(result.image[~result.valid], vis[~result.valid])


def test_no_data_borders_are_found():
    image = np.random.default_rng(0).uniform(0.2, 1, (20, 30)).astype(np.float32)
    image[:2] = 0.5                       # two constant rows on top
    image[:, -3:] = 0.7                   # three constant columns at the right
    for row in range(12, 20):             # a black corner, as a warp leaves it
        image[row, : row - 11] = 0
    expected = np.ones((20, 30), np.uint8)
    expected[:2], expected[:, -3:] = 0, 0
    for row in range(12, 20):
        expected[row, : row - 11] = 0
    assert np.array_equal(data_mask(image), expected)


def test_unrelated_scenes_are_refused():
    with pytest.raises(ContrafuseError, match="cannot register"):
        register(render(1, 1), render(2, 0), "homography", labels=("a.png", "b.png"))


def _save(path, image):
    Image.fromarray((image * 255).round().astype(np.uint8)).save(path)
    return str(path)


def test_cli_registers_before_fusing(tmp_path, capsys):
    ir, vis, warp = warped_pair()
    aligned = render(3, 1)
    paths = [_save(tmp_path / name, image) for name, image in (("ir.png", ir), ("vis.png", vis), ("aligned.png", aligned))]
    assert main(["fuse", "--ir", paths[0], "--vis", paths[1], "-o", str(tmp_path / "r.png"), "--method", "average",
                 "--register", "homography"]) == 0
    assert main(["fuse", "--ir", paths[2], "--vis", paths[1], "-o", str(tmp_path / "a.png"), "--method", "average"]) == 0
    registered = np.asarray(Image.open(tmp_path / "r.png"), float)
    reference = np.asarray(Image.open(tmp_path / "a.png"), float)
    inner = (slice(12, -12), slice(16, -16))
    assert np.abs(registered - reference)[inner].mean() < 2.0   # grey levels: resampling only


def test_cli_refuses_an_unrelated_pair_in_one_line(tmp_path, capsys):
    ir = _save(tmp_path / "ir.png", render(1, 1))
    vis = _save(tmp_path / "vis.png", render(2, 0))
    out = tmp_path / "f.png"
    code = main(["fuse", "--ir", ir, "--vis", vis, "-o", str(out), "--method", "average", "--register", "affine"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err
    assert lines[0].startswith("contrafuse: error:") and ir in lines[0] and vis in lines[0] and "cannot register" in lines[0]
    assert not out.exists()


def test_cli_checks_register_options_before_any_work(tmp_path, capsys):
    ir, vis, _ = warped_pair()
    paths = [_save(tmp_path / "ir.png", ir), _save(tmp_path / "vis.png", vis)]
    code = main(["fuse", "--ir", paths[0], "--vis", paths[1], "-o", str(tmp_path / "f.png"), "--register", "affine",
                 "--resize", "ir"])
    err = capsys.readouterr().err
    assert code == 2 and "--register" in err and "--resize" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as exit_info:   # argparse: an unknown motion
        main(["fuse", "--ir", paths[0], "--vis", paths[1], "-o", str(tmp_path / "f.png"), "--register", "rigid"])
    assert exit_info.value.code == 2
    assert not (tmp_path / "f.png").exists()


def test_folder_mode_registers_each_pair_and_reports_a_refused_one(tmp_path, capsys):
    ir, vis, _ = warped_pair()
    for folder in ("ir", "vis", "out"):
        (tmp_path / folder).mkdir()
    _save(tmp_path / "ir" / "good.png", ir)
    _save(tmp_path / "vis" / "good.png", vis)
    _save(tmp_path / "ir" / "other.png", render(1, 1))
    _save(tmp_path / "vis" / "other.png", render(2, 0))
    code = main(["fuse", "--ir-dir", str(tmp_path / "ir"), "--vis-dir", str(tmp_path / "vis"), "--out-dir",
                 str(tmp_path / "out"), "--method", "average", "--register", "affine"])
    captured = capsys.readouterr()
    assert code == 2 and "1 fused" in captured.out and "1 failed" in captured.out
    assert "fail other" in captured.err and "cannot register" in captured.err
    assert (tmp_path / "out" / "good.png").exists() and not (tmp_path / "out" / "other.png").exists()


def test_python_api_registers():
    ir, vis, _ = warped_pair()
    fused = api.fuse(ir, vis, "average", register="affine")
    reference = api.fuse(render(3, 1), vis, "average")
    inner = (slice(12, -12), slice(16, -16))
    assert np.abs(fused - reference)[inner].mean() < 2.0 / 255
    with pytest.raises(ContrafuseError, match="register must be one of"):
        api.fuse(ir, vis, "average", register="rigid")
    with pytest.raises(ContrafuseError, match="exclude each other"):
        api.fuse(ir, vis, "average", register="affine", resize="ir")


def test_web_api_registers_and_refuses(tmp_path):
    from fastapi.testclient import TestClient

    from contrafuse.web.app import create_app

    ir, vis, _ = warped_pair()
    client = TestClient(create_app())

    def post(ir_image, vis_image, register):
        files = {name: (f"{name}.png", Path(_save(tmp_path / f"{name}.png", image)).read_bytes(), "image/png")
                 for name, image in (("ir", ir_image), ("vis", vis_image))}
        return client.post("/api/fuse", files=files, data={"method": "average", "register": register})

    ok = post(ir, vis, "homography")
    assert ok.status_code == 200 and ok.headers["content-type"] == "image/png"
    refused = post(render(1, 1), render(2, 0), "homography")
    assert refused.status_code == 400 and "cannot register" in refused.json()["error"]
    assert post(ir, vis, "rigid").status_code == 400
