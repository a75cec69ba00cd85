"""SSIM loss windows: one-channel ``conv2d`` against the banded-matrix products of contrafuse.losses.ssim.

    python benchmarks/ssim_speed.py

For the two training losses' shapes (CoCoNet: 30 patches of 64x64, 11x11 Gaussian window, zero
padded; CLF-Net: 4 patches of 128x128, 16x16 box window inside the image) times one SSIM map,
forward and backward, in float32 (the losses compute SSIM in float32 under autocast) on the
default threads. Writes benchmarks/results/ssim_speed.json with the machine.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.nn import functional as F

from contrafuse.bench.timing import median_seconds, write_result
from contrafuse.losses.ssim import box_profile, gaussian_profile, ssim_map

HERE = Path(__file__).resolve().parent
C1, C2 = 1e-4, 9e-4


def conv_ssim_map(x, y, window, padding):
    """The SSIM map with a 2-D ``conv2d`` window, as the losses computed it before."""
    mu_x, mu_y = F.conv2d(x, window, padding=padding), F.conv2d(y, window, padding=padding)
    var_x = F.conv2d(x * x, window, padding=padding) - mu_x**2
    var_y = F.conv2d(y * y, window, padding=padding) - mu_y**2
    cov = F.conv2d(x * y, window, padding=padding) - mu_x * mu_y
    return ((2 * mu_x * mu_y + C1) * (2 * cov + C2)) / ((mu_x**2 + mu_y**2 + C1) * (var_x + var_y + C2))


def time_both(shape, profile, padding) -> dict:
    torch.manual_seed(0)
    x, y = torch.rand(shape, requires_grad=True), torch.rand(shape)
    window = (profile[:, None] * profile[None, :])[None, None]

    def step(fn):
        x.grad = None
        fn().mean().backward()

    conv = median_seconds(lambda: step(lambda: conv_ssim_map(x, y, window, padding)), repeats=7)
    banded = median_seconds(lambda: step(lambda: ssim_map(x, y, profile, C1, C2, padding)), repeats=7)
    return {"shape": list(shape), "window": profile.numel(), "padding": padding,
            "conv2d_seconds": round(conv, 5), "banded_seconds": round(banded, 5),
            "speed-up": round(conv / banded, 2)}


def main() -> None:
    rows = {"coconet": time_both((30, 1, 64, 64), gaussian_profile(11, 1.5), 5),
            "clfnet": time_both((4, 1, 128, 128), box_profile(16), 0)}
    for name, row in rows.items():
        print(name, row)
    write_result(HERE / "results" / "ssim_speed.json",
                 {"what": "median seconds of one SSIM map, forward + backward, float32", "losses": rows})


if __name__ == "__main__":
    main()
