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

MRI (Sec. 3.4.2): the paper segments the MRI following Li & Chi (2005), who cluster pixel
feature vectors with a self-organising map (SOM) and group its units into tissue classes. Rule
used here (``segmentation="som"``, documented in docs/masks.md):

1. per-pixel features: intensity, and the mean and standard deviation of its 3x3 neighbourhood;
2. a one-dimensional SOM of 16 units, trained by the batch Kohonen rule (30 sweeps over 20,000
   seeded pixel samples, Gaussian neighbourhood shrinking from 8 units to 0.5);
3. the units that won samples are grouped into three classes (background, soft tissue, bright
   structure) by Ward's hierarchical clustering of their weight vectors (two-level SOM
   clustering); each pixel takes the class of its best-matching unit;
4. the brightest class is the MRI-salient mask M_m, with components under 0.1% of the image
   dropped; unlike the infrared rule there is no opening or hole filling, which would erase the
   thin structures (sulci, skull outline) the mask is meant to keep, or fill a closed skull ring.

``segmentation="kmeans"`` is the earlier stand-in (k-means on intensity, k = 3, brightest
cluster), kept to reproduce the earlier medical model and the mask ablation (docs/masks.md).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.cluster.hierarchy import fcluster, linkage
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


def drop_small_components(mask: np.ndarray, min_fraction: float = 0.001) -> np.ndarray:
    """Remove (4-connected) components smaller than ``min_fraction`` of the image; float32 {0, 1}."""
    labels, count = ndimage.label(mask)
    if count:
        sizes = ndimage.sum(mask, labels, index=np.arange(1, count + 1))
        keep = np.concatenate([[False], sizes >= min_fraction * mask.size])
        mask = keep[labels]
    return mask.astype(np.float32)


def clean_mask(mask: np.ndarray, min_fraction: float = 0.001) -> np.ndarray:
    """3x3 opening and closing, holes filled, small components dropped (blob-like targets)."""
    mask = ndimage.binary_opening(mask, np.ones((3, 3)))
    mask = ndimage.binary_closing(mask, np.ones((3, 3)))
    return drop_small_components(ndimage.binary_fill_holes(mask), min_fraction)


def infrared_mask(ir: np.ndarray) -> np.ndarray:
    """Salient thermal-target mask (1 = target) of a grey [0, 1] infrared image."""
    saliency = fine_grained_saliency(ir)
    salient = saliency > otsu_threshold(saliency)
    warm = ir > ir.mean() + 0.5 * ir.std()
    return clean_mask(salient & warm)


def spectral_residual_saliency(image: np.ndarray, width: int = 64, smoothing: float = 2.5) -> np.ndarray:
    """Spectral-residual saliency (Hou & Zhang, CVPR 2007), an unsupervised, training-free detector:
    the image at ``width`` pixels wide; its log-amplitude spectrum minus that spectrum's 3x3 local
    mean, recombined with the phase and transformed back; the squared magnitude smoothed by a
    Gaussian (``smoothing`` pixels at the reduced size), brought back to the image's size and scaled
    to [0, 1]."""
    image = image.astype(np.float64)
    zoom = min(1.0, width / image.shape[1])
    small = ndimage.zoom(image, zoom, order=1) if zoom < 1 else image
    spectrum = np.fft.fft2(small)
    log_amplitude = np.log(np.abs(spectrum) + 1e-12)
    residual = log_amplitude - ndimage.uniform_filter(log_amplitude, size=3, mode="nearest")
    saliency = np.abs(np.fft.ifft2(np.exp(residual + 1j * np.angle(spectrum)))) ** 2
    saliency = ndimage.gaussian_filter(saliency, smoothing)
    if zoom < 1:
        saliency = ndimage.zoom(saliency, (image.shape[0] / saliency.shape[0], image.shape[1] / saliency.shape[1]),
                                order=1)[: image.shape[0], : image.shape[1]]
    saliency = saliency - saliency.min()
    top = saliency.max()
    return saliency / top if top > 0 else saliency


