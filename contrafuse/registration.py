"""Registration: warp an infrared image onto the grid of a visible one whose view overlaps it.

Infrared and visible images share edges, not intensities (a warm wall is bright in one and dark in
the other; contrast flips from object to object), and their gradient *magnitudes* do not match
either (OpenCV's ECC on gradient-magnitude images drifts by several pixels on TNO pairs, and away
entirely on noisy ones). What they share is where edges run and in which direction. The
similarity here is therefore the correlation of *orientation fields*: at each pixel the gradient
direction as a doubled angle (a flipped contrast counts the same), weighted by
``|g|^2 / (local mean of |g|^2 + eps^2)`` (each edge counts about as much as any other, whatever
its contrast, so that a contrast stronger in one image does not pull the estimate; ``eps^2`` is the
image's median ``|g|^2``, so flat and noisy areas count little). The correlation of two such
fields is the normalised-gradient-field measure of Haber & Modersitzki (2006); it is linear in
each field, so it can be searched over every translation at once with FFTs.

1. *Search*: on the pyramid level whose short side is 64 to 127 pixels, every rotation within
   ``MAX_ROTATION`` (2 degree steps) and scale within ``MAX_SCALE`` (5 steps), each with every
   translation within ``MAX_SHIFT`` of the image size; the best few candidates go on.
2. *Refinement*: the enhanced-correlation-coefficient update of Evangelidis & Psarakis (2008) on
   the orientation fields, forward compositional (the infrared image is warped by the current
   estimate and its field recomputed at every step, so that orientations turn with it), coarse to
   fine: a similarity on the search level, then on each level below an affine map and, for
   ``homography``, the eight parameters.
3. *Confidence*: how much better the found alignment is than any other: the fields' correlation
   at the result minus the highest correlation at any shift of it by more than 5 % of the image
   (on the level whose short side is about 120 pixels). An unrelated pair scores about 0 (it finds
   some alignment, but not one better than many others); below ``MIN_CONFIDENCE``,
   :func:`register` refuses with a one-line error naming both images instead of warping.

Pixels with no data (constant rows or columns running in from an edge, and zero-valued areas
touching the border, like the black corners of an image someone warped) take no part in the
estimate. The infrared image is resampled (bicubic) onto the visible image's grid, whatever the
two sizes; visible pixels that the infrared frame does not cover are marked invalid and filled
with the visible image itself, so that a fusion shows the visible scene there rather than a black
or smeared border. OpenCV is imported on first use (``contrafuse --help`` does not load it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import ContrafuseError
from .io import luminance

MOTIONS = ("affine", "homography")

#: Range of the coarse search: rotation (degrees), scale (relative) and translation (fraction of
#: the visible image's width and height).
MAX_ROTATION = 10.0
MAX_SCALE = 0.10
MAX_SHIFT = 0.20

#: Least confidence (correlation margin, see the module's docstring) that counts as registered.
MIN_CONFIDENCE = 0.10

_SEARCH_SIDE = 64          # the search level's short side is 64..127 pixels (or the image's, if smaller)
_CONFIDENCE_SIDE = 120     # the confidence is measured where the short side is 120..239 pixels
_DISTINCT = 0.05           # "another alignment": shifted by more than this fraction of the image
_CANDIDATES = 3            # search results refined before the best is kept
_GRADIENT_SIGMA = 1.0      # smoothing before the gradient, pixels of each level
_LOCAL_SIGMA = 4.0         # reach of the local edge energy that weights each edge
_FIELD_SIGMA = 1.0         # smoothing of the orientation field
_MARGIN = 3                # pixels next to missing data left out
_REFINE_PIXELS = 60_000    # refinement uses a regular grid of about this many pixels per level
_ITERATIONS = 20           # refinement steps per level and model at most (the finest level: _ITERATIONS_FINEST)
_ITERATIONS_FINEST = 10


@dataclass
class Registration:
    """What :func:`register` found.

    ``matrix`` (3x3) maps infrared pixel coordinates ``(x, y, 1)`` to visible ones (pixel centres
    at integers); ``image`` is the infrared image resampled onto the visible grid; ``valid`` is
    True where the infrared frame covers the visible pixel (elsewhere ``image`` holds the visible
    image); ``confidence`` is the correlation margin of the module's docstring.
    """
    matrix: np.ndarray
    image: np.ndarray
    valid: np.ndarray
    confidence: float
    motion: str


def check_motion(motion: str) -> str:
    if motion not in MOTIONS:
        raise ContrafuseError(None, f"register must be one of {', '.join(MOTIONS)}, not {motion!r}")
    return motion


def _grey(image: np.ndarray) -> np.ndarray:
    """The luma (:func:`contrafuse.io.luminance`) as float32."""
    return np.asarray(luminance(image), np.float32)


def data_mask(image: np.ndarray) -> np.ndarray:
    """1 where a grey ``image`` holds data: not in constant rows or columns running in from an edge
    (peeled side by side, so paddings of different values are found), nor in a zero-valued area of
    at least 0.1 % of the image that touches the border."""
    import cv2

    height, width = image.shape
    top, bottom, left, right = 0, height, 0, width

    def flat(line: np.ndarray) -> bool:
        return line.min() == line.max()

    while top < bottom and left < right:
        if flat(image[top, left:right]):
            top += 1
        elif flat(image[bottom - 1, left:right]):
            bottom -= 1
        elif flat(image[top:bottom, left]):
            left += 1
        elif flat(image[top:bottom, right - 1]):
            right -= 1
        else:
            break
    mask = np.zeros((height, width), np.uint8)
    mask[top:bottom, left:right] = 1
    count, labels, stats, _ = cv2.connectedComponentsWithStats((image <= 0).astype(np.uint8), connectivity=4)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    for label in border[border > 0]:
        if stats[label, cv2.CC_STAT_AREA] >= 0.001 * height * width:
            mask[labels == label] = 0
    return mask


def _fill(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``image`` with its missing pixels replaced by a smooth continuation of the data around them,
    so that the edge of missing data draws no gradient."""
    import cv2

    if mask.all():
        return image
    weight = mask.astype(np.float32)
    sigma = 0.02 * max(image.shape)
    smooth = cv2.GaussianBlur(image * weight, (0, 0), sigma) / np.maximum(cv2.GaussianBlur(weight, (0, 0), sigma), 1e-6)
    return np.where(mask > 0, image, smooth).astype(np.float32)


