"""Automatic salient masks for CoCoNet's coupled contrastive loss.

Infrared (Sec. 3.2.1, Fig. 18): the paper shows that masks from the fine-grained saliency of
Montabone & Soto (Image Vision Comput. 28(3), 2010) work as well as hand-drawn ones. That
saliency sums, over several scales, the on-centre and off-centre differences between a pixel
and the mean of its surround. Rule used here (documented in docs/masks.md):

1. saliency S = sum over surround radii r in {1, 2, 4, 8, 16, 32} of the on-centre difference
   max(I - mean_r(I), 0) (surround mean excluding the centre pixel): thermal targets are warmer
   than their surround in white-hot IR; S is smoothed by a Gaussian (sigma 2) and divided by
   its 99.5th percentile, so that a few extreme pixels (text overlays) do not flatten it;
2. a pixel is salient when S exceeds its Otsu threshold *and* the pixel is warm
   (I above the image's mean + 0.5 std);
3. the mask is cleaned by a 3x3 opening and closing, holes filled, and components smaller
   than 0.1% of the image removed.

MRI (Sec. 3.4.2): the paper segments the MRI following Li & Chi (2005). As a documented stand-in
we cluster MRI intensities with k-means (k = 3: background, soft tissue, bright structure) and
take the brightest cluster, smoothed as above, as the MRI-salient mask M_m.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.cluster.vq import kmeans2

SURROUND_RADII = (1, 2, 4, 8, 16, 32)


def fine_grained_saliency(image: np.ndarray, on_centre_only: bool = True) -> np.ndarray:
    """Multi-scale centre-surround contrast, smoothed and scaled to [0, 1] (see module docstring).
    ``on_centre_only=False`` adds the off-centre (darker-than-surround) term as well."""
    image = image.astype(np.float64)
    saliency = np.zeros_like(image)
    for r in SURROUND_RADII:
        size = 2 * r + 1
        box_sum = ndimage.uniform_filter(image, size=size, mode="reflect") * size * size
        surround = (box_sum - image) / (size * size - 1)
        saliency += np.maximum(image - surround, 0) if on_centre_only else np.abs(image - surround)
    saliency = ndimage.gaussian_filter(saliency, 2.0)
    top = np.percentile(saliency, 99.5)
    return np.clip(saliency / top, 0, 1) if top > 0 else saliency


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of values in [0, 1]."""
    hist, edges = np.histogram(values, bins=bins, range=(0.0, 1.0))
    p = hist / max(hist.sum(), 1)
    omega = np.cumsum(p)
    mu = np.cumsum(p * (edges[:-1] + edges[1:]) / 2)
    between = (mu[-1] * omega - mu) ** 2 / np.maximum(omega * (1 - omega), 1e-12)
    return float(edges[np.argmax(between) + 1])


def clean_mask(mask: np.ndarray, min_fraction: float = 0.001) -> np.ndarray:
    mask = ndimage.binary_opening(mask, np.ones((3, 3)))
    mask = ndimage.binary_closing(mask, np.ones((3, 3)))
    mask = ndimage.binary_fill_holes(mask)
    labels, count = ndimage.label(mask)
    if count:
        sizes = ndimage.sum(mask, labels, index=np.arange(1, count + 1))
        keep = np.concatenate([[False], sizes >= min_fraction * mask.size])
        mask = keep[labels]
    return mask.astype(np.float32)


def infrared_mask(ir: np.ndarray) -> np.ndarray:
    """Salient thermal-target mask (1 = target) of a grey [0, 1] infrared image."""
    saliency = fine_grained_saliency(ir)
    salient = saliency > otsu_threshold(saliency)
    warm = ir > ir.mean() + 0.5 * ir.std()
    return clean_mask(salient & warm)


def mri_mask(mri: np.ndarray, clusters: int = 3, seed: int = 0) -> np.ndarray:
    """MRI-salient structure mask M_m: the brightest of ``clusters`` k-means intensity clusters."""
    values = mri.reshape(-1, 1).astype(np.float64)
    rng = np.random.default_rng(seed)
    centres, labels = kmeans2(values, clusters, seed=rng, minit="++")
    brightest = int(np.argmax(centres[:, 0]))
    return clean_mask((labels == brightest).reshape(mri.shape))
