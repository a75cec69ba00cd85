"""One image boundary (contrafuse.io.read_image): a path, the bytes of the file and the array it holds
read, fuse and score identically, for 8- and 16-bit, grey, colour, alpha and palette images; the
unit values match what each kind of file holds, worked out by hand; and a colour JPEG keeps its
source, so a protocol can ask for the decoder's own luma plane."""

from __future__ import annotations

import io
import tempfile

import numpy as np
import pytest
from PIL import Image

import contrafuse
from contrafuse.errors import ContrafuseError
from contrafuse.io import UnitImage, jpeg_luma, read_image
from contrafuse.metrics import evaluate_conventions

H, W = 40, 48
RNG = np.random.default_rng(7)
GREY8 = RNG.integers(0, 256, (H, W), dtype=np.uint8)
RGB8 = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
ALPHA = RNG.integers(0, 256, (H, W), dtype=np.uint8)
GREY16 = (RNG.integers(0, 4096, (H, W)) + 300).astype(np.uint16)  # 12 bits in 16, as a thermal frame
GREY16.flat[:2] = 300, 4395  # its range, for the hand-computed stretch
PALETTE = RNG.integers(0, 256, (16, 3), dtype=np.uint8)
INDICES = RNG.integers(0, 16, (H, W), dtype=np.uint8)


def _palette_image(transparent: bool) -> Image.Image:
    img = Image.fromarray(INDICES, mode="P")
    img.putpalette(PALETTE.ravel().tolist())
    if transparent:
        img.info["transparency"] = 3
    return img


#: kind -> (the file's image, the array that file holds as shown, the unit image worked out by hand)
CASES = {
    "grey 8-bit": (Image.fromarray(GREY8), GREY8, GREY8 / 255),
    "colour 8-bit": (Image.fromarray(RGB8), RGB8, RGB8 / 255),
    "grey + alpha": (Image.fromarray(np.dstack([GREY8, ALPHA]), mode="LA"), np.dstack([GREY8, ALPHA]), GREY8 / 255),
    "colour + alpha": (Image.fromarray(np.dstack([RGB8, ALPHA]), mode="RGBA"), np.dstack([RGB8, ALPHA]), RGB8 / 255),
    "palette": (_palette_image(False), PALETTE[INDICES], PALETTE[INDICES] / 255),
    "palette + transparency": (_palette_image(True), np.dstack([PALETTE[INDICES], np.where(INDICES == 3, 0, 255)
                                                                .astype(np.uint8)]), PALETTE[INDICES] / 255),
    "grey stored as RGB": (Image.fromarray(np.dstack([GREY8] * 3)), np.dstack([GREY8] * 3), GREY8 / 255),
    "grey 16-bit": (Image.fromarray(GREY16), GREY16, (GREY16 - 300.0) / 4095.0),
}


@pytest.fixture(params=list(CASES))
def case(request, tmp_path):
    """(path, bytes, array, expected unit image) of one kind of image, saved as PNG."""
    img, array, expected = CASES[request.param]
    path = tmp_path / "image.png"
    img.save(path)
    return path, path.read_bytes(), array, expected


def _forms(case):
    path, data, array, _ = case
    return {"path": path, "str path": str(path), "bytes": data, "array": array}


def test_path_bytes_and_array_read_as_the_file_holds(case):
    expected = case[3]
    for form, image in _forms(case).items():
        unit = read_image(image)
        assert unit.dtype == np.float32 and unit.shape == expected.shape, form
        np.testing.assert_allclose(unit, expected, atol=1e-7, err_msg=form)


def test_path_bytes_and_array_fuse_and_score_identically(case):
    partner = np.flipud(GREY8)
    fused = {form: contrafuse.fuse(image, partner, method="average") for form, image in _forms(case).items()}
    scores = {form: evaluate_conventions(image, partner, fused["path"], metrics=["EN", "MI", "SSIM", "PSNR", "Qabf"])
              for form, image in _forms(case).items()}
    for form in fused:
        assert np.array_equal(fused[form], fused["path"]), form
        assert scores[form] == scores["path"], form
    # the fusion is the average of the hand-computed unit images (luma of colour, chroma re-attached)
    expected = case[3] if case[3].ndim == 2 else case[3] @ np.array([0.299, 0.587, 0.114])
    luma = fused["path"] if fused["path"].ndim == 2 else fused["path"] @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(luma, (expected + partner / 255) / 2, atol=2e-6)


@pytest.mark.parametrize("rule, expected", [
    ("minmax", (GREY16 - 300.0) / 4095.0),
    ("full", GREY16 / 65535.0),
    ("percentile", np.clip((GREY16 - np.percentile(GREY16, 0.5)) / np.subtract(*np.percentile(GREY16, [99.5, 0.5])),
                           0, 1)),
])
def test_a_uint16_array_follows_the_high_bit_rule_of_a_16_bit_file(tmp_path, rule, expected):
    path = tmp_path / "t.png"
    Image.fromarray(GREY16).save(path)
    from_file, from_array = read_image(path, high_bit_rule=rule), read_image(GREY16, high_bit_rule=rule)
    assert np.array_equal(from_file, from_array)
    np.testing.assert_allclose(from_array, expected, atol=1e-6)
    scores = [evaluate_conventions(x, GREY8, GREY8, metrics=["MI", "SSIM"], high_bit_rule=rule) for x in (path, GREY16)]
    assert scores[0] == scores[1]


