"""SSIM as TensorFlow's ``tf.image.ssim`` computes it (Gaussian window 11x11, sigma 1.5, valid
windows, K1 = 0.01, K2 = 0.03, mean over pixels and channels), per image; DSSIM = (1 - SSIM) / 2,
the perceptual budget of Fawkes."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gaussian_window(size: int = 11, sigma: float = 1.5, device=None) -> torch.Tensor:
    g = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-(g**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g)


def ssim(
    x: torch.Tensor, y: torch.Tensor, max_val: float = 255.0, size: int = 11, sigma: float = 1.5
) -> torch.Tensor:
    """Per-image SSIM ``(B,)`` of ``(B, C, H, W)`` images in ``[0, max_val]``."""
    c = x.shape[1]
    w = gaussian_window(size, sigma, x.device).to(x.dtype).expand(c, 1, size, size)

    def blur(t):
        return F.conv2d(t, w, groups=c)

    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return s.mean((1, 2, 3))


def dssim(x: torch.Tensor, y: torch.Tensor, max_val: float = 255.0) -> torch.Tensor:
    return (1 - ssim(x, y, max_val)) / 2
