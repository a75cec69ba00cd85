"""Training configs: one YAML file per experiment, validated against one table of keys.

Every key a recipe or the training loop reads is declared in :data:`KEYS` (or :data:`STAGE_KEYS`
for an entry of ``stages``) with its type and range; unknown keys, missing required keys, wrong
types and out-of-range values are one-line errors naming the key and the file. Input paths
(``split``, ``init_weights``, ``mask_dir``) are resolved relative to the config file, so a config
works from any directory; ``package:NAME`` names a file shipped in ``contrafuse/weights``, and
``split`` may name a built-in split (``tno``, ``harvard_medical``: ``contrafuse/data/splits``).
``output`` is relative to the working directory, where runs are written.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ContrafuseError
from ..io import read_yaml_mapping
from ..schema import NUMBER, Key, check_keys

KEYS = {
    "method": Key(str, required=True, choices=("coconet", "clfnet")),
    "stages": Key(list, required=True),
    "split": Key(str, required=True, path=True),
    "lr": Key(NUMBER, required=True, minimum=1e-12),
    "batch_size": Key(int, required=True, minimum=1),
    "patch_size": Key(int, required=True, minimum=8),
    "seed": Key(int),
    "patch_seed": Key(int),
    "output": Key(str),
    "checkpoint_minutes": Key(NUMBER, minimum=0.01),
    "threads": Key(int, minimum=1),
    "precision": Key(str, choices=("auto", "bf16", "fp32")),
    "init_weights": Key(str, path=True),
    "start_epoch": Key(int, minimum=0),
    # CoCoNet
    "patches": Key((int, dict), minimum=1),
    "masks": Key(str, choices=("infrared", "mri", "saliency")),
    "mask_dir": Key(str, path=True),
    "mri_segmentation": Key(str, choices=("som", "kmeans")),
    "extra_negatives": Key(int, minimum=0),
    "self_adaptive": Key(dict),
    "vgg_grey": Key(str, choices=("caffe", "luminance", "torchvision")),
    "mam": Key(dict),                 # network ablations (Tables 2-3): MAM_KEYS
    "contrastive_loss": Key(dict),    # loss ablations (Fig. 17): CONTRASTIVE_LOSS_KEYS
    # CLF-Net
    "train_pairs": Key(int, minimum=1),
    "stride": Key(int, minimum=1),
    "samples": Key(int, minimum=1),
    "tau": Key(NUMBER, minimum=1e-6),
    "lambda_nce": Key(NUMBER, minimum=0),
    "lambda_ssim": Key(NUMBER, minimum=0),
    "ssim_window": Key(int, minimum=1),
    "ssim_window_kind": Key(str, choices=("uniform", "gaussian")),
    "ssim_range": Key(str, choices=("unit", "signed")),
    "negatives": Key(str, choices=("a", "b", "c")),   # Table VIII's strategies; c = the paper's
}
STAGE_KEYS = {
    "name": Key(str),
    "epochs": Key(int, required=True, minimum=1),
    "contrastive": Key(bool),
    "contrastive_weight": Key(NUMBER, minimum=0),
    "anchors": Key(int, minimum=1),
    "mask_pairs": Key(int, minimum=1),
    "batch_size": Key(int, minimum=1),
    "converge": Key(dict),
}
SELF_ADAPTIVE_KEYS = {"alpha": Key(NUMBER, minimum=0), "form": Key(str, choices=("code", "paper")),
                      "t_ag": Key(NUMBER, minimum=1e-6), "t_en": Key(NUMBER, minimum=1e-6),
                      "measures": Key(str, choices=("per_sample", "code")),
                      # hand-crafted weights instead of self-adaptive ones (Fig. 15): sigma^a (visible) = sigma
                      "sigma": Key(NUMBER, minimum=0), "gamma": Key(NUMBER, minimum=0)}
#: CoCoNet's MAM ablations (Sec. 4.3, Tables 2-3); defaults: the full module.
MAM_KEYS = {"channel_attention": Key(bool), "vgg_levels": Key(list)}
#: CoCoNet's contrastive-loss ablations (Sec. 4.3, Fig. 17); defaults: both terms, paired samples.
CONTRASTIVE_LOSS_KEYS = {"target": Key(bool), "detail": Key(bool), "sampling": Key(str, choices=("paired", "random"))}
CONVERGE_KEYS = {"tolerance": Key(NUMBER, minimum=0), "patience": Key(int, minimum=1)}


def resolve_input_path(value: str, base: Path) -> str:
    """``package:NAME`` -> the shipped file; a relative path -> relative to ``base``."""
    if value.startswith("package:"):
        from ..weights import PACKAGE_WEIGHTS
        return str(PACKAGE_WEIGHTS / value[len("package:"):])
    return str(base / value) if not os.path.isabs(value) else value


def load_config(path: str | os.PathLike) -> dict:
    """Read, validate and resolve a training config (see the module docstring)."""
    path = Path(path)
    cfg = read_yaml_mapping(path)
    check_keys(KEYS, cfg, "", path)
    if not cfg["stages"]:
        raise ContrafuseError(path, "stages must list at least one stage")
    for i, stage in enumerate(cfg["stages"]):
        if not isinstance(stage, dict):
            raise ContrafuseError(path, f"stages[{i}] must be a mapping such as {{name: train, epochs: 4}}")
        check_keys(STAGE_KEYS, stage, f"stages[{i}].", path)
        if "converge" in stage:
            check_keys(CONVERGE_KEYS, stage["converge"], f"stages[{i}].converge.", path)
    if "self_adaptive" in cfg:
        check_keys(SELF_ADAPTIVE_KEYS, cfg["self_adaptive"], "self_adaptive.", path)
        for name in ("sigma", "gamma"):
            if cfg["self_adaptive"].get(name, 0) > 1:
                raise ContrafuseError(path, f"self_adaptive.{name} must be at most 1, not {cfg['self_adaptive'][name]!r}")
    if "mam" in cfg:
        check_keys(MAM_KEYS, cfg["mam"], "mam.", path)
        from ..nn.coconet import VGG_LEVELS
        levels = cfg["mam"].get("vgg_levels", list(VGG_LEVELS))
        if any(not isinstance(v, str) or v not in VGG_LEVELS for v in levels) or len(set(levels)) != len(levels):
            raise ContrafuseError(path, f"mam.vgg_levels must list distinct levels of {', '.join(VGG_LEVELS)}, "
                                  f"not {levels!r}")
    if "contrastive_loss" in cfg:
        check_keys(CONTRASTIVE_LOSS_KEYS, cfg["contrastive_loss"], "contrastive_loss.", path)
    from ..data.datasets import SPLITS
    for name, key in KEYS.items():
        if name == "split" and cfg[name] in SPLITS:
            cfg[name] = str(SPLITS[cfg[name]])
        elif key.path and name in cfg:
            cfg[name] = resolve_input_path(cfg[name], path.parent)
    cfg["_path"] = str(path)
    return cfg
