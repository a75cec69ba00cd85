"""Training recipes: what each learned method trains on and how one step computes its losses.

Each recipe declares the config keys it reads beside the shared ones of
:mod:`contrafuse.train.config` (``keys``, and ``stage_keys`` for an entry of ``stages``), and may
check what a table cannot (``check_config(cfg, path)``, optional).

Patches are float32 arrays (N, C, H, W) in [-1, 1] for images and {0, 1} for masks; channel 0 is
the infrared/functional image, channel 1 the visible/MRI image, channel 2 (when present) the mask.
"""

from __future__ import annotations

import numpy as np

from ..data.datasets import load_grey_pair, load_split, random_patches, sliding_patches
from ..data.masks import MRI_SEGMENTATIONS, infrared_mask, mri_mask, saliency_mask
from ..errors import ContrafuseError
from ..nn import to_signed
from ..registry import Registry
from ..schema import NUMBER, Key

RECIPES: Registry = Registry("training recipe")


def _to_signed(patches: np.ndarray, image_channels: int = 2) -> np.ndarray:
    patches[:, :image_channels] = to_signed(patches[:, :image_channels])
    return patches


def check_patch_size(cfg: dict, pairs: list, groups: list) -> int:
    """``patch_size`` from the config, if every training image can hold a patch of that side; else
    a one-line error naming the config, the smallest pair and the largest size that would fit."""
    size = int(cfg["patch_size"])
    if not groups:
        raise ContrafuseError(cfg.get("_path", "config"), "the split lists no training pairs")
    sides = [min(group[0].shape[:2]) for group in groups]
    smallest = int(np.argmin(sides))
    if sides[smallest] < size:
        height, width = groups[smallest][0].shape[:2]
        pair = pairs[smallest]
        raise ContrafuseError(cfg.get("_path", "config"), f"patch_size {size} is larger than training pair "
                              f"{getattr(pair, 'dataset', '')}/{pair.name} ({width}x{height}); at most {sides[smallest]} fits")
    return size


def most_masked(pairs: list, groups: list, count: int, where) -> tuple[list, list]:
    """The ``count`` pairs whose salient mask (last array of each group) covers the largest share of
    the image, in split order. The paper fine-tunes on "merely 18 images with salient masks" (Sec.
    4.1.2), drawn by hand; this picks as many from the automatic (or ``mask_dir``) masks."""
    if len(groups[0]) < 3:
        raise ContrafuseError(where, "mask_pairs needs a contrastive stage (only those stages use masks)")
    if count > len(groups):
        raise ContrafuseError(where, f"mask_pairs is {count}, but the split has {len(groups)} training pairs")
    coverage = np.array([float(group[-1].mean()) for group in groups])
    keep = sorted(np.argsort(-coverage, kind="stable")[:count])
    return [pairs[i] for i in keep], [groups[i] for i in keep]


