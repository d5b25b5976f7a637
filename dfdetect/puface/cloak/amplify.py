"""Amplified cloaks (PuFace Fig. 4): ``x_k = clip(x + k (x' - x))`` on the 0-255 scale."""

from __future__ import annotations

import torch


def amplify(natural: torch.Tensor, cloaked: torch.Tensor, k: float | torch.Tensor) -> torch.Tensor:
    """``k`` a number or one per image ``(B,)``. uint8 inputs give uint8 (rounded; exact for integer
    ``k``), float inputs give float in [0, 255]."""
    if natural.shape != cloaked.shape:
        raise ValueError(
            f"natural and cloaked images differ in shape: {tuple(natural.shape)} vs {tuple(cloaked.shape)}"
        )
    k = torch.as_tensor(k, dtype=torch.float64, device=natural.device)
    if k.ndim == 1:
        k = k.view(-1, *([1] * (natural.ndim - 1)))
    x, xc = natural.double(), cloaked.double()
    out = (x + k * (xc - x)).clamp(0, 255)
    if natural.dtype == torch.uint8:
        return out.round().to(torch.uint8)
    return out.to(natural.dtype)
