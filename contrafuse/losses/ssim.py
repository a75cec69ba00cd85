"""Differentiable SSIM (Wang, Bovik, Sheikh & Simoncelli, IEEE TIP 2004) for training losses."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def gaussian_window(size: int = 11, sigma: float = 1.5, *, dtype=torch.float32, device=None) -> torch.Tensor:
    coords = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).view(1, 1, size, size)


def ssim_map(x: torch.Tensor, y: torch.Tensor, window: torch.Tensor, c1: float, c2: float,
             padding: int) -> torch.Tensor:
    """Local SSIM of one-channel batches ``(B, 1, H, W)`` under a normalised ``window``."""
    mu_x, mu_y = F.conv2d(x, window, padding=padding), F.conv2d(y, window, padding=padding)
    var_x = F.conv2d(x * x, window, padding=padding) - mu_x**2
    var_y = F.conv2d(y * y, window, padding=padding) - mu_y**2
    cov = F.conv2d(x * y, window, padding=padding) - mu_x * mu_y
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))


def ssim(x: torch.Tensor, y: torch.Tensor, *, size: int = 11, sigma: float = 1.5,
         data_range: float = 1.0) -> torch.Tensor:
    """Per-sample mean SSIM (Gaussian 11x11, sigma 1.5, K1 = 0.01, K2 = 0.03, zero-padded
    'same' maps as in the widely used pytorch-ssim), shape ``(B,)``."""
    window = gaussian_window(size, sigma, dtype=x.dtype, device=x.device)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    return ssim_map(x, y, window, c1, c2, padding=size // 2).mean(dim=(1, 2, 3))
