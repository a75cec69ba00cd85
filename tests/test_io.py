import numpy as np
import pytest
from conftest import save
from PIL import Image

from contrafuse.errors import ContrafuseError
from contrafuse.io import (
    merge_chroma,
    pair_folders,
    read_image,
    rgb_to_ycbcr,
    unmatched_names,
    write_image,
    ycbcr_to_rgb,
)


def test_uint8_grey_roundtrip(tmp_path, rng):
    data = (rng.random((17, 23)) * 255).astype(np.uint8)
    out = write_image(tmp_path / "x.png", data / 255.0)
    assert np.array_equal(np.asarray(Image.open(out)), data)
    assert np.allclose(read_image(out) * 255, data)


def test_grey_stored_as_rgb_and_palette_become_grey(tmp_path, rng):
    grey = (rng.random((9, 11)) * 255).astype(np.uint8)
    rgb = save(tmp_path / "rgb.png", np.dstack([grey] * 3))
    assert read_image(rgb).shape == (9, 11)
    pal = Image.fromarray(grey).convert("P")
    pal.save(tmp_path / "pal.png")
    assert read_image(tmp_path / "pal.png").ndim == 2
    colour = Image.fromarray((rng.random((9, 11, 3)) * 255).astype(np.uint8)).convert("P", palette=Image.ADAPTIVE)
    colour.save(tmp_path / "palc.bmp")
    assert read_image(tmp_path / "palc.bmp").shape == (9, 11, 3)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_rules(tmp_path, suffix):
    data = np.linspace(1000, 3000, 64 * 8).reshape(8, 64).astype(np.uint16)
    data[0, 0] = 60000  # one hot pixel
    path = tmp_path / f"t16{suffix}"
    Image.fromarray(data).save(path)
    minmax = read_image(path)
    assert minmax.min() == 0.0 and minmax.max() == 1.0
    pct = read_image(path, high_bit_rule="percentile")
    assert pct[4, 32] > 0.3  # the hot pixel no longer squashes the scene
    assert minmax[4, 32] < 0.05
    full = read_image(path, high_bit_rule="full")
    assert np.isclose(full[0, 0], 60000 / 65535)


def test_16bit_output(tmp_path):
    img = np.linspace(0, 1, 300).reshape(10, 30)
    out = write_image(tmp_path / "o.png", img, bits=16)
    assert np.asarray(Image.open(out)).dtype == np.uint16
    assert np.abs(read_image(out, high_bit_rule="full") - img).max() < 1e-4


def test_write_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "o.png"

    def broken_save(self, fp, format=None, **params):
        fp.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError):
        write_image(target, np.zeros((4, 4)))
    assert list(tmp_path.iterdir()) == []


def test_existing_output_kept(tmp_path):
    target = write_image(tmp_path / "o.png", np.zeros((4, 4)))
    with pytest.raises(ContrafuseError, match="exists"):
        write_image(target, np.ones((4, 4)))
    assert read_image(target).max() == 0


def test_ycbcr_roundtrip(rng):
    rgb = rng.random((5, 7, 3)).astype(np.float32)
    assert np.abs(ycbcr_to_rgb(rgb_to_ycbcr(rgb)) - rgb).max() < 1e-5
    grey = np.full((2, 2, 3), 0.3, np.float32)
    assert np.allclose(rgb_to_ycbcr(grey), [0.3, 0.5, 0.5], atol=1e-6)


