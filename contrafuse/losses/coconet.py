"""CoCoNet losses (Liu et al., IJCV 2023): self-adaptive loss (Sec. 3.2.2, Eqs. 3-9) and coupled
contrastive loss (Sec. 3.2.1, Eqs. 1-2; medical form Eqs. 13-14).

All tensors are grey batches ``(B, 1, H, W)`` in [-1, 1] unless stated.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..nn import to_unit
from ..nn.vgg import VGG19
from ..precision import full_precision
from .ssim import ssim

#: VGG-19 layer weights for relu1_1 .. relu5_1 (Sec. 3.2.1).
CONTRAST_LAYER_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


def average_gradient(x: torch.Tensor) -> torch.Tensor:
    """Eq. 6 per sample on [0, 1] intensities: mean |horizontal diff| + mean |vertical diff|."""
    unit = to_unit(x)
    dh = (unit[..., :, 1:] - unit[..., :, :-1]).abs().mean(dim=(1, 2, 3))
    dv = (unit[..., 1:, :] - unit[..., :-1, :]).abs().mean(dim=(1, 2, 3))
    return dh + dv


def _grey_histograms(x: torch.Tensor) -> torch.Tensor:
    """Per-sample 256-level counts ``(B, 256)`` of the 8-bit image (values mapped as
    ``uint8(127.5 x + 127.5)``, as in the authors' code)."""
    levels = (x * 127.5 + 127.5).clamp(0, 255).to(torch.uint8).long().flatten(1)
    return torch.zeros(levels.shape[0], 256, device=x.device).scatter_add_(
        1, levels, torch.ones_like(levels, dtype=torch.float32))


def _entropy_of_counts(counts: torch.Tensor) -> torch.Tensor:
    p = counts / counts.sum(dim=1, keepdim=True)
    return -(p * torch.log2(p.clamp_min(1e-30))).sum(dim=1)


def entropy_bits(x: torch.Tensor) -> torch.Tensor:
    """Eq. 8 per sample: Shannon entropy (bits) of the 256-level histogram of the 8-bit image."""
    return _entropy_of_counts(_grey_histograms(x))


def sobel_gradient(x: torch.Tensor) -> torch.Tensor:
    """AG as the authors' training code measures it: per-sample mean of |Sobel_x| + |Sobel_y| on the
    [-1, 1] values, zero-padded (so a patch's border adds a step to black), plus 1e-5."""
    kernel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=x.dtype, device=x.device)
    gx = F.conv2d(x, kernel.view(1, 1, 3, 3), padding=1)
    gy = F.conv2d(x, kernel.t().reshape(1, 1, 3, 3), padding=1)
    return (gx.abs() + gy.abs()).mean(dim=(1, 2, 3)) + 1e-5


def pooled_entropy_bits(x: torch.Tensor) -> torch.Tensor:
    """EN as the authors' training code computes it: its histogram is not reset between the samples of
    a batch, so sample i gets the entropy of samples 0..i pooled, and every entry gets 1e-4 once per
    sample (``B`` x 1e-4 in all). Same 8-bit mapping as :func:`entropy_bits`."""
    return _entropy_of_counts(_grey_histograms(x).cumsum(dim=0)) + 1e-4 * x.shape[0]


#: How the self-adaptive loss measures its sources (``self_adaptive.measures``): ``per_sample`` is the
#: paper's Eqs. 4-9 for each patch; ``code`` reproduces the authors' training code (Sobel AG, pooled
#: entropy, and one SSIM over the batch weighted by the batch-mean sigma).
MEASURES = ("per_sample", "code")