def saliency_mask(ir: np.ndarray) -> np.ndarray:
    """Salient mask (1 = salient) of a grey [0, 1] infrared image from an unsupervised saliency
    detector alone, :func:`spectral_residual_saliency` above its Otsu threshold, cleaned as
    :func:`infrared_mask`; no warmth test. CoCoNet's Fig. 18 compares masks of this kind (the paper
    used the deep unsupervised detector of Nguyen et al. 2019, DeepUSPS, which is not available here)
    with the detector-based and hand-made ones."""
    saliency = spectral_residual_saliency(ir)
    return clean_mask(saliency > otsu_threshold(saliency))


def som_segmentation(image: np.ndarray, classes: int = 3, units: int = 16, sweeps: int = 30,
                     samples: int = 20000, seed: int = 0) -> np.ndarray:
    """Li & Chi (2005)-style unsupervised segmentation of a grey image with a 1-D self-organising map
    (see the module docstring). Returns integer labels (H, W) in 0..classes-1, ordered from the
    darkest class to the brightest."""
    image = image.astype(np.float64)
    mean = ndimage.uniform_filter(image, size=3, mode="reflect")
    std = np.sqrt(np.maximum(ndimage.uniform_filter(image * image, size=3, mode="reflect") - mean * mean, 0))
    features = np.stack([image, mean, std], axis=-1).reshape(-1, 3)
    rng = np.random.default_rng(seed)
    train = features[rng.choice(len(features), size=min(samples, len(features)), replace=False)]

    # initial weights: samples at evenly spaced intensity quantiles, so the chain starts ordered
    order = np.argsort(train[:, 0], kind="stable")
    weights = train[order[np.linspace(0, len(train) - 1, units).round().astype(int)]].copy()
    positions = np.arange(units, dtype=np.float64)

    def best_units(x: np.ndarray) -> np.ndarray:
        return np.argmin(((x[:, None, :] - weights[None]) ** 2).sum(-1), axis=1)

    for sigma in units / 2 * (0.5 / (units / 2)) ** (np.arange(sweeps) / max(sweeps - 1, 1)):
        winners = best_units(train)
        influence = np.exp(-((positions[None, :] - positions[winners][:, None]) ** 2) / (2 * sigma ** 2))
        total = influence.sum(0)
        alive = total > 1e-12
        weights[alive] = (influence.T @ train)[alive] / total[alive, None]

    hits = np.bincount(best_units(train), minlength=units)
    live = np.flatnonzero(hits)
    unit_class = np.zeros(units, dtype=int)
    if len(live) > classes:
        unit_class[live] = fcluster(linkage(weights[live], method="ward"), classes, criterion="maxclust") - 1
    else:
        unit_class[live] = np.arange(len(live))
    for dead in np.flatnonzero(hits == 0):  # a unit that won no sample joins its nearest live unit
        unit_class[dead] = unit_class[live[np.argmin(((weights[live] - weights[dead]) ** 2).sum(-1))]]

    labels = np.empty(len(features), dtype=int)
    for start in range(0, len(features), 65536):
        labels[start:start + 65536] = unit_class[best_units(features[start:start + 65536])]
    found = np.unique(labels)
    brightness = np.array([image.reshape(-1)[labels == c].mean() for c in found])
    rank = np.empty(unit_class.max() + 1, dtype=int)
    rank[found[np.argsort(brightness)]] = np.arange(len(found))
    return rank[labels].reshape(image.shape)


MRI_SEGMENTATIONS = ("som", "kmeans")


def mri_mask(mri: np.ndarray, segmentation: str = "som", seed: int = 0) -> np.ndarray:
    """MRI-salient structure mask M_m (Sec. 3.4.2): the brightest of three classes of an unsupervised
    segmentation, ``som`` (Li & Chi 2005, :func:`som_segmentation`) or ``kmeans`` (intensity k-means)."""
    if segmentation == "som":
        labels = som_segmentation(mri, classes=3, seed=seed)
        if labels.max() == 0:  # a uniform image has no structure to single out
            return np.zeros(mri.shape, dtype=np.float32)
        return drop_small_components(labels == labels.max())
    if segmentation == "kmeans":
        values = mri.reshape(-1, 1).astype(np.float64)
        centres, labels = kmeans2(values, 3, seed=np.random.default_rng(seed), minit="++")
        brightest = int(np.argmax(centres[:, 0]))
        return clean_mask((labels == brightest).reshape(mri.shape))
    raise ValueError(f"unknown MRI segmentation {segmentation!r} (som or kmeans)")