def test_recolour_rules_outside_the_rgb_cube():
    """Pure red's chroma under a fused Y of 0.8: R = Y + 1.402 (Cr - 0.5) = 0.8 + 0.701 leaves the cube.
    ``clip`` keeps Y, Cb, Cr and clips each channel (hand-computed from the BT.601 inverse);
    ``keep_luma`` scales the chroma toward grey until R = 1, so the result's luma is 0.8 exactly."""
    red = rgb_to_ycbcr(np.array([[[1.0, 0.0, 0.0]]], np.float32))
    ycc = np.dstack([np.full((1, 1, 1), 0.8, np.float32), red[..., 1:]])
    cb, cr = float(red[0, 0, 1]) - 0.5, float(red[0, 0, 2]) - 0.5
    by_hand = np.clip([0.8 + 1.402 * cr, 0.8 - 0.344136 * cb - 0.714136 * cr, 0.8 + 1.772 * cb], 0, 1)
    assert np.allclose(ycbcr_to_rgb(ycc, rule="clip")[0, 0], by_hand, atol=1e-5)
    kept = ycbcr_to_rgb(ycc, rule="keep_luma")
    assert kept[0, 0, 0] == pytest.approx(1.0) and rgb_to_ycbcr(kept)[0, 0, 0] == pytest.approx(0.8, abs=1e-6)
    assert rgb_to_ycbcr(ycbcr_to_rgb(ycc, rule="clip"))[0, 0, 0] < 0.8 - 0.05  # clipping loses luma
    inside = rgb_to_ycbcr(np.array([[[0.4, 0.5, 0.6]]], np.float32))  # in the cube both rules agree
    assert np.allclose(ycbcr_to_rgb(inside, rule="clip"), ycbcr_to_rgb(inside), atol=1e-6)
    with pytest.raises(ValueError, match="recolour"):
        ycbcr_to_rgb(ycc, rule="desaturate")


def test_merge_chroma_prefers_saturated():
    neutral = np.full((1, 1, 2), 0.5, np.float32)
    vivid = np.full((1, 1, 2), 0.9, np.float32)
    assert np.allclose(merge_chroma([neutral, vivid]), 0.9)


def test_pairing(tmp_path):
    for name in ("a.png", "b.jpg"):
        save(tmp_path / "ir" / name, np.zeros((4, 4), np.uint8))
    save(tmp_path / "vis" / "a.bmp", np.zeros((4, 4), np.uint8))
    save(tmp_path / "vis" / "b.png", np.zeros((4, 4), np.uint8))
    pairs = pair_folders(tmp_path / "ir", tmp_path / "vis")
    assert [p.name for p in pairs] == ["a", "b"]
    save(tmp_path / "vis" / "c.png", np.zeros((4, 4), np.uint8))
    assert [p.name for p in pair_folders(tmp_path / "ir", tmp_path / "vis")] == ["a", "b"]
    assert len(unmatched_names(tmp_path / "ir", tmp_path / "vis")) == 1
    assert "c.png: no image named c.*" in unmatched_names(tmp_path / "ir", tmp_path / "vis")[0]
    for name in ("a.bmp", "b.png"):
        (tmp_path / "vis" / name).unlink()
    with pytest.raises(ContrafuseError, match="no image name appears in both"):
        pair_folders(tmp_path / "ir", tmp_path / "vis")


def test_outputs_get_normal_permissions(tmp_path):
    import os
    import stat
    out = write_image(tmp_path / "p.png", np.zeros((4, 4)))
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~mask


@pytest.mark.parametrize(("value", "expected"), [(None, 7), ("12", 12), ("0", None), ("-3", None), ("many", None)])
def test_positive_settings_from_the_environment(monkeypatch, value, expected):
    from contrafuse.errors import positive_setting

    if value is None:
        monkeypatch.delenv("CONTRAFUSE_TEST_SETTING", raising=False)
    else:
        monkeypatch.setenv("CONTRAFUSE_TEST_SETTING", value)
    if expected is None:
        with pytest.raises(ContrafuseError, match=f"^CONTRAFUSE_TEST_SETTING: must be a positive whole number of things, not '{value}'$"):
            positive_setting("CONTRAFUSE_TEST_SETTING", 7, "whole number of things", int)
    else:
        assert positive_setting("CONTRAFUSE_TEST_SETTING", 7, "whole number of things", int) == expected