def orientation_field(image: np.ndarray) -> np.ndarray:
    """(H, W, 2) doubled-angle gradient orientation of a grey image, each edge weighted about
    equally (see the module's docstring)."""
    import cv2

    smooth = cv2.GaussianBlur(image, (0, 0), _GRADIENT_SIGMA)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    energy = gx * gx + gy * gy
    eps2 = float(np.median(energy[::3, ::3])) + 1e-12
    local = cv2.GaussianBlur(energy, (0, 0), _LOCAL_SIGMA)
    field = np.dstack([gx * gx - gy * gy, 2 * gx * gy]) / (local + eps2)[..., None]
    return cv2.GaussianBlur(field, (0, 0), _FIELD_SIGMA)


def _erode(mask: np.ndarray, radius: int) -> np.ndarray:
    import cv2

    return cv2.erode(mask, np.ones((2 * radius + 1, 2 * radius + 1), np.uint8), borderType=cv2.BORDER_REPLICATE)


def _correlation(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Correlation coefficient of two fields over ``mask`` (channels pooled, each mean removed)."""
    sel = mask > 0
    if sel.sum() < 16:
        return 0.0
    x = a[sel] - a[sel].mean(axis=0)
    y = b[sel] - b[sel].mean(axis=0)
    denominator = math.sqrt(float((x * x).sum()) * float((y * y).sum()))
    return float((x * y).sum()) / denominator if denominator > 0 else 0.0


def _corners(width: int, height: int) -> np.ndarray:
    return np.array([[0, 0, 1], [width - 1, 0, 1], [0, height - 1, 1], [width - 1, height - 1, 1]], float).T


class _Level:
    """One pyramid level of both images: the visible field and mask, the infrared image and mask.
    Matrices map this level's visible pixel coordinates to its infrared ones."""

    def __init__(self, ir: np.ndarray, ir_mask: np.ndarray, vis: np.ndarray, vis_mask: np.ndarray):
        self.ir, self.ir_mask = _fill(ir, ir_mask), ir_mask
        self.vis_field = orientation_field(_fill(vis, vis_mask))
        self.vis_mask = _erode(vis_mask, _MARGIN)
        height, width = vis.shape
        self.shape = (height, width)
        self.norm = max(width, height) / 2.0     # updates act on coordinates centred and scaled to about [-1, 1]
        self.stride = max(1, math.ceil(math.sqrt(height * width / _REFINE_PIXELS)))
        ys, xs = np.mgrid[0:height:self.stride, 0:width:self.stride].astype(np.float32)
        self.x, self.y = xs - (width - 1) / 2, ys - (height - 1) / 2
        self._target_fft: dict = {}

    def warped(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The infrared field warped by ``matrix``, and the mask of pixels both images hold."""
        import cv2

        height, width = self.shape
        image = cv2.warpPerspective(self.ir, matrix, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                    borderMode=cv2.BORDER_REPLICATE)
        inside = cv2.warpPerspective(self.ir_mask, matrix, (width, height), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return orientation_field(image), _erode(inside, _MARGIN) & self.vis_mask

    def score(self, matrix: np.ndarray) -> float:
        field, mask = self.warped(matrix)
        return _correlation(self.vis_field, field, mask)

    def increment(self, params: np.ndarray) -> np.ndarray:
        """The pixel-coordinate homography of an update ``params`` (4: similarity, 6: affine, 8:
        homography) given in centred, scaled coordinates."""
        height, width = self.shape
        if params.size == 4:
            a, b, tx, ty = params
            params = np.array([a, -b, tx, b, a, ty])
        p = np.zeros(8)
        p[:params.size] = params
        delta = np.array([[1 + p[0], p[1], p[2]], [p[3], 1 + p[4], p[5]], [p[6], p[7], 1.0]])
        centre = np.array([[1 / self.norm, 0, -(width - 1) / 2 / self.norm],
                           [0, 1 / self.norm, -(height - 1) / 2 / self.norm], [0, 0, 1]])
        return np.linalg.inv(centre) @ delta @ centre

    def refine(self, matrix: np.ndarray, dof: int, iterations: int, tolerance: float = 0.05) -> np.ndarray:
        """Steps that raise the fields' correlation, with ``dof`` parameters (4 similarity, 6
        affine, 8 homography); stops when no corner moves by more than ``tolerance`` pixels."""
        import cv2

        step, norm = self.stride, self.norm
        corners = _corners(self.shape[1], self.shape[0])
        for _ in range(iterations):
            field, mask = self.warped(matrix)
            sel = mask[::step, ::step] > 0
            count = int(sel.sum())
            if count < 8 * dof:
                break
            gx = cv2.Sobel(field, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)[::step, ::step][sel]   # (N, 2)
            gy = cv2.Sobel(field, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)[::step, ::step][sel]
            x, y = self.x[sel][:, None], self.y[sel][:, None]
            target = self.vis_field[::step, ::step][sel]
            current = field[::step, ::step][sel]
            target = (target - target.mean(axis=0)).reshape(-1)
            current = (current - current.mean(axis=0)).reshape(-1)
            # the field's spatial gradient times d(position)/d(parameter), per pixel and channel
            jac = np.empty((count, 2, dof), np.float32)
            if dof == 4:
                jac[..., 0], jac[..., 1], jac[..., 2], jac[..., 3] = gx * x + gy * y, gy * x - gx * y, gx * norm, gy * norm
            else:
                jac[..., 0], jac[..., 1], jac[..., 2] = gx * x, gx * y, gx * norm
                jac[..., 3], jac[..., 4], jac[..., 5] = gy * x, gy * y, gy * norm
                if dof == 8:
                    radial = (gx * x + gy * y) / norm
                    jac[..., 6], jac[..., 7] = -radial * x, -radial * y
            means = jac.mean(axis=0)                          # the fields' means are removed, so are the columns'
            jac = jac.reshape(-1, dof)
            hessian = (jac.T @ jac).astype(np.float64) - count * (means.T @ means)
            try:
                inverse = np.linalg.inv(hessian + 1e-9 * np.trace(hessian) * np.eye(dof))
            except np.linalg.LinAlgError:
                break
            # the step that maximises the linearised correlation coefficient (Evangelidis & Psarakis 2008)
            proj_current, proj_target = jac.T @ current, jac.T @ target
            numerator = float(current @ current - proj_current @ inverse @ proj_current)
            denominator = float(target @ current - proj_target @ inverse @ proj_current)
            if denominator <= 0:
                break
            update = self.increment(inverse @ (jac.T @ (numerator / denominator * target - current)))
            matrix = matrix @ update
            moved = update @ corners
            if np.abs(moved[:2] / moved[2] - corners[:2]).max() < tolerance:
                break
        return matrix

    def shifted_scores(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The fields' correlation (about) with the infrared image warped by ``matrix`` and then
        shifted by every (dy, dx) within ``MAX_SHIFT``: (scores, dy, dx), scores[i, j] for the
        shift (dy[i], dx[j]); the visible pixel x then meets the warped infrared one x + d."""
        import cv2

        height, width = self.shape
        reach_y, reach_x = int(round(MAX_SHIFT * height)), int(round(MAX_SHIFT * width))
        size = (cv2.getOptimalDFTSize(height + reach_y), cv2.getOptimalDFTSize(width + reach_x))
        if size not in self._target_fft:
            inside = self.vis_mask > 0
            target = np.where(inside[..., None], self.vis_field - self.vis_field[inside].mean(axis=0), 0)
            self._target_fft[size] = ([np.conj(np.fft.rfft2(target[..., c], size)) for c in range(2)],
                                      np.conj(np.fft.rfft2(self.vis_mask.astype(np.float32), size)),
                                      math.sqrt(float((target ** 2).sum()) / max(int(inside.sum()), 1)))
        target_fft, mask_fft, target_rms = self._target_fft[size]
        field, mask = self.warped(matrix)
        sel = mask > 0
        dy = np.r_[0:reach_y + 1, -reach_y:0]
        dx = np.r_[0:reach_x + 1, -reach_x:0]
        if sel.sum() < 16:
            return np.zeros((dy.size, dx.size)), dy, dx
        source = np.where(sel[..., None], field - field[sel].mean(axis=0), 0)
        corr = sum(np.fft.irfft2(target_fft[c] * np.fft.rfft2(source[..., c], size), size) for c in range(2))
        overlap = np.fft.irfft2(mask_fft * np.fft.rfft2(mask.astype(np.float32), size), size)
        rms = target_rms * math.sqrt(float((source ** 2).sum()) / sel.sum())
        window = np.ix_(dy % size[0], dx % size[1])
        return corr[window] / np.maximum(overlap[window], 0.25 * sel.sum()) / max(rms, 1e-12), dy, dx


def _pyramid(image: np.ndarray, mask: np.ndarray, levels: int) -> list[tuple[np.ndarray, np.ndarray]]:
    import cv2

    out = [(image, mask)]
    for _ in range(levels - 1):
        image = cv2.pyrDown(out[-1][0])
        mask = cv2.resize(_erode(out[-1][1], 1), (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)
        out.append((image, mask))
    return out


def _search(level: _Level, start: np.ndarray) -> list[np.ndarray]:
    """Rotations x scales about the image centre, applied before ``start``, each with its best
    translation; the best ``_CANDIDATES`` distinct results."""
    height, width = level.shape
    centre = np.array([[1, 0, (width - 1) / 2], [0, 1, (height - 1) / 2], [0, 0, 1.0]])
    found = []
    for angle in np.linspace(-MAX_ROTATION, MAX_ROTATION, int(round(MAX_ROTATION)) + 1):
        for scale in np.exp(np.linspace(math.log(1 - MAX_SCALE), math.log(1 + MAX_SCALE), 5)):
            c, s = scale * math.cos(math.radians(angle)), scale * math.sin(math.radians(angle))
            matrix = start @ centre @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]]) @ np.linalg.inv(centre)
            scores, dy, dx = level.shifted_scores(matrix)
            i, j = np.unravel_index(np.argmax(scores), scores.shape)
            found.append((float(scores[i, j]), matrix @ np.array([[1, 0, dx[j]], [0, 1, dy[i]], [0, 0, 1.0]])))
    found.sort(key=lambda item: -item[0])
    corners = _corners(width, height)
    kept: list[tuple[np.ndarray, np.ndarray]] = []
    for _, matrix in found:  # distinct: some corner more than 2 pixels away from every kept one's
        points = matrix @ corners
        points = points[:2] / points[2]
        if all(np.abs(points - other).max() > 2 for _, other in kept):
            kept.append((matrix, points))
        if len(kept) == _CANDIDATES:
            break
    return [matrix for matrix, _ in kept]


