"""Which part of the authors' inference protocol makes one CoCoNet seed sharp and another not.

    python benchmarks/coconet_protocol_split.py [WEIGHTS ...]

The `authors` protocol (docs/REPRODUCTION.md) differs from `standard` in two ways: BatchNorm
normalises with each image's own statistics, and the network is fed 0-255 instead of the training
range [-1, 1]. The second reaches the network through two doors: the U-Net's first convolution
and the frozen VGG-19. This evaluates each weights file (default: the shipped model and seeds 1 and
2 of docs/ablations/coconet_seeds) with the two changes switched on one at a time, and the 0-255
input sent through one door only, on every third pair of ``roadscene_val`` (`legacy` SD, SF, AG).
Writes benchmarks/results/coconet_protocol_split.json with the machine and the git state.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from coconet_seed_screen import validation_scores  # the screen's scores: every third validation pair

from contrafuse.bench.suites import SUITES
from contrafuse.bench.timing import write_result
from contrafuse.methods import create_method

REPO = Path(__file__).resolve().parent.parent
DEFAULT_WEIGHTS = ["contrafuse/weights/coconet_tno.safetensors", "runs/coconet_tno_seed1/model.safetensors",
                   "runs/coconet_tno_seed2/model.safetensors"]

#: variant -> (BatchNorm with per-image statistics, U-Net input range, VGG-19 input range)
VARIANTS = {
    "standard": (False, "training", "training"),
    "per-image BN": (True, "training", "training"),
    "per-image BN, 0-255 into the U-Net only": (True, "0-255", "training"),
    "per-image BN, 0-255 into VGG-19 only": (True, "training", "0-255"),
    "authors (per-image BN, 0-255 everywhere)": (True, "0-255", "0-255"),
}


class InputMap(torch.nn.Module):
    """Feeds a module ``scale * x + shift`` instead of ``x``."""

    def __init__(self, module: torch.nn.Module, scale: float, shift: float):
        super().__init__()
        self.module, self.scale, self.shift = module, scale, shift

    def forward(self, x):
        return self.module(x * self.scale + self.shift)


def build(weights: str, per_image_bn: bool, unet_range: str, vgg_range: str):
    method = create_method("coconet", weights=weights, inference="authors" if unet_range == "0-255" else "standard",
                           precision="fp32")
    method.fuse_grey(np.zeros((16, 16), np.float32), np.zeros((16, 16), np.float32))  # loads the network
    net = method.model
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d) and per_image_bn:
            module.track_running_stats = False
            module.running_mean = module.running_var = None
    method.border = 2 * net.MULTIPLE  # the reflected frame of the authors' protocol in every variant
    if unet_range == "0-255" and vgg_range == "training":
        net.vgg = InputMap(net.vgg, 1 / 127.5, -1.0)
    elif unet_range == "training" and vgg_range == "0-255":
        net.vgg = InputMap(net.vgg, 127.5, 127.5)
    return method


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("weights", nargs="*", default=DEFAULT_WEIGHTS)
    args = parser.parse_args()
    results = {}
    for weights in args.weights:
        results[weights] = {}
        for name, setting in VARIANTS.items():
            results[weights][name] = validation_scores(build(str(REPO / weights), *setting))
            print(weights, name, results[weights][name], flush=True)
    out = REPO / "benchmarks" / "results" / "coconet_protocol_split.json"
    write_result(out, {"pairs": [p.name for p in SUITES["roadscene_val"]()[::3]], "convention": "legacy",
                       "precision": "fp32", "results": results})


if __name__ == "__main__":
    main()