@RECIPES.register("coconet")
class CoCoNetRecipe:
    """CoCoNet two-stage training (Sec. 4.1.2, Algorithm 1).

    Stage ``contrastive: false``: self-adaptive loss only. Stage ``contrastive: true``: plus the
    coupled contrastive loss on masked patches; with ``anchors: 10`` a batch of 30 is split as in
    the authors' code (10 fused anchors, the other 20 patches only lend negatives), otherwise
    every patch is an anchor and the negatives come from the other anchors; ``mask_pairs: 18`` cuts
    its patches from the 18 most masked training pairs only (the paper's 18). ``masks: infrared`` (IVIF) or ``mri`` (medical,
    Sec. 3.4.2: the functional image is the first source, the MRI the second; the MRI-salient
    mask M_m selects the MRI as positive, so the contrastive loss is called with the roles of the
    two sources swapped).
    """

    channels_last = True  # 1.1x per step in bfloat16 and float32 (benchmarks/results/training_speed.json)

    keys = {
        "patches": Key((int, dict), required=True, minimum=1),  # a count, or one per dataset of the split
        "patch_seed": Key(int),
        "masks": Key(str, choices=("infrared", "mri", "saliency")),
        "mask_dir": Key(str, path=True),
        "mri_segmentation": Key(str, choices=MRI_SEGMENTATIONS),
        "extra_negatives": Key(int, minimum=0),
        "self_adaptive": Key(dict, table={
            "alpha": Key(NUMBER, minimum=0), "form": Key(str, choices=("code", "paper")),
            "t_ag": Key(NUMBER, minimum=1e-6), "t_en": Key(NUMBER, minimum=1e-6),
            "measures": Key(str, choices=("per_sample", "code")),
            # hand-crafted weights instead of self-adaptive ones (Fig. 15): sigma^a (visible) = sigma
            "sigma": Key(NUMBER, minimum=0), "gamma": Key(NUMBER, minimum=0)}),
        "vgg_grey": Key(str),  # one of contrafuse.nn.vgg.GREY_FOLDS (check_config)
        # MAM ablations (Sec. 4.3, Tables 2-3); default: the full module
        "mam": Key(dict, table={"channel_attention": Key(bool), "vgg_levels": Key(list)}),
        # contrastive-loss ablations (Fig. 17); default: both terms, paired samples
        "contrastive_loss": Key(dict, table={"target": Key(bool), "detail": Key(bool),
                                             "sampling": Key(str, choices=("paired", "random"))}),
    }
    stage_keys = {"contrastive": Key(bool), "contrastive_weight": Key(NUMBER, minimum=0),
                  "anchors": Key(int, minimum=1), "mask_pairs": Key(int, minimum=1)}

    @staticmethod
    def check_config(cfg: dict, path) -> None:
        """Fixed weights are at most 1; VGG-19's grey input and MAM levels are ones the network has."""
        for name in ("sigma", "gamma"):
            if cfg.get("self_adaptive", {}).get(name, 0) > 1:
                raise ContrafuseError(path, f"self_adaptive.{name} must be at most 1, not {cfg['self_adaptive'][name]!r}")
        if "vgg_grey" in cfg:
            from ..nn.vgg import GREY_FOLDS
            if cfg["vgg_grey"] not in GREY_FOLDS:
                raise ContrafuseError(path, f"vgg_grey must be one of {', '.join(GREY_FOLDS)}, not {cfg['vgg_grey']!r}")
        if "vgg_levels" in cfg.get("mam", {}):
            from ..nn.coconet import VGG_LEVELS
            levels = cfg["mam"]["vgg_levels"]
            if any(not isinstance(v, str) or v not in VGG_LEVELS for v in levels) or len(set(levels)) != len(levels):
                raise ContrafuseError(path, f"mam.vgg_levels must list distinct levels of {', '.join(VGG_LEVELS)}, "
                                      f"not {levels!r}")

    def __init__(self):
        self._contrastive = None
        self._self_adaptive = None

    def build_model(self, cfg):
        import torch

        from ..losses.coconet import CoupledContrastiveLoss, SelfAdaptiveLoss
        from ..nn import build_network
        from ..weights import vgg19_state

        self._mri_segmentation = cfg.get("mri_segmentation", "som")
        if self._mri_segmentation not in MRI_SEGMENTATIONS:
            raise ContrafuseError(cfg.get("_path", "config"), f"mri_segmentation must be one of "
                                  f"{', '.join(MRI_SEGMENTATIONS)}, not {self._mri_segmentation!r}")
        state = vgg19_state()
        sa = cfg.get("self_adaptive", {})
        self._self_adaptive = SelfAdaptiveLoss(alpha=sa.get("alpha", 20.0), form=sa.get("form", "code"),
                                               t_ag=sa.get("t_ag", 0.5), t_en=sa.get("t_en", 0.75),
                                               measures=sa.get("measures", "per_sample"),
                                               sigma=sa.get("sigma"), gamma=sa.get("gamma"))
        fold = cfg.get("vgg_grey", "caffe")  # how VGG-19 takes grey input: ImageNet preprocessing or the authors' code
        if any(stage.get("contrastive") for stage in cfg["stages"]):
            from ..nn.vgg import VGG19
            vgg = VGG19(state=state, fold=fold).to(memory_format=torch.channels_last)
            terms = cfg.get("contrastive_loss", {})  # Fig. 17's ablations
            self._contrastive = CoupledContrastiveLoss(vgg,
                                                       extra_negatives=cfg.get("extra_negatives", 2),
                                                       target=terms.get("target", True), detail=terms.get("detail", True),
                                                       sampling=terms.get("sampling", "paired"))
        self._mask_kind = cfg.get("masks", "infrared")
        mam = cfg.get("mam", {})  # Tables 2-3's ablations; the full MAM by default
        options = {name: mam[name] for name in ("channel_attention", "vgg_levels") if name in mam}
        return build_network("coconet", vgg_state=state, vgg_fold=fold, **options)

    def stage_data(self, cfg, stage):
        split = load_split(cfg["split"])
        pairs, groups = split["train"], []
        for pair in pairs:
            first, second = load_grey_pair(pair)
            group = [first, second]
            if stage.get("contrastive"):
                group.append(self._mask(cfg, pair, first, second))
            groups.append(group)
        if stage.get("mask_pairs"):
            ranked = groups
            if self._mask_kind == "saliency" and not cfg.get("mask_dir") and len(groups[0]) == 3:
                # Fig. 18 compares masks on the same images: the pairs are those the automatic
                # (detector) masks pick, so that only the masks differ from the full model's training
                ranked = [[first, second, infrared_mask(first)] for first, second, _ in groups]
            keep, _ = most_masked(list(range(len(groups))), ranked, int(stage["mask_pairs"]), cfg.get("_path", "config"))
            pairs, groups = [pairs[i] for i in keep], [groups[i] for i in keep]
        size = check_patch_size(cfg, pairs, groups)
        # which patches are drawn: ``patch_seed`` (default ``seed``, which also draws the weights and batch order)
        seed = int(cfg.get("patch_seed", cfg.get("seed", 0))) + 1000 * int(bool(stage.get("contrastive")))
        counts = cfg["patches"]
        if isinstance(counts, dict):  # per-dataset counts (the paper's medical set: 2,662 PET, 4,114 SPECT)
            datasets = sorted({pair.dataset for pair in pairs})
            if set(counts) != set(datasets):
                raise ContrafuseError(cfg.get("split"), f"'patches' names {sorted(counts)}, but the training "
                                      f"pairs come from {datasets}")
            selections = [([g for g, pair in zip(groups, pairs) if pair.dataset == name], counts[name])
                          for name in datasets]
        else:
            selections = [(groups, counts)]
        parts = [random_patches(chosen, int(count), size, seed=seed + i)
                 for i, (chosen, count) in enumerate(selections)]
        return _to_signed(np.concatenate(parts))

    def _mask(self, cfg, pair, first, second):
        """A user mask (``mask_dir``: ``<name>.png``, non-zero = salient) or an automatic one."""
        if cfg.get("mask_dir"):
            from ..io import list_images, luminance, read_image
            masks = list_images(cfg["mask_dir"])
            if pair.name not in masks:
                raise ContrafuseError(cfg["mask_dir"], f"no mask for training pair {pair.name}")
            mask = luminance(read_image(masks[pair.name]))[: first.shape[0], : first.shape[1]]
            if mask.shape != first.shape:
                raise ContrafuseError(masks[pair.name], f"mask size {mask.shape} differs from image {first.shape}")
            return (mask > 0.5).astype(np.float32)
        if self._mask_kind == "infrared":
            return infrared_mask(first)
        if self._mask_kind == "saliency":  # Fig. 18's unsupervised-saliency masks
            return saliency_mask(first)
        return mri_mask(second, segmentation=self._mri_segmentation)

    def step(self, model, batch, stage):
        others = None
        anchors = stage.get("anchors") if stage.get("contrastive") else None
        if anchors:  # the authors' split: the first `anchors` patches are fused, the rest lend negatives
            groups = batch.split(int(anchors))
            batch = groups[0]
            others = [(g[:, 0:1], g[:, 1:2]) for g in groups[1:] if len(g) == len(batch)]
        ir, vis = batch[:, 0:1], batch[:, 1:2]
        fused = model(ir, vis)
        losses = self._self_adaptive(fused, ir, vis)
        total = losses["self_adaptive"]
        if stage.get("contrastive"):
            mask = batch[:, 2:3]
            if self._mask_kind == "mri":  # Eqs. 13-14: MRI positive inside M_m, functional outside
                swapped = None if others is None else [(v, i) for i, v in others]
                contrast = self._contrastive(fused, vis, ir, mask, swapped)
            else:
                contrast = self._contrastive(fused, ir, vis, mask, others)
            weight = float(stage.get("contrastive_weight", 1.0))
            total = total + weight * contrast["contrastive"]
            losses.update(contrast)
        losses["total"] = total
        return losses