def self_adaptive_weights(ir: torch.Tensor, vis: torch.Tensor, *, form: str = "code",
                          t_ag: float = 0.5, t_en: float = 0.75,
                          measures: str = "per_sample") -> tuple[torch.Tensor, torch.Tensor]:
    """The sigma (SSIM) and gamma (MSE) weights, each ``(B, 2)`` with columns (visible, infrared).

    ``form="paper"``: softmax of the raw AG (Eq. 7) and EN (Eq. 9).
    ``form="code"``: as the authors' code, AG and EN are first divided by the pair's sum and by a
    temperature (``t_ag``, ``t_en``), then soft-maxed. ``measures`` picks AG and EN: Eq. 6 and Eq. 8
    per sample, or the authors' code's :func:`sobel_gradient` and :func:`pooled_entropy_bits`.
    Computed without gradient.
    """
    if measures not in MEASURES:
        raise ValueError(f"self-adaptive measures must be one of {MEASURES}, not {measures!r}")
    gradient, entropy = ((average_gradient, entropy_bits) if measures == "per_sample"
                         else (sobel_gradient, pooled_entropy_bits))
    with torch.no_grad():
        ag = torch.stack([gradient(vis), gradient(ir)], dim=1)
        en = torch.stack([entropy(vis), entropy(ir)], dim=1)
        if form == "code":
            ag = ag / ag.sum(dim=1, keepdim=True).clamp_min(1e-12) / t_ag
            en = en / en.sum(dim=1, keepdim=True).clamp_min(1e-12) / t_en
        elif form != "paper":
            raise ValueError(f"self-adaptive form must be 'paper' or 'code', not {form!r}")
        return torch.softmax(ag, dim=1), torch.softmax(en, dim=1)


class SelfAdaptiveLoss(nn.Module):
    """L_P = alpha L_S + L_N (Eq. 3): SSIM (Eq. 4, on [0, 1]) and MSE (Eq. 5, on [-1, 1]) terms,
    weighted per sample by :func:`self_adaptive_weights`, averaged over the batch. With
    ``measures="code"`` the SSIM term is the authors' code's: one SSIM over the whole batch for each
    source, weighted by the batch mean of sigma."""

    def __init__(self, alpha: float = 20.0, form: str = "code", t_ag: float = 0.5, t_en: float = 0.75,
                 measures: str = "per_sample", sigma: float | None = None, gamma: float | None = None):
        """``sigma`` / ``gamma``: hand-crafted weights instead of the self-adaptive ones (the ablation
        of Sec. 4.3, Figs. 14-15): ``sigma^a = sigma`` on the visible image and ``sigma^b = 1 - sigma``
        on the infrared (Eq. 4; likewise gamma, Eq. 5) for every sample. ``None``: self-adaptive."""
        super().__init__()
        self.alpha, self.form, self.t_ag, self.t_en, self.measures = alpha, form, t_ag, t_en, measures
        for name, value in (("sigma", sigma), ("gamma", gamma)):
            if value is not None and not 0 <= value <= 1:
                raise ValueError(f"a fixed {name} must lie in [0, 1], not {value!r}")
        self.sigma, self.gamma = sigma, gamma

    def forward(self, fused, ir, vis) -> dict[str, torch.Tensor]:
        with full_precision(fused, ir, vis) as (f, r, v):  # float32 SSIM and MSE
            sigma, gamma = self_adaptive_weights(r, v, form=self.form, t_ag=self.t_ag, t_en=self.t_en,
                                                 measures=self.measures)
            if self.sigma is not None:
                sigma = torch.tensor([self.sigma, 1 - self.sigma], device=sigma.device).expand_as(sigma)
            if self.gamma is not None:
                gamma = torch.tensor([self.gamma, 1 - self.gamma], device=gamma.device).expand_as(gamma)
            unit = [to_unit(t) for t in (f, v, r)]
            ssim_v, ssim_r = ssim(unit[1], unit[0]), ssim(unit[2], unit[0])
            if self.measures == "code":
                sigma, ssim_v, ssim_r = sigma.mean(dim=0, keepdim=True), ssim_v.mean(), ssim_r.mean()
            l_s = sigma[:, 0] * (1 - ssim_v) + sigma[:, 1] * (1 - ssim_r)
            mse_v = ((v - f) ** 2).mean(dim=(1, 2, 3))
            mse_r = ((r - f) ** 2).mean(dim=(1, 2, 3))
            l_n = gamma[:, 0] * mse_v + gamma[:, 1] * mse_r
            l_s, l_n = l_s.mean(), l_n.mean()
        return {"ssim": l_s, "mse": l_n, "self_adaptive": self.alpha * l_s + l_n}