def _confidence(level: _Level, matrix: np.ndarray) -> float:
    """The correlation at ``matrix`` (best within a pixel) minus the best at any shift of more than
    ``_DISTINCT`` of the image."""
    scores, dy, dx = level.shifted_scores(matrix)
    height, width = level.shape
    near = (np.abs(dy)[:, None] <= 1) & (np.abs(dx)[None, :] <= 1)
    far = (np.abs(dy)[:, None] > _DISTINCT * height) | (np.abs(dx)[None, :] > _DISTINCT * width)
    return float(scores[near].max() - scores[far].max())


def estimate(ir: np.ndarray, vis: np.ndarray, motion: str = "homography") -> tuple[np.ndarray, float]:
    """The 3x3 matrix mapping visible pixel coordinates to infrared ones, and its confidence."""
    check_motion(motion)
    ir_grey, vis_grey = _grey(ir), _grey(vis)
    ir_mask, vis_mask = data_mask(ir_grey), data_mask(vis_grey)
    if not ir_mask.any() or not vis_mask.any():
        return np.eye(3), 0.0
    short = min(vis_grey.shape)
    levels = max(1, int(math.floor(math.log2(max(short / _SEARCH_SIDE, 1.0)))) + 1)
    pyramid = [_Level(*ir_level, *vis_level) for ir_level, vis_level in
               zip(_pyramid(ir_grey, ir_mask, levels), _pyramid(vis_grey, vis_mask, levels))]
    (hi, wi), (hv, wv) = ir_grey.shape, vis_grey.shape
    # the start: the same field of view, (x_ir + 1/2) = (x_vis + 1/2) * wi / wv, on the search level
    same_view = np.array([[wi / wv, 0, 0.5 * wi / wv - 0.5], [0, hi / hv, 0.5 * hi / hv - 0.5], [0, 0, 1.0]])
    down = np.diag([0.5, 0.5, 1.0])
    coarse = pyramid[-1]
    start = np.linalg.matrix_power(down, levels - 1) @ same_view @ np.linalg.matrix_power(np.linalg.inv(down), levels - 1)
    candidates = [coarse.refine(matrix, 4, 30) for matrix in _search(coarse, start)]
    matrix = max(candidates, key=coarse.score)
    for k in reversed(range(levels)):
        level = pyramid[k]
        if k < levels - 1:
            matrix = np.linalg.inv(down) @ matrix @ down
        if k < levels - 1 or levels == 1:  # the search level keeps a similarity unless it is the only one
            for dof in (6, 8) if motion == "homography" else (6,):
                matrix = level.refine(matrix, dof, _ITERATIONS if k else _ITERATIONS_FINEST)
    k = min(levels - 1, int(math.floor(math.log2(max(short / _CONFIDENCE_SIDE, 1.0)))))
    scale = np.linalg.matrix_power(down, k)
    return matrix / matrix[2, 2], _confidence(pyramid[k], scale @ matrix @ np.linalg.inv(scale))