@RECIPES.register("clfnet")
class CLFNetRecipe:
    """CLF-Net training (Sec. IV-A3): 128x128 patches at stride 32, loss lambda1 PatchNCE +
    lambda2 windowed SSIM."""

    channels_last = True
    keys = {
        "stride": Key(int, required=True, minimum=1),
        "train_pairs": Key(int, minimum=1),
        "samples": Key(int, minimum=1),
        "tau": Key(NUMBER, minimum=1e-6),
        "lambda_nce": Key(NUMBER, minimum=0),
        "lambda_ssim": Key(NUMBER, minimum=0),
        "ssim_window": Key(int, minimum=1),
        "ssim_window_kind": Key(str, choices=("uniform", "gaussian")),
        "ssim_range": Key(str, choices=("unit", "signed")),
        "negatives": Key(str, choices=("a", "b", "c")),   # Table VIII's strategies; c = the paper's
    }
    stage_keys: dict = {}

    def build_model(self, cfg):
        from ..losses.clfnet import CLFNetLoss
        from ..nn import build_network

        model = build_network("clfnet")
        self._loss = CLFNetLoss(model, samples=cfg.get("samples", 200), tau=cfg.get("tau", 0.07),
                                lambda_nce=cfg.get("lambda_nce", 1.0), lambda_ssim=cfg.get("lambda_ssim", 1.0),
                                window=cfg.get("ssim_window", 16), window_kind=cfg.get("ssim_window_kind", "uniform"),
                                ssim_range=cfg.get("ssim_range", "unit"), negatives=cfg.get("negatives", "c"))
        return model

    def stage_data(self, cfg, stage):
        split = load_split(cfg["split"])
        pairs = split["train"][: cfg.get("train_pairs", len(split["train"]))]
        groups = [list(load_grey_pair(p)) for p in pairs]
        return _to_signed(sliding_patches(groups, check_patch_size(cfg, pairs, groups), int(cfg["stride"])))

    def step(self, model, batch, stage):
        ir, vis = batch[:, 0:1], batch[:, 1:2]
        features = model.encode(ir, vis)  # the fusion pass's source features are the loss's keys
        return self._loss(model.decode(*features), ir, vis, source_features=features)