class CoupledContrastiveLoss(nn.Module):
    """Eqs. 1-2 (and 13-14): sum over VGG-19 layers relu1_1..relu5_1 with weights 1/32..1 of
    ``d(anchor, positive) / sum_m d(anchor, negative_m)``, ``d`` the mean absolute difference.

    Target term, inside the mask M: anchor ``F*M``, positive ``IR*M``, negatives ``VIS*M`` of the
    same pair and ``VIS_m*M`` of ``extra_negatives`` other pairs of the batch. Detail term, inside
    ``1-M``: anchor ``F*(1-M)``, positive ``VIS*(1-M)``, negatives ``IR*(1-M)`` likewise (one
    positive, three negatives, Sec. 4.1.2). Distances are taken over the whole batch, as in the
    authors' code. For medical fusion pass the functional image as ``ir`` and the MRI as ``vis``
    with the MRI-salient mask swapped: see :meth:`medical`.

    Ablations (Sec. 4.3, Fig. 17): ``target=False`` / ``detail=False`` drop that term (it is zero
    and not computed; both off is "no contrastive regularization" on the same data and schedule);
    ``sampling="random"`` contrasts with samples that do not correspond to the anchor: the positive
    and every negative of each anchor come from another patch of the batch (a random sample of the
    training set), each drawn independently, instead of the anchor's own pair.
    """

    SAMPLINGS = ("paired", "random")

    def __init__(self, vgg: VGG19, extra_negatives: int = 2,
                 layer_weights=CONTRAST_LAYER_WEIGHTS, target: bool = True, detail: bool = True,
                 sampling: str = "paired"):
        super().__init__()
        self.vgg = vgg
        self.extra_negatives, self.layer_weights = extra_negatives, tuple(layer_weights)
        if sampling not in self.SAMPLINGS:
            raise ValueError(f"sampling must be one of {self.SAMPLINGS}, not {sampling!r}")
        self.target, self.detail, self.sampling = bool(target), bool(detail), sampling

    @staticmethod
    def _unpaired(x: torch.Tensor) -> torch.Tensor:
        """Each row replaced by another, random row of the batch (never its own)."""
        batch = x.shape[0]
        if batch < 2:
            raise ValueError("random contrastive sampling needs at least two patches per batch")
        offset = torch.randint(1, batch, (batch,))
        return x[((torch.arange(batch) + offset) % batch).to(x.device)]

    def _term(self, anchor, positive, negatives) -> torch.Tensor:
        anchor_feats = self.vgg(anchor)
        with torch.no_grad():
            batch = positive.shape[0]
            feats = self.vgg(torch.cat([positive, *negatives], 0))
            pos_feats = [f[:batch] for f in feats]
            neg_feats = [f[batch:].split(batch) for f in feats]
        loss = anchor.new_zeros((), dtype=torch.float32)
        for w, a, p, negs in zip(self.layer_weights, anchor_feats, pos_feats, neg_feats):
            with full_precision(a, p, *negs) as (a, p, *negs):  # distances in float32 under autocast
                denominator = sum(F.l1_loss(a, n) for n in negs)
                loss = loss + w * F.l1_loss(a, p) / denominator.clamp_min(1e-8)
        return loss

    def forward(self, fused, ir, vis, mask, others=None) -> dict[str, torch.Tensor]:
        """``mask`` (B, 1, H, W) in {0, 1}: 1 on the salient (infrared-target) region.

        ``others``: optional list of ``(ir_k, vis_k)`` batches shaped like ``ir``, patches that
        are not fused but lend their sources, cut by the anchor's mask, as the extra negatives
        (the authors' code: a batch of 30 is 10 anchors and two groups of 10 such patches).
        Without it the extra negatives are the other anchors' sources (the batch rolled by 1, 2, ...).
        """
        if others is None:
            shifts = [s for s in range(1, self.extra_negatives + 1) if s < fused.shape[0]]
            others = [(ir.roll(s, 0), vis.roll(s, 0)) for s in shifts]
        if self.sampling == "random":  # Fig. 17d: samples that do not correspond to the anchor
            others = [(self._unpaired(i), self._unpaired(v)) for i, v in others]
            ir_pos, vis_neg, vis_pos, ir_neg = (self._unpaired(t) for t in (ir, vis, vis, ir))
        else:
            ir_pos, vis_neg, vis_pos, ir_neg = ir, vis, vis, ir
        inverse = 1 - mask
        zero = fused.new_zeros((), dtype=torch.float32)
        target = (self._term(fused * mask, ir_pos * mask, [vis_neg * mask] + [v * mask for _, v in others])
                  if self.target else zero)
        detail = (self._term(fused * inverse, vis_pos * inverse, [ir_neg * inverse] + [i * inverse for i, _ in others])
                  if self.detail else zero)
        return {"target": target, "detail": detail, "contrastive": target + detail}