def _onto(ir: np.ndarray, vis: np.ndarray, to_ir: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``ir`` resampled (bicubic) onto the grid of ``vis`` by ``to_ir`` (visible -> infrared pixels),
    the visible image where the infrared frame does not reach; and where it does."""
    import cv2

    height, width = vis.shape[:2]
    channels = [ir] if ir.ndim == 2 else [ir[..., c] for c in range(ir.shape[2])]
    warped = [cv2.warpPerspective(np.ascontiguousarray(channel, np.float32), to_ir, (width, height),
                                  flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
              for channel in channels]
    valid = cv2.warpPerspective(np.ones(ir.shape[:2], np.uint8), to_ir, (width, height),
                                flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT) > 0
    image = np.clip(warped[0] if ir.ndim == 2 else np.dstack(warped), 0.0, 1.0)
    fill = vis if vis.ndim == ir.ndim else (_grey(vis) if ir.ndim == 2 else np.dstack([vis] * ir.shape[2]))
    return np.where(valid if image.ndim == 2 else valid[..., None], image, fill).astype(np.float32), valid


def register(ir: np.ndarray, vis: np.ndarray, motion: str = "homography", *,
             labels: tuple[str, str] = ("ir", "vis"), min_confidence: float = MIN_CONFIDENCE) -> Registration:
    """Register ``ir`` onto ``vis`` ([0, 1] arrays, grey or RGB, any two sizes); a confidence below
    ``min_confidence`` is a one-line :class:`ContrafuseError` naming both images."""
    import cv2

    try:
        to_ir, confidence = estimate(ir, vis, check_motion(motion))
        if confidence < min_confidence:
            raise ContrafuseError(labels[0], f"cannot register onto {labels[1]}: confidence {confidence:.3f} is below "
                                  f"{min_confidence} (no alignment stands out: do they show the same scene?)")
        image, valid = _onto(ir, vis, to_ir)
    except cv2.error as exc:  # e.g. a side longer than OpenCV warps (32767 pixels)
        raise ContrafuseError(labels[0], f"cannot register onto {labels[1]}: OpenCV: {exc.err}") from None
    return Registration(np.linalg.inv(to_ir), image, valid, confidence, motion)
