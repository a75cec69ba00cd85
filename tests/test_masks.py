"""Automatic salient masks for CoCoNet's contrastive loss (contrafuse.data.masks)."""

import numpy as np
import pytest
from conftest import dataset

from contrafuse.cli import main
from contrafuse.data.masks import infrared_mask, mri_mask, som_segmentation
from contrafuse.io import luminance, read_image, write_image


def _head(rng, size=96):
    """A synthetic axial 'MRI': black background, a grey disc of tissue, a bright blob and a bright
    one-pixel line (a thin structure), plus noise."""
    yy, xx = np.mgrid[:size, :size]
    centre = size / 2
    tissue = (yy - centre) ** 2 + (xx - centre) ** 2 < (0.4 * size) ** 2
    bright = ((yy - centre) ** 2 + (xx - 0.4 * size) ** 2 < (0.1 * size) ** 2)
    line = np.zeros_like(tissue)
    line[int(0.7 * size), int(0.35 * size):int(0.65 * size)] = True
    image = np.where(tissue, 0.45, 0.02)
    image = np.where(bright | line, 0.9, image)
    image = image + rng.normal(0, 0.01, image.shape)
    return np.clip(image, 0, 1).astype(np.float32), tissue, bright, line


def test_som_segmentation_recovers_ordered_classes(rng):
    image, tissue, bright, line = _head(rng)
    labels = som_segmentation(image, classes=3)
    expected = np.where(bright | line, 2, np.where(tissue, 1, 0))
    assert labels.shape == image.shape
    assert set(np.unique(labels)) == {0, 1, 2}
    assert (labels == expected).mean() > 0.98   # only pixels next to edges may move class
    assert (labels[bright] == 2).mean() > 0.95 and (labels[~tissue] == 0).mean() > 0.99


def test_som_segmentation_is_seeded(rng):
    image = _head(rng)[0]
    np.testing.assert_array_equal(som_segmentation(image, seed=3), som_segmentation(image, seed=3))


def test_mri_mask_keeps_thin_structures_only_with_som(rng):
    image, _, bright, line = _head(rng)
    som, kmeans = mri_mask(image, "som"), mri_mask(image, "kmeans")
    assert som.dtype == np.float32 and set(np.unique(som)) <= {0.0, 1.0}
    assert som[bright].mean() > 0.95 and kmeans[bright].mean() > 0.95
    assert som[line].mean() > 0.9        # SOM rule: no opening, the one-pixel line stays
    assert kmeans[line].mean() < 0.1     # the k-means stand-in opens the mask and loses it
    with pytest.raises(ValueError, match="unknown MRI segmentation"):
        mri_mask(image, "otsu")


def test_mri_mask_on_a_real_slice():
    mri = luminance(read_image(dataset("Harvard_MRI_SPECT_CDDFuse", "mri", "30.png")))
    mask = mri_mask(mri)
    assert 0.005 < mask.mean() < 0.3
    assert mri[mask > 0].mean() > mri[(mask == 0) & (mri > 0.05)].mean() + 0.2   # brighter than the rest of the head


def test_infrared_mask_finds_a_warm_target(rng):
    ir = rng.normal(0.3, 0.02, (96, 128)).clip(0, 1)
    ir[30:60, 50:70] = 0.9
    mask = infrared_mask(ir.astype(np.float32))
    assert mask[35:55, 55:65].mean() == 1.0
    assert mask[:, :40].sum() == 0


def test_masks_command(tmp_path, rng, capsys):
    src = tmp_path / "mri"
    write_image(src / "a.png", _head(rng)[0])
    out = tmp_path / "masks"
    assert main(["masks", "--kind", "mri", "--ir-dir", str(src), "-o", str(out)]) == 0
    mask = read_image(out / "a.png")
    assert mask.shape == (96, 96) and 0 < (mask > 0.5).mean() < 0.2
    assert "1 masks" in capsys.readouterr().out


def test_uniform_mri_gives_an_empty_mask():
    assert mri_mask(np.full((40, 40), 0.3, dtype=np.float32)).sum() == 0


def test_unknown_segmentation_in_a_config_is_a_clear_error():
    from contrafuse.errors import ContrafuseError
    from contrafuse.train.recipes import CoCoNetRecipe

    with pytest.raises(ContrafuseError, match="mri_segmentation must be one of som, kmeans"):
        CoCoNetRecipe().build_model({"masks": "mri", "mri_segmentation": "otsu", "stages": []})
