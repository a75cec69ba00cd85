"""CLF-Net losses (Zhu et al., IEEE TIM 2022): adaptive PatchNCE (Sec. III-B/C, Eqs. 1, 6-8) and
windowed SSIM (Eqs. 2-5); total ``lambda1 L_patchNCE + lambda2 L_SSIM`` (Eq. 9)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..nn import to_unit
from ..precision import full_precision
from .ssim import box_profile, gaussian_profile, ssim_maps


def adaptive_patch_nce(q_ir: torch.Tensor, q_vis: torch.Tensor, k_ir: torch.Tensor, k_vis: torch.Tensor,
                       tau: float = 0.07, negatives: tuple[torch.Tensor, torch.Tensor] | None = None,
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Eqs. 1 and 7 on sampled, projected features, each ``(B, S, K)``.

    ``q_ir = H(E_ir(F))``, ``q_vis = H(E_vi(F))`` are the fused image's queries, ``k_ir = H(E_ir(IR))``
    and ``k_vis = H(E_vi(VIS))`` the sources'. All are L2-normalised. At each location the branch
    whose query is more similar to its own positive wins (Eq. 7; ties go to visible, as ``<=``);
    its negatives are the other ``B*S - 1`` sampled locations of that branch's source features,
    i.e. ``S - 1`` of the same image and ``(B - 1) S`` of the other images of the batch
    (strategy 3, Sec. IV-H). Returns the mean loss over the ``B*S`` locations and the boolean
    choice ``(B, S)`` (True = infrared).

    ``negatives = (n_ir, n_vis)``, each ``(B, S, K)``: the negatives of the infrared and the visible
    branch are instead all ``B*S`` sampled locations of these features (Sec. IV-H, Table VIII:
    strategies 1 and 2 take them from the other source image; see :class:`CLFNetLoss`), beside
    the positive; the branch choice is unchanged.
    """
    b, s, k = q_ir.shape
    with full_precision(q_ir, q_vis, k_ir, k_vis) as features:  # logits / 0.07 need float32
        q_ir, q_vis, k_ir, k_vis = (F.normalize(t.reshape(b * s, k), dim=1) for t in features)
        pos_ir, pos_vis = (q_ir * k_ir).sum(1), (q_vis * k_vis).sum(1)
        use_ir = pos_ir > pos_vis
        keys_ir_logits = q_ir @ k_ir.t()      # (BS, BS); diagonal = positives
        keys_vis_logits = q_vis @ k_vis.t()
        if negatives is None:
            logits = torch.where(use_ir[:, None], keys_ir_logits, keys_vis_logits) / tau
            # Cross-entropy with the diagonal as the target: positive plus the B*S - 1 negatives of the branch.
            target = torch.arange(b * s, device=logits.device)
            return F.cross_entropy(logits, target), use_ir.view(b, s)
        with full_precision(*negatives) as negs:
            n_ir, n_vis = (F.normalize(t.reshape(b * s, k), dim=1) for t in negs)
            logits_ir = torch.cat([pos_ir[:, None], q_ir @ n_ir.t()], 1)   # positive first, then B*S negatives
            logits_vis = torch.cat([pos_vis[:, None], q_vis @ n_vis.t()], 1)
            logits = torch.where(use_ir[:, None], logits_ir, logits_vis) / tau
            return F.cross_entropy(logits, torch.zeros(b * s, dtype=torch.long, device=logits.device)), use_ir.view(b, s)


def sample_locations(height: int, width: int, count: int, generator: torch.Generator | None = None,
                     device=None) -> torch.Tensor:
    """``count`` distinct flat spatial indices, shared by the whole batch (as the authors' code)."""
    return torch.randperm(height * width, generator=generator, device=device)[: min(count, height * width)]