def test_float_arrays_are_unit_images_and_anything_else_is_one_line():
    values = np.linspace(0, 1, H * W, dtype=np.float32).reshape(H, W)
    assert np.array_equal(read_image(values), values)
    for bad, problem in [(values * 2, "ir: a float array must lie in [0, 1], this one spans 0..2"),
                         (np.where(values > 0.5, np.nan, values), "ir: image holds NaN"),
                         (GREY8.astype(np.int64), "ir: unsupported pixel type int64 (give uint8, uint16"),
                         (np.zeros((H, W, 5), np.uint8), "ir: expected an (H, W) grey or (H, W, 3) colour image"),
                         (np.zeros((0, W), np.uint8), "ir: image has zero size")]:
        with pytest.raises(ContrafuseError) as caught:
            read_image(bad, label="ir")
        assert str(caught.value).startswith(problem) and "\n" not in str(caught.value)
    with pytest.raises(ContrafuseError, match="unknown high-bit rule 'linear'"):
        read_image(GREY8, high_bit_rule="linear")
    with pytest.raises(ContrafuseError, match="^upload: the file is empty$"):
        read_image(b"", label="upload")


def test_metrics_read_files_upright_by_their_exif_orientation(tmp_path):
    """A file stored on its side with EXIF orientation 6 (turn 90 degrees clockwise to view) scores as
    the upright array, in every convention."""
    stored = GREY8[:, :36]  # 40 x 36: turned, 36 x 40
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "turned.png"
    Image.fromarray(stored).save(path, exif=exif)
    upright = np.rot90(stored, k=-1)
    assert np.array_equal(read_image(path), upright / np.float32(255))
    vis, fused = np.flipud(upright), np.fliplr(upright)
    assert (evaluate_conventions(path, vis, fused, metrics=["EN", "MI", "SSIM"])
            == evaluate_conventions(upright, vis, fused, metrics=["EN", "MI", "SSIM"]))


def test_a_unit_image_computes_as_a_plain_array_and_reads_back_as_itself(tmp_path):
    path = tmp_path / "c.png"
    Image.fromarray(np.dstack([GREY8] * 3)).save(path)
    unit = read_image(path)
    assert isinstance(unit, UnitImage) and unit.stored_rgb and unit.encoded == path.read_bytes()
    assert type(unit * 2) is np.ndarray and type(unit + unit) is np.ndarray
    assert unit[:10].encoded is None and not unit[:10].stored_rgb  # a crop is no longer the file
    again = read_image(unit)
    assert np.array_equal(again, unit) and again.stored_rgb and again.encoded == unit.encoded


def test_jpeg_luma_is_what_opencv_reads_as_grey(tmp_path):
    """The decoder's luma of a colour JPEG (with an EXIF turn) equals OpenCV's IMREAD_GRAYSCALE, which
    differs from the luma of the decoded RGB; other images have none."""
    cv2 = pytest.importorskip("cv2")
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "c.jpg"
    Image.fromarray(RGB8).save(path, quality=80, exif=exif)  # chroma subsampled: its RGB's luma is off
    unit = read_image(path)
    luma = jpeg_luma(unit)
    assert luma.dtype == np.uint8 and np.array_equal(luma, cv2.imread(str(path), cv2.IMREAD_GRAYSCALE))
    assert not np.array_equal(luma, np.round(np.round(unit * 255.0) @ np.array([0.299, 0.587, 0.114])))
    assert jpeg_luma(read_image(path.read_bytes())) is not None
    grey_jpeg, colour_png = tmp_path / "g.jpg", tmp_path / "c.png"
    Image.fromarray(GREY8).save(grey_jpeg)
    Image.fromarray(RGB8).save(colour_png)
    for other in (read_image(grey_jpeg), read_image(colour_png), read_image(np.asarray(unit)), unit[:, :20],
                  unit * 1.0):
        assert jpeg_luma(other) is None


def test_web_uploads_are_read_from_their_bytes(tmp_path, monkeypatch):
    """The web API reads an upload from its bytes (no temporary file: it works with no usable temporary
    folder) and scores a 16-bit upload as evaluate does its file."""
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient

    from contrafuse.metrics import evaluate
    from contrafuse.web.app import create_app

    paths = {}
    for name, array in (("ir", GREY16), ("vis", GREY8), ("fused", np.fliplr(GREY8))):
        paths[name] = tmp_path / f"{name}.png"
        Image.fromarray(array).save(paths[name])
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "absent"))
    client = TestClient(create_app())
    files = {name: (path.name, io.BytesIO(path.read_bytes()), "image/png") for name, path in paths.items()}
    r = client.post("/api/evaluate", files=files, data={"metrics": "MI,SSIM,PSNR"})
    assert r.status_code == 200, r.text
    assert r.json()["metrics"] == evaluate(paths["ir"], paths["vis"], paths["fused"], metrics=["MI", "SSIM", "PSNR"])
    files = {name: (path.name, io.BytesIO(path.read_bytes()), "image/png") for name, path in paths.items()
             if name != "fused"}
    r = client.post("/api/fuse", files=files, data={"method": "average"})
    assert r.status_code == 200, r.text
    expected = np.floor(contrafuse.fuse(paths["ir"], paths["vis"], method="average").astype(np.float64) * 255 + 0.5)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(r.content))), expected.astype(np.uint8))