def windowed_ssim_loss(fused: torch.Tensor, ir: torch.Tensor, vis: torch.Tensor, *, window: int = 16,
                       kind: str = "uniform", c1: float = 1e-4, c2: float = 9e-4) -> torch.Tensor:
    """Eqs. 2-5: 1 - mean over all ``window`` x ``window`` windows (stride 1) of SSIM(F, X), X the
    source with the higher mean intensity in that window (Eq. 3-4; ties go to visible).

    ``kind="uniform"`` (paper): plain window means, only windows inside the image.
    ``kind="gaussian"`` (authors' code): a 16x16 Gaussian (sigma 1.5) window with zero padding.
    """
    if kind == "uniform":
        profile, padding = box_profile(window, device=fused.device), 0
    elif kind == "gaussian":
        profile, padding = gaussian_profile(window, 1.5, device=fused.device), window // 2
    else:
        raise ValueError(f"window kind must be 'uniform' or 'gaussian', not {kind!r}")
    with full_precision(fused, ir, vis) as (f, r, v):  # variances need float32
        (ssim_ir, ssim_vis), (mean_ir, mean_vis) = ssim_maps(f, [r, v], profile, c1, c2, padding)
        score = torch.where(mean_ir > mean_vis, ssim_ir, ssim_vis)
        return 1 - score.mean()


class CLFNetLoss(nn.Module):
    """Eq. 9 for a :class:`~contrafuse.nn.clfnet.CLFNet` model (its encoders and head are reused).

    SSIM as the paper (``window_kind="uniform"``, images mapped to [0, 1]: ``ssim_range="unit"``)
    or as the authors' code (``"gaussian"``, on the network's [-1, 1] values: ``"signed"``).

    ``negatives`` (Sec. IV-H, Table VIII): where the negatives of a query come from. For the
    infrared branch (query ``H(E_ir(F))``, positive ``H(E_ir(IR))``; the visible branch mirrors it):
    ``"a"``, the visible image through the visible encoder, ``H(E_vi(VIS))``; ``"b"``, the visible
    image through the infrared encoder, ``H(E_ir(VIS))`` (two more encoder passes); ``"c"`` (the
    paper's choice, default), the other sampled locations of the infrared image and of the other
    images of the batch. (a) and (b) take all ``B*S`` sampled locations of those features.
    ``lambda_nce=0`` is Table VI's "w/o PatchNCE" as the paper made it (the term is still computed)."""

    NEGATIVES = ("a", "b", "c")

    def __init__(self, model, samples: int = 200, tau: float = 0.07, lambda_nce: float = 1.0,
                 lambda_ssim: float = 1.0, window: int = 16, window_kind: str = "uniform",
                 ssim_range: str = "unit", negatives: str = "c"):
        super().__init__()
        if negatives not in self.NEGATIVES:
            raise ValueError(f"negatives must be one of {self.NEGATIVES}, not {negatives!r}")
        self.negatives = negatives
        self.model = [model]  # not a submodule: the model owns its parameters
        self.samples, self.tau = samples, tau
        self.lambda_nce, self.lambda_ssim = lambda_nce, lambda_ssim
        self.window, self.window_kind = window, window_kind
        if ssim_range not in ("unit", "signed"):
            raise ValueError(f"ssim_range must be 'unit' or 'signed', not {ssim_range!r}")
        self.ssim_range = ssim_range

    def forward(self, fused, ir, vis, source_features=None) -> dict[str, torch.Tensor]:
        """``source_features``: ``model.encode(ir, vis)`` when the caller already has it (the
        fusion pass computes exactly these features; reusing them saves two encoder passes)."""
        model = self.model[0]
        k_ir, k_vis = source_features or model.encode(ir, vis)   # sources through their own encoders
        q_ir, q_vis = model.encode(fused, fused)     # the fused image through both encoders
        b, c, h, w = k_ir.shape
        ids = sample_locations(h, w, self.samples, device=k_ir.device)

        def project(feat):
            picked = feat.flatten(2)[:, :, ids].transpose(1, 2)   # (B, S, C)
            return model.head(picked.reshape(-1, c)).view(b, len(ids), -1)

        projected = [project(f) for f in (q_ir, q_vis, k_ir, k_vis)]  # this order: the head's BatchNorm statistics
        if self.negatives == "a":    # the other source through its own encoder
            negatives = (projected[3], projected[2])
        elif self.negatives == "b":  # the other source through this branch's encoder
            negatives = (project(model.ir_encoder(vis)), project(model.vis_encoder(ir)))
        else:
            negatives = None
        nce, _ = adaptive_patch_nce(*projected, self.tau, negatives)
        images = (fused, ir, vis) if self.ssim_range == "signed" else tuple(map(to_unit, (fused, ir, vis)))
        ssim_term = windowed_ssim_loss(*images, window=self.window, kind=self.window_kind)
        total = self.lambda_nce * nce + self.lambda_ssim * ssim_term
        return {"patch_nce": nce, "ssim": ssim_term, "total": total}
